#![allow(clippy::unwrap_used)]
//! Two places: a database replicated to two independent replicas. One down never blocks the
//! other, the one that was down (or is new) catches up from its sibling, and a restore falls
//! back to the other replica when an object of the first is corrupt.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use barnabee_replicator::client::{Client, LEVELS, MemoryClient, MultiClient, ReplicaClient};
use barnabee_replicator::restore::{self, RestoreError, Target};
use barnabee_replicator::{Options, ReplicaConfig, Replication, restore_if_missing};

fn fast() -> Options {
    Options {
        sync_interval: Duration::from_millis(200),
        level_intervals: vec![],
        ..Options::default()
    }
}

async fn newest_txid(c: &impl ReplicaClient) -> u64 {
    let mut max = 0;
    for level in LEVELS {
        for f in c.list(level, false).await.unwrap() {
            max = max.max(f.max_txid);
        }
    }
    max
}

/// Replicate `db` to the two in-memory replicas as one set.
async fn replicate_to(db: &std::path::Path, set: [&Arc<MemoryClient>; 2]) -> Replication {
    let members = set.map(|c| Client::Memory(c.clone())).into();
    Replication::start_with_client(db, Client::Multi(MultiClient::new(members)), fast())
        .await
        .unwrap()
}

fn rows(db: &std::path::Path) -> i64 {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row("SELECT count(*) FROM kv", [], |r| r.get(0))
        .unwrap()
}

fn write(app: &rusqlite::Connection, from: i64, n: i64) {
    for k in from..from + n {
        app.execute("INSERT INTO kv(k, v) VALUES (?1, 'x')", [k])
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_down_never_blocks_the_other_and_catches_up_when_back() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let app = common::app_db(&db);
    let (nas, s3) = (Arc::new(MemoryClient::new()), Arc::new(MemoryClient::new()));
    nas.down.store(true, Ordering::SeqCst);
    let repl = replicate_to(&db, [&nas, &s3]).await;
    write(&app, 0, 100);
    let t = Instant::now();
    let txid = repl.sync_now().await.unwrap();
    let took = t.elapsed();
    // Bounded far below the 60 s a write may wait for a first replica: the down one is not
    // waited for at all.
    assert!(
        took < Duration::from_secs(10),
        "sync_now took {took:?} with one replica down"
    );
    assert_eq!(
        newest_txid(&*s3).await,
        txid,
        "the replica that is up has it all"
    );
    assert_eq!(nas.puts(), 0, "the down replica took nothing");
    let st = repl.status();
    assert_eq!(st.consecutive_errors, 0, "{st:?}");
    assert_eq!(st.members.len(), 2, "{st:?}");
    assert!(
        st.members[0].consecutive_errors > 0 && st.members[0].last_error.is_some(),
        "the down replica's own state says it fails: {st:?}"
    );
    // counted where BarnabeeReplicationErrors looks, though every write succeeded
    let replica_errors = repl
        .metrics()
        .errors
        .get_or_create(&barnabee_replicator::metrics::OpLabel {
            op: "replica".into(),
        })
        .get();
    assert!(
        replica_errors > 0,
        "barnabee_replication_errors_total{{op=\"replica\"}} = 0"
    );
    let check = barnabee_replicator::embed::status_check(&st.replica, &st, 1);
    assert!(!check.ok, "{check:?}");
    assert!(check.detail.contains("consecutive errors"), "{check:?}");
    println!(
        "one replica down: sync_now {took:?}; /health: {}",
        check.detail
    );

    // Back: it catches up from its own queue (and from the sibling if it was dropped).
    nas.down.store(false, Ordering::SeqCst);
    write(&app, 100, 50);
    let txid = repl.sync_now().await.unwrap();
    let t = Instant::now();
    while newest_txid(&*nas).await < txid {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the replica that was down never caught up: {:?}",
            repl.status().members
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("caught up in {:?}", t.elapsed());
    repl.shutdown(Duration::from_secs(5)).await.unwrap();
    // Each replica alone restores every row.
    for (name, c) in [("nas", &nas), ("s3", &s3)] {
        let out = dir.path().join(format!("from-{name}.db"));
        let r = restore::restore(&**c, &out, Target::Latest).await.unwrap();
        assert_eq!(r.txid, txid, "{name}");
        assert_eq!(rows(&out), 150, "{name}");
    }

    // A new, empty replica joining the set is filled from its sibling at start.
    let fresh = Arc::new(MemoryClient::new());
    let repl = replicate_to(&db, [&s3, &fresh]).await;
    let t = Instant::now();
    while newest_txid(&*fresh).await < txid {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the new replica was never filled: {:?}",
            repl.status().members
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    repl.shutdown(Duration::from_secs(5)).await.unwrap();
    let out = dir.path().join("from-fresh.db");
    let r = restore::restore(&*fresh, &out, Target::Latest)
        .await
        .unwrap();
    assert_eq!((r.txid, rows(&out)), (txid, 150));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_replicas_down_fails_the_write_and_it_ships_when_one_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let app = common::app_db(&db);
    let (a, b) = (Arc::new(MemoryClient::new()), Arc::new(MemoryClient::new()));
    let repl = replicate_to(&db, [&a, &b]).await;
    repl.sync_now().await.unwrap();
    a.down.store(true, Ordering::SeqCst);
    b.down.store(true, Ordering::SeqCst);
    write(&app, 0, 10);
    let t = Instant::now();
    let st = loop {
        let st = repl.status();
        if st.consecutive_errors > 0 {
            break st;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "{st:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        st.last_error
            .as_deref()
            .is_some_and(|e| e.contains("no replica took it")),
        "{st:?}"
    );
    b.down.store(false, Ordering::SeqCst);
    let t = Instant::now();
    let txid = loop {
        if let Ok(Ok(txid)) = tokio::time::timeout(Duration::from_secs(5), repl.sync_now()).await {
            break txid;
        }
        assert!(t.elapsed() < Duration::from_secs(60), "never shipped");
    };
    assert_eq!(newest_txid(&*b).await, txid);
    repl.shutdown(Duration::from_secs(5)).await.unwrap();
    let out = dir.path().join("out.db");
    restore::restore(&*b, &out, Target::Latest).await.unwrap();
    assert_eq!(rows(&out), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_object_in_one_replica_is_restored_from_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let app = common::app_db(&db);
    let (first, second) = (dir.path().join("nas"), dir.path().join("usb"));
    let rc = ReplicaConfig::set(vec![
        ReplicaConfig::from_url(&format!("file://{}", first.display())),
        ReplicaConfig::from_url(&format!("file://{}", second.display())),
    ])
    .unwrap();
    let repl = Replication::start(&db, &rc, fast()).await.unwrap();
    write(&app, 0, 200);
    let txid = repl.sync_now().await.unwrap();
    let t = Instant::now();
    while repl.status().members.iter().any(|m| m.queued > 0) {
        assert!(t.elapsed() < Duration::from_secs(20), "{:?}", repl.status());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    repl.shutdown(Duration::from_secs(5)).await.unwrap();
    drop(app);

    // The largest object of the first replica (the snapshot) gets a byte flipped.
    let mut objects: Vec<_> = walk(&first);
    objects.sort_by_key(|p| std::fs::metadata(p).unwrap().len());
    let victim = objects.last().unwrap().clone();
    let mut bytes = std::fs::read(&victim).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&victim, bytes).unwrap();
    let each = rc.each();
    let alone = each[0].client().unwrap();
    let e = restore::restore(&alone, &dir.path().join("bad.db"), Target::Latest)
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            RestoreError::Corrupt { .. } | RestoreError::Inconsistent { .. }
        ),
        "{e}"
    );
    println!("the first replica alone: {e}");

    // The set restores anyway, from the second replica.
    let restored = dir.path().join("restored.db");
    let r = restore_if_missing(&restored, &rc).await.unwrap().unwrap();
    assert_eq!(r.txid, txid);
    assert_eq!(rows(&restored), 200);
    assert_eq!(
        restore::integrity_check(&restored),
        Ok(()),
        "restored database integrity"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn litestream_yml_with_two_replicas_builds_a_set() {
    let c = barnabee_replicator::config::Config::parse(
        "access-key-id: GK1\nsecret-access-key: s\ndbs:\n  - path: /var/lib/app.db\n    replicas:\n      - url: file:///mnt/nas/app\n      - url: s3://bucket/app?endpoint=http://127.0.0.1:3900&region=garage\n",
    )
    .unwrap();
    let rc = c.replica_set_of(&c.dbs[0]).unwrap();
    let client = rc.client().unwrap();
    assert!(matches!(client, Client::Multi(_)));
    assert_eq!(
        client.describe(),
        "file:///mnt/nas/app + s3://bucket/app",
        "both named"
    );
    assert_eq!(client.members().len(), 2);
}

/// A replica down since the start (its resync failing) and then the other one down too: a
/// write fails within seconds (each member answers), it does not wait out the 60 s bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_stuck_in_its_resync_answers_writes_with_its_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let app = common::app_db(&db);
    let (a, b) = (Arc::new(MemoryClient::new()), Arc::new(MemoryClient::new()));
    a.down.store(true, Ordering::SeqCst);
    let repl = replicate_to(&db, [&a, &b]).await;
    repl.sync_now().await.unwrap();
    b.down.store(true, Ordering::SeqCst);
    write(&app, 0, 5);
    let t = Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(30), repl.sync_now()).await;
    let took = t.elapsed();
    assert!(
        matches!(r, Ok(Err(_))),
        "sync_now with both replicas down: {r:?} after {took:?}"
    );
    assert!(took < Duration::from_secs(15), "{took:?}");
    println!("both down (one stuck in its resync): sync_now failed in {took:?}");
}

/// An object larger than a member's queue bound (a big database's snapshot) is a write like
/// any other: both healthy members take it. (Before, the bound dropped the queue holding just
/// that object on every member, and the set's write failed at every retry.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_larger_than_the_queue_bound_reaches_both_members() {
    let (a, b) = (Arc::new(MemoryClient::new()), Arc::new(MemoryClient::new()));
    let set = Client::Multi(MultiClient::new(vec![
        Client::Memory(a.clone()),
        Client::Memory(b.clone()),
    ]));
    set.start(Default::default());
    let size = barnabee_replicator::client::multi::MAX_QUEUED_BYTES as usize + (1 << 20);
    let mut w = barnabee_replicator::payload::SpoolWriter::create().unwrap();
    let chunk = vec![0x5au8; 1 << 20];
    for _ in 0..size >> 20 {
        w.write_all(&chunk).unwrap();
    }
    set.put(9, 1, 5, w.finish().unwrap(), 1).await.unwrap();
    for (name, m) in [("a", &a), ("b", &b)] {
        let deadline = Instant::now() + Duration::from_secs(20);
        while m.list(9, false).await.unwrap().is_empty() {
            assert!(
                Instant::now() < deadline,
                "member {name} never got the object"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(m.get(9, 1, 5).await.unwrap().len(), size, "member {name}");
    }
}
