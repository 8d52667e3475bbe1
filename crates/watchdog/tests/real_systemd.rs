//! The watchdog against a REAL systemd: `systemd --user` owns `org.freedesktop.systemd1` on
//! the private bus and runs real units. Nothing here is the test service's behaviour: job
//! signals, InvocationID, ExecMainStatus, GetUnit's NoSuchUnit and LoadUnit are systemd's own.
//! Runs inside `unshare -m` with a private `/run` (systemd insists on `/run/systemd/system`).

use std::time::Duration;

use barnabee_watchdog::systemd::{DbusSystemd, SystemdApi};

use crate::common::*;

const DEMO: &str = "barnabee-demo.service";
const CRASH: &str = "barnabee-crash.service";
const INNER: &str = "BARNABEE_WATCHDOG_REAL_SYSTEMD";

#[test]
fn supervises_and_gates_real_systemd_units() {
    if std::env::var_os(INNER).is_none() {
        return rerun_with_private_run(
            "real_systemd::supervises_and_gates_real_systemd_units",
            INNER,
            &[],
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(inner(dir.path()));
}

async fn inner(dir: &std::path::Path) {
    let bus = Bus::start(dir);
    let manager = UserManager::start(
        dir,
        &bus.address,
        &[
            (DEMO, "[Service]\nExecStart=/bin/sleep 120\n"),
            (CRASH, "[Service]\nExecStart=/bin/sh -c 'exit 3'\n"),
        ],
    );
    let client = DbusSystemd::new(
        Some(bus.address.clone()),
        Duration::from_secs(5),
        Duration::from_secs(20),
    );
    let mut ready = false;
    for _ in 0..200 {
        if client.connect().await.is_ok() {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        ready,
        "systemd --user never answered on the bus: {}",
        std::fs::read_to_string(&manager.log).unwrap_or_default()
    );

    // The client against systemd itself.
    let ghost = client.unit_status("barnabee-ghost.service").await.unwrap();
    assert_eq!(
        ghost.active_state, "inactive",
        "GetUnit -> NoSuchUnit -> LoadUnit"
    );
    let t = std::time::Instant::now();
    assert_eq!(client.start_unit(DEMO).await.unwrap(), "done");
    let start_took = t.elapsed();
    let first = client.unit_status(DEMO).await.unwrap();
    assert_eq!(
        (first.active_state.as_str(), first.sub_state.as_str()),
        ("active", "running")
    );
    assert_eq!(first.invocation_id.len(), 32, "{first:?}");
    assert!(
        first.active_enter_timestamp_us > 1_600_000_000_000_000,
        "{first:?}"
    );
    assert_eq!(first.n_restarts, Some(0));
    let listed = client
        .list_units(&["barnabee-*.service".into()])
        .await
        .unwrap();
    assert!(
        listed
            .iter()
            .any(|u| u.name == DEMO && u.active_state == "active"),
        "{listed:?}"
    );
    let t = std::time::Instant::now();
    assert_eq!(client.restart_unit(DEMO).await.unwrap(), "done");
    let restart_took = t.elapsed();
    let second = client.unit_status(DEMO).await.unwrap();
    assert_ne!(
        second.invocation_id, first.invocation_id,
        "a restart is a new invocation"
    );

    // The gate passes on active and healthy units; `bus_address` from the config wins over
    // $DBUS_SYSTEM_BUS_ADDRESS.
    let healthy = HealthServer::start(true).await;
    let state = dir.join("state");
    let bus_key = format!("bus_address = \"{}\"\n", bus.address);
    let gate_cfg = dir.join("gate.toml");
    std::fs::write(
        &gate_cfg,
        bus_key.clone()
            + &config(
                &state,
                &[(DEMO, &healthy.url)],
                "",
                "[gate]\npoll_interval = 0.1\n",
            ),
    )
    .unwrap();
    let out = tokio::process::Command::new(BIN)
        .arg("--config")
        .arg(&gate_cfg)
        .args(["gate", "--timeout", "10s"])
        .env("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent")
        .output()
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The daemon: an active but unhealthy unit is restarted (a new invocation); a unit that
    // keeps crashing is started until the breaker opens.
    let sick = HealthServer::start(false).await;
    let text = bus_key
        + &config(
            &state,
            &[(DEMO, &sick.url)],
            "backoff_initial = 0.2\nmax_restarts = 2\nwindow = 60",
            "",
        )
        + &format!("[[units]]\nname = \"{CRASH}\"\n");
    let wd = Watchdog::start(dir, &text, "unix:path=/nonexistent").await;
    wait_for(
        "a restart of the unhealthy unit",
        Duration::from_secs(20),
        || {
            incident_rows(&state)
                .iter()
                .any(|r| r.1 == DEMO && r.3 == "restart")
        },
    )
    .await;
    let third = client.unit_status(DEMO).await.unwrap();
    assert_ne!(
        third.invocation_id, second.invocation_id,
        "the watchdog's restart did not reach systemd"
    );
    wait_for(
        "the breaker on the crashing unit",
        Duration::from_secs(20),
        || {
            incident_rows(&state)
                .iter()
                .any(|r| r.1 == CRASH && r.2 == "circuit_breaker" && r.0 == "P1")
        },
    )
    .await;
    let rows = incident_rows(&state);
    let starts: Vec<_> = rows
        .iter()
        .filter(|r| r.1 == CRASH && r.3 == "start")
        .collect();
    assert_eq!(starts.len(), 2, "{rows:?}");
    // The first start found it never started (inactive/dead); the second found it crashed.
    assert!(
        starts[0].4.contains("ActiveState=inactive"),
        "{}",
        starts[0].4
    );
    assert!(
        starts[1].4.contains("ActiveState=failed") && starts[1].4.contains("exit status 3"),
        "ExecMainStatus not read: {}",
        starts[1].4
    );
    let crash = client.unit_status(CRASH).await.unwrap();
    assert_eq!(
        (crash.active_state.as_str(), crash.exec_main_status),
        ("failed", Some(3))
    );
    let restarts = rows
        .iter()
        .filter(|r| r.1 == DEMO && r.3 == "restart")
        .count();
    drop(wd);
    println!(
        "real systemd: StartUnit+JobRemoved {start_took:?}, RestartUnit+JobRemoved {restart_took:?}; \
         watchdog: {restarts} restart(s) of {DEMO}, {} start(s) of {CRASH}, breaker open",
        starts.len()
    );
    drop(manager);
}
