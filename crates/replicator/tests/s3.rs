#![allow(clippy::unwrap_used)]
//! Replica-client conformance (file, memory, S3 on a loopback s3s-fs), and replication to S3
//! restored by our restore and by the real Litestream.

mod common;

use std::time::Duration;

use barnabee_replicator::client::{Client, FileClient, MemoryClient, ReplicaClient};
use barnabee_replicator::ltx::{Encoder, FLAG_NO_CHECKSUM, Header, PageEncoding};
use barnabee_replicator::restore::{self, Target};
use barnabee_replicator::{Options, Replication};

fn ltx_file(min: u64, max: u64, ts: i64) -> Vec<u8> {
    let h = Header {
        flags: FLAG_NO_CHECKSUM,
        page_size: 512,
        commit: 1,
        min_txid: min,
        max_txid: max,
        timestamp: ts,
        ..Default::default()
    };
    let mut e = Encoder::new(h, PageEncoding::Frame).unwrap();
    if min == 1 {
        e.add_page(1, &[min as u8; 512]).unwrap();
    }
    e.finish(0).unwrap()
}

async fn conformance<C: ReplicaClient>(c: &C) {
    let what = c.describe();
    c.delete_all().await.unwrap();
    for level in [0u8, 1, 9] {
        assert!(
            c.list(level, false).await.unwrap().is_empty(),
            "{what}: not empty"
        );
    }
    let ts = 1_767_225_600_123;
    let objs = [
        (0u8, 1u64, 1u64),
        (0, 2, 2),
        (0, 3, 3),
        (1, 1, 3),
        (9, 1, 3),
    ];
    for (i, &(l, min, max)) in objs.iter().enumerate() {
        c.put(
            l,
            min,
            max,
            ltx_file(min, max, ts + i as i64 * 1000).into(),
            ts + i as i64 * 1000,
        )
        .await
        .unwrap();
    }
    // Listing: sorted, sizes, levels separate.
    let l0 = c.list(0, false).await.unwrap();
    assert_eq!(
        l0.iter()
            .map(|f| (f.min_txid, f.max_txid))
            .collect::<Vec<_>>(),
        vec![(1, 1), (2, 2), (3, 3)],
        "{what}"
    );
    assert_eq!(l0[0].size, ltx_file(1, 1, ts).len() as u64, "{what}");
    assert_eq!(c.list(1, false).await.unwrap().len(), 1);
    assert_eq!(c.list(2, false).await.unwrap().len(), 0);
    // Precise creation times = the header timestamp (mtime / litestream-timestamp).
    let precise = c.list(0, true).await.unwrap();
    assert_eq!(precise[1].created_ms, ts + 1000, "{what}: creation time");
    // Get round-trips; missing objects are a matchable NotFound.
    assert_eq!(
        c.get(0, 2, 2).await.unwrap(),
        ltx_file(2, 2, ts + 1000),
        "{what}"
    );
    let e = c.get(0, 7, 7).await.unwrap_err();
    assert!(e.is_not_found(), "{what}: {e}");
    assert!(
        e.to_string()
            .contains("0000000000000007-0000000000000007.ltx"),
        "{what}: {e}"
    );
    // Delete some, then all.
    c.delete(&l0[..2]).await.unwrap();
    assert_eq!(c.list(0, false).await.unwrap().len(), 1);
    c.delete_all().await.unwrap();
    for level in [0u8, 1, 9] {
        assert!(
            c.list(level, false).await.unwrap().is_empty(),
            "{what}: delete_all left files"
        );
    }
}

#[tokio::test]
async fn conformance_file_and_memory() {
    let dir = tempfile::tempdir().unwrap();
    conformance(&FileClient::new(dir.path())).await;
    conformance(&MemoryClient::new()).await;
}

#[tokio::test]
async fn conformance_s3s_fs() {
    common::no_proxy();
    let s = common::S3Server::s3s_fs(&["bucket"]);
    let c = s.replica("bucket", "db").client().unwrap();
    assert!(matches!(c, Client::S3(_)));
    conformance(&c).await;
    // Layout: <path>/<level 4 hex>/<min>-<max>.ltx, no ltx/ segment.
    c.put(0, 1, 1, ltx_file(1, 1, 5).into(), 5).await.unwrap();
    assert!(
        s.dir
            .path()
            .join("bucket/db/0000/0000000000000001-0000000000000001.ltx")
            .exists()
    );
    // Wrong credentials are an error naming the operation.
    let mut bad = s.replica("bucket", "db");
    bad.secret_access_key = Some("wrong".into());
    let e = bad
        .client()
        .unwrap()
        .list(0, false)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("s3 list"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicate_to_s3s_fs_restores_with_ours_and_real_litestream() {
    common::no_proxy();
    replicate_to_s3(common::S3Server::s3s_fs(&["bucket"])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicate_to_garage_restores_with_ours_and_real_litestream() {
    common::no_proxy();
    replicate_to_s3(common::S3Server::garage(&["bucket"])).await;
}

#[tokio::test]
async fn conformance_garage() {
    common::no_proxy();
    let s = common::S3Server::garage(&["bucket"]);
    let c = s.replica("bucket", "db").client().unwrap();
    conformance(&c).await;
    // A large object (streamed body, the case Garage rejects with default SDK checksums).
    let big = vec![7u8; 6 << 20];
    c.put(0, 9, 9, big.clone().into(), 1).await.unwrap();
    assert_eq!(c.get(0, 9, 9).await.unwrap(), big);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_uploads_to_s3s_fs() {
    common::no_proxy();
    multipart(common::S3Server::s3s_fs(&["bucket"])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_uploads_to_garage() {
    common::no_proxy();
    multipart(common::S3Server::garage(&["bucket"])).await;
}

/// Objects above `part-size` (here the S3 minimum, 5 MiB) go up as multipart uploads (and
/// come back whole, with their `litestream-timestamp`); smaller ones as one PUT; a snapshot
/// of a database larger than a part replicates and restores byte-identical.
async fn multipart(s: common::S3Server) {
    let mut rc = s.replica("bucket", "db");
    rc.part_size = Some("5MiB".into());
    rc.concurrency = Some(2);
    let Client::S3(c) = rc.client().unwrap() else {
        panic!("not an S3 client")
    };
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let big: Vec<u8> = (0..(12 << 20) + 12345)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let ts = 1_767_225_600_123;
    c.put(9, 1, 7, big.clone().into(), ts).await.unwrap();
    assert_eq!(
        c.multipart_uploads(),
        1,
        "12 MiB with 5 MiB parts: one multipart upload"
    );
    assert!(
        c.get(9, 1, 7).await.unwrap() == big,
        "multipart object differs"
    );
    let listed = c.list(9, true).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].size, big.len() as u64);
    assert_eq!(listed[0].created_ms, ts, "litestream-timestamp lost");
    c.put(0, 1, 1, vec![1u8; 1000].into(), ts).await.unwrap();
    assert_eq!(c.multipart_uploads(), 1, "a small object is one PUT");
    // The same bytes from a spool file (how large snapshots and compactions go up): each
    // part is streamed from the file at its offset; below a part, one PUT from the file.
    let spooled = |b: &[u8]| {
        let mut w = barnabee_replicator::payload::SpoolWriter::create().unwrap();
        w.write_all(b).unwrap();
        w.finish().unwrap()
    };
    c.put(9, 1, 8, spooled(&big), ts).await.unwrap();
    assert_eq!(
        c.multipart_uploads(),
        2,
        "a spooled 12 MiB object: multipart"
    );
    assert!(
        c.get(9, 1, 8).await.unwrap() == big,
        "spooled multipart object differs"
    );
    c.put(9, 1, 9, spooled(&big[..1 << 20]), ts).await.unwrap();
    assert_eq!(
        c.multipart_uploads(),
        2,
        "a spooled 1 MiB object is one PUT"
    );
    assert!(
        c.get(9, 1, 9).await.unwrap() == big[..1 << 20],
        "spooled PUT differs"
    );
    c.delete_all().await.unwrap();

    // End to end: an incompressible ~8 MB database; its snapshot (> 5 MiB) ships in parts.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("src.db");
    let app = common::app_db(&db);
    let tx = app.unchecked_transaction().unwrap();
    for i in 0..2000 {
        let blob: Vec<u8> = (0..4000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        tx.execute(
            "INSERT INTO kv(k, v) VALUES (?1, ?2)",
            (i, hex(&blob[..1500])),
        )
        .unwrap();
    }
    tx.commit().unwrap();
    let opts = Options {
        level_intervals: vec![],
        ..Options::default()
    };
    let repl = Replication::start(&db, &rc, opts).await.unwrap();
    let txid = repl.sync_now().await.unwrap();
    repl.shutdown(Duration::from_secs(10)).await.unwrap();
    let image = common::source_image(&db);
    let l0 = c.list(0, false).await.unwrap();
    assert!(
        l0[0].size > 5 << 20,
        "snapshot of {} bytes does not exercise multipart",
        l0[0].size
    );
    let out = dir.path().join("out.db");
    let r = restore::restore(&c, &out, Target::Latest).await.unwrap();
    assert_eq!(r.txid, txid);
    assert!(std::fs::read(&out).unwrap() == image, "restore differs");
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|v| format!("{v:02x}")).collect()
}

async fn replicate_to_s3(s: common::S3Server) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("src.db");
    let app = common::app_db(&db);
    let replica = s.replica("bucket", "memory.db");
    let opts = Options {
        sync_interval: Duration::from_millis(100),
        min_checkpoint_page_count: 30,
        level_intervals: vec![Duration::from_secs(1)],
        ..Options::default()
    };
    let repl = Replication::start(&db, &replica, opts).await.unwrap();
    for round in 0..10 {
        for i in 0..30 {
            app.execute(
                "INSERT OR REPLACE INTO kv(k, v) VALUES (?1, ?2)",
                (round * 13 + i, "s3".repeat(100 + i as usize)),
            )
            .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    repl.sync_now().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let txid = repl.shutdown(Duration::from_secs(5)).await.unwrap();
    let image = common::source_image(&db);
    let client = replica.client().unwrap();
    let out = dir.path().join("ours.db");
    let r = restore::restore(&client, &out, Target::Latest)
        .await
        .unwrap();
    assert_eq!(r.txid, txid);
    assert!(
        std::fs::read(&out).unwrap() == image,
        "our restore from S3 differs"
    );
    // The restore streamed through a download file and the temp file; neither is left.
    let mut left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("ours.db"))
        .collect();
    left.sort();
    assert_eq!(left, ["ours.db"]);
    let hyd = dir.path().join("hydrated.db");
    let got = common::litestream_hydrate(
        &s.url("bucket", "memory.db"),
        &hyd,
        &[
            ("AWS_ACCESS_KEY_ID", common::S3_KEY),
            ("AWS_SECRET_ACCESS_KEY", common::S3_SECRET),
        ],
    );
    assert_eq!(got, txid);
    assert!(
        std::fs::read(&hyd).unwrap() == image,
        "Litestream's restore from S3 differs"
    );
}

#[tokio::test]
async fn wal_scenario_replica_uploaded_to_s3_restores() {
    let Some(dir) = common::shared_ltx("wal_scenario_replica_uploaded_to_s3_restores") else {
        return;
    };
    common::no_proxy();
    let s = common::S3Server::s3s_fs(&["bucket"]);
    let c = s.replica("bucket", "db").client().unwrap();
    let src = dir.join("wal-scenario/replica-s3/db");
    for lvl in std::fs::read_dir(&src).unwrap() {
        let lvl = lvl.unwrap();
        let level = u8::from_str_radix(lvl.file_name().to_str().unwrap(), 16).unwrap();
        for f in std::fs::read_dir(lvl.path()).unwrap() {
            let f = f.unwrap();
            let (min, max) =
                barnabee_replicator::ltx::parse_filename(f.file_name().to_str().unwrap()).unwrap();
            let data = std::fs::read(f.path()).unwrap();
            let ts = barnabee_replicator::ltx::decode_header(&data)
                .unwrap()
                .timestamp;
            c.put(level, min, max, data.into(), ts).await.unwrap();
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    for (target, n) in [
        (Target::Latest, 3),
        (Target::Txid(2), 2),
        (
            Target::Timestamp(
                barnabee_replicator::time::parse_rfc3339("2026-01-01T00:01:30Z").unwrap(),
            ),
            2,
        ),
    ] {
        let out = tmp.path().join(format!("{target:?}.db"));
        restore::restore(&c, &out, target).await.unwrap();
        let want = std::fs::read(dir.join(format!("wal-scenario/expected/txid-{n}.db"))).unwrap();
        assert!(std::fs::read(&out).unwrap() == want, "{target:?}");
    }
}

/// The outage: s3s-fs stopped for 30 s under a write load, then started again. During
/// the outage uploads are retried with a growing backoff (counted: far fewer attempts than
/// sync intervals; the backoff gauge grew, within its cap) and the lag grows; afterwards the
/// backlog ships, the lag and backoff return to normal while the load goes on, TXIDs have no
/// gap and the restore equals the source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_outage_under_load_backlog_ships_and_restore_equals_source() {
    const OUTAGE: Duration = Duration::from_secs(30);
    common::no_proxy();
    let mut s = common::S3Server::s3s_fs(&["bucket"]);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("src.db");
    drop(common::app_db(&db));
    let replica = s.replica("bucket", "db");
    let sync_interval = Duration::from_millis(200);
    let max_backoff = Duration::from_secs(4);
    let opts = Options {
        sync_interval,
        max_backoff,
        min_checkpoint_page_count: 200,
        level_intervals: vec![],
        ..Options::default()
    };
    let repl = Replication::start(&db, &replica, opts).await.unwrap();
    let put_errors = || {
        repl.metrics()
            .errors
            .get_or_create(&barnabee_replicator::metrics::OpLabel { op: "put".into() })
            .get()
    };
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (s2, db2) = (stop.clone(), db.clone());
    let writer = std::thread::spawn(move || {
        let c = common::app_db(&db2);
        let mut i = 0i64;
        while !s2.load(std::sync::atomic::Ordering::SeqCst) {
            c.execute(
                "INSERT OR REPLACE INTO kv(k, v) VALUES (?1, ?2)",
                (i % 3000, format!("{i:-<200}")),
            )
            .unwrap();
            i += 1;
            std::thread::sleep(Duration::from_millis(3));
        }
        i
    });
    repl.sync_now().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    s.stop();
    let before = repl.status().last_shipped_txid;
    let errors_before = put_errors();
    tokio::time::sleep(OUTAGE).await;
    let st = repl.status();
    let attempts = put_errors() - errors_before;
    assert!(st.consecutive_errors >= 4, "outage not noticed: {st:?}");
    assert!(st.last_error.is_some(), "{st:?}");
    assert!(
        st.lag_seconds > OUTAGE.as_secs_f64() - 5.0,
        "lag not reported: {st:?}"
    );
    assert!(st.last_shipped_txid <= before + 1, "{st:?}");
    // Backoff: without it, an attempt per sync interval (150 in 30 s).
    let intervals = (OUTAGE.as_millis() / sync_interval.as_millis()) as u64;
    assert!(
        (4..=intervals / 5).contains(&attempts),
        "{attempts} failed upload attempts in a {OUTAGE:?} outage ({intervals} sync intervals)"
    );
    // Grown far above the sync interval (doubling from 100 ms), never above its cap.
    let backoff = repl.metrics().retry_backoff_seconds.get();
    assert!(
        backoff >= 1.6 && backoff <= max_backoff.as_secs_f64(),
        "retry backoff {backoff} s after {attempts} failures (cap {max_backoff:?})"
    );
    s.start_again();
    let restarted = std::time::Instant::now();
    // The backlog ships within one backoff (+ the upload), and the lag recovers while the
    // load goes on.
    loop {
        let st = repl.status();
        if st.consecutive_errors == 0 && st.last_shipped_txid > before + 1 && st.lag_seconds < 2.0 {
            break;
        }
        assert!(
            restarted.elapsed() < max_backoff + Duration::from_secs(10),
            "not recovered {:?} after the restart: {st:?}",
            restarted.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "{attempts} failed attempts in {OUTAGE:?}; recovered {:?} after the restart",
        restarted.elapsed()
    );
    assert_eq!(repl.metrics().retry_backoff_seconds.get(), 0.0);
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let commits = writer.join().unwrap();
    let txid = repl.shutdown(Duration::from_secs(10)).await.unwrap();
    assert!(txid > before + 1);
    assert_eq!(repl.status().consecutive_errors, 0);
    let image = common::source_image(&db);
    let client = replica.client().unwrap();
    let l0 = client.list(0, false).await.unwrap();
    assert_eq!(
        l0.iter().map(|f| f.min_txid).collect::<Vec<_>>(),
        (1..=txid).collect::<Vec<_>>(),
        "gap"
    );
    let out = dir.path().join("out.db");
    restore::restore(&client, &out, Target::Latest)
        .await
        .unwrap();
    assert!(
        std::fs::read(&out).unwrap() == image,
        "restore differs from the source after {commits} commits"
    );
}
