//! `barnabee up` with the real daemon binaries of this workspace: starts them, `status`
//! reports them healthy, a killed daemon is restarted, SIGINT stops everything with exit 0.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
#![allow(clippy::disallowed_methods)] // tests build their own HTTP clients (clippy.toml)

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::barnabee;
use common::demo_home::{Up, free_port_offset, signal};

const DAEMONS_UNDER_TEST: &[&str] = &["memory", "watchdog"];

fn status(data: &std::path::Path) -> (i32, String) {
    let out = Command::new(barnabee())
        .args(["status", "--data-dir"])
        .arg(data)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn up_status_restart_and_clean_stop() {
    let data = tempfile::tempdir().unwrap();
    let offset = free_port_offset();
    let mut up = Up::start_with(data.path(), offset, &DAEMONS_UNDER_TEST.join(","), false);
    up.wait_for("the local appliance is up", Duration::from_secs(90));

    let (code, table) = status(data.path());
    assert_eq!(code, 0, "status:\n{table}");
    for role in DAEMONS_UNDER_TEST {
        let row = table
            .lines()
            .find(|l| l.starts_with(role))
            .unwrap_or_else(|| panic!("{role} missing:\n{table}"));
        let port = 7700 + offset + if *role == "memory" { 1 } else { 5 };
        assert!(row.contains(&format!("127.0.0.1:{port}")), "{row}");
        assert!(row.contains("healthy") || row.contains("degraded"), "{row}");
    }

    // Kill the memory daemon behind up's back: up restarts it.
    let memory_pid = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                c.contains("barnabee-memory") && c.contains(data.path().to_str().unwrap())
            })
        })
        .expect("memory daemon process not found");
    signal(memory_pid, libc::SIGKILL);
    up.wait_for(
        "memory exited unexpectedly: killed by signal 9",
        Duration::from_secs(10),
    );
    up.wait_for("restarting memory", Duration::from_secs(5));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, table) = status(data.path());
        if code == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "memory not back after restart:\n{table}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Ctrl-C: every daemon stops, up exits 0 and forgets its state file.
    up.stop();
    assert!(!data.path().join("up.json").exists());
    let (code, _) = status(data.path());
    assert_ne!(code, 0, "status must fail once the appliance is down");
}
