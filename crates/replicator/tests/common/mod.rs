#![allow(dead_code, clippy::unwrap_used)]
//! Shared test helpers: locating ../shared/testdata, loopback S3 servers, tools.

use std::path::PathBuf;

/// `../shared/testdata/ltx`, or `None` (after a loud SKIPPED line) when absent and
/// `BARNABEE_SHARED_ABSENT=1`; panics when absent otherwise.
pub fn shared_ltx(test: &str) -> Option<PathBuf> {
    let base = match std::env::var_os("BARNABEE_SHARED_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    };
    let dir = base.join("testdata/ltx");
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var("BARNABEE_SHARED_ABSENT").as_deref() == Ok("1") {
        eprintln!("SKIPPED (../shared/testdata absent): {test}");
        return None;
    }
    panic!(
        "{} is absent: the reference vectors are needed by {test}",
        dir.display()
    );
}

pub fn manifest(dir: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("MANIFEST.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

pub fn hex64(v: &serde_json::Value) -> u64 {
    u64::from_str_radix(v.as_str().unwrap(), 16).unwrap()
}

/// The database image of a live WAL database: copy db + wal aside and checkpoint the copy.
pub fn source_image(db: &std::path::Path) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.db");
    std::fs::copy(db, &copy).unwrap();
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    if std::path::Path::new(&wal).exists() {
        std::fs::copy(&wal, dir.path().join("copy.db-wal")).unwrap();
    }
    let c = rusqlite::Connection::open(&copy).unwrap();
    c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    drop(c);
    std::fs::read(&copy).unwrap()
}

/// An application-style connection: WAL mode, autocheckpoint off.
pub fn app_db(path: &std::path::Path) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; PRAGMA busy_timeout=5000;
         CREATE TABLE IF NOT EXISTS kv(k INTEGER PRIMARY KEY, v TEXT);",
    )
    .unwrap();
    c
}

/// The Litestream 0.5.17 VFS extension from the PyPI wheel (`dev/setup` installs it).
pub fn litestream_ext() -> PathBuf {
    if let Some(p) = std::env::var_os("LITESTREAM_VFS_EXT") {
        return PathBuf::from(p);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/lib");
    if let Ok(rd) = std::fs::read_dir(&venv) {
        for e in rd.flatten() {
            let p = e
                .path()
                .join("site-packages/litestream_vfs/litestream-vfs.so");
            if p.exists() {
                return p;
            }
        }
    }
    panic!(
        "the Litestream VFS extension (PyPI litestream-vfs==0.5.17) is not installed in {}: run dev/setup \
         (dev/setup.d/30-litestream.sh) or set LITESTREAM_VFS_EXT",
        venv.display()
    );
}

/// Restore `replica_url` with the real Litestream ("hydration" = Litestream's own restore code)
/// into `out`; returns the restored TXID. Panics with Litestream's log on failure.
pub fn litestream_hydrate(
    replica_url: &str,
    out: &std::path::Path,
    extra_env: &[(&str, &str)],
) -> u64 {
    use std::io::Write;
    let ext = litestream_ext();
    let sqlite3 = std::env::var("SQLITE3_CLI").unwrap_or_else(|_| "sqlite3".into());
    let log = out.with_extension("litestream.log");
    let meta = PathBuf::from(format!("{}.meta", out.display()));
    let mut cmd = std::process::Command::new(&sqlite3);
    cmd.env_remove("AWS_CA_BUNDLE")
        .env("LITESTREAM_REPLICA_URL", replica_url)
        .env("LITESTREAM_HYDRATION_ENABLED", "true")
        .env("LITESTREAM_HYDRATION_PATH", out)
        .env("LITESTREAM_LOG_LEVEL", "DEBUG")
        .env("LITESTREAM_LOG_FILE", &log)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .current_dir(out.parent().unwrap())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("{sqlite3}: {e}: install Debian's sqlite3 (dev/setup does)"));
    let mut stdin = child.stdin.take().unwrap();
    writeln!(
        stdin,
        ".load {}\n.open file:replica.db?vfs=litestream\nSELECT count(*) FROM sqlite_master;",
        ext.display()
    )
    .unwrap();
    stdin.flush().unwrap();
    let start = std::time::Instant::now();
    let logtext = || std::fs::read_to_string(&log).unwrap_or_default();
    loop {
        let t = logtext();
        if t.contains("hydration complete") || t.contains("hydration failed") {
            break;
        }
        if start.elapsed() > std::time::Duration::from_secs(60) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    drop(stdin);
    let _ = child.wait();
    if !meta.exists() || logtext().contains("hydration failed") {
        let text = logtext();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("hydrat") || l.contains("ERROR") || l.contains("WARN"))
            .collect();
        panic!(
            "Litestream did not hydrate {replica_url}; log:\n{}",
            lines[lines.len().saturating_sub(40)..].join("\n")
        );
    }
    let text = std::fs::read_to_string(&meta).unwrap();
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("bad meta {text:?}"))
}

/// Litestream's point-in-time view (the VFS's `PRAGMA litestream_time`, its own restore plan
/// over the replica's file creation times) of `replica_url` at `time` (RFC 3339): returns the
/// TXID of that view (`PRAGMA litestream_txid`) and writes a logical copy (`VACUUM INTO`) to
/// `out`. The VFS cannot target a TXID directly.
pub fn litestream_at_time(replica_url: &str, time: &str, out: &std::path::Path) -> u64 {
    let ext = litestream_ext();
    let sqlite3 = std::env::var("SQLITE3_CLI").unwrap_or_else(|_| "sqlite3".into());
    let log = out.with_extension("litestream.log");
    let script = format!(
        ".load {}\n.open file:replica.db?vfs=litestream\nPRAGMA litestream_time = '{time}';\n\
         .print view-txid\nPRAGMA litestream_txid;\nVACUUM INTO 'file:{}?vfs=unix';\n",
        ext.display(),
        out.display()
    );
    let mut child = std::process::Command::new(&sqlite3)
        .env_remove("AWS_CA_BUNDLE")
        .env("LITESTREAM_REPLICA_URL", replica_url)
        .env("LITESTREAM_LOG_LEVEL", "DEBUG")
        .env("LITESTREAM_LOG_FILE", &log)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .current_dir(out.parent().unwrap())
        .args(["-bail", "-batch"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{sqlite3}: {e}: install Debian's sqlite3 (dev/setup does)"));
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(script.as_bytes()).unwrap();
    }
    let o = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    let txid = stdout
        .lines()
        .skip_while(|l| l.trim() != "view-txid")
        .nth(1)
        .and_then(|h| u64::from_str_radix(h.trim(), 16).ok());
    match txid {
        Some(t) if o.status.success() && out.exists() => t,
        _ => panic!(
            "Litestream's view of {replica_url} at {time} failed ({}): stdout {stdout:?} stderr {:?}; log tail:\n{}",
            o.status,
            String::from_utf8_lossy(&o.stderr),
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .lines()
                .rev()
                .take(30)
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

/// `sqlite3 DB .dump` (schema and every row, as SQL text).
pub fn sqlite_dump(db: &std::path::Path) -> String {
    let sqlite3 = std::env::var("SQLITE3_CLI").unwrap_or_else(|_| "sqlite3".into());
    let o = std::process::Command::new(&sqlite3)
        .arg(db)
        .arg(".dump")
        .output()
        .unwrap_or_else(|e| panic!("{sqlite3}: {e}: install Debian's sqlite3 (dev/setup does)"));
    assert!(
        o.status.success(),
        "{sqlite3} {} .dump failed",
        db.display()
    );
    String::from_utf8(o.stdout).unwrap()
}

/// A loopback S3 server killed on drop.
pub struct S3Server {
    child: std::process::Child,
    restart: Option<(PathBuf, Vec<String>)>,
    pub endpoint: String,
    pub dir: tempfile::TempDir,
    pub kind: &'static str,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub const S3_KEY: &str = "GK0123456789abcdef01234567";
pub const S3_SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn cache_dir() -> PathBuf {
    if let Some(c) = std::env::var_os("BARNABEE_CACHE") {
        return PathBuf::from(c);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache"));
    base.join("barnabee")
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_port(port: u16) {
    let start = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "S3 server on port {port} did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

impl S3Server {
    /// s3s-fs 0.14.1 (checks signatures), from `S3S_FS` or `$CACHE/tools/s3s-fs-0.14.1`.
    pub fn s3s_fs(buckets: &[&str]) -> Self {
        let bin = std::env::var_os("S3S_FS")
            .map(PathBuf::from)
            .unwrap_or_else(|| cache_dir().join("tools/s3s-fs-0.14.1/bin/s3s-fs"));
        assert!(
            bin.exists(),
            "{} missing: run dev/setup (dev/setup.d/30-litestream.sh builds s3s-fs 0.14.1) or set S3S_FS",
            bin.display()
        );
        let dir = tempfile::tempdir().unwrap();
        for b in buckets {
            std::fs::create_dir_all(dir.path().join(b)).unwrap();
        }
        let port = free_port();
        let args: Vec<String> = [
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--access-key",
            S3_KEY,
            "--secret-key",
            S3_SECRET,
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([dir.path().display().to_string()])
        .collect();
        let child = spawn_quiet(&bin, &args);
        wait_port(port);
        S3Server {
            child,
            restart: Some((bin, args)),
            endpoint: format!("http://127.0.0.1:{port}"),
            dir,
            kind: "s3s-fs",
        }
    }

    /// Stop the server (s3s-fs only); its data stays.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Start it again on the same port and directory.
    pub fn start_again(&mut self) {
        let (bin, args) = self.restart.clone().expect("restartable server");
        self.child = spawn_quiet(&bin, &args);
        wait_port(self.endpoint.rsplit(':').next().unwrap().parse().unwrap());
    }

    pub fn url(&self, bucket: &str, path: &str) -> String {
        format!(
            "s3://{bucket}/{path}?endpoint={}&region={}&forcePathStyle=true",
            self.endpoint,
            self.region()
        )
    }

    pub fn replica(&self, bucket: &str, path: &str) -> barnabee_replicator::ReplicaConfig {
        barnabee_replicator::ReplicaConfig {
            access_key_id: Some(S3_KEY.into()),
            secret_access_key: Some(S3_SECRET.into()),
            ..barnabee_replicator::ReplicaConfig::from_url(&self.url(bucket, path))
        }
    }
}

pub fn no_proxy() {
    // SAFETY: tests set this before any client exists; the value is the same everywhere.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("NO_PROXY", "127.0.0.1,localhost");
    }
}

impl S3Server {
    /// Garage 2.5.0 single node (what NixOS operators self-host; strict about checksums), from
    /// `GARAGE` or `$CACHE/tools/garage-2.5.0` (dev/setup.d/31-garage.sh builds it).
    pub fn garage(buckets: &[&str]) -> Self {
        let bin = std::env::var_os("GARAGE")
            .map(PathBuf::from)
            .unwrap_or_else(|| cache_dir().join("tools/garage-2.5.0/bin/garage"));
        assert!(
            bin.exists(),
            "{} missing: run dev/setup (dev/setup.d/31-garage.sh builds garage 2.5.0) or set GARAGE",
            bin.display()
        );
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut rpc = free_port();
        while rpc == port {
            rpc = free_port();
        }
        let secret: String = (0..32)
            .map(|i| format!("{:02x}", (i * 37 + port as usize) % 256))
            .collect();
        let cfg = dir.path().join("garage.toml");
        std::fs::write(
            &cfg,
            format!(
                "metadata_dir = \"{d}/meta\"\ndata_dir = \"{d}/data\"\ndb_engine = \"sqlite\"\nreplication_factor = 1\n\
                 rpc_bind_addr = \"127.0.0.1:{rpc}\"\nrpc_public_addr = \"127.0.0.1:{rpc}\"\nrpc_secret = \"{secret}\"\n\
                 [s3_api]\ns3_region = \"garage\"\napi_bind_addr = \"127.0.0.1:{port}\"\nroot_domain = \".s3.garage\"\n",
                d = dir.path().display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o600)).unwrap();
        let child = std::process::Command::new(&bin)
            .arg("-c")
            .arg(&cfg)
            .arg("server")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let server = S3Server {
            child,
            restart: None,
            endpoint: format!("http://127.0.0.1:{port}"),
            dir,
            kind: "garage",
        };
        let g = |args: &[&str]| {
            std::process::Command::new(&bin)
                .arg("-c")
                .arg(&cfg)
                .args(args)
                .output()
                .unwrap()
        };
        let start = std::time::Instant::now();
        while !g(&["status"]).status.success() {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(20),
                "garage did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let id = String::from_utf8(g(&["node", "id", "-q"]).stdout).unwrap();
        let id = id.trim().split('@').next().unwrap().to_owned();
        let run = |args: &[&str]| {
            let o = g(args);
            assert!(
                o.status.success(),
                "garage {args:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        };
        run(&["layout", "assign", "-z", "dc1", "-c", "1G", &id]);
        run(&["layout", "apply", "--version", "1"]);
        run(&["key", "import", "--yes", "-n", "test", S3_KEY, S3_SECRET]);
        run(&["key", "allow", "--create-bucket", S3_KEY]);
        for b in buckets {
            run(&["bucket", "create", b]);
            run(&[
                "bucket", "allow", "--read", "--write", "--owner", b, "--key", "test",
            ]);
        }
        wait_port(port);
        server
    }

    pub fn region(&self) -> &'static str {
        if self.kind == "garage" {
            "garage"
        } else {
            "us-east-1"
        }
    }
}

fn spawn_quiet(bin: &std::path::Path, args: &[String]) -> std::process::Child {
    std::process::Command::new(bin)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}
