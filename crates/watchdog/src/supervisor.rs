//! Supervision: one task per configured unit (read its state over D-Bus, probe its `/health`,
//! apply the [`Policy`], restart through systemd) and one task for the watched globs
//! (a unit that lands in `failed` is an incident).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use barnabee_service::health::Component;
use barnabee_service::{Heartbeat, Shutdown};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use crate::config::{Supervision, UnitConfig};
use crate::incident::{Incident, Incidents, Severity};
use crate::policy::{Decision, Observation, Policy};
use crate::probe;
use crate::systemd::{SystemdApi, UnitStatus};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UnitLabel {
    pub unit: String,
}

/// The supervisor's metrics.
#[derive(Clone, Default)]
pub struct SupervisorMetrics {
    pub restarts: Family<UnitLabel, Counter>,
    pub probe_failures: Family<UnitLabel, Counter>,
    pub healthy: Family<UnitLabel, Gauge>,
    pub n_restarts: Family<UnitLabel, Gauge>,
}

impl SupervisorMetrics {
    pub fn register(&self, metrics: &barnabee_service::metrics::Metrics) {
        use barnabee_service::catalog;
        metrics.register_def(&catalog::WATCHDOG_RESTARTS, self.restarts.clone());
        metrics.register_def(
            &catalog::WATCHDOG_PROBE_FAILURES,
            self.probe_failures.clone(),
        );
        metrics.register_def(&catalog::WATCHDOG_UNIT_HEALTHY, self.healthy.clone());
        metrics.register_def(&catalog::WATCHDOG_UNIT_NRESTARTS, self.n_restarts.clone());
    }
}

/// What `GET /v1/units` shows for one supervised unit.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct UnitReport {
    pub name: String,
    /// systemd's view; empty until the first successful read.
    pub active_state: String,
    pub sub_state: String,
    pub invocation_id: String,
    pub active_enter_timestamp_us: u64,
    pub n_restarts: Option<u32>,
    pub exec_main_status: Option<i32>,
    /// Active and its /health answered 2xx in the last round.
    pub healthy: bool,
    /// Why the last round was not healthy.
    pub last_problem: Option<String>,
    pub consecutive_failures: u32,
    /// Restarts (or starts) the watchdog issued since it started.
    pub watchdog_restarts: u64,
    pub breaker_open: bool,
}

impl UnitReport {
    fn update(&mut self, status: &UnitStatus, observation: &Observation) {
        self.active_state = status.active_state.clone();
        self.sub_state = status.sub_state.clone();
        self.invocation_id = status.invocation_id.clone();
        self.active_enter_timestamp_us = status.active_enter_timestamp_us;
        self.n_restarts = status.n_restarts;
        self.exec_main_status = status.exec_main_status;
        self.healthy = *observation == Observation::Healthy;
        self.last_problem = match observation {
            Observation::Unhealthy(reason) => Some(reason.clone()),
            Observation::Transitioning => {
                Some(format!("{} ({})", status.active_state, status.sub_state))
            }
            Observation::Healthy => None,
        };
    }
}

/// One unit task's own state.
pub struct UnitTask {
    unit: UnitConfig,
    label: UnitLabel,
    policy: Policy,
    bus_ok: bool,
    was_healthy: bool,
    report: UnitReport,
}

/// The latest report per unit, shared with the HTTP API.
pub type UnitsView = Arc<std::sync::Mutex<std::collections::BTreeMap<String, UnitReport>>>;

/// Everything a unit task needs.
pub struct Supervisor<S> {
    pub systemd: Arc<S>,
    pub cfg: Supervision,
    pub incidents: Incidents,
    pub metrics: SupervisorMetrics,
    /// `/health` component "systemd": whether the last D-Bus call worked.
    pub bus: Component,
    pub http: reqwest::Client,
    pub view: UnitsView,
}

/// Classify a unit from its systemd state and, when active, its probe.
pub async fn observe(
    status: &UnitStatus,
    unit: &UnitConfig,
    http: &reqwest::Client,
    probe_timeout: Duration,
) -> Observation {
    match status.active_state.as_str() {
        "active" => match &unit.health_url {
            None => Observation::Healthy,
            Some(url) => match probe::probe(http, url, probe_timeout).await {
                Ok(()) => Observation::Healthy,
                Err(reason) => Observation::Unhealthy(reason),
            },
        },
        "activating" | "deactivating" | "reloading" | "refreshing" => Observation::Transitioning,
        other => Observation::Unhealthy(match status.exec_main_status {
            Some(code) if code != 0 => format!(
                "ActiveState={other} SubState={} (exit status {code})",
                status.sub_state
            ),
            _ => format!("ActiveState={other} SubState={}", status.sub_state),
        }),
    }
}

impl<S: SystemdApi> Supervisor<S> {
    /// Supervise one unit until shutdown. Beats `heartbeat` once per round.
    pub async fn run_unit(
        self: Arc<Self>,
        unit: UnitConfig,
        heartbeat: Heartbeat,
        shutdown: Shutdown,
    ) {
        let mut task = UnitTask {
            label: UnitLabel {
                unit: unit.name.clone(),
            },
            policy: Policy::new(&self.cfg),
            bus_ok: true,
            was_healthy: true,
            report: UnitReport {
                name: unit.name.clone(),
                ..UnitReport::default()
            },
            unit,
        };
        let mut ticker = tokio::time::interval(self.cfg.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = ticker.tick() => {}
            }
            heartbeat.beat();
            if self.round(&mut task).await {
                // Let the new invocation start before probing it again.
                ticker.reset();
            }
        }
    }

    /// One round for one unit: read, probe, decide, act. True when it restarted the unit.
    async fn round(&self, task: &mut UnitTask) -> bool {
        let name = task.unit.name.clone();
        let status = match self.systemd.unit_status(&name).await {
            Ok(status) => {
                self.bus.ok("connected");
                task.bus_ok = true;
                status
            }
            Err(err) => {
                self.bus.fail(err.to_string());
                // Once per outage, not once per round.
                if std::mem::replace(&mut task.bus_ok, false) {
                    log::warn!(unit = name.as_str(); "cannot read the state of {name}: {err}");
                }
                task.report.healthy = false;
                task.report.last_problem = Some(err.to_string());
                self.publish(&task.report);
                return false;
            }
        };
        if let Some(n) = status.n_restarts {
            self.metrics
                .n_restarts
                .get_or_create(&task.label)
                .set(i64::from(n));
        }
        let observation = observe(&status, &task.unit, &self.http, self.cfg.probe_timeout).await;
        let healthy = observation == Observation::Healthy;
        self.metrics
            .healthy
            .get_or_create(&task.label)
            .set(i64::from(healthy));
        if let Observation::Unhealthy(reason) = &observation {
            self.metrics.probe_failures.get_or_create(&task.label).inc();
            // Once when it turns unhealthy; the incidents record what follows.
            if task.was_healthy {
                log::info!(unit = name.as_str(); "{name} unhealthy: {reason}");
            }
        }
        task.was_healthy = healthy;
        task.report.update(&status, &observation);
        if !task.unit.restart {
            self.publish(&task.report);
            return false;
        }
        let decision = task.policy.observe(Instant::now(), observation);
        task.report.consecutive_failures = task.policy.consecutive_failures();
        task.report.breaker_open = task.policy.breaker_open();
        self.publish(&task.report);
        match decision {
            Decision::Nothing | Decision::Wait => false,
            Decision::Restart { attempt, reason } => {
                self.restart(&name, &status, attempt, &reason).await;
                self.metrics.restarts.get_or_create(&task.label).inc();
                task.report.watchdog_restarts += 1;
                self.publish(&task.report);
                true
            }
            Decision::OpenBreaker { restarts, reason } => {
                self.incidents.raise(Incident::new(
                    Severity::P1,
                    &name,
                    "circuit_breaker",
                    "none",
                    format!(
                        "{name} still unhealthy after {restarts} restarts within {:?} ({reason}); the watchdog stops restarting it until it is healthy again",
                        self.cfg.window
                    ),
                ));
                false
            }
            Decision::Recovered => {
                self.incidents.raise(Incident::new(
                    Severity::P4,
                    &name,
                    "recovered",
                    "none",
                    format!("{name} is healthy again; circuit breaker closed"),
                ));
                false
            }
        }
    }

    fn publish(&self, report: &UnitReport) {
        self.view
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(report.name.clone(), report.clone());
    }

    async fn restart(&self, name: &str, status: &UnitStatus, attempt: u32, reason: &str) {
        let active = status.active_state == "active";
        let (verb, result) = if active {
            ("restart", self.systemd.restart_unit(name).await)
        } else {
            ("start", self.systemd.start_unit(name).await)
        };
        let of = format!(
            "{attempt} of {} within {:?}",
            self.cfg.max_restarts, self.cfg.window
        );
        let incident = match result {
            Ok(job) if job == "done" => Incident::new(
                Severity::P2,
                name,
                "unhealthy",
                verb,
                format!("{name} unhealthy ({reason}); {verb} {of}: job done"),
            ),
            Ok(job) => Incident::new(
                Severity::P2,
                name,
                "unhealthy",
                &format!("{verb}_failed"),
                format!("{name} unhealthy ({reason}); {verb} {of}: job result {job}"),
            ),
            Err(err) => {
                self.bus.fail(err.to_string());
                Incident::new(
                    Severity::P2,
                    name,
                    "unhealthy",
                    &format!("{verb}_failed"),
                    format!("{name} unhealthy ({reason}); {verb} {of} failed: {err}"),
                )
            }
        };
        self.incidents.raise(incident);
    }

    /// Raise an incident when a unit matching the watched globs enters `failed`.
    pub async fn run_watch(self: Arc<Self>, heartbeat: Heartbeat, shutdown: Shutdown) {
        if self.cfg.watch.is_empty() {
            return;
        }
        let mut failed: BTreeSet<String> = BTreeSet::new();
        let mut ticker = tokio::time::interval(self.cfg.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = ticker.tick() => {}
            }
            heartbeat.beat();
            let units = match self.systemd.list_units(&self.cfg.watch).await {
                Ok(units) => units,
                Err(err) => {
                    self.bus.fail(err.to_string());
                    continue;
                }
            };
            let now_failed: BTreeSet<String> = units
                .iter()
                .filter(|u| u.active_state == "failed")
                .map(|u| u.name.clone())
                .collect();
            for name in now_failed.difference(&failed) {
                self.incidents.raise(Incident::new(
                    Severity::P2,
                    name,
                    "failed",
                    "none",
                    format!("{name} entered the failed state"),
                ));
            }
            failed = now_failed;
        }
    }
}
