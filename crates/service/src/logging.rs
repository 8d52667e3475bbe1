//! Logging through the `log` facade.
//!
//! Under systemd the records go to journald's native protocol (systemd-journal-logger) with
//! structured fields: `SYSLOG_IDENTIFIER`, and every key-value pair of the record upper-cased
//! (`log::info!(request_id = id, latency_ms = ms; "served")` becomes `REQUEST_ID=` and
//! `LATENCY_MS=`), so `journalctl -u barnabee-memory -o json` can filter on them.
//! Elsewhere (a terminal, `barnabee up`) they go to stderr as one human line each.

use std::io::Write;

use log::{Level, LevelFilter, Log, Metadata, Record};
use systemd_journal_logger::JournalLog;

use crate::config::{LogConfig, LogTarget};

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("log level {0:?} is not one of off, error, warn, info, debug, trace")]
    BadLevel(String),
    #[error("journald logging requested but the journal socket is unusable: {0}")]
    Journal(#[source] std::io::Error),
    #[error("a logger is already installed")]
    AlreadyInstalled,
}

/// Where records go.
enum Sink {
    Journal(JournalLog),
    Stderr { identifier: String },
}

/// Level filter: a default level plus `target=level` directives (as in `RUST_LOG`).
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    default: LevelFilter,
    directives: Vec<(String, LevelFilter)>,
}

impl Filter {
    /// Parse `info` or `warn,barnabee_memory=debug`.
    pub fn parse(spec: &str) -> Result<Self, LogError> {
        let mut filter = Filter {
            default: LevelFilter::Info,
            directives: Vec::new(),
        };
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.split_once('=') {
                Some((target, level)) => filter
                    .directives
                    .push((target.replace('-', "_"), parse_level(level)?)),
                None => filter.default = parse_level(part)?,
            }
        }
        // Longest target first, so the most specific directive wins.
        filter
            .directives
            .sort_by_key(|d| std::cmp::Reverse(d.0.len()));
        Ok(filter)
    }

    pub fn enabled(&self, target: &str, level: Level) -> bool {
        let limit = self
            .directives
            .iter()
            .find(|(prefix, _)| target.starts_with(prefix.as_str()))
            .map_or(self.default, |(_, l)| *l);
        level <= limit
    }

    fn max(&self) -> LevelFilter {
        self.directives
            .iter()
            .map(|(_, l)| *l)
            .fold(self.default, std::cmp::Ord::max)
    }
}

fn parse_level(s: &str) -> Result<LevelFilter, LogError> {
    s.trim()
        .parse()
        .map_err(|_| LogError::BadLevel(s.trim().to_owned()))
}

struct Logger {
    filter: Filter,
    sink: Sink,
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        self.filter.enabled(metadata.target(), metadata.level())
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        match &self.sink {
            // A failed send cannot be reported anywhere better; dropping it beats panicking.
            Sink::Journal(journal) => {
                let _ = journal.journal_send(record);
            }
            Sink::Stderr { identifier } => {
                let line = format_line(identifier, record);
                let _ = std::io::stderr().lock().write_all(line.as_bytes());
            }
        }
    }

    fn flush(&self) {}
}

/// `<level> <identifier> <target>: message key=value ...`
pub fn format_line(identifier: &str, record: &Record) -> String {
    struct Kv(String);
    impl<'kvs> log::kv::VisitSource<'kvs> for Kv {
        fn visit_pair(
            &mut self,
            key: log::kv::Key<'kvs>,
            value: log::kv::Value<'kvs>,
        ) -> Result<(), log::kv::Error> {
            self.0.push_str(&format!(" {key}={value}"));
            Ok(())
        }
    }
    let mut kv = Kv(String::new());
    let _ = record.key_values().visit(&mut kv);
    format!(
        "{:<5} {identifier} {}: {}{}\n",
        record.level(),
        record.target(),
        record.args(),
        kv.0
    )
}

/// True when this process was started by systemd with its stderr connected to the journal,
/// or (for units that redirect stderr) started by systemd with the journal socket present.
pub fn under_systemd_journal() -> bool {
    systemd_journal_logger::connected_to_journal()
        || (std::env::var_os("INVOCATION_ID").is_some()
            && std::path::Path::new("/run/systemd/journal/socket").exists())
}

/// Install the process logger. `identifier` becomes `SYSLOG_IDENTIFIER` (e.g. `barnabee-memory`).
/// `RUST_LOG`, when set, overrides the configured level.
pub fn init(identifier: &str, config: &LogConfig) -> Result<(), LogError> {
    let spec = std::env::var("RUST_LOG").unwrap_or_else(|_| config.level.clone());
    let filter = Filter::parse(&spec)?;
    let use_journal = match config.target {
        LogTarget::Journald => true,
        LogTarget::Stderr => false,
        LogTarget::Auto => under_systemd_journal(),
    };
    let sink = if use_journal {
        let journal = JournalLog::new()
            .map_err(LogError::Journal)?
            .with_syslog_identifier(identifier.to_owned());
        Sink::Journal(journal)
    } else {
        Sink::Stderr {
            identifier: identifier.to_owned(),
        }
    };
    let max = filter.max();
    log::set_boxed_logger(Box::new(Logger { filter, sink }))
        .map_err(|_| LogError::AlreadyInstalled)?;
    log::set_max_level(max);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_directives_pick_most_specific() {
        let f = Filter::parse("warn,barnabee_memory=debug,barnabee_memory::search=trace").unwrap();
        assert!(f.enabled("barnabee_memory::api", Level::Debug));
        assert!(!f.enabled("barnabee_memory::api", Level::Trace));
        assert!(f.enabled("barnabee_memory::search", Level::Trace));
        assert!(!f.enabled("hyper", Level::Info));
        assert!(f.enabled("hyper", Level::Warn));
        assert_eq!(f.max(), LevelFilter::Trace);
    }

    #[test]
    fn bad_level_is_named() {
        let err = Filter::parse("loud").unwrap_err();
        assert!(err.to_string().contains("\"loud\""));
    }

    #[test]
    fn stderr_line_carries_key_values() {
        let kvs: &[(&str, &str)] = &[("request_id", "r1")];
        let record = Record::builder()
            .args(format_args!("served"))
            .level(Level::Info)
            .target("barnabee_memory::api")
            .key_values(&kvs)
            .build();
        let line = format_line("barnabee-memory", &record);
        assert_eq!(
            line,
            "INFO  barnabee-memory barnabee_memory::api: served request_id=r1\n"
        );
    }
}
