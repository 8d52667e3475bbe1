//! Backup verification under faults (#18), against the real daemon and a real S3 server
//! (s3s-fs on loopback): nothing lost, nothing applied, a clear error each time.
//! - S3 down during a verification: it fails naming the replica and the connection; the
//!   schedule tries again and passes once S3 is back;
//! - kill -9 in the middle of a verification (S3 hung mid-restore): the live database is
//!   untouched (integrity_check, every row), the temporary restore is removed at the next
//!   start and the next verification passes;
//! - the temporary directory's disk full (a 64 KiB tmpfs as `temp_dir`): a clear error naming
//!   it, the live database untouched. Needs root (mount); where it cannot mount, the test says
//!   so loudly and fails under CI=true.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use crate::common::{Daemon, write_config};
use crate::replication::{S3_SECRET, S3s, credential, post, s3_extra};
use crate::verify::{get, verify, wait_check};

/// A daemon in `dir/state` replicating to `s3` with `[replication.verify]` = `verify_toml`.
fn start(dir: &Path, s3: &S3s, verify_toml: &str) -> (Daemon, PathBuf, PathBuf) {
    let creds = dir.join("creds");
    credential(&creds, &format!("{S3_SECRET}\n"));
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let extra = format!("{}[replication.verify]\n{verify_toml}", s3_extra(s3.port));
    let config = write_config(&state, &extra);
    let d = Daemon::start_with_env(config.clone(), &[("CREDENTIALS_DIRECTORY", &creds)]);
    (d, state, creds)
}

/// Memories with long summaries, so a restore takes more than a few requests.
async fn fill(d: &Daemon, n: usize) {
    let filler = "the quick brown fox jumps over the lazy dog ".repeat(40);
    for i in 0..n {
        post(d, &format!("memory {i}: {filler}")).await;
    }
}

/// `PRAGMA integrity_check` and the number of memories of the live database file (the
/// daemon stopped or killed), read-only.
fn live_state(state: &Path) -> (String, i64) {
    let conn = rusqlite::Connection::open_with_flags(
        state.join("memory.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM memories", [], |r| r.get(0))
        .unwrap();
    (check, n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_down_during_verification_fails_clearly_and_the_next_run_passes() {
    let dir = tempfile::tempdir().unwrap();
    let mut s3 = S3s::start("barnabee");
    let (d, _state, _creds) = start(
        dir.path(),
        &s3,
        "first_after = 3600\ninterval = 1\nmax_age = 60\n",
    );
    fill(&d, 20).await;
    let (code, v) = verify(&d).await;
    assert_eq!(code, StatusCode::OK, "{v}");
    s3.stop();
    let t0 = Instant::now();
    let (code, v) = verify(&d).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    let error = v["error"].as_str().unwrap();
    assert!(
        error.contains("s3://barnabee/memory"),
        "the error does not name the replica: {error}"
    );
    println!(
        "S3 down: verification failed in {:.1} s: {error}",
        t0.elapsed().as_secs_f64()
    );
    let h = get(&d, "/health").await;
    assert_eq!(h["checks"]["backup_verify"]["ok"], false, "{h}");
    assert_eq!(h["checks"]["backup_verify"]["critical"], false, "{h}");
    // S3 back: the schedule (again within min(interval, 1 h) after a failure) passes.
    s3.start_again();
    wait_check(
        &d,
        |c| c["ok"] == true && c["detail"].as_str().unwrap_or("").contains("ago: TXID"),
        "never verified after S3 came back",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_verification_leaves_the_live_database_alone_and_the_next_run_passes() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = S3s::start("barnabee");
    let temp_root = dir.path().join("verify-tmp");
    let verify_toml = format!(
        "first_after = 3600\ninterval = 3600\ntemp_dir = \"{}\"\n",
        temp_root.display()
    );
    let (mut d, state, creds) = start(dir.path(), &s3, &verify_toml);
    fill(&d, 200).await;
    let base = d.url("/v1/backup/verify");
    // Catch a verification in its restore (its temporary directory exists), hang S3 there,
    // and kill the daemon. A verification that finished before we looked is simply retried.
    let mut caught = false;
    for _attempt in 0..10 {
        let url = base.clone();
        let request = tokio::spawn(async move {
            let _ = crate::common::client().post(url).send().await;
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline && !request.is_finished() {
            let busy = std::fs::read_dir(&temp_root)
                .map(|mut r| r.next().is_some())
                .unwrap_or(false);
            if busy {
                s3.pause();
                caught = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        if caught {
            tokio::time::sleep(Duration::from_millis(200)).await;
            d.kill9();
            request.abort();
            break;
        }
        let _ = request.await;
    }
    s3.resume();
    assert!(caught, "no verification was ever seen in its restore");
    let leftovers: Vec<_> = std::fs::read_dir(&temp_root).unwrap().collect();
    assert!(
        !leftovers.is_empty(),
        "the killed verification left nothing behind?"
    );
    // The live database: intact, every memory there.
    let (check, n) = live_state(&state);
    assert_eq!((check.as_str(), n), ("ok", 200));
    println!(
        "kill -9 mid-verification: live database integrity_check ok, {n} memories; {} leftover(s) in {}",
        leftovers.len(),
        temp_root.display()
    );
    // The next start removes the leftovers; the next verification passes.
    let config = state.join("memory.toml");
    let d = Daemon::start_with_env(config, &[("CREDENTIALS_DIRECTORY", &creds)]);
    assert_eq!(
        std::fs::read_dir(&temp_root).unwrap().count(),
        0,
        "leftovers of the killed verification not removed at start"
    );
    let (code, v) = verify(&d).await;
    assert_eq!(code, StatusCode::OK, "{v}\n{}", d.log());
    assert_eq!(v["ok"], true, "{v}");
}

/// Mount a `size` tmpfs at `at`; Err says why not (not root, no mount permission).
fn mount_tmpfs(at: &Path, size: &str) -> Result<(), String> {
    std::fs::create_dir_all(at).unwrap();
    let out = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(at)
        .output()
        .map_err(|e| format!("mount: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

struct Unmount(PathBuf);
impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_temporary_disk_fails_clearly_and_leaves_the_live_database_alone() {
    let dir = tempfile::tempdir().unwrap();
    let temp_root = dir.path().join("small-disk");
    if let Err(why) = mount_tmpfs(&temp_root, "64k") {
        let msg = format!(
            "!!! NOT RUN: disk-full verification test: cannot mount a 64 KiB tmpfs at {} ({why}); it runs as root (dev/test in CI does) !!!",
            temp_root.display()
        );
        eprintln!("\x1b[1;33m{msg}\x1b[0m");
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{msg}");
        return;
    }
    let _unmount = Unmount(temp_root.clone());
    let s3 = S3s::start("barnabee");
    let verify_toml = format!(
        "first_after = 3600\ninterval = 3600\ntemp_dir = \"{}\"\n",
        temp_root.display()
    );
    let (mut d, state, _creds) = start(dir.path(), &s3, &verify_toml);
    fill(&d, 100).await;
    let (code, v) = verify(&d).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    let error = v["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("No space left on device")
            && error.contains(&temp_root.display().to_string()),
        "the error does not say the temporary disk is full, naming it: {v}"
    );
    println!("disk full: {error}");
    let h: Value = get(&d, "/health").await;
    assert_eq!(h["checks"]["backup_verify"]["ok"], false, "{h}");
    // Nothing of the failed restore is left on the small disk.
    assert_eq!(std::fs::read_dir(&temp_root).unwrap().count(), 0);
    d.stop();
    let (check, n) = live_state(&state);
    assert_eq!((check.as_str(), n), ("ok", 100));
}
