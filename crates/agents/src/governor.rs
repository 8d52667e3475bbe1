//! The cost governor: an SQLite ledger of LLM spend and the operators' degradation policy.
//!
//! Spend is summed per *local* day and calendar month (keys written with each row), so the
//! daily budget resets at local midnight without any timer, and survives restarts because the
//! ledger is a file in the state directory.
//!
//! States, from the larger of (today / daily limit) and (this month / monthly limit):
//! green below `yellow_at` (all features), yellow up to `red_at` (local providers only,
//! complex queries rate-limited), red above `red_at` (interaction disabled, actions only).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, params};
use serde::Serialize;

use crate::clock::Clock;
use crate::config::BudgetConfig;

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("cost ledger {path}: {source}")]
    Sqlite {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot create the state directory {path}: {source}")]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BudgetState {
    Green,
    Yellow,
    Red,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spend {
    pub state: BudgetState,
    pub day_usd: f64,
    pub month_usd: f64,
    /// The larger share of the daily or monthly limit used (0..).
    pub share: f64,
}

pub struct Ledger {
    label: String,
    pub(crate) conn: Mutex<Connection>,
}

/// Why a call was made: what the monthly report's cost drivers are made of.
#[derive(Debug, Clone, Copy, Default)]
pub struct Why<'a> {
    /// The route the utterance took (interaction, memory, router).
    pub route: &'a str,
    /// The agent that made the call (interaction, memory, classifier).
    pub agent: &'a str,
    pub speaker: Option<&'a str>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS llm_spend (
    id INTEGER PRIMARY KEY,
    at_ms INTEGER NOT NULL,
    day TEXT NOT NULL,
    month TEXT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cost_usd REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS llm_spend_day ON llm_spend(day);
CREATE INDEX IF NOT EXISTS llm_spend_month ON llm_spend(month);
CREATE TABLE IF NOT EXISTS budget_reset (day TEXT PRIMARY KEY, at_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS governor_settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
";

/// Columns added after the first release (ledgers written before have none): added in place,
/// nullable, so an older binary after a rollback still reads and writes the table.
const ADDED_COLUMNS: [(&str, &str); 3] =
    [("route", "TEXT"), ("agent", "TEXT"), ("speaker", "TEXT")];

/// The ledger's file in the state directory (what `[replication]` replicates).
pub fn ledger_path(state_dir: &Path) -> std::path::PathBuf {
    state_dir.join("cost-ledger.sqlite")
}

impl Ledger {
    /// Open (creating) `dir/cost-ledger.sqlite`; `None`: an in-memory ledger (no state dir).
    pub fn open(dir: Option<&Path>) -> Result<Ledger, LedgerError> {
        let (label, conn) = match dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|source| LedgerError::Dir {
                    path: dir.to_owned(),
                    source,
                })?;
                let path = ledger_path(dir);
                let label = path.display().to_string();
                let conn = Connection::open(&path).map_err(|source| LedgerError::Sqlite {
                    path: label.clone(),
                    source,
                })?;
                (label, conn)
            }
            None => (
                ":memory:".to_owned(),
                Connection::open_in_memory().map_err(|source| LedgerError::Sqlite {
                    path: ":memory:".into(),
                    source,
                })?,
            ),
        };
        let err = |source| LedgerError::Sqlite {
            path: label.clone(),
            source,
        };
        conn.pragma_update(None, "journal_mode", "wal")
            .map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        let have: Vec<String> = conn
            .prepare("SELECT name FROM pragma_table_info('llm_spend')")
            .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
            .map_err(err)?;
        for (column, kind) in ADDED_COLUMNS {
            if !have.iter().any(|h| h == column) {
                conn.execute_batch(&format!("ALTER TABLE llm_spend ADD COLUMN {column} {kind}"))
                    .map_err(err)?;
            }
        }
        Ok(Ledger {
            label,
            conn: Mutex::new(conn),
        })
    }

    pub(crate) fn err(&self, source: rusqlite::Error) -> LedgerError {
        LedgerError::Sqlite {
            path: self.label.clone(),
            source,
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &self,
        clock: &dyn Clock,
        provider: &str,
        model: &str,
        prompt_tokens: u64,
        completion_tokens: u64,
        cost_usd: f64,
        why: Why<'_>,
    ) -> Result<(), LedgerError> {
        let now = clock.now();
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        conn.execute(
            "INSERT INTO llm_spend (at_ms, day, month, provider, model, prompt_tokens, completion_tokens, cost_usd, route, agent, speaker)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                now.timestamp_millis(),
                now.format("%Y-%m-%d").to_string(),
                now.format("%Y-%m").to_string(),
                provider,
                model,
                prompt_tokens as i64,
                completion_tokens as i64,
                cost_usd,
                why.route,
                why.agent,
                why.speaker
            ],
        )
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// "Reset today": today's spend before now no longer counts against the daily budget (it
    /// stays in the ledger and in the monthly report).
    pub fn reset_today(&self, clock: &dyn Clock) -> Result<(), LedgerError> {
        let now = clock.now();
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        conn.execute(
            "INSERT OR REPLACE INTO budget_reset (day, at_ms) VALUES (?1, ?2)",
            params![now.format("%Y-%m-%d").to_string(), now.timestamp_millis()],
        )
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// A runtime switch kept in the ledger (so it survives a restart and a replacement).
    pub fn setting(&self, key: &str) -> Result<Option<String>, LedgerError> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        conn.query_row(
            "SELECT value FROM governor_settings WHERE key = ?1",
            [key],
            |r| r.get(0),
        )
        .map(Some)
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })
        .map_err(|e| self.err(e))
    }

    pub fn set_setting(&self, key: &str, value: &str) -> Result<(), LedgerError> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        conn.execute(
            "INSERT OR REPLACE INTO governor_settings (key, value) VALUES (?1, ?2)",
            params![key, value],
        )
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// What `provider` spent today (local day), USD.
    pub fn provider_today(&self, clock: &dyn Clock, provider: &str) -> Result<f64, LedgerError> {
        let day = clock.now().format("%Y-%m-%d").to_string();
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        conn.query_row(
            "SELECT COALESCE(SUM(cost_usd), 0) FROM llm_spend WHERE day = ?1 AND provider = ?2
             AND at_ms > COALESCE((SELECT at_ms FROM budget_reset WHERE day = ?1), -1)",
            params![day, provider],
            |r| r.get(0),
        )
        .map_err(|e| self.err(e))
    }

    /// (today, this month) in USD, by the clock's local day.
    pub fn totals(&self, clock: &dyn Clock) -> Result<(f64, f64), LedgerError> {
        let now = clock.now();
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let sum = |col: &str, key: String| -> Result<f64, rusqlite::Error> {
            conn.query_row(
                &format!("SELECT COALESCE(SUM(cost_usd), 0) FROM llm_spend WHERE {col} = ?1"),
                [key],
                |r| r.get(0),
            )
        };
        let day = conn
            .query_row(
                "SELECT COALESCE(SUM(cost_usd), 0) FROM llm_spend WHERE day = ?1
                 AND at_ms > COALESCE((SELECT at_ms FROM budget_reset WHERE day = ?1), -1)",
                [now.format("%Y-%m-%d").to_string()],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        let month = sum("month", now.format("%Y-%m").to_string()).map_err(|e| self.err(e))?;
        Ok((day, month))
    }
}

/// The policy applied to the ledger.
#[derive(Clone)]
pub struct Governor {
    pub ledger: Arc<Ledger>,
    pub policy: BudgetConfig,
    pub clock: Arc<dyn Clock>,
    /// "Local only" (`POST /v1/cost/mode`): no paid provider whatever the budget says. Kept
    /// in the ledger's settings; read at start.
    pub local_only: Arc<std::sync::atomic::AtomicBool>,
}

const LOCAL_ONLY: &str = "local_only";

impl Governor {
    pub fn new(ledger: Arc<Ledger>, policy: BudgetConfig, clock: Arc<dyn Clock>) -> Governor {
        let local_only = match ledger.setting(LOCAL_ONLY) {
            Ok(v) => v.as_deref() == Some("true"),
            Err(e) => {
                log::error!(event = "incident"; "cost ledger unreadable: {e}; local only until it is");
                true
            }
        };
        Governor {
            ledger,
            policy,
            clock,
            local_only: Arc::new(std::sync::atomic::AtomicBool::new(local_only)),
        }
    }

    pub fn is_local_only(&self) -> bool {
        self.local_only.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Switch "local only" now and for later starts.
    pub fn set_local_only(&self, on: bool) -> Result<(), LedgerError> {
        self.ledger
            .set_setting(LOCAL_ONLY, if on { "true" } else { "false" })?;
        self.local_only
            .store(on, std::sync::atomic::Ordering::SeqCst);
        log::info!(event = "cost_mode", local_only = on; "LLM mode: {}", if on { "local only" } else { "budget decides" });
        Ok(())
    }

    pub fn spend(&self) -> Result<Spend, LedgerError> {
        let (day, month) = self.ledger.totals(self.clock.as_ref())?;
        Ok(classify(&self.policy, day, month))
    }

    pub fn record(
        &self,
        provider: &str,
        model: &str,
        prompt_tokens: u64,
        completion_tokens: u64,
        cost_usd: f64,
        why: Why<'_>,
    ) -> Result<(), LedgerError> {
        self.ledger.record(
            self.clock.as_ref(),
            provider,
            model,
            prompt_tokens,
            completion_tokens,
            cost_usd,
            why,
        )
    }
}

impl Governor {
    /// May `p` be used now, given the budget state and its own daily budget?
    pub fn allows(&self, p: &crate::config::ProviderConfig, state: BudgetState) -> bool {
        if state == BudgetState::Red
            || ((state == BudgetState::Yellow || self.is_local_only()) && !p.local)
        {
            return false;
        }
        match p.daily_budget_usd {
            None => true,
            Some(budget) => match self.ledger.provider_today(self.clock.as_ref(), &p.name) {
                Ok(spent) => spent < budget,
                Err(e) => {
                    log::error!(event = "incident"; "cost ledger unreadable: {e}");
                    p.local
                }
            },
        }
    }
}

pub fn classify(policy: &BudgetConfig, day: f64, month: f64) -> Spend {
    let share_of = |spent: f64, limit: f64| {
        if limit <= 0.0 {
            // A zero limit means "no paid LLM at all".
            if spent > 0.0 { f64::INFINITY } else { 1.0 }
        } else {
            spent / limit
        }
    };
    let share =
        share_of(day, policy.daily_limit_usd).max(share_of(month, policy.monthly_limit_usd));
    let state = if share > policy.red_at {
        BudgetState::Red
    } else if share >= policy.yellow_at {
        BudgetState::Yellow
    } else {
        BudgetState::Green
    };
    Spend {
        state,
        day_usd: day,
        month_usd: month,
        share,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::clock::ManualClock;
    use chrono::{FixedOffset, TimeZone};

    fn at(h: u32, m: u32, day: u32) -> chrono::DateTime<FixedOffset> {
        FixedOffset::east_opt(3600)
            .unwrap()
            .with_ymd_and_hms(2026, 11, day, h, m, 0)
            .unwrap()
    }

    fn governor(dir: &Path, clock: Arc<ManualClock>) -> Governor {
        Governor::new(
            Arc::new(Ledger::open(Some(dir)).unwrap()),
            BudgetConfig::default(),
            clock,
        )
    }

    #[test]
    fn three_states_by_share_of_the_daily_limit() {
        let p = BudgetConfig::default();
        assert_eq!(classify(&p, 0.49, 0.49).state, BudgetState::Green);
        assert_eq!(classify(&p, 0.50, 0.50).state, BudgetState::Yellow);
        assert_eq!(classify(&p, 0.80, 0.80).state, BudgetState::Yellow);
        assert_eq!(classify(&p, 0.81, 0.81).state, BudgetState::Red);
        // The monthly limit counts too: $20.50 of $25 this month is red even with $0 today.
        assert_eq!(classify(&p, 0.0, 20.5).state, BudgetState::Red);
    }

    #[test]
    fn ledger_survives_reopen_and_resets_at_local_midnight() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(at(23, 50, 23)));
        let g = governor(dir.path(), clock.clone());
        g.record("cloud", "m", 1000, 500, 0.60, Why::default())
            .unwrap();
        assert_eq!(g.spend().unwrap().state, BudgetState::Yellow);
        g.record("cloud", "m", 1000, 500, 0.25, Why::default())
            .unwrap();
        assert_eq!(g.spend().unwrap().state, BudgetState::Red);
        drop(g);

        // A restart (new connection on the same file) keeps today's spend.
        let g = governor(dir.path(), clock.clone());
        let s = g.spend().unwrap();
        assert_eq!(s.state, BudgetState::Red);
        assert!((s.day_usd - 0.85).abs() < 1e-9, "{s:?}");

        // Local midnight: a new day, green again; the month still remembers.
        clock.set(at(0, 1, 24));
        let s = g.spend().unwrap();
        assert_eq!(s.state, BudgetState::Green, "{s:?}");
        assert_eq!(s.day_usd, 0.0);
        assert!((s.month_usd - 0.85).abs() < 1e-9);
    }

    #[test]
    fn midnight_is_local_not_utc() {
        // 23:30 UTC on the 23rd is 00:30 on the 24th at UTC+1: a new local day.
        let dir = tempfile::tempdir().unwrap();
        let utc = FixedOffset::east_opt(0).unwrap();
        let clock = Arc::new(ManualClock::new(
            utc.with_ymd_and_hms(2026, 11, 23, 22, 0, 0).unwrap(),
        ));
        let g = governor(dir.path(), clock.clone());
        g.record("cloud", "m", 1, 1, 0.9, Why::default()).unwrap();
        clock.set(at(0, 30, 24));
        assert_eq!(g.spend().unwrap().day_usd, 0.0);
    }
}
