#![allow(clippy::unwrap_used)]
//! Embedded replication to a file replica: every shipped TXID restores byte-identical to the
//! source at that point, across checkpoints and WAL restarts; sync policy; retries.

mod common;

use std::time::Duration;

use barnabee_replicator::client::{Client, FileClient, MemoryClient, ReplicaClient};
use barnabee_replicator::restore::{self, Target};
use barnabee_replicator::{Options, Replication};

fn fast() -> Options {
    Options {
        sync_interval: Duration::from_millis(200),
        ..Options::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shipped_txid_restores_byte_identical_across_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let app = common::app_db(&db);
    let replica = dir.path().join("replica");
    let opts = Options {
        min_checkpoint_page_count: 20,
        level_intervals: vec![],
        ..fast()
    };
    let repl = Replication::start_with_client(&db, Client::File(FileClient::new(&replica)), opts)
        .await
        .unwrap();
    let mut images = Vec::new();
    for round in 0..12 {
        for i in 0..40 {
            app.execute(
                "INSERT OR REPLACE INTO kv(k, v) VALUES (?1, ?2)",
                (round * 17 + i, "x".repeat(300 + i as usize)),
            )
            .unwrap();
        }
        if round % 4 == 3 {
            app.execute("DELETE FROM kv WHERE k % 3 = 0", []).unwrap();
        }
        // The replicator's own checkpoint may commit (the user_version cookie that restarts
        // the WAL) at any time: take the image between two syncs that agree.
        loop {
            let txid = repl.sync_now().await.unwrap();
            let image = common::source_image(&db);
            if repl.sync_now().await.unwrap() == txid {
                images.push((txid, image));
                break;
            }
        }
        // Give the loop a chance to checkpoint between rounds.
        tokio::time::sleep(Duration::from_millis(120)).await;
    }
    // Idle: no runaway checkpoints producing TXIDs (at most our one WAL-restart cookie).
    let idle = repl.status().last_shipped_txid;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        repl.status().last_shipped_txid <= idle + 1,
        "TXIDs keep coming while idle"
    );
    let st = repl.status();
    assert_eq!(st.consecutive_errors, 0);
    assert!(st.last_shipped_txid >= images.last().unwrap().0);
    assert!(repl.metrics().checkpoints.get() > 0, "no checkpoint ran");
    repl.shutdown(Duration::from_secs(5)).await.unwrap();
    let client = FileClient::new(&replica);
    // TXIDs are consecutive from 1.
    let l0 = client.list(0, false).await.unwrap();
    for (i, f) in l0.iter().enumerate() {
        assert_eq!((f.min_txid, f.max_txid), (i as u64 + 1, i as u64 + 1));
    }
    for (i, (txid, image)) in images.iter().enumerate() {
        let out = dir.path().join(format!("restored-{i}.db"));
        let r = restore::restore(&client, &out, Target::Txid(*txid))
            .await
            .unwrap();
        assert_eq!(r.txid, *txid);
        assert!(
            std::fs::read(&out).unwrap() == *image,
            "TXID {txid}: restored image differs from source"
        );
    }
    // The WAL was restarted by our checkpoints without full snapshots after TXID 1:
    // later L0 files are small.
    let sizes: Vec<u64> = l0.iter().skip(1).map(|f| f.size).collect();
    assert!(!sizes.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sporadic_commits_ship_at_once_and_load_is_batched() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let app = common::app_db(&db);
    let mem = std::sync::Arc::new(MemoryClient::new());
    let opts = Options {
        sync_interval: Duration::from_secs(1),
        level_intervals: vec![],
        ..Options::default()
    };
    let repl = Replication::start_with_client(&db, Client::Memory(mem.clone()), opts)
        .await
        .unwrap();
    // Initial snapshot.
    let t0 = repl.sync_now().await.unwrap();
    assert_eq!(t0, 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // A sporadic commit ships without waiting for a sync interval.
    let start = std::time::Instant::now();
    app.execute("INSERT INTO kv(k, v) VALUES (1, 'a')", [])
        .unwrap();
    loop {
        if repl.status().last_shipped_txid == 2 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_millis(900),
            "sporadic commit not shipped within 900 ms (sync interval 1 s, previous upload >1 s ago)"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Under load (commits every 5 ms for 2.2 s) at most one upload per second.
    let before = repl.status().last_shipped_txid;
    let start = std::time::Instant::now();
    let mut k = 100;
    while start.elapsed() < Duration::from_millis(2200) {
        app.execute("INSERT INTO kv(k, v) VALUES (?1, 'load')", [k])
            .unwrap();
        k += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
    let shipped = repl.status().last_shipped_txid - before;
    assert!(
        shipped <= 3,
        "{shipped} uploads in 2.2 s under load (limit 1/s)"
    );
    assert!(shipped >= 1);
    let last = repl.shutdown(Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        mem.list(0, false).await.unwrap().len() as u64,
        last,
        "one L0 object per TXID"
    );
    assert!(
        u64::from(mem.puts()) <= last + 1,
        "{} PUTs for {last} TXIDs + 1 snapshot",
        mem.puts()
    );
}

/// Under a steady write load with a checkpoint due at nearly every upload, the level-0 PUTs
/// (regular and checkpoint ones together) stay within one per sync interval: the PUTs made
/// while the load ran are counted against the number of intervals that elapsed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_under_load_keep_one_put_per_sync_interval() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let app = common::app_db(&db);
    let mem = std::sync::Arc::new(MemoryClient::new());
    let interval = Duration::from_millis(200);
    let opts = Options {
        sync_interval: interval,
        // A checkpoint is wanted after every upload of this load (~50 frames per interval).
        min_checkpoint_page_count: 10,
        level_intervals: vec![],
        ..Options::default()
    };
    let repl = Replication::start_with_client(&db, Client::Memory(mem.clone()), opts)
        .await
        .unwrap();
    repl.sync_now().await.unwrap();
    let puts_before = mem.puts();
    let checkpoints_before = repl.metrics().checkpoints.get();
    let intervals = 15u32;
    let load = tokio::task::spawn_blocking(move || {
        let start = std::time::Instant::now();
        let mut k = 0i64;
        while start.elapsed() < interval * intervals {
            app.execute("INSERT INTO kv(k, v) VALUES (?1, 'steady')", [k])
                .unwrap();
            k += 1;
            std::thread::sleep(Duration::from_millis(4));
        }
        (start.elapsed(), k)
    });
    let (elapsed, commits) = load.await.unwrap();
    let puts = mem.puts() - puts_before;
    let checkpoints = repl.metrics().checkpoints.get() - checkpoints_before;
    let elapsed_intervals = (elapsed.as_secs_f64() / interval.as_secs_f64()).floor() as u32;
    eprintln!(
        "{commits} commits, {puts} PUTs, {checkpoints} checkpoints in {elapsed_intervals} intervals"
    );
    assert!(commits > 300, "load too thin: {commits} commits");
    assert!(
        checkpoints >= 3,
        "only {checkpoints} checkpoints ran: the test does not exercise checkpoints under load"
    );
    assert!(
        puts <= elapsed_intervals + 2,
        "{puts} level-0 PUTs in {elapsed_intervals} sync intervals under load ({checkpoints} checkpoints)"
    );
    assert!(puts >= 2, "only {puts} PUTs under load");
    // Nothing was lost: the replica restores to the source.
    let txid = repl.sync_now().await.unwrap();
    let image = common::source_image(&db);
    repl.shutdown(Duration::from_secs(5)).await.unwrap();
    let l0 = mem.list(0, false).await.unwrap();
    assert_eq!(l0.len() as u64, txid, "gap in TXIDs");
    let out = dir.path().join("out.db");
    restore::restore(&*mem, &out, Target::Latest).await.unwrap();
    assert!(
        std::fs::read(&out).unwrap() == image,
        "restore differs from source"
    );
}

/// A backlog (here built during an outage) larger than `max_sync_wal_bytes` ships as several
/// level-0 files of whole transactions, one per sync interval, without further commits to wake
/// the loop; nothing is lost and TXIDs stay gap-free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backlog_ships_in_parts_of_max_sync_wal_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let app = common::app_db(&db);
    let mem = std::sync::Arc::new(MemoryClient::new());
    let limit = 64u64 << 10;
    let opts = Options {
        sync_interval: Duration::from_millis(100),
        max_backoff: Duration::from_millis(200),
        max_sync_wal_bytes: limit,
        min_checkpoint_page_count: 100_000,
        level_intervals: vec![],
        ..Options::default()
    };
    let repl = Replication::start_with_client(&db, Client::Memory(mem.clone()), opts)
        .await
        .unwrap();
    repl.sync_now().await.unwrap();
    mem.fail_puts
        .store(u32::MAX, std::sync::atomic::Ordering::SeqCst);
    app.execute("INSERT INTO kv(k, v) VALUES (0, 'first')", [])
        .unwrap();
    while repl.status().consecutive_errors == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let wal = |db: &std::path::Path| {
        std::fs::metadata(db.with_extension("db-wal"))
            .unwrap()
            .len()
    };
    let wal_before = wal(&db);
    for i in 1..=250 {
        app.execute(
            "INSERT INTO kv(k, v) VALUES (?1, ?2)",
            (i, "b".repeat(2500)),
        )
        .unwrap();
    }
    let backlog = wal(&db) - wal_before;
    assert!(
        backlog > 8 * limit,
        "backlog of {backlog} bytes is too small"
    );
    let image = common::source_image(&db);
    let shipped_before = repl.status().last_shipped_txid;
    mem.fail_puts.store(0, std::sync::atomic::Ordering::SeqCst);
    // No sync_now and no new commit: the loop ships the parts on its own.
    let start = std::time::Instant::now();
    loop {
        let st = repl.status();
        if st.consecutive_errors == 0 && st.lag_seconds == 0.0 {
            let out = dir.path().join("probe.db");
            let _ = std::fs::remove_file(&out);
            restore::restore(&*mem, &out, Target::Latest).await.unwrap();
            if std::fs::read(&out).unwrap() == image {
                break;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "backlog not shipped: {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let txid = repl.sync_now().await.unwrap();
    repl.shutdown(Duration::from_secs(5)).await.unwrap();
    let l0 = mem.list(0, false).await.unwrap();
    assert_eq!(l0.len() as u64, txid, "gap in TXIDs");
    // The pending first file, then the backlog in parts of about `limit` WAL bytes.
    let parts: Vec<i64> = {
        let mut v = Vec::new();
        for f in l0.iter().filter(|f| f.min_txid > shipped_before + 1) {
            let b = mem.get(0, f.min_txid, f.max_txid).await.unwrap();
            v.push(
                barnabee_replicator::ltx::decode_header(&b)
                    .unwrap()
                    .wal_size,
            );
        }
        v
    };
    assert!(
        parts.len() as u64 >= backlog / limit / 2,
        "{} files for a backlog of {backlog} bytes (limit {limit}): {parts:?}",
        parts.len()
    );
    // Whole transactions: a part ends at the first commit past the limit.
    assert!(
        parts.iter().all(|&w| w as u64 <= limit + 4 * 4120),
        "a part exceeds the limit: {parts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_uploads_are_retried_without_txid_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let app = common::app_db(&db);
    let mem = std::sync::Arc::new(MemoryClient::new());
    let repl = Replication::start_with_client(&db, Client::Memory(mem.clone()), fast())
        .await
        .unwrap();
    repl.sync_now().await.unwrap();
    mem.fail_puts.store(4, std::sync::atomic::Ordering::SeqCst);
    for i in 0..5 {
        app.execute("INSERT INTO kv(k, v) VALUES (?1, 'during outage')", [i])
            .unwrap();
    }
    let e = repl.sync_now().await.unwrap_err().to_string();
    assert!(e.contains("injected failure"), "{e}");
    assert!(repl.status().consecutive_errors >= 1);
    assert!(repl.status().last_error.unwrap().contains("injected"));
    assert!(
        repl.metrics()
            .errors
            .get_or_create(&barnabee_replicator::metrics::OpLabel { op: "put".into() })
            .get()
            >= 1
    );
    // Retries with backoff until the outage ends (3 more failures), then ships.
    let start = std::time::Instant::now();
    while mem.fail_puts.load(std::sync::atomic::Ordering::SeqCst) > 0
        || repl.status().consecutive_errors > 0
    {
        app.execute(
            "INSERT INTO kv(k, v) VALUES (?1, 'more')",
            [start.elapsed().as_micros() as i64 + 100],
        )
        .unwrap();
        assert!(start.elapsed() < Duration::from_secs(10), "did not recover");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let txid = repl.sync_now().await.unwrap();
    assert_eq!(repl.status().consecutive_errors, 0);
    let image = common::source_image(&db);
    repl.shutdown(Duration::from_secs(5)).await.unwrap();
    let l0 = mem.list(0, false).await.unwrap();
    assert_eq!(l0.len() as u64, txid, "gap in TXIDs");
    for (i, f) in l0.iter().enumerate() {
        assert_eq!(f.min_txid, i as u64 + 1);
    }
    let out = dir.path().join("out.db");
    restore::restore(&*mem, &out, Target::Latest).await.unwrap();
    assert!(std::fs::read(&out).unwrap() == image);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_resumes_incrementally_or_with_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let app = common::app_db(&db);
    for i in 0..200 {
        app.execute(
            "INSERT INTO kv(k, v) VALUES (?1, ?2)",
            (i + 1000, "y".repeat(300)),
        )
        .unwrap();
    }
    let replica = dir.path().join("replica");
    for round in 0..3 {
        let repl =
            Replication::start_with_client(&db, Client::File(FileClient::new(&replica)), fast())
                .await
                .unwrap();
        app.execute("INSERT INTO kv(k, v) VALUES (?1, 'r')", [round])
            .unwrap();
        repl.sync_now().await.unwrap();
        repl.shutdown(Duration::from_secs(5)).await.unwrap();
    }
    let client = FileClient::new(&replica);
    let l0 = client.list(0, false).await.unwrap();
    for (i, f) in l0.iter().enumerate() {
        assert_eq!(f.min_txid, i as u64 + 1);
    }
    // TXID 1 is the full snapshot; the restarts resumed from the recorded position, so their
    // files hold only the changed pages.
    assert!(l0.len() >= 3);
    for f in &l0[1..] {
        assert!(
            f.size * 4 < l0[0].size,
            "TXID {} is {} bytes, snapshot {}",
            f.min_txid,
            f.size,
            l0[0].size
        );
    }
    let image = common::source_image(&db);
    let out = dir.path().join("out.db");
    restore::restore(&client, &out, Target::Latest)
        .await
        .unwrap();
    assert!(std::fs::read(&out).unwrap() == image);
    // A position that does not match the replica (replica reset) falls back to a snapshot.
    let replica2 = dir.path().join("replica2");
    let repl =
        Replication::start_with_client(&db, Client::File(FileClient::new(&replica2)), fast())
            .await
            .unwrap();
    app.execute("INSERT INTO kv(k, v) VALUES (99, 'z')", [])
        .unwrap();
    repl.sync_now().await.unwrap();
    repl.shutdown(Duration::from_secs(5)).await.unwrap();
    let out2 = dir.path().join("out2.db");
    restore::restore(&FileClient::new(&replica2), &out2, Target::Latest)
        .await
        .unwrap();
    assert!(std::fs::read(&out2).unwrap() == common::source_image(&db));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_checkpoints_by_the_application_stay_correct() {
    // Standalone situation: the application checkpoints on its own (autocheckpoint 8 pages).
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let app = common::app_db(&db);
    app.execute_batch("PRAGMA wal_autocheckpoint=8").unwrap();
    let mem = std::sync::Arc::new(MemoryClient::new());
    let repl = Replication::start_with_client(&db, Client::Memory(mem.clone()), fast())
        .await
        .unwrap();
    let mut images = Vec::new();
    for round in 0..8 {
        for i in 0..25 {
            app.execute(
                "INSERT OR REPLACE INTO kv(k, v) VALUES (?1, ?2)",
                (round * 7 + i, "f".repeat(500)),
            )
            .unwrap();
        }
        loop {
            let txid = repl.sync_now().await.unwrap();
            let image = common::source_image(&db);
            if repl.sync_now().await.unwrap() == txid {
                images.push((txid, image));
                break;
            }
        }
    }
    repl.shutdown(Duration::from_secs(5)).await.unwrap();
    for (txid, image) in images {
        let out = dir.path().join(format!("r{txid}.db"));
        restore::restore(&*mem, &out, Target::Txid(txid))
            .await
            .unwrap();
        assert!(std::fs::read(&out).unwrap() == image, "TXID {txid}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_register_into_the_daemon_registry() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let app = common::app_db(&db);
    let repl = Replication::start_with_client(
        &db,
        Client::Memory(std::sync::Arc::new(MemoryClient::new())),
        fast(),
    )
    .await
    .unwrap();
    let m = barnabee_service::metrics::Metrics::new();
    repl.register_metrics(&m);
    app.execute("INSERT INTO kv(k, v) VALUES (1, 'm')", [])
        .unwrap();
    let txid = repl.sync_now().await.unwrap();
    let text = m.encode();
    for name in [
        "barnabee_replication_lag_seconds",
        "barnabee_replication_uploaded_bytes_total{level=\"0\"}",
        "barnabee_replication_uploaded_objects_total{level=\"0\"}",
        "barnabee_replication_checkpoints_total",
        "barnabee_replication_retry_backoff_seconds 0.0",
    ] {
        assert!(text.contains(name), "{name} missing:\n{text}");
    }
    assert!(
        text.contains(&format!("barnabee_replication_last_shipped_txid {txid}")),
        "{text}"
    );
    repl.shutdown(Duration::from_secs(5)).await.unwrap();
}

/// Like the daemon embedding us: the application closes its connection (with
/// NO_CKPT_ON_CLOSE) and then shuts replication down, so the replicator's connection is the
/// last one. Closing it must not checkpoint and delete the WAL, and `shutdown` must return
/// only after it is closed: every restart then resumes incrementally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_without_checkpoint_and_restarts_resume() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let open_app = || {
        let c = common::app_db(&db);
        c.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        )
        .unwrap();
        c
    };
    let app = open_app();
    for i in 0..200 {
        app.execute(
            "INSERT INTO kv(k, v) VALUES (?1, ?2)",
            (i + 1000, "y".repeat(300)),
        )
        .unwrap();
    }
    drop(app);
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    let wal = std::path::PathBuf::from(wal);
    let replica = dir.path().join("replica");
    for round in 0..5 {
        let repl =
            Replication::start_with_client(&db, Client::File(FileClient::new(&replica)), fast())
                .await
                .unwrap();
        let app = open_app();
        app.execute("INSERT INTO kv(k, v) VALUES (?1, 'r')", [round])
            .unwrap();
        repl.sync_now().await.unwrap();
        app.execute("INSERT INTO kv(k, v) VALUES (?1, 's')", [round + 100])
            .unwrap();
        drop(app);
        repl.shutdown(Duration::from_secs(5)).await.unwrap();
        // `shutdown` returned only after the replicator's connection was closed.
        let open: Vec<_> = std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read_link(e.path()).ok())
            .filter(|t| t.starts_with(dir.path()))
            .collect();
        assert!(open.is_empty(), "round {round}: still open: {open:?}");
        // Every connection is closed now: the WAL must still be there, frames included.
        let len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
        assert!(len > 32, "round {round}: WAL is {len} bytes after shutdown");
    }
    let client = FileClient::new(&replica);
    let l0 = client.list(0, false).await.unwrap();
    assert!(l0.len() >= 10, "{} L0 files", l0.len());
    for (i, f) in l0.iter().enumerate() {
        assert_eq!(f.min_txid, i as u64 + 1);
    }
    assert!(full_snapshot(&client, 0, 1).await);
    for f in &l0[1..] {
        assert!(
            !full_snapshot(&client, 0, f.min_txid).await,
            "TXID {} holds every page: a restart did not resume",
            f.min_txid
        );
    }
    let out = dir.path().join("out.db");
    restore::restore(&client, &out, Target::Latest)
        .await
        .unwrap();
    assert!(std::fs::read(&out).unwrap() == common::source_image(&db));
}

/// After `restore_if_missing`, the first start continues from the restored TXID (even when
/// the application wrote before replication started) instead of shipping a full snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_if_missing_then_start_resumes_from_the_restored_txid() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.db");
    let replica_dir = dir.path().join("replica");
    let replica = barnabee_replicator::ReplicaConfig::from_url(replica_dir.to_str().unwrap());
    {
        let app = common::app_db(&src);
        for i in 0..200 {
            app.execute("INSERT INTO kv(k, v) VALUES (?1, ?2)", (i, "y".repeat(300)))
                .unwrap();
        }
        let repl = Replication::start(&src, &replica, fast()).await.unwrap();
        repl.sync_now().await.unwrap();
        repl.shutdown(Duration::from_secs(5)).await.unwrap();
    }
    let client = FileClient::new(&replica_dir);
    let before = client.list(0, false).await.unwrap();
    let restored_txid = before.iter().map(|f| f.max_txid).max().unwrap();

    // A new machine: the database is missing and comes back from the replica.
    let db = dir.path().join("new.db");
    let r = barnabee_replicator::restore_if_missing(&db, &replica)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.txid, restored_txid);
    let app = common::app_db(&db);
    app.execute("INSERT INTO kv(k, v) VALUES (1000, 'before start')", [])
        .unwrap();
    let repl = Replication::start(&db, &replica, fast()).await.unwrap();
    app.execute("INSERT INTO kv(k, v) VALUES (1001, 'after start')", [])
        .unwrap();
    let txid = repl.sync_now().await.unwrap();
    repl.shutdown(Duration::from_secs(5)).await.unwrap();
    assert!(txid > restored_txid);
    let after = client.list(0, false).await.unwrap();
    let new: Vec<_> = after
        .iter()
        .filter(|f| f.min_txid > restored_txid)
        .collect();
    assert!(!new.is_empty());
    assert_eq!(new[0].min_txid, restored_txid + 1);
    assert!(full_snapshot(&client, 0, 1).await);
    for f in &new {
        assert!(
            !full_snapshot(&client, 0, f.min_txid).await,
            "TXID {} holds every page: the start after the restore did not resume",
            f.min_txid
        );
    }
    let out = dir.path().join("out.db");
    restore::restore(&client, &out, Target::Latest)
        .await
        .unwrap();
    assert!(std::fs::read(&out).unwrap() == common::source_image(&db));

    // If the database changed under the recorded position (checkpointed before start),
    // the start falls back to a snapshot and the replica still restores correctly.
    let db2 = dir.path().join("new2.db");
    barnabee_replicator::restore_if_missing(&db2, &replica)
        .await
        .unwrap()
        .unwrap();
    let app2 = common::app_db(&db2);
    app2.execute("INSERT INTO kv(k, v) VALUES (2000, 'x')", [])
        .unwrap();
    app2.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    let replica2 = barnabee_replicator::ReplicaConfig::from_url(replica_dir.to_str().unwrap());
    let repl = Replication::start(&db2, &replica2, fast()).await.unwrap();
    repl.sync_now().await.unwrap();
    repl.shutdown(Duration::from_secs(5)).await.unwrap();
    let out2 = dir.path().join("out2.db");
    restore::restore(&client, &out2, Target::Latest)
        .await
        .unwrap();
    assert!(std::fs::read(&out2).unwrap() == common::source_image(&db2));
}

/// Whether the L0 file for `txid` carries every page of the database (a full snapshot, what
/// the replicator ships when it cannot resume) rather than the changed pages only.
async fn full_snapshot(client: &FileClient, level: u8, txid: u64) -> bool {
    let bytes = client.get(level, txid, txid).await.unwrap();
    let d = barnabee_replicator::ltx::decode(&bytes).unwrap();
    assert!(d.header.commit > 10, "test database too small");
    d.pages.len() as u32 + 1 >= d.header.commit
}
