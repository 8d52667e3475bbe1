//! Backup verification: restore the replica into a temporary file, check it, compare it with
//! the live database. Runs on a schedule inside the daemon (`[replication.verify] interval`)
//! and on demand (`POST /v1/backup/verify`, `barnabee backup verify`).
//!
//! Why inside the daemon and not a systemd timer: the database and the replicator live in
//! this process. A verification compares the replica with the live database *at the same
//! TXID*, which needs the daemon to hold its writers for a moment and ship what is committed
//! (below); a second process could only compare against a moving database, and would open the
//! replica (and its S3 secret) a second time.
//!
//! One verification:
//! 1. With the daemon's writers held (`Store::with_writes_held`: API writes wait, reads go
//!    on), everything committed is shipped (`sync_now`, giving TXID `T`) and the row counts
//!    of the main tables are read from the live database. Held for the last moment's upload,
//!    at most 10 s (the backlog ships before the hold).
//!    Decision: the live database is compared *at* `T`, the replica's newest state at that
//!    moment, instead of restoring "latest" and comparing with a live database that may have
//!    moved on (then counts could only be compared when nothing was written meanwhile, and a
//!    busy day would never be verified). Writes continuing during the restore do not matter:
//!    the restore targets `T`.
//! 2. The replica is restored at TXID `T` with the replicator's restore (plan, then every
//!    object's LTX checksums, header and page index verified before a page is written) into
//!    a fresh directory under `temp_dir` (default `<state dir>/.backup-verify/`), never near
//!    the live files; the restore runs `PRAGMA integrity_check` on the image.
//! 3. The restored TXID must be `T`, and each table's row count must equal the live one.
//! 4. The temporary directory is removed (also leftovers of a killed run, at start).
//!
//! Recorded: metrics `barnabee_backup_last_verified_timestamp_seconds{replica}` (last good
//! run), `barnabee_backup_verify_duration_seconds{replica}` (last run),
//! `barnabee_backup_verify_failures_total{replica}`; `/health` check `backup_verify`
//! (non-critical); journal `EVENT=backup_verified` / `backup_verify_failed`; the last result
//! and the last good one in `<db>.backup-verify.json` (so a restart keeps them); on failure
//! an Alertmanager-style POST to `notify_url` (the watchdog's notifier) when set.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use barnabee_replicator::client::{ClientError, LEVELS, ReplicaClient, SNAPSHOT_LEVEL};
use barnabee_replicator::restore::{self, RestoreError, Target};
use barnabee_service::metrics::Metrics;
use barnabee_service::{Check, Shutdown, catalog};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use serde::{Deserialize, Serialize};

use crate::config::{ReplicaType, ReplicationConfig, VerifyConfig};
use crate::replication::{self, Handle};
use crate::store::Store;
use crate::time::now_ms;

/// The longest the daemon's writers are held while the last commits ship.
const SHIP_BOUND: Duration = Duration::from_secs(10);

/// The tables whose row counts are compared (the family's data; FTS tables follow them).
pub const TABLES: &[&str] = &[
    "memories",
    "conversations",
    "turns",
    "speaker_profiles",
    "audit_log",
];

/// One table's row count, live and restored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableCount {
    pub table: String,
    pub live: i64,
    pub replica: i64,
}

/// The result of one verification (the JSON of `POST /v1/backup/verify`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    pub ok: bool,
    pub replica: String,
    /// `schedule` or `request`.
    pub trigger: String,
    pub started_at_ms: i64,
    pub started_at: String,
    pub duration_seconds: f64,
    /// The TXID compared: shipped with the writers held, and restored.
    pub txid: Option<u64>,
    pub pages: Option<u32>,
    pub bytes_downloaded: Option<u64>,
    /// `ok` when the restored image passed `PRAGMA integrity_check`.
    pub integrity_check: Option<String>,
    pub tables: Vec<TableCount>,
    pub error: Option<String>,
    /// The replica object at fault, when one is (corrupt, missing, inconsistent).
    pub object: Option<String>,
    /// With several replicas (`[[replication.also]]`): each one's own verification; the
    /// fields above are then the first failing one's (or the first replica's when all pass).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<Verification>,
}

/// One replica's last result and last good one.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Recorded {
    last: Option<Verification>,
    last_good: Option<Verification>,
}

/// What `<db>.backup-verify.json` holds: each replica's [`Recorded`], by its location.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Records {
    replicas: std::collections::BTreeMap<String, Recorded>,
}

impl Records {
    /// The file as written now, or as written before replica sets (one `Recorded`).
    fn parse(bytes: &[u8]) -> Option<Records> {
        if let Ok(r) = serde_json::from_slice::<Records>(bytes) {
            return Some(r);
        }
        let one: Recorded = serde_json::from_slice(bytes).ok()?;
        let replica = one
            .last
            .as_ref()
            .or(one.last_good.as_ref())?
            .replica
            .clone();
        Some(Records {
            replicas: [(replica, one)].into(),
        })
    }

    fn of(&self, replica: &str) -> Recorded {
        self.replicas.get(replica).cloned().unwrap_or_default()
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReplicaLabel {
    replica: String,
}

#[derive(Clone, Default)]
struct VerifyMetrics {
    last_verified: Family<ReplicaLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
    duration: Family<ReplicaLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
    failures: Family<ReplicaLabel, Counter>,
}

/// The verifier of one daemon (no-op without `[replication]`).
pub struct Verifier {
    cfg: Option<ReplicationConfig>,
    /// Every replica, as one location (`s3://b/memory + file:///mnt/nas/memory`).
    replica: String,
    /// Each replica alone (one entry without `[[replication.also]]`), verified in turn.
    members: Vec<(String, barnabee_replicator::ReplicaConfig)>,
    db: PathBuf,
    store: Arc<Store>,
    replication: Handle,
    metrics: VerifyMetrics,
    recorded: Mutex<Records>,
    /// One verification at a time (a request during a scheduled run waits for it).
    running: tokio::sync::Mutex<()>,
    started_ms: i64,
    next_ms: Mutex<Option<i64>>,
    /// Woken by a failed verification (also a requested one): the schedule retries soon.
    failed: tokio::sync::Notify,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `<db>.backup-verify.json`: the last result and the last good one.
pub fn record_path(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(".backup-verify.json");
    PathBuf::from(s)
}

impl Verifier {
    /// Build the verifier and register its metrics (always, so the metric contract holds
    /// without replication too: the families are then empty).
    pub fn new(
        cfg: Option<&ReplicationConfig>,
        store: Arc<Store>,
        replication: Handle,
        metrics: &Metrics,
    ) -> Arc<Self> {
        let m = VerifyMetrics::default();
        metrics.register_def(&catalog::BACKUP_LAST_VERIFIED, m.last_verified.clone());
        metrics.register_def(&catalog::BACKUP_VERIFY_DURATION, m.duration.clone());
        metrics.register_def(&catalog::BACKUP_VERIFY_FAILURES, m.failures.clone());
        let db = store.path().to_path_buf();
        let replica = cfg.map(replication::describe).unwrap_or_default();
        let members: Vec<(String, barnabee_replicator::ReplicaConfig)> = cfg
            .map(|c| {
                c.destinations()
                    .iter()
                    .map(|d| d.describe())
                    .zip(replication::replica_config(c).each())
                    .collect()
            })
            .unwrap_or_default();
        let recorded = std::fs::read(record_path(&db))
            .ok()
            .and_then(|b| Records::parse(&b))
            .unwrap_or_default();
        for (name, _) in &members {
            let label = ReplicaLabel {
                replica: name.clone(),
            };
            let r = recorded.of(name);
            // Series exist from the start: 0 = never verified (the alert's guard).
            m.last_verified.get_or_create(&label).set(
                r.last_good
                    .as_ref()
                    .map_or(0.0, |v| v.started_at_ms as f64 / 1000.0),
            );
            m.duration
                .get_or_create(&label)
                .set(r.last.as_ref().map_or(0.0, |v| v.duration_seconds));
            let _ = m.failures.get_or_create(&label);
        }
        let verifier = Arc::new(Self {
            cfg: cfg.cloned(),
            replica,
            members,
            db,
            store,
            replication,
            metrics: m,
            recorded: Mutex::new(recorded),
            running: tokio::sync::Mutex::new(()),
            started_ms: now_ms(),
            next_ms: Mutex::new(None),
            failed: tokio::sync::Notify::new(),
        });
        // Before the daemon says it is ready, not in the schedule task: nothing may look at
        // (or verify into) the temporary root while a killed run's directory is still there.
        verifier.remove_leftovers();
        verifier
    }

    /// A killed verification leaves its `verify-*` directory behind: remove it.
    fn remove_leftovers(&self) {
        let Ok(entries) = std::fs::read_dir(self.temp_root()) else {
            return;
        };
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with("verify-")
                && let Err(err) = std::fs::remove_dir_all(e.path())
            {
                log::warn!(event = "backup_verify_leftover", path = e.path().display().to_string().as_str(); "cannot remove the leftover of a killed verification {}: {err}", e.path().display());
            }
        }
    }

    fn verify_cfg(&self) -> Option<&VerifyConfig> {
        self.cfg.as_ref().map(|c| &c.verify)
    }

    /// Where temporary restores go.
    pub fn temp_root(&self) -> PathBuf {
        self.verify_cfg()
            .and_then(|v| v.temp_dir.clone())
            .unwrap_or_else(|| {
                self.db
                    .parent()
                    .unwrap_or_else(|| Path::new("."))
                    .join(".backup-verify")
            })
    }

    /// The scheduled runs: the first after `first_after`, then every `interval`. After any
    /// failed verification (scheduled or requested) the next one is due within
    /// `min(interval, 1 h)`: a replica that was unreachable is retried soon. Returns at
    /// shutdown.
    pub async fn schedule(self: Arc<Self>, shutdown: Shutdown) {
        let Some(v) = self.verify_cfg().cloned() else {
            return;
        };
        let retry = v.interval.min(Duration::from_secs(3600));
        let mut wait = v.first_after;
        loop {
            *lock(&self.next_ms) = Some(now_ms() + wait.as_millis() as i64);
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = self.failed.notified() => {
                    wait = retry;
                    continue;
                }
                _ = tokio::time::sleep(wait) => {}
            }
            let r = self.verify("schedule").await;
            wait = if r.ok { v.interval } else { retry };
        }
    }

    /// Run one verification now (of each replica in turn) and record it.
    pub async fn verify(&self, trigger: &str) -> Verification {
        let _one = self.running.lock().await;
        let started_ms = now_ms();
        let fresh = |replica: &str| Verification {
            replica: replica.to_owned(),
            trigger: trigger.to_owned(),
            started_at_ms: started_ms,
            started_at: barnabee_replicator::time::format_rfc3339(started_ms),
            ..Default::default()
        };
        // First boot before the S3 secret is provisioned: replication holds (its own /health
        // check and EVENT say so) and there is nothing to verify yet. Not a failure: no
        // counter, no record, no notification; the schedule looks again within the hour.
        if let Some(e) = self.cfg.as_ref().and_then(replication::not_provisioned) {
            let mut v = fresh(&self.replica);
            v.error = Some(format!(
                "replication is not provisioned yet, nothing to verify: {e}"
            ));
            log::info!(event = "backup_verify_not_provisioned", replica = v.replica.as_str(), trigger = trigger; "backup verification of {} skipped: {e}", v.replica);
            return v;
        }
        if self.members.is_empty() {
            let mut v = fresh(&self.replica);
            v.error = Some("replication is not configured".into());
            return v;
        }
        // 1. once for all replicas: ship, and count the live rows at that TXID
        let t0 = Instant::now();
        let shipped = self.ship_and_count().await;
        let mut all = Vec::new();
        for (name, rc) in &self.members {
            let t = Instant::now();
            let mut v = fresh(name);
            let r = match &shipped {
                Ok((txid, live)) => {
                    v.txid = Some(*txid);
                    self.restore_and_compare(name, rc, *txid, live, &mut v)
                        .await
                }
                Err(e) => Err(e.clone()),
            };
            v.error = r.err();
            v.ok = v.error.is_none();
            // the shared step counts for the first replica
            v.duration_seconds = if all.is_empty() {
                t0.elapsed().as_secs_f64()
            } else {
                t.elapsed().as_secs_f64()
            };
            self.record(&v).await;
            all.push(v);
        }
        let mut head = all
            .iter()
            .find(|v| !v.ok)
            .or(all.first())
            .cloned()
            .unwrap_or_default();
        if all.len() > 1 {
            head.ok = all.iter().all(|v| v.ok);
            head.replicas = all;
        }
        head
    }

    /// Ship what is committed and count live rows, writers held. The backlog ships first
    /// without holding anyone; under the hold only the last moment's commits are left, and
    /// a replica that does not take them within SHIP_BOUND fails the run rather than stall
    /// the family's writes.
    async fn ship_and_count(&self) -> Result<(u64, Vec<(String, i64)>), String> {
        let _ = tokio::time::timeout(SHIP_BOUND * 3, self.replication.sync_now()).await;
        let (store, handle) = (self.store.clone(), self.replication.clone());
        let rt = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            store.with_writes_held(|conn| {
                let txid = rt
                    .block_on(async { tokio::time::timeout(SHIP_BOUND, handle.sync_now()).await })
                    .map_err(|_| {
                        format!(
                            "the replica did not take the last commits within {} s",
                            SHIP_BOUND.as_secs()
                        )
                    })??;
                let counts = count_tables(conn).map_err(|e| format!("live database: {e}"))?;
                Ok::<_, String>((txid, counts))
            })
        })
        .await
        .map_err(|e| e.to_string())?
    }

    /// 2.–3. for one replica: restore it alone at `txid` and compare with the live counts.
    async fn restore_and_compare(
        &self,
        name: &str,
        rc: &barnabee_replicator::ReplicaConfig,
        txid: u64,
        live: &[(String, i64)],
        v: &mut Verification,
    ) -> Result<(), String> {
        let client = rc.client().map_err(|e| format!("replica {name}: {e}"))?;
        // Another replica of a set took the commit first: give this one the moment it needs
        // to take it too (it is behind if it does not; the restore below then says so).
        if self.members.len() > 1 {
            let t = Instant::now();
            while newest_txid(&client).await < txid && t.elapsed() < SHIP_BOUND {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        // 2. Restore at that TXID into a fresh temporary directory.
        let root = self.temp_root();
        std::fs::create_dir_all(&root)
            .map_err(|e| format!("cannot create {}: {e}", root.display()))?;
        let dir = tempdir_in(&root)?;
        let out = dir.path().join("memory.db");
        let restored = restore::restore(&client, &out, Target::Txid(txid))
            .await
            .map_err(|e| {
                v.object = object_of(&e);
                format!("restore from {name} at TXID {txid}: {e}")
            })?;
        v.integrity_check = Some("ok".into());
        v.pages = Some(restored.pages);
        v.bytes_downloaded = Some(restored.bytes_downloaded);
        // 3. Compare.
        if restored.txid != txid {
            return Err(format!(
                "restored TXID {} but the live database shipped {txid}",
                restored.txid
            ));
        }
        let out2 = out.clone();
        let replica_counts = tokio::task::spawn_blocking(move || {
            let conn = rusqlite::Connection::open_with_flags(
                format!("file:{}?immutable=1", out2.display()),
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI,
            )?;
            count_tables(&conn)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("restored database: {e}"))?;
        v.tables = live
            .iter()
            .zip(&replica_counts)
            .map(|((table, live), (_, replica))| TableCount {
                table: table.clone(),
                live: *live,
                replica: *replica,
            })
            .collect();
        let differ: Vec<String> = v
            .tables
            .iter()
            .filter(|t| t.live != t.replica)
            .map(|t| format!("{}: live {} vs replica {}", t.table, t.live, t.replica))
            .collect();
        drop(dir);
        if !differ.is_empty() {
            return Err(format!(
                "row counts differ at TXID {txid}: {}",
                differ.join(", ")
            ));
        }
        Ok(())
    }

    async fn record(&self, v: &Verification) {
        let label = ReplicaLabel {
            replica: v.replica.clone(),
        };
        self.metrics
            .duration
            .get_or_create(&label)
            .set(v.duration_seconds);
        if v.ok {
            self.metrics
                .last_verified
                .get_or_create(&label)
                .set(v.started_at_ms as f64 / 1000.0);
            log::info!(event = "backup_verified", replica = v.replica.as_str(), txid = v.txid.unwrap_or(0), pages = v.pages.unwrap_or(0), bytes_downloaded = v.bytes_downloaded.unwrap_or(0), duration_ms = (v.duration_seconds * 1000.0) as u64, trigger = v.trigger.as_str(); "backup verified: replica {} restores TXID {} ({} pages, integrity ok, {} tables equal the live database) in {:.1} s", v.replica, v.txid.unwrap_or(0), v.pages.unwrap_or(0), v.tables.len(), v.duration_seconds);
        } else {
            self.metrics.failures.get_or_create(&label).inc();
            let error = v.error.as_deref().unwrap_or("?");
            log::error!(event = "backup_verify_failed", replica = v.replica.as_str(), txid = v.txid.unwrap_or(0), object = v.object.as_deref().unwrap_or(""), error = error, duration_ms = (v.duration_seconds * 1000.0) as u64, trigger = v.trigger.as_str(); "backup verification of {} FAILED: {error}", v.replica);
        }
        let snapshot = {
            let mut all = lock(&self.recorded);
            let r = all.replicas.entry(v.replica.clone()).or_default();
            r.last = Some(v.clone());
            if v.ok {
                r.last_good = Some(v.clone());
            }
            all.clone()
        };
        let path = record_path(&self.db);
        if let Err(e) = write_record(&path, &snapshot) {
            log::warn!(error = e.to_string().as_str(); "cannot record the verification in {}: {e}", path.display());
        }
        if !v.ok {
            self.failed.notify_one();
        }
        if !v.ok
            && let Some(url) = self.verify_cfg().and_then(|c| c.notify_url.clone())
        {
            notify(&url, v).await;
        }
    }

    /// The `/health` check `backup_verify` (non-critical).
    pub fn check(&self) -> Check {
        let Some(vc) = self.verify_cfg() else {
            return Check::ok("not configured").non_critical();
        };
        let now = now_ms();
        let max_age_ms = vc.max_age.as_millis() as i64;
        if self
            .cfg
            .as_ref()
            .and_then(replication::not_provisioned)
            .is_some()
        {
            return Check::ok("replication not provisioned yet: nothing to verify").non_critical();
        }
        let records = lock(&self.recorded).clone();
        let checks: Vec<Check> = self
            .members
            .iter()
            .map(|(name, _)| self.check_one(name, &records.of(name), now, max_age_ms))
            .collect();
        // One replica: its check. Several: failing if any is, naming each.
        let c = match checks.as_slice() {
            [one] => one.clone(),
            many => {
                let detail = many
                    .iter()
                    .map(|c| c.detail.clone())
                    .collect::<Vec<_>>()
                    .join("; ");
                if many.iter().all(|c| c.ok) {
                    Check::ok(detail)
                } else {
                    Check::fail(detail)
                }
            }
        };
        c.non_critical()
    }

    fn check_one(&self, replica: &str, r: &Recorded, now: i64, max_age_ms: i64) -> Check {
        let age = |v: &Verification| format_age(now - v.started_at_ms);
        match (&r.last, &r.last_good) {
            (Some(last), _) if !last.ok => Check::fail(format!(
                "last verification of {replica} ({} ago) failed: {}",
                age(last),
                last.error.as_deref().unwrap_or("?")
            )),
            (_, Some(good)) if now - good.started_at_ms > max_age_ms => Check::fail(format!(
                "last good verification of {replica} is {} old (max_age {})",
                age(good),
                format_age(max_age_ms)
            )),
            (_, Some(good)) => Check::ok(format!(
                "replica {replica} verified {} ago: TXID {}, integrity ok, row counts equal",
                age(good),
                good.txid.unwrap_or(0)
            )),
            _ if now - self.started_ms > max_age_ms => Check::fail(format!(
                "replica {replica} never verified (running for {})",
                format_age(now - self.started_ms)
            )),
            _ => Check::ok(format!("replica {replica}: not verified yet")),
        }
    }

    /// `GET /v1/backup/status`.
    pub async fn status(&self) -> serde_json::Value {
        use serde_json::json;
        let records = lock(&self.recorded).clone();
        // the first replica's, as before sets; `replicas` below has each
        let r = self
            .members
            .first()
            .map(|(name, _)| records.of(name))
            .or_else(|| records.replicas.values().next().cloned())
            .unwrap_or_default();
        let Some(cfg) = &self.cfg else {
            return json!({"configured": false, "last_verification": r.last, "last_good_verification": r.last_good});
        };
        let kind = match (&cfg.url, cfg.kind) {
            (Some(u), _) if u.starts_with("s3://") => "s3",
            (Some(_), _) | (None, ReplicaType::File) => "file",
            (None, ReplicaType::S3) => "s3",
        };
        let repl = self.replication.status();
        let replication = match &repl {
            Some(st) => json!({
                "running": true,
                "last_shipped_txid": st.last_shipped_txid,
                "last_shipped_at": st.last_shipped_at_ms.map(barnabee_replicator::time::format_rfc3339),
                "lag_seconds": st.lag_seconds,
                "consecutive_errors": st.consecutive_errors,
                "last_error": st.last_error,
            }),
            None => json!({"running": false}),
        };
        let points = match restore_points(cfg).await {
            Ok(p) => p,
            Err(e) => json!({"error": e}),
        };
        let next = *lock(&self.next_ms);
        // Several replicas: each one's replication state and verification.
        let members = repl
            .as_ref()
            .map(|st| st.members.clone())
            .unwrap_or_default();
        let replicas: Vec<serde_json::Value> = if self.members.len() > 1 {
            self.members
                .iter()
                .map(|(name, _)| {
                    let r = records.of(name);
                    let m = members.iter().find(|m| &m.replica == name);
                    json!({
                        "location": name,
                        "queued": m.map(|m| m.queued),
                        "resync_pending": m.map(|m| m.resync_pending),
                        "consecutive_errors": m.map(|m| m.consecutive_errors),
                        "last_error": m.and_then(|m| m.last_error.clone()),
                        "last_verification": r.last,
                        "last_good_verification": r.last_good,
                    })
                })
                .collect()
        } else {
            Vec::new()
        };
        json!({
            "configured": true,
            "replica": {"type": kind, "location": self.replica},
            "replicas": replicas,
            "replication": replication,
            "retention": {
                "snapshot_interval_seconds": cfg.snapshot_interval.as_secs_f64(),
                "snapshot_retention_seconds": cfg.snapshot_retention.as_secs_f64(),
            },
            "restore_points": points,
            "verification": {
                "interval_seconds": cfg.verify.interval.as_secs_f64(),
                "max_age_seconds": cfg.verify.max_age.as_secs_f64(),
                "next_at": next.map(barnabee_replicator::time::format_rfc3339),
                "healthy": self.check().ok,
                "last": r.last,
                "last_good": r.last_good,
            },
        })
    }
}

/// The replica's restore points: what point-in-time restore can reach, and what it stores.
async fn restore_points(cfg: &ReplicationConfig) -> Result<serde_json::Value, String> {
    let client = replication::replica_config(cfg)
        .client()
        .map_err(|e| e.to_string())?;
    let mut levels = Vec::new();
    let (mut objects, mut bytes) = (0usize, 0u64);
    let (mut newest, mut max_txid) = (None::<i64>, 0u64);
    let mut oldest_base = None::<i64>;
    let mut snapshots = Vec::new();
    for level in LEVELS {
        let files = client
            .list(level, false)
            .await
            .map_err(|e: ClientError| e.to_string())?;
        if files.is_empty() {
            continue;
        }
        let size: u64 = files.iter().map(|f| f.size).sum();
        objects += files.len();
        bytes += size;
        for f in &files {
            newest = newest.max(Some(f.created_ms));
            max_txid = max_txid.max(f.max_txid);
            // A restore point needs a chain from TXID 1: a snapshot, or files starting there.
            if f.min_txid == 1 {
                oldest_base = Some(oldest_base.map_or(f.created_ms, |o| o.min(f.created_ms)));
            }
            if level == SNAPSHOT_LEVEL {
                snapshots.push(serde_json::json!({
                    "txid": f.max_txid,
                    "created_at": barnabee_replicator::time::format_rfc3339(f.created_ms),
                    "bytes": f.size,
                }));
            }
        }
        levels.push(serde_json::json!({"level": level, "objects": files.len(), "bytes": size}));
    }
    let fmt = |t: Option<i64>| t.map(barnabee_replicator::time::format_rfc3339);
    Ok(serde_json::json!({
        "from": fmt(oldest_base),
        "to": fmt(newest),
        "max_txid": max_txid,
        "snapshots": snapshots,
        "objects": objects,
        "bytes": bytes,
        "levels": levels,
    }))
}

/// The newest TXID a replica holds (0 when it cannot be listed: the restore says why).
async fn newest_txid(c: &impl ReplicaClient) -> u64 {
    let mut max = 0;
    for level in LEVELS {
        match c.list(level, false).await {
            Ok(files) => max = files.iter().map(|f| f.max_txid).fold(max, u64::max),
            Err(_) => return 0,
        }
    }
    max
}

/// Row counts of [`TABLES`] (a table the schema lacks counts as 0 rows on both sides).
fn count_tables(conn: &rusqlite::Connection) -> rusqlite::Result<Vec<(String, i64)>> {
    TABLES
        .iter()
        .map(|t| {
            let exists: bool = conn.query_row(
                "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [t],
                |r| r.get(0),
            )?;
            let n = if exists {
                conn.query_row(&format!("SELECT count(*) FROM \"{t}\""), [], |r| r.get(0))?
            } else {
                0
            };
            Ok(((*t).to_owned(), n))
        })
        .collect()
}

/// The replica object a restore error names, if any.
fn object_of(e: &RestoreError) -> Option<String> {
    match e {
        RestoreError::Corrupt { object, .. }
        | RestoreError::Inconsistent { object, .. }
        | RestoreError::NonContiguous { object, .. } => Some(object.clone()),
        RestoreError::Client(ClientError::NotFound { object }) => Some(object.clone()),
        _ => None,
    }
}

/// A fresh `verify-<ms>-<n>` directory under `root`, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempdir_in(root: &Path) -> Result<TempDir, String> {
    for n in 0..100 {
        let p = root.join(format!("verify-{}-{n}", now_ms()));
        match std::fs::create_dir(&p) {
            Ok(()) => return Ok(TempDir(p)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("cannot create {}: {e}", p.display())),
        }
    }
    Err(format!("cannot create a directory in {}", root.display()))
}

fn write_record(path: &Path, r: &Records) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(r).unwrap_or_default())?;
    std::fs::rename(&tmp, path)
}

fn format_age(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    if s < 120 {
        format!("{s} s")
    } else if s < 7200 {
        format!("{} min", s / 60)
    } else if s < 3 * 86400 {
        format!("{} h", s / 3600)
    } else {
        format!("{} days", s / 86400)
    }
}

/// POST an Alertmanager webhook (version 4) payload: the watchdog's notifier accepts it at
/// `/v1/notify/alertmanager` (it has no other generic endpoint), dedups it by fingerprint and
/// start time, and sends it to the family's channels as critical.
async fn notify(url: &str, v: &Verification) {
    let body = serde_json::json!({
        "version": "4",
        "status": "firing",
        "receiver": "barnabee-memory",
        "alerts": [{
            "status": "firing",
            "labels": {"alertname": "BarnabeeBackupVerifyFailing", "severity": "critical", "replica": v.replica, "source": "barnabee-memory"},
            "annotations": {
                "summary": "Backup verification failed",
                "description": format!("Restoring the replica {} failed verification: {}. Run `barnabee backup verify` on the beelink; see docs/runbook.md \"Replica lagging (backups)\".", v.replica, v.error.as_deref().unwrap_or("?")),
            },
            "startsAt": v.started_at,
            "endsAt": "",
            "fingerprint": format!("backup-verify-{}", v.started_at_ms),
        }],
    });
    let client = match barnabee_service::http_client::loopback(Duration::from_secs(10)) {
        Ok(c) => c,
        Err(e) => {
            log::warn!("cannot build an HTTP client to notify {url}: {e}");
            return;
        }
    };
    match client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => {
            log::info!(event = "backup_verify_notified", url = url; "verification failure sent to {url}")
        }
        Ok(r) => {
            log::warn!(url = url; "notifying {url} of the failed verification: HTTP {}", r.status())
        }
        Err(e) => log::warn!(url = url; "notifying {url} of the failed verification: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_well() {
        assert_eq!(format_age(5_000), "5 s");
        assert_eq!(format_age(600_000), "10 min");
        assert_eq!(format_age(50 * 3_600_000), "50 h");
        assert_eq!(format_age(8 * 86_400_000), "8 days");
    }

    #[test]
    fn the_object_at_fault_is_named() {
        let e = RestoreError::Client(ClientError::NotFound {
            object: "ltx/0/0000000000000002-0000000000000002.ltx".into(),
        });
        assert_eq!(
            object_of(&e).as_deref(),
            Some("ltx/0/0000000000000002-0000000000000002.ltx")
        );
        assert_eq!(object_of(&RestoreError::NotAvailable("x".into())), None);
    }
}
