//! Backup verification (`[replication.verify]`, `POST /v1/backup/verify`,
//! `GET /v1/backup/status`) against the real daemon and a file replica in a tempdir:
//! - a scheduled and a requested verification of a real replica pass, set the metrics and
//!   `/health` `backup_verify`, and survive a restart (`<db>.backup-verify.json`); what a
//!   killed verification left in the temporary directory is removed at start;
//! - a corrupted LTX object fails naming it; the live database is untouched and `/health`
//!   degrades (non-critical);
//! - verification while writes continue compares the live database at the shipped TXID;
//! - a replica path replaced by a regular file fails clearly and the schedule retries.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use barnabee_replicator::ReplicaConfig;
use barnabee_replicator::client::ReplicaClient;
use barnabee_replicator::restore::{Target, plan};

use crate::common::{Daemon, client, small_dims};

/// A daemon in `state/` replicating to `replica/`, with `verify` as `[replication.verify]`.
fn setup(dir: &Path, verify: &str) -> (PathBuf, PathBuf, String) {
    let state = dir.join("state");
    let replica = dir.join("replica");
    std::fs::create_dir_all(&state).unwrap();
    let extra = format!(
        "{}[replication]\ntype = \"file\"\npath = \"{}\"\nsync_interval = 0.1\nshutdown_timeout = 5\n[replication.verify]\n{verify}",
        small_dims(),
        replica.display()
    );
    (state, replica, extra)
}

async fn post_memory(d: &Daemon, summary: &str) {
    let r = client()
        .post(d.url("/v1/memories"))
        .json(&json!({"summary": summary, "memory_type": "fact", "owner": "a"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
}

pub(crate) async fn get(d: &Daemon, path: &str) -> Value {
    client()
        .get(d.url(path))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

pub(crate) async fn verify(d: &Daemon) -> (StatusCode, Value) {
    let r = client()
        .post(d.url("/v1/backup/verify"))
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap())
}

async fn metrics(d: &Daemon) -> String {
    client()
        .get(d.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of the sample line starting with `prefix`.
fn sample(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
}

/// Wait until `/health`'s `backup_verify` check satisfies `pred`.
pub(crate) async fn wait_check(d: &Daemon, pred: impl Fn(&Value) -> bool, what: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let h = get(d, "/health").await;
        if pred(&h["checks"]["backup_verify"]) {
            return h;
        }
        assert!(Instant::now() < deadline, "{what}: {h}\n{}", d.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Flip bytes in the newest object a restore of the file replica at `url` uses; returns
/// the object's name.
async fn corrupt_newest_object(url: &str) -> String {
    let client = ReplicaConfig::from_url(url).client().unwrap();
    let files = plan(&client, Target::Latest).await.unwrap();
    let f = files.last().unwrap();
    let object = client.object_name(f.level, f.min_txid, f.max_txid);
    let path = client.local_path(f.level, f.min_txid, f.max_txid).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 8] {
        *b ^= 0x5a;
    }
    std::fs::write(&path, &bytes).unwrap();
    object
}

/// Wait until the replica holds everything committed (the replication check's TXID stops
/// being 0).
async fn wait_shipped(d: &Daemon) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let h = get(d, "/health").await;
        let detail = h["checks"]["replication"]["detail"].as_str().unwrap_or("");
        if h["checks"]["replication"]["ok"] == true && !detail.contains("TXID 0,") {
            return;
        }
        assert!(Instant::now() < deadline, "never shipped: {h}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_replica_verifies_on_schedule_and_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let (state, replica, extra) = setup(dir.path(), "first_after = 1\n");
    // What a verification killed with -9 leaves behind: removed at the next start.
    let leftover = state.join(".backup-verify/verify-1-0");
    std::fs::create_dir_all(&leftover).unwrap();
    std::fs::write(leftover.join("memory.db.tmp"), b"partial").unwrap();
    let mut d = Daemon::start(&state, &extra);
    let deadline = Instant::now() + Duration::from_secs(10);
    while leftover.exists() {
        assert!(Instant::now() < deadline, "leftover not removed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The series exist before any verification: 0 = never verified.
    let m = metrics(&d).await;
    assert!(
        m.contains("barnabee_backup_verify_failures_total{replica=\"file://"),
        "{m}"
    );
    for i in 0..10 {
        post_memory(&d, &format!("memory {i}: the bins go out on Tuesday")).await;
    }
    wait_shipped(&d).await;
    // The scheduled run (first_after = 1 s).
    let h = wait_check(
        &d,
        |c| c["detail"].as_str().unwrap_or("").contains("ago: TXID"),
        "no scheduled verification",
    )
    .await;
    let c = &h["checks"]["backup_verify"];
    assert_eq!(c["ok"], true, "{h}");
    assert_eq!(c["critical"], false, "{h}");
    // On request: all the writes are in it.
    let (code, v) = verify(&d).await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["trigger"], "request");
    assert_eq!(v["integrity_check"], "ok");
    assert_eq!(v["replica"], format!("file://{}", replica.display()));
    assert!(v["txid"].as_u64().unwrap() > 1, "{v}");
    let tables = v["tables"].as_array().unwrap();
    let memories = tables.iter().find(|t| t["table"] == "memories").unwrap();
    assert_eq!(memories["live"], 10, "{v}");
    assert_eq!(memories["replica"], 10, "{v}");
    let m = metrics(&d).await;
    let label = format!("{{replica=\"file://{}\"}}", replica.display());
    let last = sample(
        &m,
        &format!("barnabee_backup_last_verified_timestamp_seconds{label}"),
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((now - last).abs() < 60.0, "{last} vs {now}");
    assert!(
        sample(
            &m,
            &format!("barnabee_backup_verify_duration_seconds{label}")
        ) > 0.0
    );
    assert_eq!(
        sample(&m, &format!("barnabee_backup_verify_failures_total{label}")),
        0.0
    );
    // Journal events (stderr here) with their fields.
    let log = d.log();
    assert!(
        log.contains("event=backup_verified") && log.contains("trigger=schedule"),
        "{log}"
    );
    // Status: replica, lag, restore points, last verification.
    let s = get(&d, "/v1/backup/status").await;
    assert_eq!(s["configured"], true, "{s}");
    assert_eq!(s["replica"]["type"], "file", "{s}");
    assert_eq!(s["replication"]["running"], true, "{s}");
    assert!(s["restore_points"]["from"].is_string(), "{s}");
    assert!(s["restore_points"]["to"].is_string(), "{s}");
    assert!(s["restore_points"]["objects"].as_u64().unwrap() > 0, "{s}");
    assert_eq!(s["retention"]["snapshot_retention_seconds"], 31.0 * 86400.0);
    assert_eq!(s["verification"]["last"]["ok"], true, "{s}");
    assert_eq!(s["verification"]["healthy"], true, "{s}");
    // No temporary restore left behind.
    let leftovers: Vec<_> = std::fs::read_dir(state.join(".backup-verify"))
        .unwrap()
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // A restart keeps the last good verification (metric and health).
    d.stop();
    let d = Daemon::start(
        &state,
        &extra.replace("first_after = 1", "first_after = 3600"),
    );
    let m = metrics(&d).await;
    assert_eq!(
        sample(
            &m,
            &format!("barnabee_backup_last_verified_timestamp_seconds{label}")
        ),
        last
    );
    let h = get(&d, "/health").await;
    assert_eq!(h["checks"]["backup_verify"]["ok"], true, "{h}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_object_fails_naming_it_and_leaves_the_live_database_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (state, replica, extra) = setup(dir.path(), "first_after = 3600\n");
    let d = Daemon::start(&state, &extra);
    for i in 0..10 {
        post_memory(&d, &format!("memory {i}: the dentist is on Friday")).await;
    }
    wait_shipped(&d).await;
    let (code, v) = verify(&d).await;
    assert_eq!(code, StatusCode::OK, "{v}");
    let object = corrupt_newest_object(&format!("file://{}", replica.display())).await;
    let db = state.join("memory.db");
    let before = crate::replication::dump(&db);
    let (code, v) = verify(&d).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["object"], object.as_str(), "{v}");
    let error = v["error"].as_str().unwrap();
    assert!(error.contains(&object), "{error}");
    // The live database is untouched, and nothing was left in the temp dir.
    assert_eq!(crate::replication::dump(&db), before);
    assert_eq!(
        std::fs::read_dir(state.join(".backup-verify"))
            .unwrap()
            .count(),
        0
    );
    let h = get(&d, "/health").await;
    let c = &h["checks"]["backup_verify"];
    assert_eq!(c["ok"], false, "{h}");
    assert_eq!(c["critical"], false, "{h}");
    assert!(c["detail"].as_str().unwrap().contains(&object), "{h}");
    assert_eq!(h["status"], "degraded", "{h}");
    let m = metrics(&d).await;
    let label = format!("{{replica=\"file://{}\"}}", replica.display());
    assert_eq!(
        sample(&m, &format!("barnabee_backup_verify_failures_total{label}")),
        1.0
    );
    assert!(
        d.log().contains("event=backup_verify_failed"),
        "{}",
        d.log()
    );
    // The database still serves.
    post_memory(&d, "still writable").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_while_writes_continue() {
    let dir = tempfile::tempdir().unwrap();
    let (state, _replica, extra) = setup(dir.path(), "first_after = 3600\n");
    let d = Arc::new(Daemon::start(&state, &extra));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (d, stop) = (d.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                post_memory(&d, &format!("busy evening {n}")).await;
                n += 1;
            }
            n
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut txids = Vec::new();
    for _ in 0..3 {
        let (code, v) = verify(&d).await;
        assert_eq!(code, StatusCode::OK, "{v}\n{}", d.log());
        let tables = v["tables"].as_array().unwrap();
        let m = tables.iter().find(|t| t["table"] == "memories").unwrap();
        assert_eq!(m["live"], m["replica"], "{v}");
        assert!(m["live"].as_i64().unwrap() > 0, "{v}");
        txids.push(v["txid"].as_u64().unwrap());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let written = writer.await.unwrap();
    // Writes went on during the verifications (the point here, not throughput: a loaded
    // 2-core machine managed only 10 in this window once, which the old `> 10` called a failure).
    assert!(written >= 3, "only {written} writes");
    assert!(txids.windows(2).all(|w| w[0] < w[1]), "{txids:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_replica_fails_clearly_and_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let (state, replica, extra) = setup(
        dir.path(),
        "first_after = 3600\ninterval = 1\nmax_age = 60\n",
    );
    let d = Daemon::start(&state, &extra);
    post_memory(&d, "the car's MOT is due in May").await;
    wait_shipped(&d).await;
    let (code, _) = verify(&d).await;
    assert_eq!(code, StatusCode::OK);
    // The replica's directory becomes a regular file.
    let aside = dir.path().join("replica.aside");
    std::fs::rename(&replica, &aside).unwrap();
    std::fs::write(&replica, "not a directory\n").unwrap();
    let (code, v) = verify(&d).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    let error = v["error"].as_str().unwrap();
    assert!(
        error.contains(&replica.display().to_string()) && error.contains("restore from"),
        "{error}"
    );
    let s = get(&d, "/v1/backup/status").await;
    assert!(s["restore_points"]["error"].is_string(), "{s}");
    assert_eq!(s["verification"]["healthy"], false, "{s}");
    // Back in place: the schedule (after a failure: again within min(interval, 1 h)) passes.
    std::fs::remove_file(&replica).unwrap();
    std::fs::rename(&aside, &replica).unwrap();
    let h = wait_check(
        &d,
        |c| c["ok"] == true && c["detail"].as_str().unwrap_or("").contains("ago: TXID"),
        "never verified again",
    )
    .await;
    assert_eq!(h["checks"]["backup_verify"]["critical"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_replication_the_metrics_exist_and_verify_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &small_dims());
    let m = metrics(&d).await;
    for name in [
        "# TYPE barnabee_backup_last_verified_timestamp_seconds gauge",
        "# TYPE barnabee_backup_verify_duration_seconds gauge",
        "# TYPE barnabee_backup_verify_failures counter",
    ] {
        assert!(m.contains(name), "{name} missing:\n{m}");
    }
    let (code, v) = verify(&d).await;
    assert_eq!(code, StatusCode::CONFLICT, "{v}");
    let s = get(&d, "/v1/backup/status").await;
    assert_eq!(s["configured"], false, "{s}");
    let h = get(&d, "/health").await;
    assert_eq!(h["checks"]["backup_verify"]["detail"], "not configured");
}

/// Two places: `[[replication.also]]` adds a second file replica. Each is verified alone;
/// a corrupted object in the second fails its verification (naming replica and object) while
/// the first passes, `/health` and the metrics say which, and a restore of the set still comes
/// back whole from the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_are_each_verified_and_a_corrupt_one_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (state, first, extra) = setup(dir.path(), "first_after = 3600\n");
    let second = dir.path().join("usb");
    let extra = extra.replace(
        "[replication.verify]",
        &format!(
            "[[replication.also]]\ntype = \"file\"\npath = \"{}\"\n[replication.verify]",
            second.display()
        ),
    );
    let d = Daemon::start(&state, &extra);
    for i in 0..10 {
        post_memory(&d, &format!("memory {i}: the dentist is on Friday")).await;
    }
    wait_shipped(&d).await;
    let (code, v) = verify(&d).await;
    assert_eq!(code, StatusCode::OK, "{v}");
    let names = [
        format!("file://{}", first.display()),
        format!("file://{}", second.display()),
    ];
    let replicas = v["replicas"].as_array().unwrap();
    assert_eq!(replicas.len(), 2, "{v}");
    for (r, name) in replicas.iter().zip(&names) {
        assert_eq!(r["replica"], name.as_str(), "{v}");
        assert_eq!(r["ok"], true, "{v}");
        assert_eq!(r["integrity_check"], "ok", "{v}");
        assert_eq!(r["txid"], v["txid"], "both restored the same TXID: {v}");
    }

    // Corrupt the newest object the restore of the second replica uses.
    let object = corrupt_newest_object(&names[1]).await;
    let (code, v) = verify(&d).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(
        v["replica"],
        names[1].as_str(),
        "the failing one leads: {v}"
    );
    assert_eq!(v["object"], object.as_str(), "{v}");
    assert_eq!(
        v["replicas"][0]["ok"], true,
        "the first still verifies: {v}"
    );
    let h = get(&d, "/health").await;
    let detail = h["checks"]["backup_verify"]["detail"].as_str().unwrap();
    assert_eq!(h["checks"]["backup_verify"]["ok"], false, "{h}");
    assert!(
        detail.contains(&format!("replica {} verified", names[0]))
            && detail.contains(&format!("last verification of {}", names[1]))
            && detail.contains(&object),
        "{detail}"
    );
    let m = metrics(&d).await;
    for (name, failures) in names.iter().zip([0.0, 1.0]) {
        assert_eq!(
            sample(
                &m,
                &format!("barnabee_backup_verify_failures_total{{replica=\"{name}\"}}")
            ),
            failures,
            "{name}"
        );
    }
    let st = get(&d, "/v1/backup/status").await;
    assert_eq!(st["replicas"].as_array().map(Vec::len), Some(2), "{st}");
    assert_eq!(
        st["replicas"][1]["last_verification"]["object"],
        object.as_str(),
        "{st}"
    );
    println!("two replicas: {detail}");
}
