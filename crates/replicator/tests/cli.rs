#![allow(clippy::unwrap_used)]
//! The `barnabee-replicator` binary: standalone replication of a database owned by another
//! process, restore flags, SIGKILL under load, corrupt replicas, bad config and URLs.

mod common;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_barnabee-replicator");

struct Replicator {
    child: Child,
    max_shipped: Arc<Mutex<u64>>,
    log: Arc<Mutex<String>>,
}

impl Replicator {
    fn start(db: &Path, url: &str) -> Self {
        let mut child = Command::new(BIN)
            .args(["replicate", "--sync-interval-ms", "100"])
            .arg(db)
            .arg(url)
            .env("NO_PROXY", "127.0.0.1,localhost")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let max_shipped = Arc::new(Mutex::new(0));
        let log = Arc::new(Mutex::new(String::new()));
        let (m, l) = (max_shipped.clone(), log.clone());
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("shipped")
                    && let Some(t) = line
                        .split_whitespace()
                        .find_map(|w| w.strip_prefix("txid="))
                {
                    let t: u64 = t.parse().unwrap();
                    let mut g = m.lock().unwrap();
                    *g = (*g).max(t);
                }
                l.lock().unwrap().push_str(&line);
                l.lock().unwrap().push('\n');
            }
        });
        Self {
            child,
            max_shipped,
            log,
        }
    }

    fn shipped(&self) -> u64 {
        *self.max_shipped.lock().unwrap()
    }

    fn wait_shipped(&self, at_least: u64) {
        let start = Instant::now();
        while self.shipped() < at_least {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "nothing shipped; log:\n{}",
                self.log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn term(mut self) -> (i32, String) {
        Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        let st = self.child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        (st.code().unwrap_or(-1), self.log.lock().unwrap().clone())
    }
}

fn restore(args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN)
        .arg("restore")
        .args(args)
        .env("NO_PROXY", "127.0.0.1")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Wait until the replicator has shipped everything (quiet for a while).
fn settle(r: &Replicator) -> u64 {
    let mut last = r.shipped();
    loop {
        std::thread::sleep(Duration::from_millis(400));
        let now = r.shipped();
        if now == last {
            return now;
        }
        last = now;
    }
}

#[test]
fn standalone_replicate_then_restore_with_flags() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let app = common::app_db(&db);
    // The application keeps its default autocheckpoint here: standalone mode must cope.
    app.execute_batch("PRAGMA wal_autocheckpoint=1000").unwrap();
    let replica = dir.path().join("replica");
    let url = format!("file://{}", replica.display());
    let r = Replicator::start(&db, &url);
    for i in 0..50 {
        app.execute("INSERT INTO kv(k, v) VALUES (?1, 'a')", [i])
            .unwrap();
    }
    r.wait_shipped(1);
    let txid_a = settle(&r);
    let image_a = common::source_image(&db);
    std::thread::sleep(Duration::from_millis(1100)); // timestamps: A strictly before B
    let between = barnabee_replicator::time::format_rfc3339(barnabee_replicator::time::now_ms());
    std::thread::sleep(Duration::from_millis(50));
    for i in 50..300 {
        app.execute("INSERT INTO kv(k, v) VALUES (?1, 'b')", [i])
            .unwrap();
    }
    let txid_b = settle(&r);
    assert!(txid_b > txid_a);
    let (code, log) = r.term();
    assert_eq!(code, 0, "{log}");
    let image_b = common::source_image(&db);

    let out = |n: &str| dir.path().join(n).display().to_string();
    let (c, o) = restore(&["-o", &out("latest.db"), &url]);
    assert_eq!(c, 0, "{o}");
    assert!(std::fs::read(out("latest.db")).unwrap() == image_b);
    let (c, o) = restore(&["-o", &out("a.db"), "-txid", &format!("{txid_a:016x}"), &url]);
    assert_eq!(c, 0, "{o}");
    assert!(std::fs::read(out("a.db")).unwrap() == image_a);
    let (c, o) = restore(&["-o", &out("ts.db"), "-timestamp", &between, &url]);
    assert_eq!(c, 0, "{o}");
    assert!(
        std::fs::read(out("ts.db")).unwrap() == image_a,
        "timestamp restore"
    );
    // Output exists: error, unless -if-db-not-exists.
    let (c, o) = restore(&["-o", &out("latest.db"), &url]);
    assert_ne!(c, 0);
    assert!(o.contains("already exists"), "{o}");
    let (c, o) = restore(&["-o", &out("latest.db"), "-if-db-not-exists", &url]);
    assert_eq!(c, 0, "{o}");
    // Empty replica: error, unless -if-replica-exists.
    let empty = format!("file://{}", dir.path().join("empty").display());
    let (c, o) = restore(&["-o", &out("e.db"), &empty]);
    assert_ne!(c, 0);
    assert!(o.contains("not available"), "{o}");
    let (c, o) = restore(&["-o", &out("e.db"), "-if-replica-exists", &empty]);
    assert_eq!(c, 0, "{o}");
    assert!(!Path::new(&out("e.db")).exists());
    // A TXID beyond the replica.
    let (c, o) = restore(&["-o", &out("x.db"), "-txid", "00000000000fffff", &url]);
    assert_ne!(c, 0);
    assert!(o.contains("transaction not available"), "{o}");
    // The CLI inspection commands.
    let o = Command::new(BIN).args(["replicas", &url]).output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && text.contains("LEVEL"), "{text}");
    let l0: Vec<PathBuf> = std::fs::read_dir(replica.join("ltx/0"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let o = Command::new(BIN)
        .args(["ltx", "verify"])
        .args(&l0)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    let o = Command::new(BIN)
        .args(["ltx", "dump"])
        .arg(&l0[0])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("Page index:"));
}

#[test]
fn sigkill_under_load_keeps_the_replica_gap_free() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    drop(common::app_db(&db));
    let replica = dir.path().join("replica");
    let url = format!("file://{}", replica.display());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (s2, db2) = (stop.clone(), db.clone());
    let writer = std::thread::spawn(move || {
        let c = common::app_db(&db2);
        let mut i = 0i64;
        while !s2.load(std::sync::atomic::Ordering::SeqCst) {
            c.execute(
                "INSERT OR REPLACE INTO kv(k, v) VALUES (?1, ?2)",
                (i % 500, format!("{i:-<300}")),
            )
            .unwrap();
            i += 1;
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    let mut reported = 0;
    for round in 0..4u64 {
        let mut r = Replicator::start(&db, &url);
        r.wait_shipped(reported + 1);
        std::thread::sleep(Duration::from_millis(150 + 170 * round));
        r.child.kill().unwrap(); // SIGKILL
        r.child.wait().unwrap();
        reported = reported.max(r.shipped());
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    writer.join().unwrap();
    let r = Replicator::start(&db, &url);
    r.wait_shipped(reported + 1);
    let final_txid = settle(&r);
    let (code, log) = r.term();
    assert_eq!(code, 0, "{log}");
    // Gap-free level 0.
    let mut txids: Vec<u64> = std::fs::read_dir(replica.join("ltx/0"))
        .unwrap()
        .filter_map(|e| {
            barnabee_replicator::ltx::parse_filename(e.unwrap().file_name().to_str().unwrap())
        })
        .map(|(min, _)| min)
        .collect();
    txids.sort();
    assert_eq!(txids, (1..=final_txid).collect::<Vec<_>>());
    assert!(final_txid >= reported);
    // The last TXID reported before a kill is restorable, and latest equals the source.
    let out = dir.path().join("at-kill.db");
    let (c, o) = restore(&[
        "-o",
        out.to_str().unwrap(),
        "-txid",
        &format!("{reported:016x}"),
        &url,
    ]);
    assert_eq!(c, 0, "{o}");
    let out = dir.path().join("latest.db");
    let (c, o) = restore(&["-o", out.to_str().unwrap(), &url]);
    assert_eq!(c, 0, "{o}");
    assert!(std::fs::read(&out).unwrap() == common::source_image(&db));
}

#[test]
fn corrupt_or_truncated_objects_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let app = common::app_db(&db);
    let replica = dir.path().join("replica");
    let url = format!("file://{}", replica.display());
    let r = Replicator::start(&db, &url);
    for i in 0..3 {
        app.execute("INSERT INTO kv(k, v) VALUES (?1, 'x')", [i])
            .unwrap();
        std::thread::sleep(Duration::from_millis(150));
    }
    r.wait_shipped(2);
    settle(&r);
    r.term();
    let victim = replica.join("ltx/0/0000000000000002-0000000000000002.ltx");
    let good = std::fs::read(&victim).unwrap();
    // Flipped byte in the page block.
    let mut bad = good.clone();
    bad[110] ^= 0x40;
    std::fs::write(&victim, &bad).unwrap();
    let out = dir.path().join("o1.db");
    let (c, o) = restore(&[
        "-o",
        out.to_str().unwrap(),
        "-txid",
        "0000000000000002",
        &url,
    ]);
    assert_ne!(c, 0);
    assert!(o.contains("0000000000000002-0000000000000002.ltx"), "{o}");
    assert!(!out.exists() && !dir.path().join("o1.db.tmp").exists());
    // Truncated.
    std::fs::write(&victim, &good[..good.len() / 2]).unwrap();
    let (c, o) = restore(&[
        "-o",
        out.to_str().unwrap(),
        "-txid",
        "0000000000000002",
        &url,
    ]);
    assert_ne!(c, 0);
    assert!(o.contains("0000000000000002-0000000000000002.ltx"), "{o}");
    // ltx verify names it too.
    let v = Command::new(BIN)
        .args(["ltx", "verify"])
        .arg(&victim)
        .output()
        .unwrap();
    assert!(!v.status.success());
    assert!(String::from_utf8_lossy(&v.stdout).contains("INVALID"));
}

#[test]
fn bad_config_and_urls_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("litestream.yml");
    std::fs::write(
        &cfg,
        "dbs:\n  - path: /tmp/x.db\n    replica:\n      url: file:///tmp/r\n      retention: 24h\n",
    )
    .unwrap();
    let o = Command::new(BIN)
        .args(["--config", cfg.to_str().unwrap(), "replicate"])
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        e.contains("retention") && e.contains("litestream.yml"),
        "{e}"
    );
    for (url, want) in [
        ("ftp://host/x", "unsupported URL"),
        ("s3://", "no bucket"),
        ("s3://b/p?endpoint=localhost:9", "http"),
    ] {
        let o = Command::new(BIN)
            .args(["restore", "-o", "/tmp/never.db", url])
            .output()
            .unwrap();
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success());
        assert!(e.contains(want), "{url}: {e}");
    }
    let o = Command::new(BIN)
        .args([
            "restore",
            "-o",
            "/tmp/never.db",
            "-txid",
            "zz",
            "file:///tmp/r",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a hex TXID"));
    let o = Command::new(BIN)
        .args(["replicate", "/nonexistent/db.sqlite", "file:///tmp/r"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("does not exist"));
}
