//! `barnabee up` with the real daemon binaries of this workspace: starts them, `status`
//! reports them healthy, a killed daemon is restarted, SIGINT stops everything with exit 0.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const DAEMONS_UNDER_TEST: &[&str] = &["memory", "watchdog"];

fn barnabee() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_barnabee"))
}

/// The daemon binaries must be built beside `barnabee` (the workspace test run builds them).
fn bin_dir() -> PathBuf {
    let dir = barnabee().parent().unwrap().to_owned();
    for role in DAEMONS_UNDER_TEST {
        let bin = dir.join(format!("barnabee-{role}"));
        assert!(
            bin.is_file(),
            "{} is not built; run the workspace tests (`cargo nextest run --workspace`) or `cargo build --workspace` first",
            bin.display()
        );
    }
    dir
}

/// An offset at which every default port (7701..=7705) is free.
fn free_port_offset() -> u16 {
    let seed = std::process::id() as u16;
    (0..200u16)
        .map(|i| 1000 + (seed.wrapping_add(i * 37) % 40000))
        .find(|off| {
            (7701..=7705).all(|p| std::net::TcpListener::bind(("127.0.0.1", p + off)).is_ok())
        })
        .expect("no free port range")
}

struct Up {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Up {
    fn wait_for(&mut self, needle: &str, timeout: Duration) -> String {
        let end = Instant::now() + timeout;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => break,
            }
        }
        panic!(
            "`barnabee up` never printed {needle:?}; output:\n{}",
            self.seen.join("\n")
        );
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) on a pid we started; no memory is shared.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

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
    let bins = bin_dir();
    let data = tempfile::tempdir().unwrap();
    let offset = free_port_offset();
    let mut child = Command::new(barnabee())
        .args([
            "up",
            "--only",
            &DAEMONS_UNDER_TEST.join(","),
            "--port-offset",
        ])
        .arg(offset.to_string())
        .arg("--data-dir")
        .arg(data.path())
        .arg("--bin-dir")
        .arg(&bins)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut up = Up {
        child,
        lines: rx,
        seen: Vec::new(),
    };
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
    signal(up.child.id(), libc::SIGINT);
    up.wait_for("[up] stopped", Duration::from_secs(30));
    let exit = up.child.wait().unwrap();
    assert_eq!(exit.code(), Some(0), "output:\n{}", up.seen.join("\n"));
    assert!(!data.path().join("up.json").exists());
    let (code, _) = status(data.path());
    assert_ne!(code, 0, "status must fail once the appliance is down");
}
