//! `memory.toml`: the daemon's configuration. Every section rejects unknown keys.
//!
//! See `memory.example.toml` for a commented example of every key.

use std::path::{Path, PathBuf};
use std::time::Duration;

use barnabee_service::config::{ServiceConfig, seconds};
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[service]`: listen address, drain timeout, logging.
    #[serde(default)]
    pub service: ServiceConfig,
    /// `[database]`: where the SQLite file and its snapshots live.
    #[serde(default)]
    pub database: DatabaseConfig,
    /// `[http]`: API limits.
    #[serde(default)]
    pub http: HttpConfig,
    /// `[search]`: defaults and limits of `/v1/search`.
    #[serde(default)]
    pub search: SearchConfig,
    /// `[maintenance]`: the background worker's schedule.
    #[serde(default)]
    pub maintenance: MaintenanceConfig,
    /// `[embeddings]`: the inference daemon's embedding endpoint (absent: FTS only unless the
    /// caller supplies vectors).
    pub embeddings: Option<EmbeddingsConfig>,
    /// `[replication]`: the replica, shaped like one entry of litestream.yml's `replicas`.
    pub replication: Option<ReplicationConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// fsync the WAL at every commit: an acknowledged write survives power loss.
    Full,
    /// fsync only at checkpoints: survives a process crash, may lose the last commits on power loss.
    Normal,
}

impl Synchronous {
    pub fn pragma(self) -> &'static str {
        match self {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// The SQLite file. Default: `$STATE_DIRECTORY/memory.db` when systemd sets
    /// `STATE_DIRECTORY`; otherwise the key is required.
    pub path: Option<PathBuf>,
    /// Where pre-migration snapshots go. Default: `snapshots/` next to the database.
    pub snapshot_dir: Option<PathBuf>,
    /// How long a statement waits for a lock held by another connection.
    #[serde(with = "seconds")]
    pub busy_timeout: Duration,
    /// `full` (default) or `normal`; see [`Synchronous`].
    pub synchronous: Synchronous,
    /// Read-only connections for searches and gets (writes use one connection).
    pub readers: usize,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            path: None,
            snapshot_dir: None,
            busy_timeout: Duration::from_secs(5),
            synchronous: Synchronous::Full,
            readers: 4,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PathError {
    #[error(
        "database.path is not set and $STATE_DIRECTORY is not set (systemd sets it with StateDirectory=); set database.path"
    )]
    NoDatabasePath,
}

impl DatabaseConfig {
    /// The database file: `path`, else `$STATE_DIRECTORY/memory.db`.
    pub fn resolved_path(&self) -> Result<PathBuf, PathError> {
        self.resolved_path_in(std::env::var_os("STATE_DIRECTORY").map(PathBuf::from))
    }

    fn resolved_path_in(&self, state_dir: Option<PathBuf>) -> Result<PathBuf, PathError> {
        if let Some(path) = &self.path {
            return Ok(path.clone());
        }
        // systemd may list several directories separated by ':'; the first is ours.
        let state = state_dir.ok_or(PathError::NoDatabasePath)?;
        let first = state
            .to_str()
            .and_then(|s| s.split(':').next())
            .map(PathBuf::from)
            .unwrap_or(state);
        Ok(first.join("memory.db"))
    }

    /// The snapshot directory for the database at `db`.
    pub fn resolved_snapshot_dir(&self, db: &Path) -> PathBuf {
        self.snapshot_dir
            .clone()
            .unwrap_or_else(|| default_snapshot_dir(db))
    }
}

/// `snapshots/` next to the database file.
pub fn default_snapshot_dir(db: &Path) -> PathBuf {
    db.parent()
        .unwrap_or_else(|| Path::new("."))
        .join("snapshots")
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Largest request body accepted, in bytes (413 beyond).
    pub max_body_bytes: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SearchConfig {
    /// Results returned when the request gives no `limit`.
    pub default_limit: usize,
    /// The largest `limit` a request may ask for.
    pub max_limit: usize,
    /// Length of every embedding vector (memories, queries); other lengths are a 400.
    pub embedding_dimensions: usize,
    /// Reciprocal-rank-fusion constant `k` (score = sum 1/(k + rank)).
    pub rrf_k: f64,
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self {
            default_limit: 10,
            max_limit: 100,
            embedding_dimensions: 384,
            rrf_k: 60.0,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MaintenanceConfig {
    /// How often the worker wakes (and beats its heartbeat).
    #[serde(with = "seconds")]
    pub tick: Duration,
    /// How often `PRAGMA optimize` runs.
    #[serde(with = "seconds")]
    pub optimize_interval: Duration,
    /// How often expired memories are deleted and free pages are returned.
    #[serde(with = "seconds")]
    pub retention_interval: Duration,
    /// Pages returned to the file system per incremental-vacuum pass.
    pub vacuum_pages: u32,
    /// Audit-log entries older than this are deleted by the retention pass (0: keep all).
    pub audit_retention_days: u32,
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        Self {
            tick: Duration::from_secs(15),
            optimize_interval: Duration::from_secs(6 * 3600),
            retention_interval: Duration::from_secs(3600),
            vacuum_pages: 1000,
            audit_retention_days: 365,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingsConfig {
    /// The inference daemon's embedding endpoint, e.g. `http://beast:10300/v1/embeddings`.
    pub url: String,
    /// The model name sent to it and stored with every vector.
    pub model: String,
}

/// `[replication]`: the replicator's embedding section with memory's restore verification.
pub type ReplicationConfig = barnabee_replicator::embed::Section<VerifyConfig>;
pub use barnabee_replicator::embed::ReplicaType;

/// `[replication.verify]`: restore the replica into a temporary file on a schedule, check it,
/// compare it with the live database (see `crate::verify`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VerifyConfig {
    /// How often a verification runs. Default 24 h.
    #[serde(with = "seconds")]
    pub interval: Duration,
    /// Delay after start before the first scheduled verification (a new appliance is
    /// verified the same day). Default 10 min.
    #[serde(with = "seconds")]
    pub first_after: Duration,
    /// `/health` `backup_verify` degrades when the last good verification is older than this
    /// (or the last one failed). Default 48 h.
    #[serde(with = "seconds")]
    pub max_age: Duration,
    /// Where the temporary restore goes (a fresh directory inside it, removed afterwards).
    /// Default: `.backup-verify/` next to the database (the state directory: a daemon never
    /// writes outside it, and there is room for a copy of the database there).
    pub temp_dir: Option<PathBuf>,
    /// On failure, POST an Alertmanager-style webhook payload here. Default unset; the NixOS
    /// module sets the watchdog's notifier, `http://127.0.0.1:7705/v1/notify/alertmanager`.
    pub notify_url: Option<String>,
}

impl Default for VerifyConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(24 * 3600),
            first_after: Duration::from_secs(600),
            max_age: Duration::from_secs(48 * 3600),
            temp_dir: None,
            notify_url: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    pub field: String,
    pub message: String,
}

impl Config {
    /// Checks serde cannot express.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let bad = |field: &str, message: &str| {
            Err(ValidationError {
                field: field.into(),
                message: message.into(),
            })
        };
        if self.search.embedding_dimensions == 0 {
            return bad("search.embedding_dimensions", "must be at least 1");
        }
        if self.search.default_limit == 0 || self.search.default_limit > self.search.max_limit {
            return bad(
                "search.default_limit",
                "must be between 1 and search.max_limit",
            );
        }
        if self.database.readers == 0 {
            return bad("database.readers", "must be at least 1");
        }
        if self.http.max_body_bytes < 1024 {
            return bad("http.max_body_bytes", "must be at least 1024");
        }
        if self.maintenance.tick.is_zero() {
            return bad("maintenance.tick", "must be more than 0 seconds");
        }
        if let Some(r) = &self.replication {
            r.validate().map_err(|e| ValidationError {
                field: format!("replication.{}", e.field),
                message: e.message,
            })?;
        }
        Ok(())
    }
}

impl barnabee_replicator::embed::VerifySection for VerifyConfig {
    fn validate(&self) -> Result<(), (String, String)> {
        let bad = |field: &str, message: &str| Err((field.to_owned(), message.to_owned()));
        if self.interval.is_zero() {
            return bad("interval", "must be more than 0 seconds");
        }
        if self.max_age < self.interval {
            return bad(
                "max_age",
                "must be at least verify.interval (or /health degrades between two good runs)",
            );
        }
        if let Some(u) = &self.notify_url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            return bad("notify_url", "must be an http:// or https:// URL");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        barnabee_service::config::parse::<Config>(Path::new("memory.toml"), text)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn example_config_parses_and_validates() {
        let text = include_str!("../memory.example.toml");
        let cfg = parse(text).unwrap();
        cfg.validate().unwrap();
        assert!(cfg.replication.is_none());
    }

    #[test]
    fn example_replication_section_parses_when_uncommented() {
        let text = include_str!("../memory.example.toml");
        let start = text.find("# [replication]").unwrap();
        let section: String = text[start..]
            .lines()
            .take_while(|l| l.starts_with("# "))
            .map(|l| format!("{}\n", &l[2..]))
            .collect();
        let cfg = parse(&section).unwrap();
        cfg.validate().unwrap();
        let r = cfg.replication.unwrap();
        assert!(r.restore_if_missing);
        assert_eq!(r.fail_after_errors, 3);
        assert_eq!(
            r.secret_access_key_file.as_deref(),
            Some(Path::new("s3-secret"))
        );
    }

    #[test]
    fn unknown_key_is_named() {
        let err = parse("[database]\npaht = \"/x\"\n").unwrap_err();
        assert!(
            err.contains("paht") && err.contains("memory.toml:2:"),
            "{err}"
        );
    }

    #[test]
    fn replication_section_like_litestream() {
        let cfg = parse(
            "[replication]\ntype = \"s3\"\nbucket = \"b\"\npath = \"memory\"\nendpoint = \"http://127.0.0.1:3900\"\nregion = \"garage\"\nforce_path_style = true\naccess_key_id = \"GK1\"\nsecret_access_key_file = \"s3-secret\"\nsync_interval = 2\n",
        )
        .unwrap();
        cfg.validate().unwrap();
        let r = cfg.replication.unwrap();
        assert_eq!(r.kind, ReplicaType::S3);
        assert_eq!(r.sync_interval, Duration::from_secs(2));
        assert!(r.restore_if_missing);
        assert_eq!(r.shutdown_timeout, Duration::from_secs(5));
        assert_eq!(r.fail_after_errors, 3);
        assert_eq!(r.snapshot_interval, Duration::from_secs(86400));
        assert_eq!(r.snapshot_retention, Duration::from_secs(31 * 86400));
        assert_eq!(r.verify.interval, Duration::from_secs(86400));
        assert_eq!(r.verify.max_age, Duration::from_secs(2 * 86400));
        assert!(r.verify.notify_url.is_none());
        let cfg = parse("[replication]\ntype = \"file\"\n").unwrap();
        let err = cfg.validate().unwrap_err();
        assert_eq!(err.field, "replication.path");
        let cfg = parse("[replication]\ntype = \"file\"\npath = \"backup\"\n").unwrap();
        let err = cfg.validate().unwrap_err();
        assert_eq!(err.field, "replication.path");
        assert!(err.message.contains("absolute"));
        let cfg = parse("[replication]\ntype = \"s3\"\nurl = \"http://x/b\"\n").unwrap();
        assert_eq!(cfg.validate().unwrap_err().field, "replication.url");
    }

    #[test]
    fn retention_and_verify_are_settable_and_checked() {
        let base = "[replication]\ntype = \"file\"\npath = \"/backup/memory\"\n";
        let cfg = parse(&format!(
            "{base}snapshot_interval = 3600\nsnapshot_retention = 604800\n[replication.verify]\ninterval = 600\nmax_age = 1200\nfirst_after = 5\nnotify_url = \"http://127.0.0.1:7705/v1/notify/alertmanager\"\n"
        ))
        .unwrap();
        cfg.validate().unwrap();
        let r = cfg.replication.unwrap();
        assert_eq!(r.snapshot_interval, Duration::from_secs(3600));
        assert_eq!(r.snapshot_retention, Duration::from_secs(7 * 86400));
        assert_eq!(r.verify.interval, Duration::from_secs(600));
        assert_eq!(r.verify.first_after, Duration::from_secs(5));
        let field = |extra: &str| {
            parse(&format!("{base}{extra}"))
                .unwrap()
                .validate()
                .unwrap_err()
                .field
        };
        assert_eq!(
            field("snapshot_interval = 86400\nsnapshot_retention = 3600\n"),
            "replication.snapshot_retention"
        );
        assert_eq!(
            field("[replication.verify]\ninterval = 7200\nmax_age = 3600\n"),
            "replication.verify.max_age"
        );
        assert_eq!(
            field("[replication.verify]\nnotify_url = \"127.0.0.1:7705\"\n"),
            "replication.verify.notify_url"
        );
        let err = parse(&format!("{base}[replication.verify]\nintervall = 1\n")).unwrap_err();
        assert!(err.contains("intervall"), "{err}");
    }

    #[test]
    fn database_path_defaults_to_state_directory() {
        let db = DatabaseConfig::default();
        assert!(matches!(
            db.resolved_path_in(None),
            Err(PathError::NoDatabasePath)
        ));
        let p = db
            .resolved_path_in(Some("/var/lib/barnabee-memory:/other".into()))
            .unwrap();
        assert_eq!(p, Path::new("/var/lib/barnabee-memory/memory.db"));
        assert_eq!(
            db.resolved_snapshot_dir(&p),
            Path::new("/var/lib/barnabee-memory/snapshots")
        );
    }
}
