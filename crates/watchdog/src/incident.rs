//! Incidents: every action the watchdog takes and every threshold it sees crossed.
//!
//! Each incident is one journald record with `EVENT=incident`, `SEVERITY=`, `UNIT=`, `REASON=`,
//! `ACTION=` (barnabee-service turns the `log` key-values into journal fields), one row in the
//! SQLite incident log in the state directory, and one increment of
//! `barnabee_watchdog_incidents_total{severity}`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};

/// P1: a human is needed now (circuit breaker open, gate failed, host critical).
/// P2: the watchdog acted (restart) or a unit failed. P3: a warning threshold was crossed.
/// P4: back to normal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub enum Severity {
    P1,
    P2,
    P3,
    P4,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::P1 => "P1",
            Severity::P2 => "P2",
            Severity::P3 => "P3",
            Severity::P4 => "P4",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "P1" => Some(Severity::P1),
            "P2" => Some(Severity::P2),
            "P3" => Some(Severity::P3),
            "P4" => Some(Severity::P4),
            _ => None,
        }
    }
}

/// One incident, as written to the journal and the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub severity: Severity,
    /// The unit concerned, or `host` for host checks, `watchdog` for the watchdog itself.
    pub unit: String,
    /// Short machine-friendly cause: `unhealthy`, `circuit_breaker`, `disk_low`, `gate_timeout`...
    pub reason: String,
    /// What the watchdog did: `restart`, `none`, `rollback`...
    pub action: String,
    /// The human sentence.
    pub detail: String,
}

impl Incident {
    pub fn new(
        severity: Severity,
        unit: &str,
        reason: &str,
        action: &str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            severity,
            unit: unit.to_owned(),
            reason: reason.to_owned(),
            action: action.to_owned(),
            detail: detail.into(),
        }
    }

    /// The journald record (fields `EVENT`, `SEVERITY`, `UNIT`, `REASON`, `ACTION`).
    pub fn log(&self) {
        let level = match self.severity {
            Severity::P1 => log::Level::Error,
            Severity::P2 | Severity::P3 => log::Level::Warn,
            Severity::P4 => log::Level::Info,
        };
        log::log!(
            level,
            event = "incident",
            severity = self.severity.as_str(),
            unit = self.unit.as_str(),
            reason = self.reason.as_str(),
            action = self.action.as_str();
            "{}",
            self.detail
        );
    }
}

/// A stored incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub id: i64,
    /// Milliseconds since the Unix epoch.
    pub ts_ms: i64,
    #[serde(flatten)]
    pub incident: Incident,
    /// When an operator acknowledged it (the console's Overview), milliseconds since the epoch.
    #[serde(default)]
    pub acknowledged_at_ms: Option<i64>,
    #[serde(default)]
    pub acknowledged_by: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum IncidentLogError {
    #[error("incident log {path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot create the state directory {path}: {source}")]
    StateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The SQLite incident log (`incidents.db` in the state directory).
pub struct IncidentLog {
    path: PathBuf,
    db: Mutex<Connection>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS incidents (
    id       INTEGER PRIMARY KEY,
    ts_ms    INTEGER NOT NULL,
    severity TEXT NOT NULL CHECK (severity IN ('P1','P2','P3','P4')),
    unit     TEXT NOT NULL,
    reason   TEXT NOT NULL,
    action   TEXT NOT NULL,
    detail   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS incidents_ts ON incidents (ts_ms);
";

/// Columns added after the first release, added in place to a log written before (nullable, so
/// an older watchdog after a rollback keeps inserting and listing).
const ADDED_COLUMNS: [(&str, &str); 2] = [
    ("acknowledged_at_ms", "INTEGER"),
    ("acknowledged_by", "TEXT"),
];

/// The incident log's file in the state directory (what `[replication]` replicates).
pub fn log_path(state_dir: &Path) -> PathBuf {
    state_dir.join("incidents.db")
}

impl IncidentLog {
    /// Open (creating) `<state_dir>/incidents.db`.
    pub fn open(state_dir: &Path) -> Result<Self, IncidentLogError> {
        std::fs::create_dir_all(state_dir).map_err(|source| IncidentLogError::StateDir {
            path: state_dir.to_owned(),
            source,
        })?;
        let path = log_path(state_dir);
        let err = |source| IncidentLogError::Sqlite {
            path: path.clone(),
            source,
        };
        let db = Connection::open(&path).map_err(err)?;
        db.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err)?;
        // WAL: the gate (a separate process) and the daemon may write at the same time.
        db.pragma_update(None, "journal_mode", "wal").map_err(err)?;
        db.execute_batch(SCHEMA).map_err(err)?;
        let have: Vec<String> = db
            .prepare("SELECT name FROM pragma_table_info('incidents')")
            .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
            .map_err(err)?;
        for (name, ty) in ADDED_COLUMNS {
            if !have.iter().any(|h| h == name) {
                db.execute_batch(&format!("ALTER TABLE incidents ADD COLUMN {name} {ty}"))
                    .map_err(err)?;
            }
        }
        Ok(Self {
            path: path.clone(),
            db: Mutex::new(db),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, source: rusqlite::Error) -> IncidentLogError {
        IncidentLogError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    pub fn insert(&self, incident: &Incident) -> Result<i64, IncidentLogError> {
        let ts_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let db = self.db.lock().unwrap_or_else(|e| e.into_inner());
        db.execute(
            "INSERT INTO incidents (ts_ms, severity, unit, reason, action, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                ts_ms,
                incident.severity.as_str(),
                incident.unit,
                incident.reason,
                incident.action,
                incident.detail
            ],
        )
        .map_err(|e| self.err(e))?;
        Ok(db.last_insert_rowid())
    }

    /// Newest first; `since_ms` excludes older records.
    pub fn list(&self, since_ms: i64, limit: u32) -> Result<Vec<Record>, IncidentLogError> {
        self.list_where("ts_ms >= ?1", params![since_ms], limit)
    }

    fn list_where(
        &self,
        condition: &str,
        args: &[&dyn rusqlite::ToSql],
        limit: u32,
    ) -> Result<Vec<Record>, IncidentLogError> {
        let db = self.db.lock().unwrap_or_else(|e| e.into_inner());
        let mut stmt = db
            .prepare_cached(&format!(
                "SELECT id, ts_ms, severity, unit, reason, action, detail, acknowledged_at_ms,
                        acknowledged_by FROM incidents
                 WHERE {condition} ORDER BY id DESC LIMIT {limit}"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(args, |row| {
                let severity: String = row.get(2)?;
                Ok(Record {
                    id: row.get(0)?,
                    ts_ms: row.get(1)?,
                    incident: Incident {
                        // The CHECK constraint keeps other values out.
                        severity: Severity::parse(&severity).unwrap_or(Severity::P1),
                        unit: row.get(3)?,
                        reason: row.get(4)?,
                        action: row.get(5)?,
                        detail: row.get(6)?,
                    },
                    acknowledged_at_ms: row.get(7)?,
                    acknowledged_by: row.get(8)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// One record by id.
    pub fn get(&self, id: i64) -> Result<Option<Record>, IncidentLogError> {
        Ok(self
            .list_where("id = ?1", params![id], 1)?
            .into_iter()
            .next())
    }

    /// Mark incident `id` acknowledged by `by` (the first acknowledgement is kept); `false`
    /// when there is no such incident.
    pub fn acknowledge(&self, id: i64, by: &str) -> Result<bool, IncidentLogError> {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let db = self.db.lock().unwrap_or_else(|e| e.into_inner());
        db.execute(
            "UPDATE incidents SET acknowledged_at_ms = COALESCE(acknowledged_at_ms, ?2),
                    acknowledged_by = COALESCE(acknowledged_by, ?3) WHERE id = ?1",
            params![id, now_ms, by],
        )
        .map(|n| n == 1)
        .map_err(|e| self.err(e))
    }

    /// Delete records older than `keep`; returns how many went.
    pub fn prune(&self, keep: std::time::Duration) -> Result<usize, IncidentLogError> {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let cutoff = now_ms.saturating_sub(i64::try_from(keep.as_millis()).unwrap_or(i64::MAX));
        let db = self.db.lock().unwrap_or_else(|e| e.into_inner());
        db.execute("DELETE FROM incidents WHERE ts_ms < ?1", params![cutoff])
            .map_err(|e| self.err(e))
    }

    pub fn ping(&self) -> Result<(), IncidentLogError> {
        let db = self.db.lock().unwrap_or_else(|e| e.into_inner());
        db.query_row("SELECT 1", [], |_| Ok(()))
            .map_err(|e| self.err(e))
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SeverityLabel {
    severity: String,
}

/// Raises incidents: journal, log, metrics, and (with a notifier) a notification. Cheap to
/// clone.
#[derive(Clone)]
pub struct Incidents {
    log: Arc<IncidentLog>,
    counts: Family<SeverityLabel, Counter>,
    notify: Option<crate::notify::Notifier>,
}

impl Incidents {
    pub fn new(log: Arc<IncidentLog>) -> Self {
        Self {
            log,
            counts: Family::default(),
            notify: None,
        }
    }

    /// Also queue a notification for P1 (critical) and P2 (warning) incidents.
    pub fn with_notifier(mut self, notifier: crate::notify::Notifier) -> Self {
        self.notify = Some(notifier);
        self
    }

    /// Register `barnabee_watchdog_incidents_total{severity}`.
    pub fn register(&self, metrics: &barnabee_service::metrics::Metrics) {
        for s in [Severity::P1, Severity::P2, Severity::P3, Severity::P4] {
            // Present at 0 so alerts can use rate() from the start.
            let _ = self.counts.get_or_create(&SeverityLabel {
                severity: s.as_str().to_owned(),
            });
        }
        metrics.register_def(
            &barnabee_service::catalog::WATCHDOG_INCIDENTS,
            self.counts.clone(),
        );
    }

    pub fn store(&self) -> &Arc<IncidentLog> {
        &self.log
    }

    /// Journal it, store it, count it. A failed store is logged, never fatal: the journal
    /// record is already out.
    pub fn raise(&self, incident: Incident) {
        incident.log();
        self.counts
            .get_or_create(&SeverityLabel {
                severity: incident.severity.as_str().to_owned(),
            })
            .inc();
        if let Err(err) = self.log.insert(&incident) {
            log::error!(event = "incident_log_error"; "cannot record incident: {err}");
        }
        if let Some(notifier) = &self.notify {
            notifier.incident(&incident);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn stores_and_lists_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let log = IncidentLog::open(&dir.path().join("state")).unwrap();
        log.insert(&Incident::new(
            Severity::P2,
            "a.service",
            "unhealthy",
            "restart",
            "first",
        ))
        .unwrap();
        log.insert(&Incident::new(
            Severity::P1,
            "b.service",
            "circuit_breaker",
            "none",
            "second",
        ))
        .unwrap();
        let rows = log.list(0, 10).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].incident.detail, "second");
        assert_eq!(rows[0].incident.severity, Severity::P1);
        assert_eq!(rows[1].incident.action, "restart");
        assert!(rows[0].ts_ms > 1_600_000_000_000);
        assert_eq!(rows[0].acknowledged_at_ms, None);
        // Acknowledged once: the first acknowledgement stays; an unknown id is not found.
        assert!(log.acknowledge(rows[0].id, "console").unwrap());
        assert!(log.acknowledge(rows[0].id, "someone else").unwrap());
        assert!(!log.acknowledge(999, "console").unwrap());
        let rows = log.list(0, 10).unwrap();
        assert_eq!(rows[0].acknowledged_by.as_deref(), Some("console"));
        assert_eq!(log.get(rows[0].id).unwrap().as_ref(), Some(&rows[0]));
        assert_eq!(log.get(999).unwrap(), None);
        assert!(rows[0].acknowledged_at_ms.unwrap() >= rows[0].ts_ms);
        assert_eq!(rows[1].acknowledged_at_ms, None);
        assert_eq!(log.list(0, 1).unwrap().len(), 1);
        assert!(log.list(i64::MAX, 10).unwrap().is_empty());
        assert_eq!(log.prune(std::time::Duration::from_secs(3600)).unwrap(), 0);
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert_eq!(log.prune(std::time::Duration::ZERO).unwrap(), 2);
        assert!(log.list(0, 10).unwrap().is_empty());
    }

    /// A log written before acknowledgements existed gets the columns, keeping its records.
    #[test]
    fn an_older_log_gains_the_acknowledgement_columns() {
        let dir = tempfile::tempdir().unwrap();
        let c = Connection::open(log_path(dir.path())).unwrap();
        c.execute_batch(SCHEMA).unwrap();
        c.execute(
            "INSERT INTO incidents (ts_ms, severity, unit, reason, action, detail) VALUES (1, 'P2', 'u', 'r', 'a', 'old')",
            [],
        )
        .unwrap();
        drop(c);
        let log = IncidentLog::open(dir.path()).unwrap();
        let rows = log.list(0, 10).unwrap();
        assert_eq!(rows[0].incident.detail, "old");
        assert!(log.acknowledge(rows[0].id, "console").unwrap());
        drop(log);
        IncidentLog::open(dir.path()).unwrap(); // and opens again unchanged
    }

    #[test]
    fn json_shape_is_flat() {
        let r = Record {
            id: 7,
            ts_ms: 1,
            incident: Incident::new(Severity::P3, "host", "disk_low", "none", "d"),
            acknowledged_at_ms: None,
            acknowledged_by: None,
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["severity"], "P3");
        assert_eq!(v["unit"], "host");
        assert_eq!(v["id"], 7);
    }

    /// The fields reach the logger as key-values, which barnabee-service maps to journal fields
    /// (`EVENT=`, `SEVERITY=`, `UNIT=`, `REASON=`, `ACTION=`).
    #[test]
    fn journal_record_carries_the_fields() {
        use std::collections::BTreeMap;
        type Seen = (log::Level, String, BTreeMap<String, String>);
        static SEEN: Mutex<Vec<Seen>> = Mutex::new(Vec::new());
        struct Capture;
        impl log::Log for Capture {
            fn enabled(&self, _: &log::Metadata) -> bool {
                true
            }
            fn log(&self, record: &log::Record) {
                struct Kv(BTreeMap<String, String>);
                impl<'k> log::kv::VisitSource<'k> for Kv {
                    fn visit_pair(
                        &mut self,
                        k: log::kv::Key<'k>,
                        v: log::kv::Value<'k>,
                    ) -> Result<(), log::kv::Error> {
                        self.0.insert(k.to_string(), v.to_string());
                        Ok(())
                    }
                }
                let mut kv = Kv(BTreeMap::new());
                record.key_values().visit(&mut kv).unwrap();
                SEEN.lock()
                    .unwrap()
                    .push((record.level(), record.args().to_string(), kv.0));
            }
            fn flush(&self) {}
        }
        log::set_boxed_logger(Box::new(Capture)).unwrap();
        log::set_max_level(log::LevelFilter::Trace);
        Incident::new(
            Severity::P1,
            "barnabee-memory.service",
            "circuit_breaker",
            "none",
            "gave up",
        )
        .log();
        let seen = SEEN.lock().unwrap();
        let (level, msg, kv) = &seen[0];
        assert_eq!(*level, log::Level::Error);
        assert_eq!(msg, "gave up");
        assert_eq!(kv["event"], "incident");
        assert_eq!(kv["severity"], "P1");
        assert_eq!(kv["unit"], "barnabee-memory.service");
        assert_eq!(kv["reason"], "circuit_breaker");
        assert_eq!(kv["action"], "none");
    }
}
