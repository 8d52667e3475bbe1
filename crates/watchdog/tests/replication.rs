//! The incident log replicates (`[replication]`, the replicator's embed module): a
//! replacement machine (the state directory gone) gets the household's incident history back
//! before the watchdog serves.

use std::time::Duration;

use crate::common::*;

const MEMORY: &str = "barnabee-memory.service";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_incident_log_comes_back_on_a_replacement_machine() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::start(dir.path());
    let sd = Systemd::new(&[(MEMORY, FakeUnit::active())]);
    let _svc = sd.serve(&bus.address).await;
    let memory = HealthServer::start(false).await;
    let replica = dir.path().join("replica");
    let section = format!(
        "[replication]\ntype = \"file\"\npath = \"{}\"\nsync_interval = 1\n",
        replica.display()
    );
    let old = dir.path().join("old");
    let cfg = config(
        &old,
        &[(MEMORY, &memory.url)],
        "backoff_initial = 0.2\nbackoff_max = 1\nmax_restarts = 10\nwindow = 60",
        &section,
    );
    std::fs::create_dir_all(dir.path().join("a")).unwrap();
    let wd = Watchdog::start(&dir.path().join("a"), &cfg, &bus.address).await;
    wait_for("2 restart incidents", Duration::from_secs(15), || {
        incident_rows(&old)
            .iter()
            .filter(|r| r.3 == "restart")
            .count()
            >= 2
    })
    .await;
    let (status, health) = wd.get("/health").await;
    assert!(
        health.contains("\"replication\"") && health.contains("replica file://"),
        "{status} {health}"
    );
    let (_, metrics) = wd.get("/metrics").await;
    assert!(
        metrics.contains("barnabee_replication_last_shipped_txid "),
        "{metrics}"
    );
    // SIGTERM: the drain, then what is committed ships.
    let log = wd.stderr.clone();
    drop(wd);
    let before = incident_rows(&old);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("stopped at TXID"), "{text}");

    // A new machine: an empty state directory, the same replica, nothing supervised (so no
    // new incidents): every incident of the old one is there, through the API too.
    let new = dir.path().join("new");
    let cfg = config(&new, &[], "", &section);
    std::fs::create_dir_all(dir.path().join("b")).unwrap();
    let wd = Watchdog::start(&dir.path().join("b"), &cfg, &bus.address).await;
    assert!(wd.log().contains("restored"), "{}", wd.log());
    assert_eq!(incident_rows(&new), before);
    let (status, body) = wd.get("/v1/incidents?limit=1000").await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let restarts = v["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["action"] == "restart")
        .count();
    assert!(restarts >= 2, "{body}");
}
