//! The memory route: what to store ("remember that …") or what to look up (recall questions).

/// Leading phrases stripped from a "remember" utterance; the rest is the memory.
const REMEMBER_PREFIXES: [&str; 14] = [
    "please ",
    "remember that ",
    "remember this ",
    "remember to ",
    "remember ",
    "don't forget that ",
    "don't forget to ",
    "do not forget that ",
    "do not forget to ",
    "make a note that ",
    "take a note that ",
    "note that ",
    "remind me to ",
    "for the record ",
];

/// The fact to store, from the original (not normalised) text so names keep their case.
pub fn memory_content(original: &str) -> String {
    let mut rest = original.trim();
    loop {
        let lower = rest.to_lowercase();
        let Some(p) = REMEMBER_PREFIXES.iter().find(|p| lower.starts_with(*p)) else {
            break;
        };
        // The prefixes are ASCII, so byte lengths match between `lower` and `rest`.
        rest = rest[p.len().min(rest.len())..].trim_start();
    }
    let rest = rest.trim_end_matches(['.', '!', ' ']);
    let mut chars = rest.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The words worth searching for in a recall question.
pub fn recall_query(normalized: &str) -> String {
    const STOP: [&str; 40] = [
        "do",
        "you",
        "remember",
        "what",
        "when",
        "where",
        "who",
        "which",
        "is",
        "was",
        "are",
        "were",
        "did",
        "i",
        "we",
        "tell",
        "told",
        "ask",
        "say",
        "about",
        "the",
        "a",
        "an",
        "my",
        "our",
        "me",
        "remind",
        "know",
        "to",
        "of",
        "that",
        "it",
        "mention",
        "mentioned",
        "day",
        "time",
        "put",
        "leave",
        "park",
        "please",
    ];
    let words: Vec<String> = normalized
        .split(' ')
        .map(|w| w.trim_end_matches("'s").to_owned())
        .filter(|w| !w.is_empty() && !STOP.contains(&w.as_str()))
        .collect();
    if words.is_empty() {
        normalized.to_owned()
    } else {
        words.join(" ")
    }
}

/// Whether a recall question is about an earlier conversation rather than a stored fact:
/// "what did I ask you about dinner", "what were we talking about", "what did we discuss".
pub fn asks_about_conversation(normalized: &str) -> bool {
    const PHRASES: [&str; 8] = [
        "did i ask",
        "did we talk",
        "did we discuss",
        "did we speak",
        "were we talking",
        "were we discussing",
        "did i say to you",
        "was i asking",
    ];
    PHRASES.iter().any(|p| normalized.contains(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_keeps_case_and_drops_the_command() {
        assert_eq!(
            memory_content("Remember that Ana's dentist is on Friday."),
            "Ana's dentist is on Friday"
        );
        assert_eq!(
            memory_content("please don't forget to buy milk"),
            "Buy milk"
        );
    }

    #[test]
    fn conversation_questions_are_told_apart_from_facts() {
        assert!(asks_about_conversation("what did i ask you about dinner"));
        assert!(asks_about_conversation(
            "what were we talking about yesterday"
        ));
        assert!(!asks_about_conversation(
            "what did i tell you about the wifi password"
        ));
        assert!(!asks_about_conversation("what is leo allergic to"));
    }

    #[test]
    fn recall_keeps_content_words() {
        assert_eq!(recall_query("when is ana's dentist"), "ana dentist");
        assert_eq!(
            recall_query("what did i tell you about the wifi password"),
            "wifi password"
        );
    }
}
