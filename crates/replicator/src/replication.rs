//! The background replication task: the embedding API ([`Replication`]) and what the
//! standalone `replicate` command runs.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};

use crate::client::{Client, LEVELS, ReplicaClient};
use crate::compactor;
use crate::config::{ConfigError, ReplicaConfig};
use crate::db::{Db, DbError, Pending};
use crate::ltx::PageEncoding;
use crate::metrics::ReplicationMetrics;
use crate::restore::{self, RestoreError, Restored, Target};
use crate::time::now_ms;
use crate::upload_budget::UploadBudget;

/// Tuning; defaults are Litestream's except `monitor_interval` (how often the WAL is
/// probed: a sporadic commit ships within this delay, uploads stay <= 1 per `sync_interval`).
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    pub sync_interval: Duration,
    pub monitor_interval: Duration,
    /// How often the WAL is probed while everything is shipped and the writers are quiet
    /// (a probe wakes the runtime: 40 a second cost an idle process ~6 ms of CPU a second).
    /// The first change seen switches back to `monitor_interval` until it has shipped.
    pub idle_monitor_interval: Duration,
    pub checkpoint_interval: Duration,
    pub min_checkpoint_page_count: u64,
    pub busy_timeout: Duration,
    pub snapshot_interval: Duration,
    pub snapshot_retention: Duration,
    /// Compaction intervals of levels 1.. (default 30 s, 5 min, 1 h).
    pub level_intervals: Vec<Duration>,
    pub l0_retention: Duration,
    pub l0_retention_check_interval: Duration,
    pub retention_enabled: bool,
    pub page_encoding: PageEncoding,
    /// Upper bound of the retry backoff after failed uploads.
    pub max_backoff: Duration,
    /// A backlog of more WAL bytes than this ships as several level-0 files (whole
    /// transactions each, one per sync interval); Litestream's `max-sync-wal-bytes`.
    pub max_sync_wal_bytes: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            sync_interval: Duration::from_secs(1),
            monitor_interval: Duration::from_millis(25),
            idle_monitor_interval: Duration::from_millis(100),
            checkpoint_interval: Duration::from_secs(60),
            min_checkpoint_page_count: 1000,
            busy_timeout: Duration::from_secs(1),
            snapshot_interval: Duration::from_secs(24 * 3600),
            snapshot_retention: Duration::from_secs(24 * 3600),
            level_intervals: vec![
                Duration::from_secs(30),
                Duration::from_secs(300),
                Duration::from_secs(3600),
            ],
            l0_retention: Duration::from_secs(300),
            l0_retention_check_interval: Duration::from_secs(15),
            retention_enabled: true,
            page_encoding: PageEncoding::Frame,
            max_backoff: Duration::from_secs(30),
            max_sync_wal_bytes: 64 << 20,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Client(#[from] crate::client::ClientError),
    #[error(transparent)]
    Restore(#[from] RestoreError),
    #[error("sync failed: {0}")]
    Sync(String),
    #[error("replication task has stopped")]
    Stopped,
    #[error("shutdown: {0}")]
    Shutdown(String),
}

/// A snapshot of the replication state (for `/health` and `STATUS=`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Status {
    pub replica: String,
    pub last_shipped_txid: u64,
    pub last_shipped_at_ms: Option<i64>,
    /// Header timestamp of the newest shipped L0 file: every commit before it is durable.
    pub last_shipped_timestamp_ms: Option<i64>,
    /// Seconds since the oldest commit not yet on the replica was seen (0 when caught up).
    pub lag_seconds: f64,
    pub consecutive_errors: u32,
    pub last_error: Option<String>,
    /// With several replicas: each one's own state (one behind or failing while another
    /// takes the commits). Empty with one replica, whose state is the fields above.
    pub members: Vec<crate::client::MemberStatus>,
}

struct Shared {
    status: Mutex<Status>,
    metrics: ReplicationMetrics,
}

enum Cmd {
    SyncNow(oneshot::Sender<Result<u64, String>>),
    Shutdown(Duration, oneshot::Sender<Result<u64, String>>),
}

/// A running replication of one database to one replica.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use barnabee_replicator::{Options, Replication, ReplicaConfig};
/// let replica = ReplicaConfig::from_url("file:///var/backup/memory");
/// let db = std::path::Path::new("/var/lib/barnabee-memory/memory.db");
/// barnabee_replicator::restore_if_missing(db, &replica).await?;
/// // ... open the database with PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0 ...
/// let repl = Replication::start(db, &replica, Options::default()).await?;
/// let txid = repl.sync_now().await?;             // ship what is committed now
/// let status = repl.status();                    // for /health and STATUS=
/// repl.shutdown(std::time::Duration::from_secs(5)).await?;
/// # let _ = (txid, status); Ok(()) }
/// ```
pub struct Replication {
    shared: Arc<Shared>,
    client: Arc<Client>,
    cmd: mpsc::Sender<Cmd>,
    stop_maint: watch::Sender<bool>,
    /// The sync and maintenance tasks; [`Replication::shutdown`] waits for both.
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Replication {
    /// Start replicating `db_path` to the replica described by `replica`.
    pub async fn start(
        db_path: &Path,
        replica: &ReplicaConfig,
        options: Options,
    ) -> Result<Self, ReplicationError> {
        let client = replica.client()?;
        Self::start_with_client(db_path, client, options).await
    }

    /// Start with an already built client (tests use [`Client::Memory`]).
    pub async fn start_with_client(
        db_path: &Path,
        client: Client,
        options: Options,
    ) -> Result<Self, ReplicationError> {
        let client = Arc::new(client);
        let metrics = ReplicationMetrics::default();
        // a replica set's members catch up with each other from the start
        client.start(
            metrics
                .errors
                .get_or_create(&crate::metrics::OpLabel {
                    op: "replica".into(),
                })
                .clone(),
        );
        let mut last_txid = 0u64;
        for level in LEVELS {
            if let Some(m) = client
                .list(level, false)
                .await?
                .iter()
                .map(|f| f.max_txid)
                .max()
            {
                last_txid = last_txid.max(m);
            }
        }
        let path = db_path.to_path_buf();
        let (enc, bt) = (options.page_encoding, options.busy_timeout);
        let max_sync = options.max_sync_wal_bytes;
        let db = tokio::task::spawn_blocking(move || {
            Db::open(&path, last_txid, enc, bt).map(|mut db| {
                db.set_max_sync_wal_bytes(max_sync);
                db
            })
        })
        .await
        .map_err(|e| ReplicationError::Sync(e.to_string()))??;
        log::info!(db = db_path.display().to_string().as_str(), replica = client.describe().as_str(), txid = last_txid; "replication starting");
        let shared = Arc::new(Shared {
            status: Mutex::new(Status {
                replica: client.describe(),
                last_shipped_txid: last_txid,
                ..Default::default()
            }),
            metrics,
        });
        shared.metrics.last_shipped_txid.set(last_txid as i64);
        let (tx, rx) = mpsc::channel(16);
        let (stop_tx, stop_rx) = watch::channel(false);
        let db = Arc::new(Mutex::new(db));
        let sync = tokio::spawn(sync_loop(
            db,
            client.clone(),
            options.clone(),
            shared.clone(),
            rx,
        ));
        let maint = tokio::spawn(maintenance_loop(
            client.clone(),
            options,
            shared.clone(),
            stop_rx,
        ));
        Ok(Self {
            shared,
            client,
            cmd: tx,
            stop_maint: stop_tx,
            tasks: Mutex::new(vec![sync, maint]),
        })
    }

    /// Ship everything committed so far; returns the replica's newest TXID.
    pub async fn sync_now(&self) -> Result<u64, ReplicationError> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Cmd::SyncNow(tx))
            .await
            .map_err(|_| ReplicationError::Stopped)?;
        rx.await
            .map_err(|_| ReplicationError::Stopped)?
            .map_err(ReplicationError::Sync)
    }

    pub fn status(&self) -> Status {
        let mut s = self
            .shared
            .status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        s.lag_seconds = self.shared.metrics.lag_seconds.get();
        s.members = self.client.member_status();
        s
    }

    pub fn metrics(&self) -> &ReplicationMetrics {
        &self.shared.metrics
    }

    /// Register the `barnabee_replication_*` metrics into a daemon's registry.
    pub fn register_metrics(&self, metrics: &barnabee_service::metrics::Metrics) {
        self.shared.metrics.register(metrics);
    }

    /// Ship what is committed (within `bound`), then stop the tasks and release the database.
    /// Returns once both tasks have finished and the replicator's connection is closed.
    pub async fn shutdown(&self, bound: Duration) -> Result<u64, ReplicationError> {
        let _ = self.stop_maint.send(true);
        let (tx, rx) = oneshot::channel();
        let sent = self.cmd.send(Cmd::Shutdown(bound, tx)).await;
        let answer = match sent {
            Ok(()) => rx.await.ok(),
            Err(_) => None,
        };
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for t in tasks {
            if let Err(e) = t.await {
                log::warn!(error = e.to_string().as_str(); "replication task failed");
            }
        }
        answer
            .ok_or(ReplicationError::Stopped)?
            .map_err(ReplicationError::Shutdown)
    }
}

/// Restore `db_path` from the replica if the database does not exist yet (and the replica
/// holds something). Returns what was restored.
pub async fn restore_if_missing(
    db_path: &Path,
    replica: &ReplicaConfig,
) -> Result<Option<Restored>, ReplicationError> {
    if db_path.exists() {
        return Ok(None);
    }
    let client = replica.client()?;
    let Some(r) = restore_newest(&client, db_path).await? else {
        return Ok(None);
    };
    log::info!(db = db_path.display().to_string().as_str(), txid = r.txid; "restored from replica");
    // So that the first start continues from the restored TXID instead of a full snapshot.
    let (path, txid, pages) = (db_path.to_path_buf(), r.txid, r.pages);
    let recorded =
        tokio::task::spawn_blocking(move || crate::db::record_restored(&path, txid, pages))
            .await
            .map_err(|e| ReplicationError::Sync(e.to_string()))?;
    if let Err(e) = recorded {
        log::warn!(error = e.to_string().as_str(); "cannot record the restored position; the first sync will be a snapshot");
    }
    Ok(Some(r))
}

/// Restore the latest state from `client`: with one replica, from it; with a set, from the
/// member whose newest TXID is highest, falling back to the next when a restore from one
/// fails (an object corrupt or missing there). `None` when no replica holds anything.
async fn restore_newest(
    client: &Client,
    db_path: &Path,
) -> Result<Option<Restored>, ReplicationError> {
    let members = client.members();
    let mut plans = Vec::new();
    let mut first_error: Option<ReplicationError> = None;
    for m in &members {
        match restore::plan(*m, Target::Latest).await {
            Ok(p) => plans.push((*m, p)),
            Err(RestoreError::NotAvailable(_)) => {}
            Err(e) => {
                log::warn!(replica = m.describe().as_str(), error = e.to_string().as_str(); "cannot plan a restore from replica {}: {e}", m.describe());
                first_error.get_or_insert(e.into());
            }
        }
    }
    if plans.is_empty() {
        return match first_error {
            // one replica unreadable and none holding anything: say why, don't start empty
            Some(e) => Err(e),
            None => Ok(None),
        };
    }
    // newest first; equal TXIDs keep the configured order
    plans.sort_by_key(|(_, p)| std::cmp::Reverse(plan_txid(p)));
    if members.len() > 1
        && plans
            .iter()
            .any(|(_, p)| plan_txid(p) != plan_txid(&plans[0].1))
    {
        log::warn!(event = "replicas_differ", newest = plan_txid(&plans[0].1); "the replicas hold different newest TXIDs: {}; restoring the newest", plans.iter().map(|(m, p)| format!("{} at {}", m.describe(), plan_txid(p))).collect::<Vec<_>>().join(", "));
    }
    let mut last_error = None;
    for (m, plan) in &plans {
        match restore::apply(*m, plan, db_path, |_, _| {}).await {
            Ok(r) => return Ok(Some(r)),
            Err(e) => {
                log::error!(event = "restore_failed", replica = m.describe().as_str(), error = e.to_string().as_str(); "restore from replica {} failed: {e}{}", m.describe(), if plans.len() > 1 { "; trying the next replica" } else { "" });
                last_error = Some(e);
            }
        }
    }
    Err(last_error.map_or(
        ReplicationError::Sync("no replica restored".into()),
        Into::into,
    ))
}

fn plan_txid(plan: &[crate::client::FileInfo]) -> u64 {
    plan.iter().map(|f| f.max_txid).max().unwrap_or(0)
}

type DbHandle = Arc<Mutex<Db>>;

/// Drop the database (closing its connection) once no blocking task holds it any more (a
/// shutdown bound can abandon a running `spawn_blocking`).
async fn close(db: DbHandle) {
    let mut db = db;
    loop {
        match Arc::try_unwrap(db) {
            Ok(m) => {
                let _ = tokio::task::spawn_blocking(move || drop(m)).await;
                return;
            }
            Err(shared) => {
                db = shared;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
}

fn lock(db: &DbHandle) -> std::sync::MutexGuard<'_, Db> {
    db.lock().unwrap_or_else(|e| e.into_inner())
}

async fn blocking<T: Send + 'static>(
    db: &DbHandle,
    f: impl FnOnce(&mut Db) -> T + Send + 'static,
) -> Result<T, String> {
    let db = db.clone();
    tokio::task::spawn_blocking(move || f(&mut lock(&db)))
        .await
        .map_err(|e| e.to_string())
}

struct Loop {
    db: DbHandle,
    client: Arc<Client>,
    opts: Options,
    shared: Arc<Shared>,
    pending: Option<Pending>,
    /// How often level 0 may upload (see [`crate::upload_budget`]).
    budget: UploadBudget,
    last_stamp: Option<(u64, std::time::SystemTime)>,
    /// The WAL stamp at the previous probe (unchanged: the writers paused for a probe).
    probe_stamp: Option<(u64, std::time::SystemTime)>,
    /// Since when the writers have not paused (no two probes in a row without a change).
    active_since: Option<Instant>,
    /// Probes in a row that found the WAL unchanged.
    quiet_probes: u32,
    /// When the capture being uploaded began: sync intervals are counted from there, so
    /// an upload's own duration does not stretch them.
    capture_began: Option<Instant>,
    dirty_since: Option<Instant>,
    backoff: Duration,
    next_try: Instant,
    last_checkpoint: Instant,
}

/// What reached the replica (for status, metrics and the log).
struct Shipped {
    txid: u64,
    timestamp_ms: i64,
    bytes: usize,
    pages: usize,
    snapshot: bool,
}

/// What the upload under a checkpoint's write lock did: shipped, or (TXID, error).
type ShipOutcome = Result<Shipped, (u64, String)>;

impl From<&Pending> for Shipped {
    fn from(p: &Pending) -> Self {
        Self {
            txid: p.txid,
            timestamp_ms: p.timestamp_ms,
            bytes: p.data.len() as usize,
            pages: p.pages,
            snapshot: p.snapshot,
        }
    }
}

impl Loop {
    /// Capture (if nothing is pending) and upload. Ok(true) when caught up.
    async fn step(&mut self) -> Result<bool, String> {
        if self.pending.is_none() {
            self.capture_began = Some(Instant::now());
            let stamp = lock(&self.db).wal_stamp();
            let p = blocking(&self.db, |db| db.sync()).await?.map_err(|e| {
                self.shared.metrics.error("sync");
                e.to_string()
            })?;
            // A capture cut at max_sync_wal_bytes leaves committed frames behind: treat the
            // WAL as changed so the rest ships at the next interval.
            self.last_stamp = if lock(&self.db).backlog() {
                None
            } else {
                stamp
            };
            self.pending = p;
        }
        // The file itself goes to the client (no copy: a first snapshot is the size of
        // the database). If the upload fails, the next attempt captures again from the same
        // position: the same TXID, holding what was committed meanwhile as well.
        let Some((txid, timestamp_ms, data)) = self
            .pending
            .as_mut()
            .map(|p| (p.txid, p.timestamp_ms, std::mem::take(&mut p.data)))
        else {
            return Ok(true);
        };
        let bytes = data.len() as usize;
        match self.client.put(0, txid, txid, data, timestamp_ms).await {
            Ok(()) => {
                let Some(p) = self.pending.take() else {
                    return Ok(true);
                };
                lock(&self.db).mark_shipped(&p);
                self.shipped(
                    &Shipped {
                        bytes,
                        ..Shipped::from(&p)
                    },
                    false,
                );
                let _ = blocking(&self.db, |db| db.refresh_read()).await;
                Ok(true)
            }
            Err(e) => {
                let msg = e.to_string();
                self.pending = None;
                self.last_stamp = None;
                self.put_failed(txid, &msg);
                Err(msg)
            }
        }
    }

    /// Bookkeeping after a level-0 upload (this sync interval's one).
    fn shipped(&mut self, p: &Shipped, checkpoint: bool) {
        let began = self.capture_began.take().unwrap_or_else(Instant::now);
        self.budget.spend(began);
        self.backoff = Duration::ZERO;
        self.shared.metrics.retry_backoff_seconds.set(0.0);
        self.shared.metrics.uploaded(0, p.bytes);
        self.shared.metrics.last_shipped_txid.set(p.txid as i64);
        {
            let mut st = self.shared.status.lock().unwrap_or_else(|e| e.into_inner());
            st.last_shipped_txid = p.txid;
            st.last_shipped_at_ms = Some(now_ms());
            st.last_shipped_timestamp_ms = Some(p.timestamp_ms);
            st.consecutive_errors = 0;
        }
        log::info!(txid = p.txid, level = 0u8, pages = p.pages, bytes = p.bytes, snapshot = p.snapshot, checkpoint = checkpoint; "shipped");
    }

    fn put_failed(&mut self, txid: u64, msg: &str) {
        self.shared.metrics.error("put");
        self.backoff = (self.backoff * 2).clamp(Duration::from_millis(100), self.opts.max_backoff);
        self.next_try = Instant::now() + self.backoff;
        self.shared
            .metrics
            .retry_backoff_seconds
            .set(self.backoff.as_secs_f64());
        {
            let mut st = self.shared.status.lock().unwrap_or_else(|e| e.into_inner());
            st.consecutive_errors += 1;
            st.last_error = Some(msg.to_owned());
        }
        log::warn!(txid = txid, level = 0u8, error = msg, retry_ms = self.backoff.as_millis() as u64; "upload failed");
    }

    /// Ship everything committed (several files when there is a backlog).
    async fn catch_up(&mut self) -> Result<bool, String> {
        loop {
            let r = self.step().await?;
            if self.pending.is_none() && !lock(&self.db).backlog() {
                return Ok(r);
            }
        }
    }

    /// A checkpoint is due: enough shipped frames, or frames older than the interval (not
    /// while a backlog ships in parts: the checkpoint would ship all of it at once).
    /// Fast probes while something is unshipped or the writers are busy; slower ones when
    /// all is shipped and quiet.
    fn probe_interval(&self) -> Duration {
        let idle = self.dirty_since.is_none() && self.pending.is_none() && self.quiet_probes >= 2;
        if idle {
            self.opts
                .idle_monitor_interval
                .max(self.opts.monitor_interval)
        } else {
            self.opts.monitor_interval
        }
    }

    fn checkpoint_wanted(&self) -> bool {
        if self.pending.is_some() || lock(&self.db).backlog() {
            return false;
        }
        let frames = lock(&self.db).wal_frames();
        frames > 0
            && (frames >= self.opts.min_checkpoint_page_count
                || self.last_checkpoint.elapsed() >= self.opts.checkpoint_interval)
    }

    /// Checkpoint as this sync interval's upload: under the write lock taken for the WAL
    /// restart, whatever was committed since the last upload is shipped first (one PUT, the
    /// interval's only one), so no unshipped frame is ever checkpointed away and a checkpoint
    /// never adds a PUT. Ok(true) when something was shipped; Ok(false) when nothing was
    /// (nothing new, or the checkpoint could not run: the caller does a regular upload).
    async fn checkpoint_upload(&mut self) -> Result<bool, String> {
        self.last_checkpoint = Instant::now();
        let frames = lock(&self.db).wal_frames();
        let client = self.client.clone();
        let handle = tokio::runtime::Handle::current();
        // Usually one upload; two when a commit slipped in between the checkpoint's two
        // write transactions (see `Db::checkpoint`).
        let outcome: Arc<Mutex<Vec<ShipOutcome>>> = Arc::default();
        let out = outcome.clone();
        let started = Instant::now();
        self.capture_began = Some(started);
        let r = blocking(&self.db, move |db| {
            db.checkpoint(|p| {
                let r = handle
                    .block_on(client.put(0, p.txid, p.txid, p.data.clone(), p.timestamp_ms))
                    .map_err(|e| e.to_string());
                out.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(match &r {
                        Ok(()) => Ok(Shipped::from(p)),
                        Err(e) => Err((p.txid, e.clone())),
                    });
                r
            })
        })
        .await;
        let outcome = std::mem::take(&mut *outcome.lock().unwrap_or_else(|e| e.into_inner()));
        match r {
            Ok(Ok(restarted)) => {
                self.shared.metrics.checkpoints.inc();
                log::debug!(frames = frames, restarted = restarted, ms = started.elapsed().as_millis() as u64; "checkpoint");
                self.last_stamp = None;
            }
            Ok(Err(e)) => {
                self.shared.metrics.error("checkpoint");
                log::warn!(error = e.to_string().as_str(); "checkpoint failed");
            }
            Err(e) => log::warn!(error = e.as_str(); "checkpoint task failed"),
        }
        let mut shipped = false;
        for o in outcome {
            match o {
                Ok(p) => {
                    self.shipped(&p, true);
                    shipped = true;
                }
                Err((txid, msg)) => {
                    self.put_failed(txid, &msg);
                    return Err(msg);
                }
            }
        }
        if shipped {
            let _ = blocking(&self.db, |db| db.refresh_read()).await;
        }
        Ok(shipped)
    }

    /// This interval's upload: a checkpoint when one is due (it ships what is new under its
    /// write lock), else a regular capture and upload.
    async fn upload(&mut self, forced: bool) -> Result<bool, String> {
        if !forced && self.checkpoint_wanted() && self.checkpoint_upload().await? {
            return Ok(true);
        }
        self.step().await
    }
}

async fn sync_loop(
    db: DbHandle,
    client: Arc<Client>,
    opts: Options,
    shared: Arc<Shared>,
    mut rx: mpsc::Receiver<Cmd>,
) {
    let budget = UploadBudget::new(opts.sync_interval);
    let mut l = Loop {
        db,
        client,
        opts,
        shared,
        pending: None,
        budget,
        last_stamp: None,
        probe_stamp: None,
        active_since: None,
        quiet_probes: 0,
        capture_began: None,
        dirty_since: None,
        backoff: Duration::ZERO,
        next_try: Instant::now(),
        last_checkpoint: Instant::now(),
    };
    let mut waiters: Vec<oneshot::Sender<Result<u64, String>>> = Vec::new();
    loop {
        let mut forced = false;
        tokio::select! {
            cmd = rx.recv() => match cmd {
                Some(Cmd::SyncNow(tx)) => { waiters.push(tx); forced = true; }
                Some(Cmd::Shutdown(bound, tx)) => {
                    let r = tokio::time::timeout(bound, async {
                        loop {
                            match l.step().await {
                                Ok(true) if l.pending.is_none() => {
                                    // One more capture in case of commits during the upload.
                                    match l.step().await { Ok(_) if l.pending.is_none() && !lock(&l.db).backlog() => break Ok(()), Ok(_) => continue, Err(e) => break Err(e) }
                                }
                                Ok(_) => continue,
                                Err(e) => { tokio::time::sleep(l.backoff).await; let _ = e; continue }
                            }
                        }
                    }).await;
                    let txid = lock(&l.db).txid();
                    let res = match r {
                        Ok(Ok(())) => Ok(txid),
                        Ok(Err(e)) => Err(e),
                        Err(_) => Err(format!("unshipped changes remain after {bound:?}; replica is at TXID {txid}")),
                    };
                    // Close our connection before answering: the caller may close the last
                    // application connection next, and the WAL must outlive both.
                    close(l.db).await;
                    for w in waiters.drain(..) { let _ = w.send(res.clone()); }
                    let _ = tx.send(res);
                    return;
                }
                None => { close(l.db).await; return }
            },
            _ = tokio::time::sleep(l.probe_interval()) => {}
        }
        let stamp = lock(&l.db).wal_stamp();
        let changed = stamp != l.last_stamp || lock(&l.db).position().is_none();
        // The writers paused: two probes (25 to 50 ms) without a new commit; one is too
        // short a gap to end a burst on a busy machine.
        l.quiet_probes = if stamp == l.probe_stamp {
            l.quiet_probes.saturating_add(1)
        } else {
            0
        };
        let quiet = l.quiet_probes >= 2;
        l.probe_stamp = stamp;
        if quiet {
            l.active_since = None;
        } else if l.active_since.is_none() {
            l.active_since = Some(Instant::now());
        }
        if changed && l.dirty_since.is_none() {
            l.dirty_since = Some(Instant::now());
        }
        // One level-0 upload per sync interval on average, two at once after a quiet spell
        // (the upload budget; a forced sync excepted): a commit in a quiet period ships as
        // soon as the writers pause (two probes without a new commit), commits under load
        // wait for the budget, one interval per upload. The upload waits for
        // that pause (for at most a sync interval of uninterrupted writes), so that a burst
        // of commits ships as one file at its end instead of its first commit alone and the
        // rest an interval later. A due checkpoint takes the interval's upload (see
        // `Loop::checkpoint_upload`), also when idle: it may find a commit that raced the
        // probe and ship it.
        let due = forced || l.budget.allows(Instant::now());
        let settled = forced
            || quiet
            || l.pending.is_some()
            || l.active_since
                .is_some_and(|t| t.elapsed() >= l.opts.sync_interval);
        let retry_ok = forced || Instant::now() >= l.next_try;
        if (changed || l.pending.is_some() || forced) && due && retry_ok && settled {
            let r = l.upload(forced).await;
            // A forced sync must capture commits made during a pending upload, too, and
            // every part of a backlog.
            let r = match r {
                Ok(_) if forced && l.pending.is_none() => l.catch_up().await,
                other => other,
            };
            match r {
                Ok(_) if l.pending.is_none() => {
                    l.dirty_since = None;
                    let txid = lock(&l.db).txid();
                    for w in waiters.drain(..) {
                        let _ = w.send(Ok(txid));
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    for w in waiters.drain(..) {
                        let _ = w.send(Err(e.clone()));
                    }
                }
            }
        } else if !changed && due && retry_ok && l.checkpoint_wanted() {
            let _ = l.checkpoint_upload().await;
        }
        let lag = l
            .dirty_since
            .map(|t| t.elapsed().as_secs_f64())
            .unwrap_or(0.0);
        l.shared.metrics.lag_seconds.set(lag);
    }
}

async fn maintenance_loop(
    client: Arc<Client>,
    opts: Options,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let mut last_retention = Instant::now();
    // Per level (and the snapshot level last), the interval boundary already handled. As in
    // Litestream, each level is looked at once at start (a compaction missed while stopped)
    // and then once per interval boundary, whether or not there was anything to compact:
    // so a fresh replica's first snapshot is not copied into every level in the same second
    // (it reaches each level at that level's next boundary), and an idle replica is not
    // listed every second.
    let mut done_boundary: Vec<i64> = vec![i64::MIN; opts.level_intervals.len() + 1];
    let mut first = true;
    loop {
        if !first {
            tokio::select! {
                _ = stop.changed() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
        first = false;
        let now = now_ms();
        for (i, iv) in opts.level_intervals.iter().enumerate() {
            let level = (i + 1) as u8;
            if level >= crate::client::SNAPSHOT_LEVEL {
                break;
            }
            let ivm = (iv.as_millis() as i64).max(1);
            let boundary = now - now.rem_euclid(ivm);
            if done_boundary[i] >= boundary {
                continue;
            }
            let t = Instant::now();
            match compactor::compact_level(&*client, level, ivm, now, opts.page_encoding).await {
                Ok(Some(f)) => {
                    done_boundary[i] = boundary;
                    shared.metrics.uploaded(level, f.size as usize);
                    shared
                        .metrics
                        .compaction_seconds
                        .get_or_create(&crate::metrics::LevelLabel {
                            level: level.to_string(),
                        })
                        .observe(t.elapsed().as_secs_f64());
                }
                Ok(None) => done_boundary[i] = boundary,
                Err(e) => {
                    shared.metrics.error("compact");
                    log::warn!(level = level, error = e.to_string().as_str(); "compaction failed");
                }
            }
        }
        let siv = (opts.snapshot_interval.as_millis() as i64).max(1);
        let sboundary = now - now.rem_euclid(siv);
        let si = done_boundary.len() - 1;
        if done_boundary[si] < sboundary {
            match compactor::snapshot(&*client, siv, now, opts.page_encoding).await {
                Ok(Some(f)) => {
                    done_boundary[si] = sboundary;
                    shared
                        .metrics
                        .uploaded(crate::client::SNAPSHOT_LEVEL, f.size as usize)
                }
                Ok(None) => done_boundary[si] = sboundary,
                Err(e) => {
                    shared.metrics.error("snapshot");
                    log::warn!(level = 9u8, error = e.to_string().as_str(); "snapshot failed");
                }
            }
        }
        if opts.retention_enabled && last_retention.elapsed() >= opts.l0_retention_check_interval {
            last_retention = Instant::now();
            if let Err(e) = compactor::enforce_retention(
                &*client,
                opts.l0_retention.as_millis() as i64,
                opts.snapshot_retention.as_millis() as i64,
                now,
            )
            .await
            {
                shared.metrics.error("retention");
                log::warn!(error = e.to_string().as_str(); "retention failed");
            }
        }
    }
}

/// Convenience for the CLI: the path of a database as given.
pub fn db_path(p: &Path) -> PathBuf {
    p.to_path_buf()
}
