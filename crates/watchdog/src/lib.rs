//! barnabee-watchdog: supervises the Barnabee units through systemd's D-Bus API, probes each
//! daemon's `/health`, restarts with backoff behind a circuit breaker, watches the host (disk,
//! memory, load, GPU), records incidents (journald fields + SQLite + metrics), and gates
//! upgrades: `gate` waits for every unit to be healthy and rolls the system back if not.
//! With `[notify]` it also tells the family (Home Assistant, e-mail, a webhook) about
//! Alertmanager alerts, its own P1/P2 incidents and rollbacks ([`notify`]).
//!
//! Layer: a daemon on top of barnabee-service; it talks to the other daemons only over HTTP.

pub mod api;
pub mod config;
pub mod gate;
pub mod host;
pub mod incident;
pub mod notify;
pub mod policy;
pub mod probe;
pub mod supervisor;
pub mod systemd;

use std::sync::Arc;
use std::time::Duration;

use barnabee_replicator::embed;
use barnabee_service::{Check, Runtime};

use crate::config::Config;
use crate::host::{HostMetrics, HostMonitor};
use crate::incident::{IncidentLog, IncidentLogError, Incidents};
use crate::supervisor::{Supervisor, SupervisorMetrics, UnitsView};
use crate::systemd::DbusSystemd;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(
        "no state directory: set state_dir in the config or run under systemd with StateDirectory="
    )]
    NoStateDir,
    #[error(transparent)]
    IncidentLog(#[from] IncidentLogError),
    #[error(transparent)]
    Serve(#[from] barnabee_service::ServeError),
    #[error("cannot build the HTTP client for health probes: {0}")]
    HttpClient(#[source] reqwest::Error),
    #[error("cannot build the HTTP client for notifications: {0}")]
    NotifyHttpClient(#[source] reqwest::Error),
    #[error(transparent)]
    Replication(#[from] embed::ReplicationError),
}

/// The unit the operator restarts or stops, as `/health` and the journal name it.
pub const UNIT: &str = "barnabee-watchdog";

/// How long a single D-Bus call may take before the connection counts as lost.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The systemd client the config asks for.
pub fn systemd_client(cfg: &Config) -> DbusSystemd {
    DbusSystemd::new(
        cfg.bus_address.clone(),
        CALL_TIMEOUT,
        cfg.supervision.job_timeout,
    )
}

/// Open the incident log in the configured state directory, with the notifier's queue
/// attached when `[notify]` is set (the notifier is returned too; nothing is delivered
/// until [`notify::Notifier::start`]).
pub fn open_incidents(cfg: &Config) -> Result<(Incidents, Option<notify::Notifier>), RunError> {
    let dir = cfg.state_dir().ok_or(RunError::NoStateDir)?;
    let incidents = Incidents::new(Arc::new(IncidentLog::open(&dir)?));
    let Some(n) = &cfg.notify else {
        return Ok((incidents, None));
    };
    match notify::Notifier::open(n, &dir) {
        Ok(notifier) => Ok((incidents.with_notifier(notifier.clone()), Some(notifier))),
        // Supervision, incidents and the gate matter more than notifications: run on without.
        Err(err) => {
            log::error!(event = "notify_queue_error"; "the notifier is off: {err}");
            Ok((incidents, None))
        }
    }
}

/// The daemon: start-up, then serve until SIGTERM. With `[replication]` the incident log is
/// restored before it is opened (a replacement beelink keeps the incident history) and
/// replicated while serving (the gate's writes too: it writes the same WAL database).
pub async fn run(cfg: Config, rt: Runtime) -> Result<(), RunError> {
    let log_db = incident::log_path(&cfg.state_dir().ok_or(RunError::NoStateDir)?);
    let section = cfg.replication.as_ref();
    embed::restore_in_daemon(&rt, section, &log_db, Duration::from_secs(300)).await?;
    let (incidents, notifier) = open_incidents(&cfg)?;
    let replication = embed::start_in_daemon(&rt, section, &log_db, UNIT).await?;
    incidents.register(rt.metrics());
    if let Some(n) = &notifier {
        let timeout = n.config().timeout;
        let http = barnabee_service::http_client::build(|b| {
            b.timeout(timeout)
                .connect_timeout(timeout.min(Duration::from_secs(5)))
                .redirect(reqwest::redirect::Policy::none())
        })
        .map_err(RunError::NotifyHttpClient)?;
        n.start(&rt, http);
    } else {
        notify::Notifier::register_idle_metrics(&rt);
    }
    if notifier.is_none() && cfg.notify.is_some() {
        rt.health().component(
            "notify",
            Check::fail("the notification queue cannot be opened (EVENT=notify_queue_error)")
                .non_critical(),
        );
    }
    let keep = Duration::from_secs(u64::from(cfg.incident_retention_days) * 86_400);
    let store = incidents.store().clone();
    let stop = rt.shutdown();
    tokio::spawn(async move {
        let mut daily = tokio::time::interval(Duration::from_secs(86_400));
        loop {
            tokio::select! {
                _ = stop.wait() => return,
                _ = daily.tick() => match store.prune(keep) {
                    Ok(0) => {}
                    Ok(n) => log::info!("pruned {n} incidents older than {} days", keep.as_secs() / 86_400),
                    Err(err) => log::warn!("cannot prune the incident log: {err}"),
                },
            }
        }
    });
    let store = incidents.store().clone();
    rt.health().probe("incident_log", move || {
        let store = store.clone();
        async move {
            match store.ping() {
                Ok(()) => Check::ok(store.path().display().to_string()),
                Err(err) => Check::fail(err.to_string()),
            }
        }
    });

    let systemd = Arc::new(systemd_client(&cfg));
    // Not critical: without the bus the watchdog still reports host figures and incidents.
    let bus = rt
        .health()
        .component("systemd", Check::fail("not connected yet").non_critical());
    match systemd.connect().await {
        Ok(()) => bus.ok("connected"),
        Err(err) => {
            log::warn!("{err}; will retry");
            bus.fail(err.to_string());
        }
    }

    let sup_metrics = SupervisorMetrics::default();
    sup_metrics.register(rt.metrics());
    let http = probe::client().map_err(RunError::HttpClient)?;
    let view = UnitsView::default();
    let supervisor = Arc::new(Supervisor {
        systemd,
        cfg: cfg.supervision.clone(),
        incidents: incidents.clone(),
        metrics: sup_metrics,
        bus,
        http: http.clone(),
        view: view.clone(),
    });
    // A unit round may wait for a D-Bus read, a probe and a restart job (each call may
    // reconnect and retry once); beyond that bound the task is stuck.
    let s = &cfg.supervision;
    let unit_silence = s.interval * 2
        + s.probe_timeout
        + (s.job_timeout + CALL_TIMEOUT * 2) * 2
        + CALL_TIMEOUT * 4;
    for unit in &cfg.units {
        let hb = rt.heartbeat(&format!("unit:{}", unit.name), unit_silence);
        tokio::spawn(supervisor.clone().run_unit(unit.clone(), hb, rt.shutdown()));
    }
    if !s.watch.is_empty() {
        let hb = rt.heartbeat("watch", s.interval * 2 + CALL_TIMEOUT * 4);
        tokio::spawn(supervisor.clone().run_watch(hb, rt.shutdown()));
    }

    let host_metrics = HostMetrics::default();
    host_metrics.register(rt.metrics());
    let monitor = HostMonitor::new(
        cfg.thresholds.clone(),
        incidents.clone(),
        host_metrics,
        http,
    );
    let hb = rt.heartbeat(
        "host",
        cfg.thresholds.interval * 2 + Duration::from_secs(10),
    );
    tokio::spawn(monitor.run(hb, rt.shutdown()));

    rt.status(&format!("supervising {} units", cfg.units.len()));
    let served = rt
        .serve(api::routes(incidents.store().clone(), view, notifier))
        .await;
    replication.shutdown().await;
    served?;
    Ok(())
}
