//! The interaction route: everything no rule claimed goes to the LLM, within the budget.

/// A rough "complex query" test, used to rate-limit in the yellow budget state: long
/// questions or ones asking for writing/explaining cost more tokens.
pub fn is_complex(normalized: &str) -> bool {
    let words = normalized.split(' ').count();
    words > 25
        || [
            "explain",
            "write",
            "story",
            "essay",
            "compare",
            "plan",
            "summarize",
            "summarise",
        ]
        .iter()
        .any(|w| normalized.split(' ').any(|x| x == *w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complexity() {
        assert!(!is_complex("why is the sky blue"));
        assert!(is_complex("write me a story about a dragon"));
    }
}
