//! The meta router: rule-first, compiled patterns, microseconds per decision.
//!
//! Every rule's patterns go into one [`RegexSet`]; the first rule (in file order, operator
//! rules before the embedded defaults) with a matching pattern decides the route. Nothing
//! matched: the interaction route (the LLM), with a low confidence. One file per route holds
//! what that route extracts from the text once chosen.

pub mod action;
pub mod instant;
pub mod interaction;
pub mod memory;
mod rules;

use std::path::{Path, PathBuf};

use regex::RegexSet;
use serde::{Deserialize, Serialize};

pub use rules::{Rule, RuleFile};

/// The embedded default rules (`crates/agents/rules/default.toml`).
pub const DEFAULT_RULES: &str = include_str!("../../rules/default.toml");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Route {
    Instant,
    Action,
    Memory,
    Interaction,
}

impl Route {
    pub const ALL: [Route; 4] = [
        Route::Instant,
        Route::Action,
        Route::Memory,
        Route::Interaction,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Route::Instant => "instant",
            Route::Action => "action",
            Route::Memory => "memory",
            Route::Interaction => "interaction",
        }
    }

    pub fn parse(s: &str) -> Option<Route> {
        Route::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// What the router decided for one utterance.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub route: Route,
    pub intent: String,
    pub confidence: f64,
    /// The normalised text the patterns saw (the agents parse it further).
    pub normalized: String,
    /// Index of the deciding rule; `None` for the fallback.
    pub rule: Option<usize>,
}

/// Confidence of the fallback decision (no rule matched).
pub const FALLBACK_CONFIDENCE: f64 = 0.5;

#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error("cannot read rules file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}: {message}")]
    Parse { origin: String, message: String },
    /// `at` is `rule[3] (action/control) pattern[1] "(unclosed"`.
    #[error("{origin}: {at}: {message}")]
    Pattern {
        origin: String,
        at: String,
        message: String,
    },
}

pub struct Router {
    rules: Vec<Rule>,
    set: RegexSet,
    /// pattern index -> rule index
    owner: Vec<usize>,
}

impl Router {
    /// The embedded defaults only.
    pub fn with_defaults() -> Result<Router, RouterError> {
        Router::from_sources(&[("embedded default rules".into(), DEFAULT_RULES.into())])
    }

    /// Operator rules (tried first) followed by the embedded defaults.
    pub fn load(rules_file: Option<&Path>) -> Result<Router, RouterError> {
        let mut sources = Vec::new();
        if let Some(path) = rules_file {
            let text = std::fs::read_to_string(path).map_err(|source| RouterError::Read {
                path: path.to_owned(),
                source,
            })?;
            sources.push((path.display().to_string(), text));
        }
        sources.push(("embedded default rules".into(), DEFAULT_RULES.into()));
        Router::from_sources(&sources)
    }

    /// `(origin, toml text)` pairs, in priority order.
    pub fn from_sources(sources: &[(String, String)]) -> Result<Router, RouterError> {
        let mut rules = Vec::new();
        let mut patterns = Vec::new();
        let mut owner = Vec::new();
        for (origin, text) in sources {
            let file = RuleFile::parse(origin, text)?;
            for (i, rule) in file.rule.into_iter().enumerate() {
                for (j, p) in rule.patterns.iter().enumerate() {
                    // Compile one by one first so the error names the rule and pattern.
                    if let Err(e) = regex::Regex::new(p) {
                        return Err(RouterError::Pattern {
                            origin: origin.clone(),
                            at: format!(
                                "rule[{i}] ({}/{}) pattern[{j}] {p:?}",
                                rule.route.as_str(),
                                rule.intent
                            ),
                            message: e.to_string(),
                        });
                    }
                    patterns.push(p.clone());
                    owner.push(rules.len());
                }
                rules.push(rule);
            }
        }
        // A larger lazy-DFA cache: with the default rules the default cache (2 MiB) thrashed
        // and searches fell back to slower engines (release bench: p99 50 us, 100k
        // decisions/s; with 32 MiB: p99 1.2-1.6 us, ~1M decisions/s). Memory is only used as
        // states are built.
        let set = regex::RegexSetBuilder::new(&patterns)
            .dfa_size_limit(32 << 20)
            .build()
            .map_err(|e| RouterError::Parse {
                origin: "rules".into(),
                message: e.to_string(),
            })?;
        Ok(Router { rules, set, owner })
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn decide(&self, text: &str) -> Decision {
        let normalized = normalize(text);
        // The set reports matches in pattern order; the lowest pattern's rule is the first rule.
        let best = self
            .set
            .matches(&normalized)
            .iter()
            .next()
            .map(|p| self.owner[p]);
        match best {
            Some(i) => {
                let rule = &self.rules[i];
                Decision {
                    route: rule.route,
                    intent: rule.intent.clone(),
                    confidence: rule.confidence,
                    normalized,
                    rule: Some(i),
                }
            }
            None => Decision {
                route: Route::Interaction,
                intent: "chat".into(),
                confidence: FALLBACK_CONFIDENCE,
                normalized,
                rule: None,
            },
        }
    }
}

/// Lower case; a leading wake word dropped; punctuation other than `'`, `%`, `:` and `.` between digits becomes a space;
/// runs of spaces collapse. Curly apostrophes become `'`.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let chars: Vec<char> = text.chars().collect();
    let mut space = true;
    for (i, &c) in chars.iter().enumerate() {
        let c = if c == '\u{2019}' || c == '\u{2018}' {
            '\''
        } else {
            c
        };
        let keep = c.is_alphanumeric()
            || c == '\''
            || c == '%'
            || (c == ':' || c == '.')
                && i > 0
                && chars[i - 1].is_ascii_digit()
                && chars.get(i + 1).is_some_and(|n| n.is_ascii_digit());
        if keep {
            for l in c.to_lowercase() {
                out.push(l);
            }
            space = false;
        } else if !space {
            out.push(' ');
            space = true;
        }
    }
    while out.ends_with(' ') {
        out.pop();
    }
    // The wake word is not part of the request.
    for wake in [
        "hey barnabee ",
        "ok barnabee ",
        "okay barnabee ",
        "hi barnabee ",
        "barnabee ",
    ] {
        if let Some(rest) = out.strip_prefix(wake)
            && !rest.is_empty()
            && !(wake.starts_with("h") && is_greeting_tail(rest))
        {
            return rest.to_owned();
        }
    }
    out
}

/// "hi barnabee how are you" stays a greeting.
fn is_greeting_tail(rest: &str) -> bool {
    rest.starts_with("how are you")
}

#[cfg(test)]
mod tests;
