#![allow(clippy::unwrap_used)]
//! Real Litestream (the official 0.5.17 VFS extension from PyPI, running Litestream's own
//! restore path) restores replicas that we wrote during a live write workload, byte-identical
//! to our source at that TXID. Needs no ../shared.
//!
//! Point in time: the VFS targets a *timestamp* only (`PRAGMA litestream_time`, planned over
//! the replica files' creation times, mtimes for a file replica), not a TXID; `PRAGMA
//! litestream_txid` reports which TXID that view is at, and its only way out is `VACUUM INTO`,
//! a logical copy. So [`point_in_time_matches_litestream`] checks, at several moments of a
//! live workload: Litestream's TXID at T == ours with `-timestamp T`; ours with `-timestamp T`
//! and `-txid N` are byte-identical to the source database snapshot taken at that TXID during
//! the run; Litestream's copy has the same schema and rows as ours (`.dump` text equal; bytes
//! cannot be compared through `VACUUM INTO`).

mod common;

use std::time::Duration;

use barnabee_replicator::client::{Client, FileClient, ReplicaClient};
use barnabee_replicator::ltx::PageEncoding;
use barnabee_replicator::restore::{self, Target};
use barnabee_replicator::{Options, Replication};

async fn write_replica(dir: &std::path::Path, encoding: PageEncoding) -> (u64, Vec<u8>) {
    let db = dir.join("src.db");
    let app = common::app_db(&db);
    let replica = dir.join("replica");
    let opts = Options {
        sync_interval: Duration::from_millis(100),
        min_checkpoint_page_count: 30,
        level_intervals: vec![Duration::from_secs(1)],
        page_encoding: encoding,
        ..Options::default()
    };
    let repl = Replication::start_with_client(&db, Client::File(FileClient::new(&replica)), opts)
        .await
        .unwrap();
    // Live workload: a writer thread commits while the replicator ships, checkpoints, compacts.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s2 = stop.clone();
    let db2 = db.clone();
    let writer = std::thread::spawn(move || {
        let c = common::app_db(&db2);
        let mut i = 0i64;
        while !s2.load(std::sync::atomic::Ordering::SeqCst) {
            c.execute(
                "INSERT OR REPLACE INTO kv(k, v) VALUES (?1, ?2)",
                (i % 700, format!("{i:-<400}")),
            )
            .unwrap();
            if i % 97 == 0 {
                c.execute("DELETE FROM kv WHERE k % 5 = 1", []).unwrap();
            }
            i += 1;
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    for _ in 0..5 {
        app.execute(
            "INSERT INTO kv(k, v) VALUES (100000 + abs(random() % 1000000), 'main')",
            [],
        )
        .unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    writer.join().unwrap();
    repl.sync_now().await.unwrap();
    assert!(
        repl.metrics().checkpoints.get() > 0,
        "the workload should have checkpointed"
    );
    // Let compaction and the L9 snapshot run so Litestream's plan uses them.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let txid = repl.shutdown(Duration::from_secs(5)).await.unwrap();
    let image = common::source_image(&db);
    (txid, image)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn litestream_restores_our_file_replica_frame_encoding() {
    let dir = tempfile::tempdir().unwrap();
    let (txid, image) = write_replica(dir.path(), PageEncoding::Frame).await;
    let out = dir.path().join("hydrated.db");
    let url = format!("file://{}", dir.path().join("replica").display());
    let got = common::litestream_hydrate(&url, &out, &[]);
    assert_eq!(got, txid, "Litestream restored a different TXID");
    assert!(
        std::fs::read(&out).unwrap() == image,
        "Litestream's restore differs from our source at TXID {txid}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn litestream_restores_our_file_replica_block_encoding() {
    let dir = tempfile::tempdir().unwrap();
    let (txid, image) = write_replica(dir.path(), PageEncoding::Block).await;
    let out = dir.path().join("hydrated.db");
    let url = format!("file://{}", dir.path().join("replica").display());
    let got = common::litestream_hydrate(&url, &out, &[]);
    assert_eq!(got, txid);
    assert!(std::fs::read(&out).unwrap() == image);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn point_in_time_matches_litestream() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("src.db");
    let app = common::app_db(&db);
    let replica = dir.path().join("replica");
    let opts = Options {
        sync_interval: Duration::from_millis(100),
        // Checkpoints (WAL restarts) and L1 compactions happen between the points.
        min_checkpoint_page_count: 30,
        level_intervals: vec![Duration::from_secs(1)],
        ..Options::default()
    };
    let repl = Replication::start_with_client(&db, Client::File(FileClient::new(&replica)), opts)
        .await
        .unwrap();
    // (TXID, source image at that TXID, a moment after it shipped and before the next file).
    let mut points: Vec<(u64, Vec<u8>, i64)> = Vec::new();
    let mut k = 0i64;
    for round in 0..6 {
        for _ in 0..(20 + round * 15) {
            app.execute(
                "INSERT OR REPLACE INTO kv(k, v) VALUES (?1, ?2)",
                (k % 150, format!("round {round} {k:-<300}")),
            )
            .unwrap();
            k += 1;
        }
        if round % 2 == 1 {
            app.execute("DELETE FROM kv WHERE k % 4 = ?1", [round])
                .unwrap();
        }
        // The replicator may ship one more file of its own (the commit that restarts the
        // WAL): the point is a moment when the replica's newest file is the imaged TXID.
        loop {
            let txid = repl.sync_now().await.unwrap();
            let image = common::source_image(&db);
            tokio::time::sleep(Duration::from_millis(150)).await;
            let at = barnabee_replicator::time::now_ms();
            tokio::time::sleep(Duration::from_millis(150)).await;
            if repl.sync_now().await.unwrap() == txid {
                points.push((txid, image, at));
                break;
            }
        }
    }
    let last = repl.shutdown(Duration::from_secs(5)).await.unwrap();
    let client = FileClient::new(&replica);
    assert!(
        !client.list(1, false).await.unwrap().is_empty(),
        "no L1 compaction ran: the test should cover compacted files"
    );
    let url = format!("file://{}", replica.display());
    for (i, (txid, image, at)) in points.iter().enumerate() {
        let time = barnabee_replicator::time::format_rfc3339(*at);
        let ours = dir.path().join(format!("ours-ts-{i}.db"));
        let r = restore::restore(&client, &ours, Target::Timestamp(*at))
            .await
            .unwrap();
        assert_eq!(r.txid, *txid, "ours at {time}");
        assert!(
            std::fs::read(&ours).unwrap() == *image,
            "ours at {time} (TXID {txid}) differs from the source at that TXID"
        );
        let by_txid = dir.path().join(format!("ours-txid-{i}.db"));
        restore::restore(&client, &by_txid, Target::Txid(*txid))
            .await
            .unwrap();
        assert!(
            std::fs::read(&by_txid).unwrap() == *image,
            "ours at TXID {txid} differs from the source"
        );
        let theirs = dir.path().join(format!("litestream-{i}.db"));
        let lt_txid = common::litestream_at_time(&url, &time, &theirs);
        assert_eq!(
            lt_txid, *txid,
            "Litestream's view at {time} is at another TXID than ours"
        );
        let (a, b) = (common::sqlite_dump(&theirs), common::sqlite_dump(&ours));
        assert!(b.contains("INSERT INTO kv"), "empty dump: {b}");
        assert!(
            a == b,
            "Litestream's rows at {time} (TXID {txid}) differ from ours:\n{a}\n---\n{b}"
        );
    }
    assert!(points.last().unwrap().0 <= last);
    assert!(
        points.windows(2).all(|w| w[0].0 < w[1].0),
        "points are distinct TXIDs"
    );
}
