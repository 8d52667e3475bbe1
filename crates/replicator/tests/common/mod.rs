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
