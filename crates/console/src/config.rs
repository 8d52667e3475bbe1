//! `console.toml`: where to listen, the password, and the daemons to show (both hosts).
//!
//! ```toml
//! [service]
//! listen = "0.0.0.0:7706"          # the LAN: the NixOS module opens the firewall for it only
//!
//! [auth]
//! password_hash_file = "/var/lib/barnabee-console/password-hash"   # argon2 PHC string
//! generate_if_missing = true       # first start: a random password in `initial-password` beside it
//! session_hours = 12
//! max_failures_per_minute = 5      # per client address; then 429 for the rest of the minute
//!
//! [[daemon]]                       # one per daemon; the first of each role serves its pages
//! role = "memory"                  # memory | agents | voice | inference | watchdog
//! host = "beelink"
//! url = "http://127.0.0.1:7701"
//!
//! [pages]
//! refresh_seconds = 5              # the overview reloads itself this often
//! timeout_ms = 1500                # per daemon request; a slower daemon shows as down
//! alertmanager_url = "http://127.0.0.1:9093"   # optional: firing alerts on the overview
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use barnabee_service::config::ServiceConfig;
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Load(#[from] barnabee_service::config::ConfigError),
    #[error("{path}: {field}: {message}")]
    Invalid {
        path: PathBuf,
        field: String,
        message: String,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub service: ServiceConfig,
    pub auth: AuthConfig,
    #[serde(default, rename = "daemon")]
    pub daemons: Vec<Peer>,
    #[serde(default)]
    pub pages: PagesConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub password_hash_file: PathBuf,
    #[serde(default)]
    pub generate_if_missing: bool,
    #[serde(default = "default_session_hours")]
    pub session_hours: u64,
    #[serde(default = "default_failures")]
    pub max_failures_per_minute: u32,
}

fn default_session_hours() -> u64 {
    12
}

fn default_failures() -> u32 {
    5
}

/// The daemons the console knows how to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Memory,
    Agents,
    Voice,
    Inference,
    Watchdog,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Memory => "memory",
            Role::Agents => "agents",
            Role::Voice => "voice",
            Role::Inference => "inference",
            Role::Watchdog => "watchdog",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    pub role: Role,
    pub host: String,
    pub url: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PagesConfig {
    pub refresh_seconds: u32,
    pub timeout_ms: u64,
    pub alertmanager_url: Option<String>,
}

impl Default for PagesConfig {
    fn default() -> Self {
        Self {
            refresh_seconds: 5,
            timeout_ms: 1500,
            alertmanager_url: None,
        }
    }
}

impl PagesConfig {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

impl Config {
    /// Read and check `path`: every error names the file and the field.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let mut cfg: Config = barnabee_service::config::load(path)?;
        let bad = |field: &str, message: String| ConfigError::Invalid {
            path: path.to_owned(),
            field: field.to_owned(),
            message,
        };
        for (i, d) in cfg.daemons.iter_mut().enumerate() {
            let field = format!("daemon[{i}].url");
            let scheme_ok = d.url.starts_with("http://") || d.url.starts_with("https://");
            if !scheme_ok || reqwest::Url::parse(&d.url).is_err() {
                return Err(bad(&field, format!("{:?} is not an http(s) URL", d.url)));
            }
            d.url = d.url.trim_end_matches('/').to_owned();
            if d.host.trim().is_empty() {
                return Err(bad(
                    &format!("daemon[{i}].host"),
                    "must not be empty".into(),
                ));
            }
        }
        if let Some(u) = &cfg.pages.alertmanager_url
            && reqwest::Url::parse(u).is_err()
        {
            return Err(bad("pages.alertmanager_url", format!("{u:?} is not a URL")));
        }
        if !(1..=3600).contains(&cfg.pages.refresh_seconds) {
            return Err(bad("pages.refresh_seconds", "must be 1..3600".into()));
        }
        if !(100..=60_000).contains(&cfg.pages.timeout_ms) {
            return Err(bad("pages.timeout_ms", "must be 100..60000".into()));
        }
        if !(1..=24 * 30).contains(&cfg.auth.session_hours) {
            return Err(bad("auth.session_hours", "must be 1..720".into()));
        }
        if cfg.auth.max_failures_per_minute == 0 {
            return Err(bad(
                "auth.max_failures_per_minute",
                "must be at least 1".into(),
            ));
        }
        Ok(cfg)
    }

    /// The first daemon of `role` (the one whose API the pages use).
    pub fn peer(&self, role: Role) -> Option<&Peer> {
        self.daemons.iter().find(|d| d.role == role)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn load(text: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("console.toml");
        std::fs::write(&p, text).unwrap();
        Config::load(&p)
    }

    #[test]
    fn bad_values_are_named() {
        let base = "[auth]\npassword_hash_file = \"/x\"\n";
        assert!(load(base).is_ok());
        let e = load(&format!(
            "{base}[[daemon]]\nrole = \"memroy\"\nhost = \"b\"\nurl = \"http://x\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("memroy"), "{e}");
        let e = load(&format!(
            "{base}[[daemon]]\nrole = \"memory\"\nhost = \"b\"\nurl = \"ftp://x\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("daemon[0].url"), "{e}");
        let e = load(&format!("{base}[pages]\nrefresh_seconds = 0\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("pages.refresh_seconds"), "{e}");
        let e = load("[auth]\n").unwrap_err().to_string();
        assert!(e.contains("password_hash_file"), "{e}");
    }
}
