//! Loading a daemon's TOML configuration and the section every daemon shares.
//!
//! Unknown keys are errors (each daemon's config types use `deny_unknown_fields`), and the
//! error names the file, the line and the key, so an operator can fix it without reading code.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: {field}: {message}")]
    Field {
        path: PathBuf,
        field: String,
        message: String,
    },
}

/// Read and parse `path` into `T`. Errors name the path, line, column and offending key.
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(path, &text)
}

/// Parse TOML text; `path` is only used to label errors.
pub fn parse<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|err| {
        let offset = err.span().map(|span| span.start);
        let (line, column) = offset.map_or((0, 0), |o| line_column(text, o));
        // toml names the key for unknown fields but not for a wrong type ("invalid type:
        // integer `12`, expected socket address"), so say which key the span is on.
        let message = match offset.and_then(|o| key_at(text, o)) {
            Some(key) => format!("key `{key}`: {}", err.message().trim()),
            None => err.message().trim().to_owned(),
        };
        ConfigError::Invalid {
            path: path.to_owned(),
            line,
            column,
            message,
        }
    })
}

/// The dotted key (`service.log.level`) of the `key = value` line containing `offset`,
/// prefixed by the nearest `[table]` header above it.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let start = text[..offset.min(text.len())]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let line = text[start..].lines().next()?;
    let key = line.split_once('=')?.0.trim().trim_matches('"');
    if key.is_empty() || key.starts_with('[') {
        return None;
    }
    let table = text[..start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_owned());
    Some(match table {
        Some(t) if !t.is_empty() => format!("{t}.{key}"),
        _ => key.to_owned(),
    })
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    (line, column)
}

/// The `[service]` section every daemon config carries.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceConfig {
    /// Address of the HTTP listener (`/health`, `/metrics`, the daemon's API).
    pub listen: SocketAddr,
    /// How long to wait for in-flight requests after SIGTERM before exiting anyway.
    #[serde(with = "seconds")]
    pub drain_timeout: Duration,
    /// Logging.
    pub log: LogConfig,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            drain_timeout: Duration::from_secs(8),
            log: LogConfig::default(),
        }
    }
}

/// The `[service.log]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Minimum level: error, warn, info, debug, trace. `RUST_LOG` overrides it.
    pub level: String,
    /// `auto` (journald when started by systemd, else stderr), `journald` or `stderr`.
    pub target: LogTarget,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            target: LogTarget::Auto,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogTarget {
    Auto,
    Journald,
    Stderr,
}

/// Durations in config files are whole or fractional seconds (`drain_timeout = 8`), the unit
/// operators already use in systemd's `*Sec=` settings.
pub mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, de::Error};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs)
            .map_err(|_| D::Error::custom(format!("expected seconds >= 0, got {secs}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Demo {
        #[serde(default)]
        service: ServiceConfig,
        #[allow(dead_code)]
        name: String,
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let text = "name = \"x\"\n[service]\nlisten = \"127.0.0.1:80\"\nlistne_typo = 1\n";
        let err = parse::<Demo>(Path::new("/etc/demo.toml"), text).unwrap_err();
        let shown = err.to_string();
        assert!(shown.contains("/etc/demo.toml:4:"), "{shown}");
        assert!(shown.contains("listne_typo"), "{shown}");
    }

    #[test]
    fn wrong_type_names_the_key() {
        let text = "name = \"x\"\n[service]\nlisten = 12\n";
        let err = parse::<Demo>(Path::new("c.toml"), text).unwrap_err();
        let shown = err.to_string();
        assert!(shown.starts_with("c.toml:3:"), "{shown}");
        assert!(shown.contains("key `service.listen`"), "{shown}");
    }

    #[test]
    fn defaults_apply_and_seconds_parse() {
        let cfg: Demo = parse(
            Path::new("c.toml"),
            "name = \"x\"\n[service]\ndrain_timeout = 2.5\n",
        )
        .unwrap();
        assert_eq!(cfg.service.drain_timeout, Duration::from_millis(2500));
        assert_eq!(cfg.service.listen.ip().to_string(), "127.0.0.1");
        assert_eq!(cfg.service.log.target, LogTarget::Auto);
    }

    #[test]
    fn negative_seconds_rejected() {
        let err = parse::<Demo>(
            Path::new("c.toml"),
            "name = \"x\"\n[service]\ndrain_timeout = -1\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("seconds"), "{err}");
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = load::<Demo>(Path::new("/nonexistent/barnabee.toml")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/barnabee.toml"));
    }
}
