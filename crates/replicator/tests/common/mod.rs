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
