//! The background worker: `PRAGMA optimize`, retention of expired memories, incremental
//! vacuum, and the size/count gauges. It beats a heartbeat every tick, so a wedged database
//! (a tick that never returns) stops the systemd watchdog pings.

use std::sync::Arc;
use std::time::{Duration, Instant};

use barnabee_service::health::Component;
use barnabee_service::{Heartbeat, Shutdown};
use prometheus_client::metrics::gauge::Gauge;

use crate::config::MaintenanceConfig;
use crate::store::Store;
use crate::time::now_ms;

/// Gauges the worker refreshes.
#[derive(Clone, Default)]
pub struct Gauges {
    pub db_bytes: Gauge,
    pub memories: Gauge,
}

impl Gauges {
    pub fn refresh(&self, store: &Store) {
        self.db_bytes
            .set(i64::try_from(store.db_bytes()).unwrap_or(i64::MAX));
        if let Ok(n) = store.memory_count() {
            self.memories.set(n);
        }
    }
}

/// What one pass did (for logs and tests).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pass {
    pub optimized: bool,
    pub expired: usize,
    pub audit_pruned: usize,
    pub free_pages_left: Option<i64>,
}

/// The due-times of the periodic jobs.
pub struct Schedule {
    cfg: MaintenanceConfig,
    next_optimize: Instant,
    next_retention: Instant,
}

impl Schedule {
    pub fn new(cfg: MaintenanceConfig, now: Instant) -> Self {
        Self {
            // Retention runs soon after start (expired data should not wait an hour after a
            // restart); optimize after its first interval (SQLite recommends it on long-lived
            // connections, not at open).
            next_retention: now + Duration::from_secs(5).min(cfg.retention_interval),
            next_optimize: now + cfg.optimize_interval,
            cfg,
        }
    }

    /// Run what is due at `now` (blocking).
    pub fn run_due(
        &mut self,
        store: &Store,
        now: Instant,
    ) -> Result<Pass, crate::error::StoreError> {
        let mut pass = Pass::default();
        if now >= self.next_retention {
            self.next_retention = now + self.cfg.retention_interval;
            let ids = store.delete_expired(now_ms())?;
            pass.expired = ids.len();
            if self.cfg.audit_retention_days > 0 {
                let keep_ms = i64::from(self.cfg.audit_retention_days) * 86_400_000;
                pass.audit_pruned = store.prune_audit(now_ms() - keep_ms)?;
            }
            pass.free_pages_left = Some(store.incremental_vacuum(self.cfg.vacuum_pages)?);
        }
        if now >= self.next_optimize {
            self.next_optimize = now + self.cfg.optimize_interval;
            store.optimize()?;
            pass.optimized = true;
        }
        Ok(pass)
    }
}

/// The worker loop; returns when `shutdown` triggers.
pub async fn run(
    store: Arc<Store>,
    cfg: MaintenanceConfig,
    heartbeat: Heartbeat,
    health: Component,
    gauges: Gauges,
    shutdown: Shutdown,
) {
    let mut schedule = Schedule::new(cfg.clone(), Instant::now());
    let mut ticker = tokio::time::interval(cfg.tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = ticker.tick() => {}
        }
        let s = store.clone();
        let g = gauges.clone();
        let result = tokio::task::spawn_blocking(move || {
            let pass = schedule.run_due(&s, Instant::now());
            g.refresh(&s);
            (schedule, pass)
        })
        .await;
        match result {
            Ok((back, pass)) => {
                schedule = back;
                match pass {
                    Ok(pass) => {
                        if pass.expired > 0 || pass.audit_pruned > 0 || pass.optimized {
                            log::info!(event = "maintenance", expired = pass.expired; "maintenance: {pass:?}");
                        }
                        health.ok("last pass ok");
                    }
                    Err(err) => {
                        log::warn!(event = "maintenance_failed"; "maintenance pass failed: {err}");
                        health.fail(format!("last pass failed: {err}"));
                    }
                }
            }
            Err(join) => {
                log::error!(event = "incident"; "maintenance worker panicked: {join}");
                health.fail(format!("worker panicked: {join}"));
                return;
            }
        }
        heartbeat.beat();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::model::{MemoryType, NewMemory, Visibility};
    use crate::schema::OpenOptions;

    #[test]
    fn retention_expires_memories_prunes_audit_then_optimize_runs_on_schedule() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("m.db");
        let store = Store::open(
            &db,
            crate::migrations::all(),
            &OpenOptions::for_db(&db),
            1,
            4,
        )
        .unwrap();
        let new = |summary: &str, expires_at| NewMemory {
            summary: summary.into(),
            content: String::new(),
            keywords: vec![],
            memory_type: MemoryType::Fact,
            owner: "a".into(),
            visibility: Visibility::Family,
            source: None,
            created_at: None,
            expires_at,
            embedding: Some(vec![1.0, 0.0, 0.0, 0.0]),
            embedding_model: None,
            external_id: None,
        };
        store
            .create_memory(new("gone", Some(now_ms() - 1)))
            .unwrap();
        let kept = store.create_memory(new("kept", None)).unwrap();
        store
            .with_write_tx(|tx| {
                crate::store::audit(tx, None, "old", "memory", "0", None)?;
                tx.execute("UPDATE audit_log SET at = 0 WHERE action = 'old'", [])
                    .unwrap();
                Ok(())
            })
            .unwrap();
        let cfg = MaintenanceConfig {
            retention_interval: Duration::ZERO,
            ..MaintenanceConfig::default()
        };
        let start = Instant::now();
        let mut schedule = Schedule::new(cfg.clone(), start);
        let pass = schedule.run_due(&store, start).unwrap();
        assert_eq!(pass.expired, 1);
        assert_eq!(pass.audit_pruned, 1);
        assert!(!pass.optimized);
        assert!(pass.free_pages_left.is_some());
        assert_eq!(store.memory_count().unwrap(), 1);
        let filter = crate::vector::Filter {
            requester: "a".into(),
            owner: None,
            visibility: None,
            memory_types: None,
            since: None,
            until: None,
            now: 0,
        };
        let hits = store.search_vector(&[1.0, 0.0, 0.0, 0.0], &filter, 10);
        assert_eq!(hits.iter().map(|h| h.0).collect::<Vec<_>>(), vec![kept.id]);
        let pass = schedule
            .run_due(&store, start + cfg.optimize_interval)
            .unwrap();
        assert!(pass.optimized);
        let gauges = Gauges::default();
        gauges.refresh(&store);
        assert_eq!(gauges.memories.get(), 1);
        assert!(gauges.db_bytes.get() > 0);
    }
}
