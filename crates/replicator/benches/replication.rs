//! Figures, not a pass/fail timer:
//! 1. commit-to-durable lag (commit returns -> its L0 object is on loopback S3) for sporadic
//!    commits and for a sustained rate, p50/p99/max, and PUTs per minute;
//! 2. restore throughput of a large database from loopback S3 vs a plain sequential GET of
//!    the same objects (ratio).
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use barnabee_replicator::client::{LEVELS, ReplicaClient};
use barnabee_replicator::restore::{self, Target};
use barnabee_replicator::time::now_ms;
use barnabee_replicator::{Options, ReplicaConfig, Replication};

const KEY: &str = "GK0123456789abcdef01234567";
const SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Server(Child, String, #[allow(dead_code)] tempfile::TempDir);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn s3s_fs() -> Server {
    let bin = std::env::var_os("S3S_FS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/barnabee/tools/s3s-fs-0.14.1/bin/s3s-fs")
        });
    assert!(bin.exists(), "{} missing: run dev/setup", bin.display());
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("bench")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(bin)
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--access-key",
            KEY,
            "--secret-key",
            SECRET,
        ])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
    Server(child, format!("http://127.0.0.1:{port}"), dir)
}

fn replica(endpoint: &str, path: &str) -> ReplicaConfig {
    ReplicaConfig {
        access_key_id: Some(KEY.into()),
        secret_access_key: Some(SECRET.into()),
        ..ReplicaConfig::from_url(&format!(
            "s3://bench/{path}?endpoint={endpoint}&region=us-east-1"
        ))
    }
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// Run a workload and measure per-commit durability lag.
async fn lag(endpoint: &str, name: &str, commits: Vec<Duration>) -> (Vec<f64>, u64, f64, Vec<f64>) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lag.db");
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute_batch("PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);")
        .unwrap();
    let rc = replica(endpoint, name);
    let repl = Arc::new(
        Replication::start(
            &db,
            &rc,
            Options {
                level_intervals: vec![],
                ..Options::default()
            },
        )
        .await
        .unwrap(),
    );
    repl.sync_now().await.unwrap();
    let first_txid = repl.status().last_shipped_txid;
    // Watch ships: (shipped at, captured at).
    let ships: Arc<Mutex<Vec<(i64, i64)>>> = Arc::default();
    let (r2, s2) = (repl.clone(), ships.clone());
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let d2 = done.clone();
    let watcher = tokio::spawn(async move {
        let mut last = 0;
        while !d2.load(std::sync::atomic::Ordering::SeqCst) {
            let st = r2.status();
            if st.last_shipped_txid != last {
                last = st.last_shipped_txid;
                s2.lock()
                    .unwrap()
                    .push((now_ms(), st.last_shipped_timestamp_ms.unwrap_or(0)));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    let start = Instant::now();
    let (commit_times, commit_ms) = tokio::task::spawn_blocking(move || {
        let mut times = Vec::new();
        let mut took = Vec::new();
        let t0 = Instant::now();
        for (i, at) in commits.iter().enumerate() {
            if let Some(wait) = at.checked_sub(t0.elapsed()) {
                std::thread::sleep(wait);
            }
            let t = Instant::now();
            c.execute(
                "INSERT INTO t(v) VALUES (?1)",
                [format!("commit {i:-<100}")],
            )
            .unwrap();
            took.push(t.elapsed().as_secs_f64() * 1000.0);
            times.push(now_ms());
        }
        (times, took)
    })
    .await
    .unwrap();
    let elapsed = start.elapsed();
    repl.sync_now().await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    watcher.await.unwrap();
    let ships = ships.lock().unwrap().clone();
    let mut lags = Vec::new();
    for t in &commit_times {
        if let Some((shipped, _)) = ships.iter().find(|(_, captured)| captured >= t) {
            lags.push((*shipped - *t) as f64);
        }
    }
    let puts = repl.status().last_shipped_txid - first_txid;
    repl.shutdown(Duration::from_secs(10)).await.unwrap();
    (lags, puts, elapsed.as_secs_f64(), commit_ms)
}

fn report(label: &str, (mut lags, puts, secs, mut commit): (Vec<f64>, u64, f64, Vec<f64>)) {
    let n = lags.len();
    println!(
        "{label}: {n} commits, lag ms p50 {:.0} p99 {:.0} max {:.0}; {puts} L0 PUTs in {secs:.1} s = {:.0} PUTs/min; commit (writer) ms p50 {:.2} p99 {:.2} max {:.1}",
        pct(&mut lags, 0.5),
        pct(&mut lags, 0.99),
        pct(&mut lags, 1.0),
        puts as f64 * 60.0 / secs,
        pct(&mut commit, 0.5),
        pct(&mut commit, 0.99),
        pct(&mut commit, 1.0),
    );
}

#[tokio::main]
async fn main() {
    // SAFETY: single-threaded at this point; loopback only.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("NO_PROXY", "127.0.0.1,localhost");
    }
    let seconds = arg("--seconds", 60);
    let rate = arg("--rate", 500);
    let restore_mb = arg("--restore-mb", 200);
    let server = s3s_fs();
    println!(
        "# barnabee-replicator bench against s3s-fs 0.14.1 on {}",
        server.1
    );

    // 1a. Sporadic commits: one every 1.2..2.0 s (a quiet house).
    let mut at = Duration::ZERO;
    let n_sporadic = arg("--sporadic", 20);
    let sporadic: Vec<Duration> = (0..n_sporadic)
        .map(|i| {
            at += Duration::from_millis(1200 + (i * 137) % 800);
            at
        })
        .collect();
    report(
        "sporadic (1 commit / 1.2-2.0 s)",
        lag(&server.1, "sporadic", sporadic).await,
    );
    // 1b'. Bursty: one commit every 300..700 ms (rate-limited to 1 upload/s).
    let mut at = Duration::ZERO;
    let bursty: Vec<Duration> = (0..n_sporadic)
        .map(|i| {
            at += Duration::from_millis(300 + (i * 137) % 400);
            at
        })
        .collect();
    report(
        "bursty (1 commit / 0.3-0.7 s)",
        lag(&server.1, "bursty", bursty).await,
    );

    // 1b. Sustained rate.
    let n = rate * seconds;
    let sustained: Vec<Duration> = (0..n)
        .map(|i| Duration::from_micros(i * 1_000_000 / rate))
        .collect();
    report(
        &format!("sustained ({rate} tx/s for {seconds} s)"),
        lag(&server.1, "sustained", sustained).await,
    );

    // 2. Restore throughput vs plain sequential GET.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("big.db");
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch("PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; CREATE TABLE b(id INTEGER PRIMARY KEY, v BLOB);")
            .unwrap();
        let rows = restore_mb * 1024 / 4;
        let tx = c.unchecked_transaction().unwrap();
        for i in 0..rows {
            // Half-compressible 4 KiB blobs.
            let mut v = vec![0u8; 4000];
            let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            for b in v.iter_mut().take(2000) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            tx.execute("INSERT INTO b(v) VALUES (?1)", [v]).unwrap();
        }
        tx.commit().unwrap();
        c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
    }
    let db_bytes = std::fs::metadata(&db).unwrap().len();
    let rc = replica(&server.1, "big");
    let t = Instant::now();
    let repl = Replication::start(
        &db,
        &rc,
        Options {
            level_intervals: vec![],
            ..Options::default()
        },
    )
    .await
    .unwrap();
    repl.sync_now().await.unwrap();
    repl.shutdown(Duration::from_secs(60)).await.unwrap();
    println!(
        "replicate {:.0} MB database (initial snapshot): {:.2} s",
        db_bytes as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    let client = rc.client().unwrap();
    let mut objects = Vec::new();
    for level in LEVELS {
        objects.extend(client.list(level, false).await.unwrap());
    }
    let plan = restore::plan(&client, Target::Latest).await.unwrap();
    let t = Instant::now();
    let mut got = 0u64;
    for f in &plan {
        got += client
            .get(f.level, f.min_txid, f.max_txid)
            .await
            .unwrap()
            .len() as u64;
    }
    let get_s = t.elapsed().as_secs_f64();
    let out = dir.path().join("restored.db");
    let t = Instant::now();
    let r = restore::restore(&client, &out, Target::Latest)
        .await
        .unwrap();
    let restore_s = t.elapsed().as_secs_f64();
    println!(
        "restore {:.0} MB database ({} objects, {:.0} MB compressed): {restore_s:.2} s = {:.0} MB/s; plain sequential GET of the same objects {get_s:.2} s; ratio restore/GET = {:.2}",
        db_bytes as f64 / 1e6,
        plan.len(),
        got as f64 / 1e6,
        (r.pages as f64 * r.page_size as f64) / 1e6 / restore_s,
        restore_s / get_s
    );
}
