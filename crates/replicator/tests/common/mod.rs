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
