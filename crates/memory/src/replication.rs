//! Continuous replication: the daemon embeds `barnabee-replicator`.
//!
//! Order in [`crate::run`]:
//! 1. [`restore_if_missing`] before the database is opened: when the file is missing and the
//!    replica holds data (and `restore_if_missing = true`, the default), the latest state is
//!    restored first, so a new or wiped machine comes back with the family's memories;
//! 2. the database is opened and migrated with `wal_autocheckpoint=0` and
//!    `SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE` (`OpenOptions::replication_owns_checkpoints`): the
//!    daemon's own connections never checkpoint, the replicator checkpoints (PASSIVE) only
//!    frames it has shipped;
//! 3. [`Replication::start`]; `/health` reads [`Replication::check`] (non-critical: a family
//!    may run without an off-site copy), `/metrics` gets `barnabee_replication_*`;
//! 4. [`Replication::shutdown`] after the HTTP server drained: ships what is committed, within
//!    `shutdown_timeout`.
//!
//! Without a `[replication]` section all of this is a no-op and `/health` says "not configured".

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use barnabee_replicator::{Options, ReplicaConfig};
use barnabee_service::Check;
use barnabee_service::metrics::Metrics;

use crate::config::{ReplicaType, ReplicationConfig};

#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    #[error("replication: cannot restore {db} from replica {replica}: {error}")]
    Restore {
        db: String,
        replica: String,
        /// Not a `#[source]`: the message already carries it (no repeat in the chain).
        error: Box<barnabee_replicator::ReplicationError>,
    },
    #[error("replication: cannot start replicating {db} to {replica}: {error}")]
    Start {
        db: String,
        replica: String,
        /// Not a `#[source]`: the message already carries it (no repeat in the chain).
        error: Box<barnabee_replicator::ReplicationError>,
    },
}

/// The replicator's view of memory's `[replication]` section. The secret stays a file
/// (`secret_access_key_file`, relative to `$CREDENTIALS_DIRECTORY`); the replicator reads it
/// with `barnabee_service::secret::read` when it builds the client.
pub fn replica_config(cfg: &ReplicationConfig) -> ReplicaConfig {
    ReplicaConfig {
        kind: Some(
            match cfg.kind {
                ReplicaType::File => "file",
                ReplicaType::S3 => "s3",
            }
            .to_owned(),
        ),
        url: cfg.url.clone(),
        bucket: cfg.bucket.clone(),
        path: cfg.path.clone(),
        endpoint: cfg.endpoint.clone(),
        region: cfg.region.clone(),
        force_path_style: cfg.force_path_style.then_some(true),
        access_key_id: cfg.access_key_id.clone(),
        secret_access_key_file: cfg.secret_access_key_file.clone(),
        ..Default::default()
    }
}

/// The replicator's tuning from the section.
pub fn options(cfg: &ReplicationConfig) -> Options {
    Options {
        sync_interval: cfg.sync_interval,
        ..Options::default()
    }
}

/// A short description of the replica for logs, `STATUS=` and `/health`.
pub fn describe(cfg: &ReplicationConfig) -> String {
    if let Some(url) = &cfg.url {
        return strip_query(url).to_owned();
    }
    match cfg.kind {
        ReplicaType::File => format!("file://{}", cfg.path.as_deref().unwrap_or("")),
        ReplicaType::S3 => format!(
            "s3://{}/{}",
            cfg.bucket.as_deref().unwrap_or(""),
            cfg.path.as_deref().unwrap_or("").trim_matches('/')
        ),
    }
}

fn strip_query(url: &str) -> &str {
    url.split_once('?').map_or(url, |(u, _)| u)
}

/// What [`restore_if_missing`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restore {
    /// No `[replication]`, or `restore_if_missing = false`.
    Disabled,
    /// The database file exists: nothing to do.
    Present,
    /// The database was missing and the replica empty: a fresh database will be created.
    ReplicaEmpty,
    /// Restored the replica's latest state.
    Restored {
        txid: u64,
        pages: u32,
        bytes_downloaded: u64,
        millis: u64,
    },
}

/// Before the database is opened: restore it from the replica if the file is missing.
pub async fn restore_if_missing(
    cfg: Option<&ReplicationConfig>,
    db: &Path,
) -> Result<Restore, ReplicationError> {
    let Some(cfg) = cfg.filter(|c| c.restore_if_missing) else {
        return Ok(Restore::Disabled);
    };
    if db.exists() {
        return Ok(Restore::Present);
    }
    if let Some(parent) = db.parent().filter(|p| !p.as_os_str().is_empty()) {
        // The replicator writes `<db>.tmp` next to the file; the state directory may be new.
        let _ = std::fs::create_dir_all(parent);
    }
    let replica = describe(cfg);
    log::info!(event = "restore_start", db = db.display().to_string().as_str(), replica = replica.as_str(); "database {} missing; restoring from replica {replica} if it holds data", db.display());
    let started = std::time::Instant::now();
    let restored = barnabee_replicator::restore_if_missing(db, &replica_config(cfg))
        .await
        .map_err(|source| ReplicationError::Restore {
            db: db.display().to_string(),
            replica: replica.clone(),
            error: Box::new(source),
        })?;
    Ok(match restored {
        None => {
            log::info!(event = "restore_skipped", db = db.display().to_string().as_str(), replica = replica.as_str(); "replica {replica} holds no database; starting with a new one");
            Restore::ReplicaEmpty
        }
        Some(r) => {
            let millis = started.elapsed().as_millis() as u64;
            log::info!(event = "restored", db = db.display().to_string().as_str(), replica = replica.as_str(), txid = r.txid, pages = r.pages, bytes_downloaded = r.bytes_downloaded, duration_ms = millis; "restored {} from replica {replica} at TXID {} ({} pages, {} bytes downloaded, {millis} ms)", db.display(), r.txid, r.pages, r.bytes_downloaded);
            Restore::Restored {
                txid: r.txid,
                pages: r.pages,
                bytes_downloaded: r.bytes_downloaded,
                millis,
            }
        }
    })
}

/// The daemon's handle on replication.
pub struct Replication {
    state: State,
}

enum State {
    NotConfigured,
    Configured(Arc<Shared>),
}

struct Shared {
    replica: String,
    fail_after: u32,
    shutdown_timeout: Duration,
    metrics: Metrics,
    /// Set once the replicator runs (at start, or later by the retry task).
    inner: Mutex<Option<Arc<barnabee_replicator::Replication>>>,
    /// Why it is not running yet.
    start_error: Mutex<Option<String>>,
    retry: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn running(&self) -> Option<Arc<barnabee_replicator::Replication>> {
        lock(&self.inner).clone()
    }

    fn started(&self, inner: barnabee_replicator::Replication, db: &Path) {
        inner.register_metrics(&self.metrics);
        log::info!(event = "replication_started", replica = self.replica.as_str(), txid = inner.status().last_shipped_txid; "replicating {} to {}", db.display(), self.replica);
        *lock(&self.inner) = Some(Arc::new(inner));
        *lock(&self.start_error) = None;
    }

    fn check(&self) -> Check {
        match self.running() {
            Some(inner) => status_check(&self.replica, &inner.status(), self.fail_after),
            None => Check::fail(format!(
                "replica {}: not started ({}); retrying",
                self.replica,
                lock(&self.start_error).as_deref().unwrap_or("starting")
            ))
            .non_critical(),
        }
    }
}

impl std::fmt::Debug for Replication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.state {
            State::NotConfigured => f.write_str("Replication(not configured)"),
            State::Configured(s) => write!(f, "Replication({})", s.replica),
        }
    }
}

impl Replication {
    /// Start replicating `db` (already open and migrated) as `cfg` says, on the caller's
    /// tokio runtime; `barnabee_replication_*` are registered on `metrics` once it runs.
    ///
    /// A replica the replicator refuses (configuration: a relative path, an unreadable secret
    /// file) is an error: the daemon does not run without the backup it was asked for. A
    /// replica that cannot be reached now (S3 down) is not: the daemon serves, `/health`
    /// reports replication failing (non-critical), and starting is retried in the background
    /// (1 s doubling to 60 s). The WAL keeps every frame meanwhile (nobody else checkpoints).
    pub async fn start(
        cfg: Option<&ReplicationConfig>,
        db: &Path,
        metrics: &Metrics,
    ) -> Result<Self, ReplicationError> {
        let Some(cfg) = cfg else {
            return Ok(Self {
                state: State::NotConfigured,
            });
        };
        let replica = describe(cfg);
        let rc = replica_config(cfg);
        let refuse = |source: barnabee_replicator::ReplicationError| ReplicationError::Start {
            db: db.display().to_string(),
            replica: replica.clone(),
            error: Box::new(source),
        };
        // Configuration problems (and the secret file) surface here, before any network.
        rc.client()
            .map_err(|e| refuse(barnabee_replicator::ReplicationError::Config(e)))?;
        let shared = Arc::new(Shared {
            replica: replica.clone(),
            fail_after: cfg.fail_after_errors,
            shutdown_timeout: cfg.shutdown_timeout,
            metrics: metrics.clone(),
            inner: Mutex::new(None),
            start_error: Mutex::new(None),
            retry: Mutex::new(None),
        });
        let opts = options(cfg);
        match barnabee_replicator::Replication::start(db, &rc, opts.clone()).await {
            Ok(inner) => shared.started(inner, db),
            Err(e @ barnabee_replicator::ReplicationError::Config(_)) => return Err(refuse(e)),
            Err(e) => {
                let msg = e.to_string();
                log::error!(event = "incident", replica = replica.as_str(), error = msg.as_str(); "cannot start replicating to {replica}: {msg}; serving anyway and retrying");
                *lock(&shared.start_error) = Some(msg);
                let task = tokio::spawn(retry_start(shared.clone(), db.to_owned(), rc, opts));
                *lock(&shared.retry) = Some(task);
            }
        }
        Ok(Self {
            state: State::Configured(shared),
        })
    }

    /// Whether a replica is configured and the replicator runs.
    pub fn is_running(&self) -> bool {
        match &self.state {
            State::NotConfigured => false,
            State::Configured(s) => s.running().is_some(),
        }
    }

    /// The replica, e.g. `file:///backup/memory` (None when not configured).
    pub fn replica(&self) -> Option<&str> {
        match &self.state {
            State::NotConfigured => None,
            State::Configured(s) => Some(&s.replica),
        }
    }

    /// The replicator's status (None when not configured or not started yet).
    pub fn status(&self) -> Option<barnabee_replicator::Status> {
        match &self.state {
            State::NotConfigured => None,
            State::Configured(s) => s.running().map(|r| r.status()),
        }
    }

    /// The `/health` check: non-critical, since a family may run without an off-site copy.
    /// Failing after `fail_after_errors` consecutive failed uploads, or while not started.
    pub fn check(&self) -> Check {
        match &self.state {
            State::NotConfigured => Check::ok("not configured").non_critical(),
            State::Configured(s) => s.check(),
        }
    }

    /// The same check as a closure for a `/health` probe.
    pub fn checker(&self) -> impl Fn() -> Check + Send + Sync + 'static {
        let shared = match &self.state {
            State::NotConfigured => None,
            State::Configured(s) => Some(s.clone()),
        };
        move || match &shared {
            None => Check::ok("not configured").non_critical(),
            Some(s) => s.check(),
        }
    }

    /// Ship what is committed (bounded by `shutdown_timeout`) and stop; called after the
    /// HTTP server drained, so every acknowledged write is in the WAL.
    pub async fn shutdown(self) {
        let State::Configured(s) = self.state else {
            return;
        };
        let retry = lock(&s.retry).take();
        if let Some(task) = retry {
            task.abort();
            let _ = task.await;
        }
        let Some(inner) = s.running() else {
            log::error!(event = "incident", replica = s.replica.as_str(); "stopping with replication to {} never started: recent writes are only local", s.replica);
            return;
        };
        match inner.shutdown(s.shutdown_timeout).await {
            Ok(txid) => {
                log::info!(event = "replication_stopped", replica = s.replica.as_str(), txid = txid; "replication to {} stopped at TXID {txid}", s.replica)
            }
            Err(e) => {
                log::error!(event = "incident", replica = s.replica.as_str(), error = e.to_string().as_str(); "replication to {} did not ship everything before stopping: {e}", s.replica)
            }
        }
    }
}

async fn retry_start(
    shared: Arc<Shared>,
    db: std::path::PathBuf,
    rc: ReplicaConfig,
    opts: Options,
) {
    let mut wait = Duration::from_secs(1);
    loop {
        tokio::time::sleep(wait).await;
        match barnabee_replicator::Replication::start(&db, &rc, opts.clone()).await {
            Ok(inner) => {
                shared.started(inner, &db);
                return;
            }
            Err(e) => {
                let msg = e.to_string();
                log::warn!(replica = shared.replica.as_str(), error = msg.as_str(); "replication to {} still not started: {msg}", shared.replica);
                *lock(&shared.start_error) = Some(msg);
                wait = (wait * 2).min(Duration::from_secs(60));
            }
        }
    }
}

/// `/health` detail from the replicator's status.
pub fn status_check(replica: &str, st: &barnabee_replicator::Status, fail_after: u32) -> Check {
    let mut detail = format!(
        "replica {replica}: last shipped TXID {}, lag {:.1} s",
        st.last_shipped_txid, st.lag_seconds
    );
    if st.consecutive_errors > 0 {
        detail.push_str(&format!(
            ", {} consecutive errors (last: {})",
            st.consecutive_errors,
            st.last_error.as_deref().unwrap_or("?")
        ));
    }
    let check = if st.consecutive_errors >= fail_after {
        Check::fail(detail)
    } else {
        Check::ok(detail)
    };
    check.non_critical()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn cfg(text: &str) -> ReplicationConfig {
        toml::from_str(text).unwrap()
    }

    #[tokio::test]
    async fn absent_is_a_no_op() {
        let r = Replication::start(None, Path::new("/x.db"), &Metrics::default())
            .await
            .unwrap();
        assert!(!r.is_running());
        assert!(r.check().ok);
        assert_eq!(r.check().detail, "not configured");
        assert_eq!(
            restore_if_missing(None, Path::new("/nonexistent/x.db"))
                .await
                .unwrap(),
            Restore::Disabled
        );
        r.shutdown().await;
    }

    #[test]
    fn config_maps_onto_the_replicator() {
        let c = cfg(
            "type = \"s3\"\nbucket = \"b\"\npath = \"memory\"\nendpoint = \"http://127.0.0.1:3900\"\nregion = \"garage\"\nforce_path_style = true\naccess_key_id = \"GK1\"\nsecret_access_key_file = \"s3-secret\"\nsync_interval = 2\n",
        );
        let r = replica_config(&c);
        assert_eq!(r.kind.as_deref(), Some("s3"));
        assert_eq!(r.bucket.as_deref(), Some("b"));
        assert_eq!(r.path.as_deref(), Some("memory"));
        assert_eq!(r.endpoint.as_deref(), Some("http://127.0.0.1:3900"));
        assert_eq!(r.force_path_style, Some(true));
        assert_eq!(r.access_key_id.as_deref(), Some("GK1"));
        assert_eq!(
            r.secret_access_key_file.as_deref(),
            Some(Path::new("s3-secret"))
        );
        assert_eq!(r.secret_access_key, None);
        assert_eq!(options(&c).sync_interval, Duration::from_secs(2));
        assert_eq!(describe(&c), "s3://b/memory");
        let c = cfg("type = \"file\"\nurl = \"s3://b/p?endpoint=http://x\"\n");
        assert_eq!(describe(&c), "s3://b/p");
    }

    #[test]
    fn health_fails_after_consecutive_errors_but_stays_non_critical() {
        let mut st = barnabee_replicator::Status {
            last_shipped_txid: 42,
            lag_seconds: 0.25,
            ..Default::default()
        };
        let c = status_check("file:///r", &st, 3);
        assert!(c.ok);
        assert_eq!(
            c.detail,
            "replica file:///r: last shipped TXID 42, lag 0.2 s"
        );
        st.consecutive_errors = 3;
        st.last_error = Some("connection refused".into());
        let c = status_check("file:///r", &st, 3);
        assert!(!c.ok);
        assert!(
            c.detail
                .contains("3 consecutive errors (last: connection refused)")
        );
        assert!(!c.critical);
    }

    #[tokio::test]
    async fn file_replica_ships_and_restores() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("m.db");
        let c = cfg(&format!(
            "type = \"file\"\npath = \"{}\"\n",
            dir.path().join("replica").display()
        ));
        assert_eq!(
            restore_if_missing(Some(&c), &db).await.unwrap(),
            Restore::ReplicaEmpty
        );
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; CREATE TABLE t(x); INSERT INTO t VALUES (7);",
        )
        .unwrap();
        let metrics = Metrics::default();
        let r = Replication::start(Some(&c), &db, &metrics).await.unwrap();
        assert!(r.is_running());
        r.shutdown().await;
        drop(conn);
        let other = dir.path().join("restored/m.db");
        assert!(matches!(
            restore_if_missing(Some(&c), &other).await.unwrap(),
            Restore::Restored { .. }
        ));
        let x: i64 = rusqlite::Connection::open(&other)
            .unwrap()
            .query_row("SELECT x FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(x, 7);
        assert_eq!(
            restore_if_missing(Some(&c), &other).await.unwrap(),
            Restore::Present
        );
    }
}
