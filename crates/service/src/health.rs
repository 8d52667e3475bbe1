//! `/health`: one named check per dependency, never a constant "OK".
//!
//! Two kinds of checks: a [`Component`] is state a background worker sets as it goes
//! (replication, the Home Assistant connection), a probe is a function run on every request
//! (a `SELECT 1`). A failing *critical* check makes the daemon unhealthy (HTTP 503); a failing
//! non-critical check makes it degraded (HTTP 200, `"status": "degraded"`), e.g. "no GPU,
//! serving on CPU".

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub ok: bool,
    pub detail: String,
    /// A failing critical check makes the whole daemon unhealthy.
    pub critical: bool,
}

impl Check {
    pub fn ok(detail: impl Into<String>) -> Self {
        Self {
            ok: true,
            detail: detail.into(),
            critical: true,
        }
    }

    pub fn fail(detail: impl Into<String>) -> Self {
        Self {
            ok: false,
            detail: detail.into(),
            critical: true,
        }
    }

    /// Mark the check as non-critical: failing degrades rather than fails the daemon.
    pub fn non_critical(mut self) -> Self {
        self.critical = false;
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Healthy,
    Degraded,
    Unhealthy,
}

/// The JSON body of `/health`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub status: Status,
    pub checks: BTreeMap<String, Check>,
}

impl Report {
    pub fn http_ok(&self) -> bool {
        self.status != Status::Unhealthy
    }
}

type ProbeFn = dyn Fn() -> Pin<Box<dyn Future<Output = Check> + Send>> + Send + Sync;

enum Source {
    State(Arc<Mutex<Check>>),
    Probe(Arc<ProbeFn>),
}

/// The registry of checks; cheap to clone, shared by the daemon and the HTTP server.
#[derive(Clone, Default)]
pub struct Health {
    checks: Arc<Mutex<Vec<(String, Source)>>>,
}

/// A check whose state a worker sets.
#[derive(Clone)]
pub struct Component {
    state: Arc<Mutex<Check>>,
}

impl Component {
    pub fn set(&self, check: Check) {
        *lock(&self.state) = check;
    }

    /// Keep the critical flag the component was registered with.
    pub fn ok(&self, detail: impl Into<String>) {
        let mut state = lock(&self.state);
        state.ok = true;
        state.detail = detail.into();
    }

    pub fn fail(&self, detail: impl Into<String>) {
        let mut state = lock(&self.state);
        state.ok = false;
        state.detail = detail.into();
    }

    pub fn get(&self) -> Check {
        lock(&self.state).clone()
    }
}

/// How long one probe may take before it counts as failed.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

impl Health {
    pub fn new() -> Self {
        Self::default()
    }

    /// Register a component check with its initial state.
    pub fn component(&self, name: &str, initial: Check) -> Component {
        let state = Arc::new(Mutex::new(initial));
        self.insert(name, Source::State(state.clone()));
        Component { state }
    }

    /// Register a probe run on every `/health` request (bounded by [`PROBE_TIMEOUT`]).
    pub fn probe<F, Fut>(&self, name: &str, probe: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Check> + Send + 'static,
    {
        self.insert(name, Source::Probe(Arc::new(move || Box::pin(probe()))));
    }

    fn insert(&self, name: &str, source: Source) {
        let mut checks = lock(&self.checks);
        checks.retain(|(n, _)| n != name);
        checks.push((name.to_owned(), source));
    }

    /// Evaluate every check.
    pub async fn report(&self) -> Report {
        let pending: Vec<(String, Result<Check, Arc<ProbeFn>>)> = lock(&self.checks)
            .iter()
            .map(|(name, source)| {
                let value = match source {
                    Source::State(state) => Ok(lock(state).clone()),
                    Source::Probe(probe) => Err(probe.clone()),
                };
                (name.clone(), value)
            })
            .collect();
        let mut checks = BTreeMap::new();
        for (name, value) in pending {
            let check = match value {
                Ok(check) => check,
                Err(probe) => match tokio::time::timeout(PROBE_TIMEOUT, probe()).await {
                    Ok(check) => check,
                    Err(_) => Check::fail(format!("no answer within {PROBE_TIMEOUT:?}")),
                },
            };
            checks.insert(name, check);
        }
        let status = if checks.values().any(|c| !c.ok && c.critical) {
            Status::Unhealthy
        } else if checks.values().any(|c| !c.ok) {
            Status::Degraded
        } else {
            Status::Healthy
        };
        Report { status, checks }
    }
}

/// A poisoned lock only means another thread panicked mid-update of a plain value; the
/// value is still usable, and health reporting must not cascade that panic.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn critical_failure_is_unhealthy_non_critical_is_degraded() {
        let h = Health::new();
        let db = h.component("db", Check::ok("open"));
        let gpu = h.component("gpu", Check::ok("cuda").non_critical());
        assert_eq!(h.report().await.status, Status::Healthy);
        gpu.fail("no GPU, serving on CPU");
        let r = h.report().await;
        assert_eq!(r.status, Status::Degraded);
        assert!(r.http_ok());
        db.fail("disk I/O error");
        let r = h.report().await;
        assert_eq!(r.status, Status::Unhealthy);
        assert!(!r.http_ok());
        assert_eq!(r.checks["db"].detail, "disk I/O error");
    }

    #[tokio::test(start_paused = true)]
    async fn slow_probe_times_out_as_failure() {
        let h = Health::new();
        h.probe("slow", || async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Check::ok("late")
        });
        let r = h.report().await;
        assert_eq!(r.status, Status::Unhealthy);
        assert!(r.checks["slow"].detail.contains("no answer"));
    }
}
