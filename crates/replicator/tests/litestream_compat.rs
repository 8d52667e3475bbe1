#![allow(clippy::unwrap_used)]
//! Real Litestream (the official 0.5.17 VFS extension from PyPI, running Litestream's own
//! restore path) restores replicas that we wrote during a live write workload, byte-identical
//! to our source at that TXID. Needs no ../shared.

mod common;

use std::time::Duration;

use barnabee_replicator::client::{Client, FileClient};
use barnabee_replicator::ltx::PageEncoding;
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
