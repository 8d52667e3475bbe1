use std::time::Duration;

use crate::common::*;

const MEMORY: &str = "barnabee-memory.service";
const AGENTS: &str = "barnabee-agents.service";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unhealthy_unit_is_restarted_with_backoff() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::start(dir.path());
    let sd = Systemd::new(&[(MEMORY, FakeUnit::active()), (AGENTS, FakeUnit::active())]);
    let _svc = sd.serve(&bus.address).await;
    let memory = HealthServer::start(false).await;
    let agents = HealthServer::start(true).await;
    let state = dir.path().join("state");
    let cfg = config(
        &state,
        &[(MEMORY, &memory.url), (AGENTS, &agents.url)],
        "backoff_initial = 0.5\nbackoff_max = 10\nmax_restarts = 10\nwindow = 60",
        "",
    );
    let wd = Watchdog::start(dir.path(), &cfg, &bus.address).await;

    wait_for("3 restart incidents", Duration::from_secs(15), || {
        incident_rows(&state)
            .iter()
            .filter(|r| r.3 == "restart")
            .count()
            >= 3
    })
    .await;
    let calls = sd.calls(MEMORY);
    assert!(
        calls
            .iter()
            .all(|c| c.method == "RestartUnit" && c.mode == "replace"),
        "{calls:?}"
    );
    let gap1 = calls[1].at - calls[0].at;
    let gap2 = calls[2].at - calls[1].at;
    assert!(gap1 >= Duration::from_millis(500), "first backoff {gap1:?}");
    assert!(
        gap2 >= Duration::from_millis(1000),
        "second backoff {gap2:?} should double"
    );
    assert!(gap2 > gap1, "{gap1:?} then {gap2:?}");
    assert!(
        sd.calls(AGENTS).is_empty(),
        "the healthy unit was restarted"
    );
    assert!(sd.subscribes() >= 1, "the watchdog never called Subscribe");

    // The incident log, the API and the journal-field line agree.
    let rows = incident_rows(&state);
    let restarts: Vec<_> = rows.iter().filter(|r| r.3 == "restart").collect();
    assert!(restarts.len() >= 3, "{rows:?}");
    assert_eq!(restarts[0].0, "P2");
    assert_eq!(restarts[0].1, MEMORY);
    assert_eq!(restarts[0].2, "unhealthy");
    assert!(restarts[0].4.contains("HTTP 503"), "{}", restarts[0].4);
    let (code, body) = wd.get("/v1/incidents?limit=2").await;
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let list = v["incidents"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["unit"], MEMORY);
    assert!(list[0]["ts_ms"].as_i64().unwrap() > 0);
    let (code, body) = wd.get("/v1/units").await;
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let units = v["units"].as_array().unwrap();
    assert_eq!(units.len(), 2, "{body}");
    let (agents_r, memory_r) = (&units[0], &units[1]);
    assert_eq!(agents_r["name"], AGENTS);
    assert_eq!(agents_r["healthy"], true);
    assert_eq!(agents_r["watchdog_restarts"], 0);
    assert_eq!(memory_r["healthy"], false);
    assert_eq!(memory_r["active_state"], "active");
    assert!(
        memory_r["watchdog_restarts"].as_u64().unwrap() >= 3,
        "{body}"
    );
    // systemd's NRestarts as read at the start of the round (before that round's restart).
    assert!(memory_r["n_restarts"].as_u64().unwrap() >= 2, "{body}");
    assert!(
        memory_r["last_problem"]
            .as_str()
            .unwrap()
            .contains("HTTP 503"),
        "{body}"
    );
    let (code, _) = wd.get("/v1/incidents?limit=lots").await;
    assert_eq!(code, 400);
    let log = wd.log();
    assert!(
        log.contains(&format!(
            "event=incident severity=P2 unit={MEMORY} reason=unhealthy action=restart"
        )),
        "{log}"
    );
    let (_, metrics) = wd.get("/metrics").await;
    assert!(
        metrics.contains("barnabee_watchdog_incidents_total{severity=\"P2\"}"),
        "{metrics}"
    );
    let line = metrics
        .lines()
        .find(|l| {
            l.starts_with(&format!(
                "barnabee_watchdog_restarts_total{{unit=\"{MEMORY}\"}}"
            ))
        })
        .unwrap_or_else(|| panic!("{metrics}"));
    let n: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= 3, "{line}");
    assert!(metrics.contains(&format!(
        "barnabee_watchdog_probe_failures_total{{unit=\"{MEMORY}\"}}"
    )));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flapping_unit_opens_the_circuit_breaker() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::start(dir.path());
    let sd = Systemd::new(&[(MEMORY, FakeUnit::active())]);
    let _svc = sd.serve(&bus.address).await;
    let memory = HealthServer::start(false).await;
    // Each restart brings it back for a moment, then it fails again.
    let h = memory.clone();
    sd.on_restart(move |_| h.healthy_for(Duration::from_millis(300)));
    let state = dir.path().join("state");
    let cfg = config(
        &state,
        &[(MEMORY, &memory.url)],
        "backoff_initial = 0.2\nbackoff_max = 0.4\nmax_restarts = 3\nwindow = 60",
        "",
    );
    let wd = Watchdog::start(dir.path(), &cfg, &bus.address).await;

    wait_for(
        "the circuit breaker incident",
        Duration::from_secs(15),
        || {
            incident_rows(&state)
                .iter()
                .any(|r| r.2 == "circuit_breaker")
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        sd.calls(MEMORY).len(),
        3,
        "restarted after the breaker opened"
    );
    let rows = incident_rows(&state);
    let breaker = rows.iter().find(|r| r.2 == "circuit_breaker").unwrap();
    assert_eq!(breaker.0, "P1");
    assert_eq!(breaker.1, MEMORY);
    assert_eq!(breaker.3, "none");
    assert!(breaker.4.contains("3 restarts"), "{}", breaker.4);
    assert_eq!(
        rows.iter().filter(|r| r.2 == "circuit_breaker").count(),
        1,
        "{rows:?}"
    );
    let log = wd.log();
    assert!(
        log.contains(&format!(
            "event=incident severity=P1 unit={MEMORY} reason=circuit_breaker action=none"
        )),
        "{log}"
    );

    // Healthy again: the breaker closes (P4) and a later failure is restarted again.
    memory.set_healthy(true);
    wait_for("recovery", Duration::from_secs(10), || {
        incident_rows(&state).iter().any(|r| r.2 == "recovered")
    })
    .await;
    memory.set_healthy(false);
    wait_for("a restart after recovery", Duration::from_secs(10), || {
        sd.calls(MEMORY).len() == 4
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_unit_is_started_and_watched_failure_is_an_incident() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::start(dir.path());
    let mut failed = FakeUnit::with_state("failed", "failed");
    failed.exec_main_status = 3;
    // voice is not supervised, only matched by the watch glob.
    let voice = "barnabee-voice.service";
    let sd = Systemd::new(&[
        (MEMORY, failed),
        (voice, FakeUnit::with_state("failed", "failed")),
    ]);
    let _svc = sd.serve(&bus.address).await;
    let memory = HealthServer::start(true).await;
    let state = dir.path().join("state");
    let cfg = config(&state, &[(MEMORY, &memory.url)], "", "");
    let _wd = Watchdog::start(dir.path(), &cfg, &bus.address).await;
    wait_for("the start incident", Duration::from_secs(10), || {
        incident_rows(&state).iter().any(|r| r.3 == "start")
    })
    .await;
    let calls = sd.calls(MEMORY);
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].method, "StartUnit");
    assert_eq!(calls[0].mode, "replace");
    let rows = incident_rows(&state);
    let started = rows.iter().find(|r| r.3 == "start").unwrap();
    assert!(started.4.contains("exit status 3"), "{}", started.4);
    wait_for("the watch incident", Duration::from_secs(10), || {
        incident_rows(&state)
            .iter()
            .any(|r| r.1 == voice && r.2 == "failed" && r.0 == "P2")
    })
    .await;
    assert!(
        sd.calls(voice).is_empty(),
        "an unsupervised unit was started"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_after_the_bus_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut bus = Bus::start(dir.path());
    let sd = Systemd::new(&[(MEMORY, FakeUnit::active())]);
    let svc = sd.serve(&bus.address).await;
    let memory = HealthServer::start(true).await;
    let state = dir.path().join("state");
    let cfg = config(
        &state,
        &[(MEMORY, &memory.url)],
        "backoff_initial = 0.2",
        "",
    );
    let wd = Watchdog::start(dir.path(), &cfg, &bus.address).await;
    let subscribed_before = sd.subscribes();
    assert!(subscribed_before >= 1);

    // The bus goes away (and the service with it); the watchdog says so in /health.
    bus.kill();
    drop(svc);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (_, body) = wd.get("/health").await;
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        if v["checks"]["systemd"]["ok"] == false {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "bus loss never reported: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A new bus at the same address, the service back on it.
    let bus2 = Bus::start(dir.path());
    assert_eq!(bus2.address, bus.address);
    let _svc2 = sd.serve(&bus2.address).await;
    wait_for("a new Subscribe", Duration::from_secs(15), || {
        sd.subscribes() > subscribed_before
    })
    .await;
    memory.set_healthy(false);
    wait_for(
        "a restart over the new bus",
        Duration::from_secs(15),
        || !sd.calls(MEMORY).is_empty(),
    )
    .await;
    let log = wd.log();
    assert!(log.contains("event=dbus_lost"), "{log}");
    assert_eq!(log.matches("event=dbus_connected").count(), 2, "{log}");
}
