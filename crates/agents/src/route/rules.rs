//! The rules file format (TOML), shared by the embedded defaults and the operator's file.

use serde::Deserialize;

use super::{Route, RouterError};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    #[serde(default)]
    pub rule: Vec<Rule>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub route: Route,
    pub intent: String,
    #[serde(default = "default_confidence")]
    pub confidence: f64,
    pub patterns: Vec<String>,
}

fn default_confidence() -> f64 {
    0.9
}

impl RuleFile {
    pub fn parse(origin: &str, text: &str) -> Result<RuleFile, RouterError> {
        let file: RuleFile = toml::from_str(text).map_err(|e| RouterError::Parse {
            origin: origin.to_owned(),
            message: e.to_string().trim().to_owned(),
        })?;
        for (i, r) in file.rule.iter().enumerate() {
            let bad = |message: &str| RouterError::Parse {
                origin: origin.to_owned(),
                message: format!("rule[{i}] ({}/{}): {message}", r.route.as_str(), r.intent),
            };
            if r.patterns.is_empty() {
                return Err(bad("patterns: at least one pattern is needed"));
            }
            if !(0.0..=1.0).contains(&r.confidence) {
                return Err(bad("confidence: must be between 0 and 1"));
            }
            if r.intent.trim().is_empty() {
                return Err(bad("intent: must not be empty"));
            }
        }
        Ok(file)
    }
}
