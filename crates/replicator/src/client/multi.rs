//! Several independent replicas of one database ("two places": a NAS directory and S3).
//!
//! Decisions, so that one replica being down never blocks the other:
//! - Every write (`put`, `delete`) goes to each member's own ordered queue, worked by that
//!   member's task. The write returns as soon as one member has taken it: the commit is then
//!   off the box. It fails only when every member has failed it (the replication loop then
//!   retries and backs off as with one replica).
//! - A member that fails keeps its queue and retries it in order, backing off (100 ms doubling
//!   to 30 s); its `consecutive_errors` and `last_error` are its own (see [`MemberStatus`]).
//! - A queue holding more than [`MAX_QUEUED_BYTES`] in memory (or [`MAX_QUEUED_SPOOL_BYTES`]
//!   in spool files, see [`crate::payload`]) is dropped and the member is marked for resync,
//!   so a long outage costs neither memory nor disk. A queue holding one object is never
//!   dropped: a large snapshot is not a reason to fail a healthy replica's write. Every member also starts marked: after a restart nobody
//!   knows what it missed.
//! - Resync: each level of the member is listed beside the other members' listings, and
//!   every object a sibling holds that it lacks is copied from the sibling. Deletions it
//!   missed are caught up by the next retention pass (which lists the union and deletes from
//!   all: deleting what is absent is not an error).
//! - Reads: `list` is the union of the members that answer (an error only when none does);
//!   `get` and `download` take the first member that has the object.
//! - Restore (see [`crate::restore_if_missing`]) plans from each member alone and applies the
//!   newest plan, falling back to the next member when an object is corrupt or missing.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, oneshot};

use super::{Client, ClientError, FileInfo, Payload, ReplicaClient};
use crate::time::now_ms;

/// A member's queue may hold this many bytes of objects in memory before it is dropped for
/// a resync.
pub const MAX_QUEUED_BYTES: u64 = 64 << 20;
/// ... and this many in spool files (large snapshots and compactions) on disk.
pub const MAX_QUEUED_SPOOL_BYTES: u64 = 1 << 30;
/// How long a write waits for the first member to take it.
const WRITE_BOUND: Duration = Duration::from_secs(60);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What one member of a [`MultiClient`] is doing, for `/health`, `STATUS=` and metrics.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MemberStatus {
    pub replica: String,
    /// Writes queued for this member (it is behind by these).
    pub queued: usize,
    pub queued_bytes: u64,
    /// Waiting to be resynced from a sibling (at start, and after its queue was dropped).
    pub resync_pending: bool,
    pub consecutive_errors: u32,
    pub last_error: Option<String>,
    /// When it last completed a write or a resync (ms since the epoch).
    pub last_ok_ms: Option<i64>,
}

#[derive(Clone)]
enum Op {
    Put {
        level: u8,
        min: u64,
        max: u64,
        data: Payload,
        ts: i64,
    },
    Delete(Vec<FileInfo>),
}

impl Op {
    /// (bytes in memory, bytes in spool files) it holds.
    fn held(&self) -> (u64, u64) {
        match self {
            Op::Put { data, .. } if data.path().is_some() => (0, data.len()),
            Op::Put { data, .. } => (data.len(), 0),
            Op::Delete(_) => (0, 0),
        }
    }
}

struct Queued {
    op: Op,
    waiters: Vec<oneshot::Sender<Result<(), String>>>,
}

impl Queued {
    /// Tell everyone waiting on this op (the op itself may stay queued).
    fn answer(&mut self, r: &Result<(), String>) {
        for w in self.waiters.drain(..) {
            let _ = w.send(r.clone());
        }
    }
}

#[derive(Default)]
struct State {
    queue: VecDeque<Queued>,
    queued_bytes: u64,
    /// Of `queued_bytes`, those held in spool files.
    queued_spool_bytes: u64,
    resync: bool,
    consecutive_errors: u32,
    last_error: Option<String>,
    last_ok_ms: Option<i64>,
    worker: bool,
}

struct Member {
    client: Client,
    /// The set it belongs to (its siblings, for a resync).
    all: std::sync::Weak<MultiClient>,
    state: Mutex<State>,
    wake: Notify,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Independent replicas written together; see the module documentation.
pub struct MultiClient {
    members: Vec<Arc<Member>>,
    /// `barnabee_replication_errors_total{op="replica"}`: each failure of one member, so that
    /// BarnabeeReplicationErrors fires for a replica that stays down while another takes
    /// every commit (the set's writes themselves then never fail).
    errors: std::sync::OnceLock<prometheus_client::metrics::counter::Counter>,
}

impl MultiClient {
    /// One member per client. A [`Client::Multi`] among them would be a member that answers
    /// nothing (the configuration never builds one: `replicas` is a flat list).
    pub fn new(clients: Vec<Client>) -> Arc<Self> {
        Arc::new_cyclic(|all| Self {
            members: clients
                .into_iter()
                .map(|client| {
                    Arc::new(Member {
                        client,
                        all: all.clone(),
                        state: Mutex::new(State {
                            resync: true,
                            ..Default::default()
                        }),
                        wake: Notify::new(),
                    })
                })
                .collect(),
            errors: std::sync::OnceLock::new(),
        })
    }

    /// Count each member's failures here (the replication's error counter, op `replica`).
    pub fn count_errors_in(&self, counter: prometheus_client::metrics::counter::Counter) {
        let _ = self.errors.set(counter);
    }

    /// Start every member's worker now (each first resyncs from its siblings) rather than at
    /// the first write; the replication task calls it when it starts.
    pub fn start(&self) {
        for m in &self.members {
            m.start_worker();
        }
    }

    /// The members, each one replica.
    pub fn members(&self) -> impl Iterator<Item = &Client> {
        self.members.iter().map(|m| &m.client)
    }

    pub fn member_status(&self) -> Vec<MemberStatus> {
        self.members
            .iter()
            .map(|m| {
                let s = lock(&m.state);
                MemberStatus {
                    replica: m.client.describe(),
                    queued: s.queue.len(),
                    queued_bytes: s.queued_bytes,
                    resync_pending: s.resync,
                    consecutive_errors: s.consecutive_errors,
                    last_error: s.last_error.clone(),
                    last_ok_ms: s.last_ok_ms,
                }
            })
            .collect()
    }

    pub(super) fn describe(&self) -> String {
        self.members
            .iter()
            .map(|m| m.client.describe())
            .collect::<Vec<_>>()
            .join(" + ")
    }

    pub(super) fn object_name(&self, level: u8, min: u64, max: u64) -> String {
        self.members
            .first()
            .map(|m| m.client.object_name(level, min, max))
            .unwrap_or_default()
    }

    pub(super) async fn list(
        &self,
        level: u8,
        precise: bool,
    ) -> Result<Vec<FileInfo>, ClientError> {
        let mut union = BTreeMap::new();
        let mut first_error = None;
        let mut answered = false;
        for m in &self.members {
            match m.client.single_list(level, precise).await {
                Ok(files) => {
                    answered = true;
                    for f in files {
                        union.entry((f.min_txid, f.max_txid)).or_insert(f);
                    }
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) if !answered => Err(e),
            _ => Ok(union.into_values().collect()),
        }
    }

    pub(super) async fn get(&self, level: u8, min: u64, max: u64) -> Result<Vec<u8>, ClientError> {
        let mut first_error = None;
        for m in &self.members {
            match m.client.single_get(level, min, max).await {
                Ok(b) => return Ok(b),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(first_error.unwrap_or_else(|| not_found(self, level, min, max)))
    }

    pub(super) async fn download(
        &self,
        level: u8,
        min: u64,
        max: u64,
        dest: &std::path::Path,
    ) -> Result<u64, ClientError> {
        let mut first_error = None;
        for m in &self.members {
            match m.client.single_download(level, min, max, dest).await {
                Ok(n) => return Ok(n),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(first_error.unwrap_or_else(|| not_found(self, level, min, max)))
    }

    /// The first member's file, when it is a directory replica that has it.
    pub(super) fn local_path(&self, level: u8, min: u64, max: u64) -> Option<std::path::PathBuf> {
        self.members
            .first()
            .and_then(|m| m.client.local_path(level, min, max))
            .filter(|p| p.exists())
    }

    pub(super) async fn put(
        &self,
        level: u8,
        min: u64,
        max: u64,
        data: Payload,
        ts: i64,
    ) -> Result<(), ClientError> {
        let object = self.object_name(level, min, max);
        self.write(
            || Op::Put {
                level,
                min,
                max,
                data: data.clone(),
                ts,
            },
            "put",
            object,
        )
        .await
    }

    pub(super) async fn delete(&self, files: &[FileInfo]) -> Result<(), ClientError> {
        let object = files
            .first()
            .map(|f| self.object_name(f.level, f.min_txid, f.max_txid))
            .unwrap_or_default();
        self.write(|| Op::Delete(files.to_vec()), "delete", object)
            .await
    }

    pub(super) async fn delete_all(&self) -> Result<(), ClientError> {
        for m in &self.members {
            m.client.single_delete_all().await?;
            let mut s = lock(&m.state);
            for mut q in s.queue.drain(..) {
                q.answer(&Err("the replica was emptied".into()));
            }
            s.queued_bytes = 0;
            s.queued_spool_bytes = 0;
        }
        Ok(())
    }

    /// Queue `op` on every member; Ok once one has done it, Err once all have failed it.
    async fn write(
        &self,
        op: impl Fn() -> Op,
        what: &'static str,
        object: String,
    ) -> Result<(), ClientError> {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for m in &self.members {
            let (w, r) = oneshot::channel();
            m.enqueue(op(), w);
            let tx = tx.clone();
            let name = m.client.describe();
            tokio::spawn(async move {
                let answer = r
                    .await
                    .unwrap_or_else(|_| Err("its queue was dropped".into()));
                let _ = tx.send((name, answer));
            });
        }
        drop(tx);
        let mut errors = Vec::new();
        let first_ok = tokio::time::timeout(WRITE_BOUND, async {
            while let Some((name, answer)) = rx.recv().await {
                match answer {
                    Ok(()) => return true,
                    Err(e) => errors.push(format!("{name}: {e}")),
                }
            }
            false
        })
        .await;
        match first_ok {
            Ok(true) => Ok(()),
            Ok(false) => Err(ClientError::S3 {
                op: what,
                object,
                message: format!("no replica took it ({})", errors.join("; ")),
            }),
            Err(_) => Err(ClientError::S3 {
                op: what,
                object,
                message: format!(
                    "no replica took it within {} s ({})",
                    WRITE_BOUND.as_secs(),
                    if errors.is_empty() {
                        "no answer".to_owned()
                    } else {
                        errors.join("; ")
                    }
                ),
            }),
        }
    }

    fn siblings_of<'a>(&'a self, me: &'a Arc<Member>) -> impl Iterator<Item = &'a Arc<Member>> {
        self.members.iter().filter(move |m| !Arc::ptr_eq(m, me))
    }
}

fn not_found(c: &MultiClient, level: u8, min: u64, max: u64) -> ClientError {
    ClientError::NotFound {
        object: c.object_name(level, min, max),
    }
}

impl Member {
    fn enqueue(self: &Arc<Self>, op: Op, waiter: oneshot::Sender<Result<(), String>>) {
        let mut s = lock(&self.state);
        // A member that is failing answers at once with its error (the op is still queued and
        // done when it answers again): it never holds a write that the others also fail.
        let waiter = match s.last_error.clone().filter(|_| s.consecutive_errors > 0) {
            Some(e) => {
                let _ = waiter.send(Err(e));
                None
            }
            None => Some(waiter),
        };
        // The replication loop retries a put every member failed: wait on the queued one.
        if let Op::Put { level, min, max, .. } = &op
            && let Some(q) = s.queue.iter_mut().find(|q| {
                matches!(&q.op, Op::Put { level: l, min: a, max: b, .. } if l == level && a == min && b == max)
            })
        {
            q.waiters.extend(waiter);
            return;
        }
        let (memory, spool) = op.held();
        s.queued_bytes += memory + spool;
        s.queued_spool_bytes += spool;
        s.queue.push_back(Queued {
            op,
            waiters: waiter.into_iter().collect(),
        });
        let in_memory = s.queued_bytes - s.queued_spool_bytes;
        if s.queue.len() > 1
            && (in_memory > MAX_QUEUED_BYTES || s.queued_spool_bytes > MAX_QUEUED_SPOOL_BYTES)
        {
            let dropped = s.queue.len();
            for mut q in s.queue.drain(..) {
                q.answer(&Err("behind; it will be resynced from a sibling".into()));
            }
            s.queued_bytes = 0;
            s.queued_spool_bytes = 0;
            s.resync = true;
            log::warn!(event = "replica_behind", replica = self.client.describe().as_str(), dropped = dropped; "replica {} is more than {} MiB behind: its queue is dropped and it will be resynced from another replica once it answers", self.client.describe(), MAX_QUEUED_BYTES >> 20);
        }
        drop(s);
        self.wake.notify_one();
        self.start_worker();
    }

    fn start_worker(self: &Arc<Self>) {
        let mut s = lock(&self.state);
        if !s.worker {
            s.worker = true;
            tokio::spawn(work(self.clone()));
        }
    }
}

/// A member's worker: resync when marked, then its queue in order, backing off on errors.
async fn work(me: Arc<Member>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        // The client was dropped (the daemon stopped replicating): so is this worker's job.
        if me.all.strong_count() == 0 {
            return;
        }
        let resync = lock(&me.state).resync;
        if resync {
            // The set is gone: the client was dropped, so is this worker's job.
            let Some(all) = me.all.upgrade() else { return };
            match resync_member(&all, &me).await {
                Ok(copied) => {
                    let mut s = lock(&me.state);
                    s.resync = false;
                    s.consecutive_errors = 0;
                    s.last_error = None;
                    s.last_ok_ms = Some(now_ms());
                    backoff = Duration::from_millis(100);
                    if copied > 0 {
                        log::info!(event = "replica_resynced", replica = me.client.describe().as_str(), objects = copied; "replica {} caught up: {copied} object(s) copied from another replica", me.client.describe());
                    }
                }
                Err(e) => {
                    // Writes queued meanwhile hear of it now (as when an op fails): a write
                    // every member fails must return, not wait out WRITE_BOUND while the
                    // application's writers wait behind a checkpoint.
                    for q in lock(&me.state).queue.iter_mut() {
                        q.answer(&Err(e.clone()));
                    }
                    failed(&me, &e);
                    drop(all);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            }
        }
        let next = lock(&me.state).queue.front().map(|q| q.op.clone());
        let Some(op) = next else {
            // Idle: wake for the next write, or stop once the client is dropped.
            if me.all.strong_count() == 0 {
                return;
            }
            tokio::select! {
                _ = me.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
            continue;
        };
        let done = match &op {
            Op::Put {
                level,
                min,
                max,
                data,
                ts,
            } => {
                me.client
                    .single_put(*level, *min, *max, data.clone(), *ts)
                    .await
            }
            Op::Delete(files) => me.client.single_delete(files).await,
        };
        let error = {
            let mut s = lock(&me.state);
            match done {
                Ok(()) => {
                    if let Some(mut q) = s.queue.pop_front() {
                        let (memory, spool) = q.op.held();
                        s.queued_bytes = s.queued_bytes.saturating_sub(memory + spool);
                        s.queued_spool_bytes = s.queued_spool_bytes.saturating_sub(spool);
                        q.answer(&Ok(()));
                    }
                    if s.consecutive_errors > 0 {
                        log::info!(event = "replica_recovered", replica = me.client.describe().as_str(); "replica {} answers again", me.client.describe());
                    }
                    s.consecutive_errors = 0;
                    s.last_error = None;
                    s.last_ok_ms = Some(now_ms());
                    None
                }
                Err(e) => {
                    // The op stays queued (order matters); its waiters hear of the failure
                    // now, so that a write every member fails returns instead of waiting.
                    let e = e.to_string();
                    if let Some(q) = s.queue.front_mut() {
                        q.answer(&Err(e.clone()));
                    }
                    Some(e)
                }
            }
        };
        match error {
            None => backoff = Duration::from_millis(100),
            Some(e) => {
                failed(&me, &e);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

fn failed(me: &Member, e: &str) {
    if let Some(c) = me.all.upgrade().as_ref().and_then(|all| all.errors.get()) {
        c.inc();
    }
    let mut s = lock(&me.state);
    s.consecutive_errors += 1;
    s.last_error = Some(e.to_owned());
    if s.consecutive_errors == 1 || s.consecutive_errors.is_power_of_two() {
        log::warn!(event = "replica_failing", replica = me.client.describe().as_str(), errors = s.consecutive_errors, error = e; "replica {} failing ({} in a row): {e}; the other replica(s) go on", me.client.describe(), s.consecutive_errors);
    }
}

/// Copy to `me` every object a sibling holds that `me` lacks; returns how many.
async fn resync_member(all: &MultiClient, me: &Arc<Member>) -> Result<usize, String> {
    let mut copied = 0;
    for level in super::LEVELS {
        let mine: std::collections::BTreeSet<(u64, u64)> = me
            .client
            .single_list(level, true)
            .await
            .map_err(|e| format!("resync: {e}"))?
            .iter()
            .map(|f| (f.min_txid, f.max_txid))
            .collect();
        for sib in all.siblings_of(me) {
            // A sibling that does not answer is not this member's problem.
            let Ok(theirs) = sib.client.single_list(level, true).await else {
                continue;
            };
            for f in theirs {
                if mine.contains(&(f.min_txid, f.max_txid)) {
                    continue;
                }
                // A sibling's object that is gone meanwhile (compacted or retired), or that
                // it cannot give now, is not copied.
                let Ok(data) = copy_of(&sib.client, &f).await else {
                    continue;
                };
                me.client
                    .single_put(level, f.min_txid, f.max_txid, data, f.created_ms)
                    .await
                    .map_err(|e| format!("resync: {e}"))?;
                copied += 1;
            }
        }
    }
    Ok(copied)
}

/// A member's object for a sibling: in memory when small, through a spool file when large.
async fn copy_of(from: &Client, f: &FileInfo) -> Result<Payload, ClientError> {
    if f.size <= crate::payload::SPILL_ABOVE as u64 {
        return Ok(from
            .single_get(f.level, f.min_txid, f.max_txid)
            .await?
            .into());
    }
    let spool = crate::payload::SpoolWriter::create().map_err(|source| ClientError::Io {
        object: from.object_name(f.level, f.min_txid, f.max_txid),
        source,
    })?;
    let n = from
        .single_download(f.level, f.min_txid, f.max_txid, spool.path())
        .await?;
    Ok(spool.filled(n))
}
