//! Embedded replication: what a daemon needs to replicate its own SQLite database with this
//! crate: the `[replication]` section of its TOML config ([`Section`]), restore before the
//! database is opened ([`restore_if_missing`]), the running replication with its `/health`
//! check, retry and shutdown ([`Replication`]). barnabee-memory (its memories), barnabee-agents
//! (the LLM cost ledger) and barnabee-watchdog (the incident log) embed it, so everything the
//! family would miss comes back on a replacement machine.
//!
//! Order in the daemon:
//! 1. [`restore_if_missing`] before the database is opened: when the file is missing and the
//!    replica holds data (and `restore_if_missing = true`, the default), the latest state is
//!    restored first;
//! 2. the database is opened with `wal_autocheckpoint=0` where the daemon can (memory's
//!    `OpenOptions::replication_owns_checkpoints`): the replicator checkpoints (PASSIVE) only
//!    frames it has shipped. A daemon whose connections still autocheckpoint is replicated
//!    too: a WAL restart the replicator cannot prove gap-free makes its next file a snapshot;
//! 3. [`Replication::start`]; `/health` reads [`Replication::check`] (non-critical: a family
//!    may run without an off-site copy), `/metrics` gets `barnabee_replication_*`;
//! 4. [`Replication::shutdown`] after the HTTP server drained: ships what is committed, within
//!    `shutdown_timeout`.
//!
//! Without a `[replication]` section all of this is a no-op and `/health` says "not configured".
//!
//! **Not provisioned yet.** On a freshly flashed appliance sops-nix cannot decrypt the S3 secret
//! until the host key is enrolled; systemd then hands the daemon an empty credential (the NixOS
//! module's `SetCredential=` default). An empty `secret_access_key_file` is that case, and only
//! that: the daemon serves without replication, `/health` `replication` fails non-critically
//! (`replica ...: not replicating: secret `replication.secret_access_key_file`: ... is empty:
//! not provisioned yet ...`) and the journal gets `EVENT=replication_not_provisioned`. A
//! missing or unreadable secret file still refuses the start, and a present but wrong secret
//! is S3's to reject, as before (`not started (...); retrying`, or upload errors; with the
//! database missing, a refused start). Once the secret is there, restarting the daemon
//! (sops-nix restarts the unit) starts replication.
//!
//! Without the secret the replica cannot be read either, so a missing database cannot be
//! restored: see [`restore_if_missing`] for what happens then (a new database plus a
//! `<db>.not-restored` marker, so that it is never shipped over a replica holding the family's
//! data: `EVENT=replication_held`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use barnabee_service::Check;
use barnabee_service::config::seconds;
use barnabee_service::metrics::Metrics;
use barnabee_service::secret::SecretError;
use serde::Deserialize;

use crate::restore::{RestoreError, Target};
use crate::{Options, ReplicaConfig};

/// `file` or `s3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplicaType {
    File,
    S3,
}

/// What a daemon adds under `[replication.verify]`; barnabee-memory's restore verification
/// (its `VerifyConfig`). Daemons without one use [`NoVerify`].
pub trait VerifySection: Default + Clone + std::fmt::Debug {
    /// Checks serde cannot express: `Err((field under verify., message))`.
    fn validate(&self) -> Result<(), (String, String)>;
}

/// No `[replication.verify]`: the key is refused, naming the daemon that has one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoVerify;

impl<'de> Deserialize<'de> for NoVerify {
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(serde::de::Error::custom(
            "[replication.verify] exists only in barnabee-memory's config (this daemon's \
             replica is checked by `barnabee-replicator restore`); remove it",
        ))
    }
}

impl VerifySection for NoVerify {
    fn validate(&self) -> Result<(), (String, String)> {
        Ok(())
    }
}

/// A daemon's `[replication]`: one replica, shaped like one entry of litestream.yml's
/// `replicas:` (snake_case keys, durations in seconds like every Barnabee config).
#[derive(Debug, Clone, Deserialize)]
#[serde(
    deny_unknown_fields,
    bound(deserialize = "V: Deserialize<'de> + Default")
)]
pub struct Section<V = NoVerify> {
    /// `file` or `s3`.
    #[serde(rename = "type")]
    pub kind: ReplicaType,
    /// `file`: the replica directory. `s3`: the key prefix inside the bucket.
    pub path: Option<String>,
    /// Litestream-style URL instead of type/bucket/path (`s3://bucket/prefix`, `file:///dir`).
    pub url: Option<String>,
    pub bucket: Option<String>,
    /// S3 endpoint for non-AWS servers (Garage, MinIO, B2).
    pub endpoint: Option<String>,
    pub region: Option<String>,
    #[serde(default)]
    pub force_path_style: bool,
    pub access_key_id: Option<String>,
    /// File holding the secret key (relative: `$CREDENTIALS_DIRECTORY`).
    pub secret_access_key_file: Option<PathBuf>,
    /// How often WAL frames are shipped (at most one upload per interval under load; a
    /// commit in a quiet period ships at once).
    #[serde(default = "default_sync_interval", with = "seconds")]
    pub sync_interval: Duration,
    /// On start, when the database file is missing and the replica holds data, restore it
    /// before opening, migrating and serving.
    #[serde(default = "yes")]
    pub restore_if_missing: bool,
    /// At shutdown (after the HTTP drain), how long shipping what is committed may take.
    #[serde(default = "default_shutdown_timeout", with = "seconds")]
    pub shutdown_timeout: Duration,
    /// `/health` reports replication failing after this many consecutive failed uploads.
    #[serde(default = "default_fail_after_errors")]
    pub fail_after_errors: u32,
    /// How often a level-9 snapshot (the whole database) is written to the replica
    /// (litestream.yml `snapshot.interval`). Default 24 h.
    #[serde(default = "default_snapshot_interval", with = "seconds")]
    pub snapshot_interval: Duration,
    /// How long snapshots, and the compacted files between them, are kept: the window of
    /// point-in-time restore (litestream.yml `snapshot.retention`). The restorable window is
    /// between `snapshot_retention - snapshot_interval` (the oldest kept snapshot may be that
    /// young) and `snapshot_retention`. Default 31 days: 30 days always restorable with
    /// daily snapshots.
    #[serde(default = "default_snapshot_retention", with = "seconds")]
    pub snapshot_retention: Duration,
    /// Further independent replicas (`[[replication.also]]`, e.g. a NAS directory beside
    /// S3): each takes every commit on its own; one down never blocks the others (a commit
    /// is shipped once one has it); a replica that was down is caught up from the others.
    #[serde(default)]
    pub also: Vec<Destination>,
    /// `[replication.verify]` (barnabee-memory's restore verification; refused elsewhere).
    #[serde(default)]
    pub verify: V,
}

/// Where one replica lives: the destination keys of `[replication]`, and each
/// `[[replication.also]]` entry.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Destination {
    #[serde(rename = "type")]
    pub kind: ReplicaType,
    pub path: Option<String>,
    pub url: Option<String>,
    pub bucket: Option<String>,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    #[serde(default)]
    pub force_path_style: bool,
    pub access_key_id: Option<String>,
    pub secret_access_key_file: Option<PathBuf>,
}

impl Destination {
    /// Checks serde cannot express; `prefix` is where it sits (`replication.`,
    /// `replication.also[0].`).
    fn validate(&self, prefix: &str) -> Result<(), SectionError> {
        let bad = |field: &str, message: &str| {
            Err(SectionError {
                field: format!("{prefix}{field}"),
                message: message.into(),
            })
        };
        if self.url.is_none() {
            match self.kind {
                ReplicaType::File if self.path.is_none() => {
                    return bad("path", "a file replica needs path (or url)");
                }
                ReplicaType::S3 if self.bucket.is_none() => {
                    return bad("bucket", "an s3 replica needs bucket (or url)");
                }
                _ => {}
            }
        }
        if self.url.is_none()
            && self.kind == ReplicaType::File
            && let Some(p) = &self.path
            && !p.starts_with('/')
        {
            return bad("path", "a file replica path must be absolute");
        }
        if let Some(u) = &self.url
            && !(u.starts_with("s3://") || u.starts_with("file:///") || u.starts_with('/'))
        {
            return bad(
                "url",
                "use s3://bucket/path[?endpoint=..&region=..] or file:///absolute/dir",
            );
        }
        if self.kind == ReplicaType::S3
            && self.access_key_id.is_some() != self.secret_access_key_file.is_some()
        {
            return bad(
                "secret_access_key_file",
                "access_key_id and secret_access_key_file go together",
            );
        }
        Ok(())
    }

    /// An S3 replica? (A `url` wins over `type`, as in the replicator.)
    fn is_s3(&self) -> bool {
        match &self.url {
            Some(url) => url.starts_with("s3://"),
            None => self.kind == ReplicaType::S3,
        }
    }

    /// `file:///dir` or `s3://bucket/prefix`, for logs, `STATUS=` and `/health`.
    pub fn describe(&self) -> String {
        if let Some(url) = &self.url {
            return strip_query(url).to_owned();
        }
        match self.kind {
            ReplicaType::File => format!("file://{}", self.path.as_deref().unwrap_or("")),
            ReplicaType::S3 => format!(
                "s3://{}/{}",
                self.bucket.as_deref().unwrap_or(""),
                self.path.as_deref().unwrap_or("").trim_matches('/')
            ),
        }
    }

    fn replica_config(&self) -> ReplicaConfig {
        ReplicaConfig {
            kind: Some(
                match self.kind {
                    ReplicaType::File => "file",
                    ReplicaType::S3 => "s3",
                }
                .to_owned(),
            ),
            url: self.url.clone(),
            bucket: self.bucket.clone(),
            path: self.path.clone(),
            endpoint: self.endpoint.clone(),
            region: self.region.clone(),
            force_path_style: self.force_path_style.then_some(true),
            access_key_id: self.access_key_id.clone(),
            secret_access_key_file: self.secret_access_key_file.clone(),
            ..Default::default()
        }
    }
}

impl<V> Section<V> {
    /// `[replication]`'s own replica.
    pub fn primary(&self) -> Destination {
        Destination {
            kind: self.kind,
            path: self.path.clone(),
            url: self.url.clone(),
            bucket: self.bucket.clone(),
            endpoint: self.endpoint.clone(),
            region: self.region.clone(),
            force_path_style: self.force_path_style,
            access_key_id: self.access_key_id.clone(),
            secret_access_key_file: self.secret_access_key_file.clone(),
        }
    }

    /// Every replica: the primary, then `also`.
    pub fn destinations(&self) -> Vec<Destination> {
        std::iter::once(self.primary())
            .chain(self.also.iter().cloned())
            .collect()
    }
}

fn default_snapshot_interval() -> Duration {
    Duration::from_secs(24 * 3600)
}

fn default_snapshot_retention() -> Duration {
    Duration::from_secs(31 * 24 * 3600)
}

fn default_sync_interval() -> Duration {
    Duration::from_secs(1)
}

fn yes() -> bool {
    true
}

fn default_shutdown_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_fail_after_errors() -> u32 {
    3
}

/// A `[replication]` value serde cannot refuse; `field` is under `replication.`.
#[derive(Debug, thiserror::Error)]
#[error("replication.{field}: {message}")]
pub struct SectionError {
    pub field: String,
    pub message: String,
}

impl<V: VerifySection> Section<V> {
    /// Checks serde cannot express.
    pub fn validate(&self) -> Result<(), SectionError> {
        let bad = |field: &str, message: &str| {
            Err(SectionError {
                field: field.into(),
                message: message.into(),
            })
        };
        self.primary().validate("")?;
        for (i, d) in self.also.iter().enumerate() {
            d.validate(&format!("also[{i}]."))?;
        }
        let mut seen = std::collections::BTreeSet::new();
        for d in self.destinations() {
            if !seen.insert(d.describe()) {
                return bad(
                    "also",
                    &format!(
                        "{} is named twice: two places means two different replicas",
                        d.describe()
                    ),
                );
            }
        }
        if self.sync_interval.is_zero() {
            return bad("sync_interval", "must be more than 0 seconds");
        }
        if self.fail_after_errors == 0 {
            return bad("fail_after_errors", "must be at least 1");
        }
        if self.snapshot_interval.is_zero() {
            return bad("snapshot_interval", "must be more than 0 seconds");
        }
        if self.snapshot_retention < self.snapshot_interval {
            return bad(
                "snapshot_retention",
                "must be at least snapshot_interval (otherwise only the newest snapshot is kept)",
            );
        }
        self.verify
            .validate()
            .map_err(|(field, message)| SectionError {
                field: format!("verify.{field}"),
                message,
            })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    #[error("replication: cannot restore {db} from replica {replica}: {error}")]
    Restore {
        db: String,
        replica: String,
        /// Not a `#[source]`: the message already carries it (no repeat in the chain).
        error: Box<crate::ReplicationError>,
    },
    #[error("replication: cannot start replicating {db} to {replica}: {error}")]
    Start {
        db: String,
        replica: String,
        /// Not a `#[source]`: the message already carries it (no repeat in the chain).
        error: Box<crate::ReplicationError>,
    },
    #[error("replication: cannot write {path}: {source}")]
    Marker {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The config key of the S3 secret, as logs and `/health` name it.
pub const SECRET_KEY: &str = "replication.secret_access_key_file";

/// The S3 secret's error when its file is empty: not provisioned yet (first boot, before
/// sops-nix can decrypt). `None` when there is no secret, it is present, or it is broken in
/// another way (missing, too open): the replicator refuses those at start, as before. With
/// several replicas, the first S3 replica whose secret is not provisioned.
pub fn not_provisioned<V>(cfg: &Section<V>) -> Option<SecretError> {
    cfg.destinations().iter().find_map(|d| {
        let file = d.secret_access_key_file.as_deref().filter(|_| d.is_s3())?;
        barnabee_service::secret::read(SECRET_KEY, file)
            .err()
            .filter(SecretError::is_not_provisioned)
    })
}

/// `<db>.not-restored`: this database was created while the replica could not be read (its
/// secret not provisioned), so it was never restored from the replica. While the file exists,
/// replication starts only if the replica is empty (then the file is removed); a replica that
/// holds data is left alone (`/health` says how to choose). Moving `<db>*` aside moves it too.
pub fn not_restored_marker(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".not-restored");
    PathBuf::from(name)
}

/// The replicator's view of a daemon's `[replication]` section. The secret stays a file
/// (`secret_access_key_file`, relative to `$CREDENTIALS_DIRECTORY`); the replicator reads it
/// with `barnabee_service::secret::read` when it builds the client.
pub fn replica_config<V>(cfg: &Section<V>) -> ReplicaConfig {
    let mut rc = cfg.primary().replica_config();
    rc.also = cfg.also.iter().map(Destination::replica_config).collect();
    rc
}

/// The replicator's tuning from the section.
pub fn options<V>(cfg: &Section<V>) -> Options {
    Options {
        sync_interval: cfg.sync_interval,
        snapshot_interval: cfg.snapshot_interval,
        snapshot_retention: cfg.snapshot_retention,
        ..Options::default()
    }
}

/// A short description of the replica(s) for logs, `STATUS=` and `/health`
/// (`s3://bucket/prefix + file:///mnt/nas/memory` with several).
pub fn describe<V>(cfg: &Section<V>) -> String {
    cfg.destinations()
        .iter()
        .map(Destination::describe)
        .collect::<Vec<_>>()
        .join(" + ")
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
    /// The database was missing and the replica could not be read (its secret is not
    /// provisioned yet): a fresh database will be created, marked [`not_restored_marker`].
    NotProvisioned { reason: String },
    /// Restored the replica's latest state.
    Restored {
        txid: u64,
        pages: u32,
        bytes_downloaded: u64,
        millis: u64,
    },
}

/// Before the database is opened: restore it from the replica if the file is missing.
/// With the S3 secret not provisioned yet nothing is read: [`Restore::NotProvisioned`].
pub async fn restore_if_missing<V>(
    cfg: Option<&Section<V>>,
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
    let marker = not_restored_marker(db);
    // A marker without its database is stale (the operator moved `<db>*` aside, or the last
    // start died before creating it): this start decides afresh.
    let _ = std::fs::remove_file(&marker);
    if let Some(e) = not_provisioned(cfg) {
        // Decision: without the secret the replica cannot be consulted, yet the daemon must
        // serve (first boot of a new appliance, before its host key can decrypt anything).
        // It starts on a new, empty database, as it would without replication, and says so
        // loudly. It never pretends that was a restore: the marker written here keeps that
        // database from later being shipped over a replica that holds the family's data
        // (that would make the empty one the replica's newest state). Once the secret is
        // provisioned, `Replication::start` replicates only if the replica is empty;
        // otherwise it holds off and `/health` tells the operator how to restore.
        let reason = e.to_string();
        std::fs::write(
            &marker,
            format!(
                "{} was created without restoring from replica {replica}: {reason}\n",
                db.display()
            ),
        )
        .map_err(|source| ReplicationError::Marker {
            path: marker.clone(),
            source,
        })?;
        log::error!(event = "restore_not_provisioned", db = db.display().to_string().as_str(), replica = replica.as_str(), key = SECRET_KEY; "database {} missing, but the replica {replica} was NOT consulted: {reason}; starting with a new, empty database (marked {})", db.display(), marker.display());
        return Ok(Restore::NotProvisioned { reason });
    }
    log::info!(event = "restore_start", db = db.display().to_string().as_str(), replica = replica.as_str(); "database {} missing; restoring from replica {replica} if it holds data", db.display());
    let started = std::time::Instant::now();
    let restored = crate::restore_if_missing(db, &replica_config(cfg))
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
    /// The daemon's unit, named in the operator's instructions (`barnabee-memory`).
    unit: String,
    fail_after: u32,
    shutdown_timeout: Duration,
    metrics: Metrics,
    /// Set once the replicator runs (at start, or later by the retry task).
    inner: Mutex<Option<Arc<crate::Replication>>>,
    /// Why replication deliberately does not run until the next start (secret not
    /// provisioned; a never-restored database facing a replica with data).
    held: Mutex<Option<String>>,
    /// Why it is not running yet.
    start_error: Mutex<Option<String>>,
    retry: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn running(&self) -> Option<Arc<crate::Replication>> {
        lock(&self.inner).clone()
    }

    fn started(&self, inner: crate::Replication, db: &Path) {
        inner.register_metrics(&self.metrics);
        log::info!(event = "replication_started", replica = self.replica.as_str(), txid = inner.status().last_shipped_txid; "replicating {} to {}", db.display(), self.replica);
        *lock(&self.inner) = Some(Arc::new(inner));
        *lock(&self.start_error) = None;
    }

    fn hold(&self, why: String) {
        *lock(&self.held) = Some(why);
        *lock(&self.start_error) = None;
    }

    fn check(&self) -> Check {
        if let Some(why) = lock(&self.held).as_deref() {
            return Check::fail(format!("replica {}: not replicating: {why}", self.replica))
                .non_critical();
        }
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
    ///
    /// Held until the next start, serving meanwhile with `/health` failing non-critically: an
    /// empty secret file ([`not_provisioned`], `EVENT=replication_not_provisioned`), and a
    /// database marked [`not_restored_marker`] when the replica holds data
    /// (`EVENT=replication_held`).
    pub async fn start<V>(
        cfg: Option<&Section<V>>,
        db: &Path,
        metrics: &Metrics,
        unit: &str,
    ) -> Result<Self, ReplicationError> {
        let Some(cfg) = cfg else {
            return Ok(Self {
                state: State::NotConfigured,
            });
        };
        let replica = describe(cfg);
        let shared = Arc::new(Shared {
            replica: replica.clone(),
            unit: unit.to_owned(),
            fail_after: cfg.fail_after_errors,
            shutdown_timeout: cfg.shutdown_timeout,
            metrics: metrics.clone(),
            inner: Mutex::new(None),
            held: Mutex::new(None),
            start_error: Mutex::new(None),
            retry: Mutex::new(None),
        });
        let configured = || {
            Ok(Self {
                state: State::Configured(shared.clone()),
            })
        };
        // Before the replicator reads the secret (it would refuse an empty one).
        if let Some(e) = not_provisioned(cfg) {
            let mut why =
                format!("{e}; writes stay local until it is provisioned and {unit} restarts");
            if not_restored_marker(db).exists() {
                why.push_str(&format!(
                    "; {} was created without restoring from the replica",
                    db.display()
                ));
            }
            log::warn!(event = "replication_not_provisioned", replica = replica.as_str(), key = SECRET_KEY; "not replicating {} to {replica}: {why}", db.display());
            shared.hold(why);
            return configured();
        }
        let rc = replica_config(cfg);
        let refuse = |source: crate::ReplicationError| ReplicationError::Start {
            db: db.display().to_string(),
            replica: replica.clone(),
            error: Box::new(source),
        };
        // Configuration problems (and the secret file) surface here, before any network.
        rc.client()
            .map_err(|e| refuse(crate::ReplicationError::Config(e)))?;
        let opts = options(cfg);
        match try_start(&shared, db, &rc, opts.clone()).await {
            Ok(()) => {}
            Err(e @ crate::ReplicationError::Config(_)) => return Err(refuse(e)),
            Err(e) => {
                let msg = e.to_string();
                log::error!(event = "incident", replica = replica.as_str(), error = msg.as_str(); "cannot start replicating to {replica}: {msg}; serving anyway and retrying");
                *lock(&shared.start_error) = Some(msg);
                let task = tokio::spawn(retry_start(shared.clone(), db.to_owned(), rc, opts));
                *lock(&shared.retry) = Some(task);
            }
        }
        configured()
    }

    /// No `[replication]`: every method is a no-op, `/health` says "not configured".
    pub fn not_configured() -> Self {
        Self {
            state: State::NotConfigured,
        }
    }

    /// Whether a replica is configured and the replicator runs.
    pub fn is_running(&self) -> bool {
        match &self.state {
            State::NotConfigured => false,
            State::Configured(s) => s.running().is_some(),
        }
    }

    /// Whether replication is configured but held until the next start (see [`Self::start`]).
    pub fn is_held(&self) -> bool {
        match &self.state {
            State::NotConfigured => false,
            State::Configured(s) => lock(&s.held).is_some(),
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
    pub fn status(&self) -> Option<crate::Status> {
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

    /// A cloneable handle for the backup verification (`crate::verify`): ship now, status.
    pub fn handle(&self) -> Handle {
        Handle(match &self.state {
            State::NotConfigured => None,
            State::Configured(s) => Some(s.clone()),
        })
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
        if let Some(why) = lock(&s.held).as_deref() {
            log::warn!(replica = s.replica.as_str(); "stopping; replication to {} was held ({why}): writes since start are only local", s.replica);
            return;
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

/// In a daemon: [`restore_if_missing`], telling systemd while a restore runs (`STATUS=`, and
/// `EXTEND_TIMEOUT_USEC=` for `restore_timeout`: a restore downloads the whole database).
pub async fn restore_in_daemon<V>(
    rt: &barnabee_service::Runtime,
    cfg: Option<&Section<V>>,
    db: &Path,
    restore_timeout: Duration,
) -> Result<Restore, ReplicationError> {
    if let Some(r) = cfg.filter(|r| r.restore_if_missing)
        && !db.exists()
        && not_provisioned(r).is_none()
    {
        rt.status(&format!(
            "restoring {} from replica {}",
            db.display(),
            describe(r)
        ));
        rt.extend_timeout(restore_timeout);
    }
    restore_if_missing(cfg, db).await
}

/// In a daemon: [`Replication::start`] on the runtime's metrics, with its `/health` check
/// registered as `replication`.
pub async fn start_in_daemon<V>(
    rt: &barnabee_service::Runtime,
    cfg: Option<&Section<V>>,
    db: &Path,
    unit: &str,
) -> Result<Replication, ReplicationError> {
    let replication = Replication::start(cfg, db, rt.metrics(), unit).await?;
    let check = replication.checker();
    rt.health().probe("replication", move || {
        let c = check();
        async move { c }
    });
    Ok(replication)
}

/// What the backup verification needs of the running replication.
#[derive(Clone)]
pub struct Handle(Option<Arc<Shared>>);

impl Handle {
    /// The replica (None when not configured).
    pub fn replica(&self) -> Option<&str> {
        self.0.as_deref().map(|s| s.replica.as_str())
    }

    /// The replicator's status (None when not configured or not started yet).
    pub fn status(&self) -> Option<crate::Status> {
        self.0.as_ref()?.running().map(|r| r.status())
    }

    /// Ship everything committed now; the TXID the replica then holds. An error says why
    /// not: not configured, held, not started, or the upload failed.
    pub async fn sync_now(&self) -> Result<u64, String> {
        let Some(s) = &self.0 else {
            return Err("replication is not configured".into());
        };
        if let Some(why) = lock(&s.held).as_deref() {
            return Err(format!("replication is held: {why}"));
        }
        let Some(inner) = s.running() else {
            return Err(format!(
                "replication has not started ({})",
                lock(&s.start_error).as_deref().unwrap_or("starting")
            ));
        };
        inner.sync_now().await.map_err(|e| e.to_string())
    }
}

/// One attempt to start the replicator. A database marked [`not_restored_marker`] is first
/// weighed against the replica: empty replica, the marker goes and replication starts; a
/// replica with data, replication is held (shipping would bury the replica's data under
/// this database); the replica unreachable, an error (retried like any start).
async fn try_start(
    shared: &Shared,
    db: &Path,
    rc: &ReplicaConfig,
    opts: Options,
) -> Result<(), crate::ReplicationError> {
    let marker = not_restored_marker(db);
    if marker.exists() {
        let client = rc.client()?;
        match crate::restore::plan(&client, Target::Latest).await {
            Err(RestoreError::NotAvailable(_)) => {
                if let Err(e) = std::fs::remove_file(&marker) {
                    // Starting anyway would, at the next start, face our own data as "the
                    // replica holds data": hold instead.
                    let why = format!("cannot remove {}: {e}", marker.display());
                    log::error!(event = "replication_held", replica = shared.replica.as_str(), error = why.as_str(); "not replicating to {}: {why}", shared.replica);
                    shared.hold(why);
                    return Ok(());
                }
                log::info!(replica = shared.replica.as_str(); "replica {} is empty: {} (never restored) becomes its first state", shared.replica, db.display());
            }
            Err(e @ RestoreError::Client(_)) => return Err(e.into()),
            // Data, or files that do not chain: either way not ours to bury.
            _ => {
                let (db, m) = (db.display(), marker.display());
                let why = format!(
                    "it holds data, but {db} was created while its secret was not provisioned and was never restored from it; shipping {db} would bury the replica's data. To restore it: stop {unit}, move {db}* aside, start it. To keep {db} and replace the replica's state: delete {m} and restart {unit}",
                    unit = shared.unit
                );
                log::error!(event = "replication_held", replica = shared.replica.as_str(), db = db.to_string().as_str(); "not replicating to {}: {why}", shared.replica);
                shared.hold(why);
                return Ok(());
            }
        }
    }
    let inner = crate::Replication::start(db, rc, opts).await?;
    shared.started(inner, db);
    Ok(())
}

async fn retry_start(shared: Arc<Shared>, db: PathBuf, rc: ReplicaConfig, opts: Options) {
    let mut wait = Duration::from_secs(1);
    loop {
        tokio::time::sleep(wait).await;
        match try_start(&shared, &db, &rc, opts.clone()).await {
            Ok(()) => return,
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
pub fn status_check(replica: &str, st: &crate::Status, fail_after: u32) -> Check {
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
    // With several replicas the commits are shipped once one has them; a member that is
    // failing or behind is still the operator's business: the check fails (non-critical)
    // naming it, while the others keep the lag down.
    let mut member_failing = false;
    for m in &st.members {
        if m.consecutive_errors == 0 && m.queued == 0 && !m.resync_pending {
            continue;
        }
        detail.push_str(&format!("; {}: ", m.replica));
        if m.resync_pending {
            detail.push_str("catching up from another replica, ");
        }
        detail.push_str(&format!("{} write(s) queued", m.queued));
        if m.consecutive_errors > 0 {
            detail.push_str(&format!(
                ", {} consecutive errors (last: {})",
                m.consecutive_errors,
                m.last_error.as_deref().unwrap_or("?")
            ));
        }
        member_failing |= m.consecutive_errors >= fail_after;
    }
    let check = if st.consecutive_errors >= fail_after || member_failing {
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

    fn cfg(text: &str) -> Section {
        toml::from_str(text).unwrap()
    }

    #[tokio::test]
    async fn absent_is_a_no_op() {
        let r = Replication::start(
            None::<&Section>,
            Path::new("/x.db"),
            &Metrics::default(),
            "barnabee-test",
        )
        .await
        .unwrap();
        assert!(!r.is_running());
        assert!(r.check().ok);
        assert_eq!(r.check().detail, "not configured");
        assert_eq!(
            restore_if_missing(None::<&Section>, Path::new("/nonexistent/x.db"))
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
        assert_eq!(
            options(&c).snapshot_retention,
            Duration::from_secs(31 * 86400)
        );
        assert_eq!(options(&c).snapshot_interval, Duration::from_secs(86400));
        assert_eq!(describe(&c), "s3://b/memory");
        let c = cfg("type = \"file\"\nurl = \"s3://b/p?endpoint=http://x\"\n");
        assert_eq!(describe(&c), "s3://b/p");
    }

    #[test]
    fn also_adds_independent_replicas_each_checked() {
        let c = cfg(
            "type = \"s3\"\nbucket = \"b\"\npath = \"memory\"\n\n[[also]]\ntype = \"file\"\npath = \"/mnt/nas/memory\"\n",
        );
        c.validate().unwrap();
        assert_eq!(describe(&c), "s3://b/memory + file:///mnt/nas/memory");
        let r = replica_config(&c);
        assert_eq!(r.also.len(), 1);
        assert_eq!(r.also[0].path.as_deref(), Some("/mnt/nas/memory"));
        assert_eq!(r.each().len(), 2);
        // each entry is checked where it sits
        let e = cfg("type = \"file\"\npath = \"/r\"\n[[also]]\ntype = \"file\"\npath = \"nas\"\n")
            .validate()
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "replication.also[0].path: a file replica path must be absolute"
        );
        let e =
            cfg("type = \"file\"\npath = \"/r\"\n[[also]]\ntype = \"file\"\nurl = \"file:///r\"\n")
                .validate()
                .unwrap_err()
                .to_string();
        assert!(
            e.starts_with("replication.also: file:///r is named twice"),
            "{e}"
        );
        // unknown keys in an entry are refused (serde names them)
        let e = toml::from_str::<Section>(
            "type = \"file\"\npath = \"/r\"\n[[also]]\ntype = \"file\"\npath = \"/n\"\nsync_interval = 1\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("sync_interval"), "{e}");
    }

    #[test]
    fn a_failing_member_fails_health_naming_it() {
        let st = crate::Status {
            last_shipped_txid: 42,
            members: vec![
                crate::client::MemberStatus {
                    replica: "file:///mnt/nas/memory".into(),
                    queued: 7,
                    consecutive_errors: 3,
                    last_error: Some("No space left on device".into()),
                    ..Default::default()
                },
                crate::client::MemberStatus {
                    replica: "s3://b/memory".into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let c = status_check("file:///mnt/nas/memory + s3://b/memory", &st, 3);
        assert!(!c.ok && !c.critical, "{c:?}");
        assert!(
            c.detail.ends_with(
                "; file:///mnt/nas/memory: 7 write(s) queued, 3 consecutive errors (last: No space left on device)"
            ),
            "{}",
            c.detail
        );
        assert!(!c.detail.contains("; s3://b/memory:"), "{}", c.detail);
    }

    #[test]
    fn health_fails_after_consecutive_errors_but_stays_non_critical() {
        let mut st = crate::Status {
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

    /// An S3 section whose secret is `secret` (absolute), written with `body`, mode 0400.
    fn s3_with_secret(dir: &Path, body: &str) -> Section {
        use std::os::unix::fs::PermissionsExt;
        let secret = dir.join("s3-secret-access-key");
        let _ = std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600));
        std::fs::write(&secret, body).unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o400)).unwrap();
        cfg(&format!(
            "type = \"s3\"\nbucket = \"b\"\npath = \"memory\"\nendpoint = \"http://127.0.0.1:9\"\naccess_key_id = \"GK1\"\nsecret_access_key_file = \"{}\"\n",
            secret.display()
        ))
    }

    #[test]
    fn only_an_empty_s3_secret_is_not_provisioned() {
        let dir = tempfile::tempdir().unwrap();
        let c = s3_with_secret(dir.path(), "\n");
        let e = not_provisioned(&c).unwrap();
        assert!(e.to_string().starts_with(&format!(
            "secret `replication.secret_access_key_file`: {} is empty: not provisioned yet",
            dir.path().join("s3-secret-access-key").display()
        )));
        // Present: provisioned. Missing: broken, left to the replicator (refused start).
        assert!(not_provisioned(&s3_with_secret(dir.path(), "k\n")).is_none());
        let mut missing = c.clone();
        missing.secret_access_key_file = Some(dir.path().join("nope"));
        assert!(not_provisioned(&missing).is_none());
        // A file replica never reads the secret.
        let mut file = c.clone();
        file.url = Some("file:///backup/memory".into());
        assert!(not_provisioned(&file).is_none());
    }

    #[tokio::test]
    async fn not_provisioned_secret_creates_a_marked_database_and_holds_replication() {
        let dir = tempfile::tempdir().unwrap();
        let c = s3_with_secret(dir.path(), "");
        let db = dir.path().join("state/m.db");
        let restored = restore_if_missing(Some(&c), &db).await.unwrap();
        assert!(
            matches!(&restored, Restore::NotProvisioned { reason } if reason.contains("not provisioned yet")),
            "{restored:?}"
        );
        let marker = not_restored_marker(&db);
        assert_eq!(marker, dir.path().join("state/m.db.not-restored"));
        assert!(marker.exists());
        rusqlite::Connection::open(&db)
            .unwrap()
            .execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t(x);")
            .unwrap();
        assert_eq!(
            restore_if_missing(Some(&c), &db).await.unwrap(),
            Restore::Present
        );
        let r = Replication::start(Some(&c), &db, &Metrics::default(), "barnabee-test")
            .await
            .unwrap();
        assert!(!r.is_running() && r.is_held());
        let check = r.check();
        assert!(!check.ok && !check.critical, "{check:?}");
        assert!(
            check.detail.starts_with(
                "replica s3://b/memory: not replicating: secret `replication.secret_access_key_file`: "
            ) && check.detail.contains("s3-secret-access-key is empty: not provisioned yet")
                && check.detail.contains("was created without restoring from the replica"),
            "{}",
            check.detail
        );
        assert_eq!((r.checker())(), check);
        r.shutdown().await;
    }

    /// A database created while the secret was missing (marked), then the secret arrives.
    async fn marked_start(replica_has_data: bool) -> (tempfile::TempDir, Replication, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(&format!(
            "type = \"file\"\npath = \"{}\"\n",
            dir.path().join("replica").display()
        ));
        if replica_has_data {
            let old = dir.path().join("old.db");
            rusqlite::Connection::open(&old)
                .unwrap()
                .execute_batch("PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; CREATE TABLE t(x); INSERT INTO t VALUES ('family');")
                .unwrap();
            let r = Replication::start(Some(&c), &old, &Metrics::default(), "barnabee-test")
                .await
                .unwrap();
            r.shutdown().await;
        }
        let db = dir.path().join("m.db");
        rusqlite::Connection::open(&db)
            .unwrap()
            .execute_batch("PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; CREATE TABLE t(x); INSERT INTO t VALUES ('first boot');")
            .unwrap();
        std::fs::write(not_restored_marker(&db), "test\n").unwrap();
        let r = Replication::start(Some(&c), &db, &Metrics::default(), "barnabee-test")
            .await
            .unwrap();
        (dir, r, db)
    }

    #[tokio::test]
    async fn a_never_restored_database_is_not_shipped_over_a_replica_with_data() {
        let (dir, r, db) = marked_start(true).await;
        assert!(!r.is_running() && r.is_held());
        let check = r.check();
        assert!(!check.ok && !check.critical, "{check:?}");
        assert!(
            check.detail.contains("not replicating: it holds data, but")
                && check.detail.contains("move ")
                && check
                    .detail
                    .contains(&format!("delete {}", not_restored_marker(&db).display())),
            "{}",
            check.detail
        );
        r.shutdown().await;
        assert!(not_restored_marker(&db).exists());
        // The replica still restores the family's data, not the first-boot database.
        let c = cfg(&format!(
            "type = \"file\"\npath = \"{}\"\n",
            dir.path().join("replica").display()
        ));
        let other = dir.path().join("restored/m.db");
        restore_if_missing(Some(&c), &other).await.unwrap();
        let x: String = rusqlite::Connection::open(&other)
            .unwrap()
            .query_row("SELECT x FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(x, "family");
    }

    #[tokio::test]
    async fn a_never_restored_database_replicates_to_an_empty_replica() {
        let (_dir, r, db) = marked_start(false).await;
        assert!(r.is_running() && !r.is_held());
        assert!(!not_restored_marker(&db).exists());
        r.shutdown().await;
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
        let r = Replication::start(Some(&c), &db, &metrics, "barnabee-test")
            .await
            .unwrap();
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
