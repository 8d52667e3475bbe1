//! The audit log for other daemons: `POST /v1/audit` appends an entry (the agents' guarded
//! actions: who tried to unlock what, and the outcome), `GET /v1/audit?action=&limit=` reads
//! the newest. The same `audit_log` table memory writes its own changes to; the same
//! retention (`[maintenance] audit_retention_days`).

use rusqlite::params;
use serde::{Deserialize, Serialize};

use crate::error::{StoreError, sql};
use crate::store::{Store, audit, check_text};

/// `POST /v1/audit`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAuditEntry {
    /// Who acted (a family member's name; absent: nobody identified).
    pub actor: Option<String>,
    /// What was attempted, e.g. `guarded_action`.
    pub action: String,
    /// What it was about, e.g. `entity`.
    pub target_kind: String,
    /// e.g. `lock.front_door`.
    pub target_id: Option<String>,
    /// Anything else, as JSON (outcome, session, device).
    pub detail: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AuditEntry {
    pub id: i64,
    pub at: i64,
    pub actor: Option<String>,
    pub action: String,
    pub target_kind: String,
    pub target_id: Option<String>,
    pub detail: Option<serde_json::Value>,
}

impl Store {
    pub fn append_audit(&self, e: &NewAuditEntry) -> Result<(), StoreError> {
        check_text("action", &e.action, 100, true)?;
        check_text("target_kind", &e.target_kind, 100, true)?;
        if let Some(a) = &e.actor {
            check_text("actor", a, 200, false)?;
        }
        if let Some(t) = &e.target_id {
            check_text("target_id", t, 2000, false)?;
        }
        let detail = e.detail.as_ref().map(serde_json::Value::to_string);
        if detail.as_ref().is_some_and(|d| d.len() > 8192) {
            return Err(StoreError::invalid(
                "detail",
                "longer than 8192 bytes as JSON",
            ));
        }
        let conn = self.writer();
        self.timed("append_audit", || {
            audit(
                &conn,
                e.actor.as_deref(),
                &e.action,
                &e.target_kind,
                e.target_id.as_deref().unwrap_or(""),
                detail.as_deref(),
            )
        })
    }

    /// The newest `limit` entries, of `action` when given.
    pub fn audit_entries(
        &self,
        action: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let conn = self.reader();
        let mut st = conn
            .prepare(
                "SELECT id, at, actor, action, target_kind, target_id, detail FROM audit_log
                 WHERE ?1 IS NULL OR action = ?1 ORDER BY id DESC LIMIT ?2",
            )
            .map_err(sql("read audit log"))?;
        let rows = st
            .query_map(params![action, limit as i64], |r| {
                let detail: Option<String> = r.get(6)?;
                let target: Option<String> = r.get(5)?;
                Ok(AuditEntry {
                    id: r.get(0)?,
                    at: r.get(1)?,
                    actor: r.get(2)?,
                    action: r.get(3)?,
                    target_kind: r.get(4)?,
                    target_id: target.filter(|t| !t.is_empty()),
                    detail: detail.and_then(|d| serde_json::from_str(&d).ok()),
                })
            })
            .map_err(sql("read audit log"))?;
        rows.collect::<Result<_, _>>()
            .map_err(sql("read audit log"))
    }
}
