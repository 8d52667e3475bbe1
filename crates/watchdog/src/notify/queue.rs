//! The durable queue: `notify.db` in the state directory, one row per (message, channel).
//!
//! A row is deleted once delivered; a failed attempt records the error and when to try next.
//! The gate (a separate process) enqueues through the same file (WAL, busy timeout), and the
//! daemon's workers poll it, so a rollback notice written just before the switch is delivered
//! by the daemon of the generation the system rolled back to.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};

use super::Message;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("notification queue {path}: {source}")]
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
    #[error("notification queue {path}: row {id} holds an unreadable message: {source}")]
    Corrupt {
        path: PathBuf,
        id: i64,
        #[source]
        source: serde_json::Error,
    },
}

/// One pending delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub id: i64,
    pub channel: String,
    pub created_ms: i64,
    pub attempts: u32,
    pub next_ms: i64,
    pub last_error: Option<String>,
    pub message: Message,
}

pub struct Queue {
    path: PathBuf,
    db: Mutex<Connection>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS notify_queue (
    id         INTEGER PRIMARY KEY,
    channel    TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    next_ms    INTEGER NOT NULL,
    last_error TEXT,
    message    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS notify_queue_due ON notify_queue (channel, next_ms, id);
CREATE TABLE IF NOT EXISTS notify_seen (
    key   TEXT PRIMARY KEY,
    ts_ms INTEGER NOT NULL
);
";

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Queue {
    /// Open (creating) `<state_dir>/notify.db`.
    pub fn open(state_dir: &Path) -> Result<Self, QueueError> {
        std::fs::create_dir_all(state_dir).map_err(|source| QueueError::StateDir {
            path: state_dir.to_owned(),
            source,
        })?;
        let path = state_dir.join("notify.db");
        let err = |source| QueueError::Sqlite {
            path: path.clone(),
            source,
        };
        let db = Connection::open(&path).map_err(err)?;
        db.busy_timeout(Duration::from_secs(5)).map_err(err)?;
        db.pragma_update(None, "journal_mode", "wal").map_err(err)?;
        db.execute_batch(SCHEMA).map_err(err)?;
        Ok(Self {
            path: path.clone(),
            db: Mutex::new(db),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, source: rusqlite::Error) -> QueueError {
        QueueError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One row per channel, in one transaction; returns the row ids.
    pub fn push(&self, channels: &[&str], message: &Message) -> Result<Vec<i64>, QueueError> {
        let text = serde_json::to_string(message).map_err(|source| QueueError::Corrupt {
            path: self.path.clone(),
            id: 0,
            source,
        })?;
        let now = now_ms();
        let mut db = self.lock();
        let tx = db.transaction().map_err(|e| self.err(e))?;
        let mut ids = Vec::new();
        for channel in channels {
            tx.execute(
                "INSERT INTO notify_queue (channel, created_ms, next_ms, message) VALUES (?1, ?2, ?2, ?3)",
                params![channel, now, text],
            )
            .map_err(|e| self.err(e))?;
            ids.push(tx.last_insert_rowid());
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(ids)
    }

    /// The channel's next row: the earliest due, oldest first (it may not be due yet).
    pub fn head(&self, channel: &str) -> Result<Option<Row>, QueueError> {
        let db = self.lock();
        let row = db
            .query_row(
                "SELECT id, channel, created_ms, attempts, next_ms, last_error, message FROM notify_queue
                 WHERE channel = ?1 ORDER BY next_ms, id LIMIT 1",
                params![channel],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, u32>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, Option<String>>(5)?,
                        r.get::<_, String>(6)?,
                    ))
                },
            )
            .optional()
            .map_err(|e| self.err(e))?;
        let Some((id, channel, created_ms, attempts, next_ms, last_error, text)) = row else {
            return Ok(None);
        };
        let message = serde_json::from_str(&text).map_err(|source| QueueError::Corrupt {
            path: self.path.clone(),
            id,
            source,
        })?;
        Ok(Some(Row {
            id,
            channel,
            created_ms,
            attempts,
            next_ms,
            last_error,
            message,
        }))
    }

    /// Delivered or dropped: the row goes.
    pub fn remove(&self, id: i64) -> Result<(), QueueError> {
        self.lock()
            .execute("DELETE FROM notify_queue WHERE id = ?1", params![id])
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// A failed attempt: try again after `delay`.
    pub fn failed(&self, id: i64, delay: Duration, error: &str) -> Result<(), QueueError> {
        self.lock()
            .execute(
                "UPDATE notify_queue SET attempts = attempts + 1, next_ms = ?2, last_error = ?3 WHERE id = ?1",
                params![id, now_ms().saturating_add(ms(delay)), error],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// After a restart every pending row is due at once, oldest first: the backoff was for
    /// the old process.
    pub fn all_due_now(&self) -> Result<usize, QueueError> {
        self.lock()
            .execute(
                "UPDATE notify_queue SET next_ms = created_ms WHERE next_ms > ?1",
                params![now_ms()],
            )
            .map_err(|e| self.err(e))
    }

    pub fn depth(&self, channel: &str) -> Result<i64, QueueError> {
        self.lock()
            .query_row(
                "SELECT count(*) FROM notify_queue WHERE channel = ?1",
                params![channel],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    /// Record `key`; false when it was already recorded within `window` (a duplicate).
    /// Older records are forgotten.
    pub fn first_seen(&self, key: &str, window: Duration) -> Result<bool, QueueError> {
        let now = now_ms();
        let db = self.lock();
        db.execute(
            "DELETE FROM notify_seen WHERE ts_ms < ?1",
            params![now.saturating_sub(ms(window))],
        )
        .map_err(|e| self.err(e))?;
        let n = db
            .execute(
                "INSERT OR IGNORE INTO notify_seen (key, ts_ms) VALUES (?1, ?2)",
                params![key, now],
            )
            .map_err(|e| self.err(e))?;
        Ok(n == 1)
    }

    /// Forget `key` (its messages could not be queued).
    pub fn forget(&self, key: &str) -> Result<(), QueueError> {
        self.lock()
            .execute("DELETE FROM notify_seen WHERE key = ?1", params![key])
            .map_err(|e| self.err(e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::notify::Level;

    fn msg(title: &str) -> Message {
        Message::new(Level::Warning, title, "body", "k", "test")
    }

    #[test]
    fn rows_per_channel_survive_reopen_and_backoff_orders_them() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path()).unwrap();
        q.push(&["email", "webhook"], &msg("one")).unwrap();
        q.push(&["webhook"], &msg("two")).unwrap();
        assert_eq!(q.depth("email").unwrap(), 1);
        assert_eq!(q.depth("webhook").unwrap(), 2);
        let head = q.head("webhook").unwrap().unwrap();
        assert_eq!(head.message.title, "one");
        q.failed(head.id, Duration::from_secs(60), "refused")
            .unwrap();
        // The failed row waits; the next one is now first.
        assert_eq!(q.head("webhook").unwrap().unwrap().message.title, "two");
        drop(q);
        let q = Queue::open(dir.path()).unwrap();
        assert_eq!(q.all_due_now().unwrap(), 1);
        let head = q.head("webhook").unwrap().unwrap();
        assert_eq!(head.message.title, "one");
        assert_eq!(head.attempts, 1);
        assert_eq!(head.last_error.as_deref(), Some("refused"));
        q.remove(head.id).unwrap();
        assert_eq!(q.depth("webhook").unwrap(), 1);
        // One channel's rows never touch another's.
        assert_eq!(q.head("email").unwrap().unwrap().message.title, "one");
    }

    #[test]
    fn seen_keys_are_duplicates_within_the_window() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path()).unwrap();
        assert!(q.first_seen("a", Duration::from_secs(60)).unwrap());
        assert!(!q.first_seen("a", Duration::from_secs(60)).unwrap());
        assert!(q.first_seen("b", Duration::from_secs(60)).unwrap());
        std::thread::sleep(Duration::from_millis(5));
        // Outside a zero window the old record is forgotten.
        assert!(q.first_seen("a", Duration::ZERO).unwrap());
        q.forget("b").unwrap();
        assert!(q.first_seen("b", Duration::from_secs(60)).unwrap());
    }
}
