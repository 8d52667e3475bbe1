//! `barnabee backup verify|status` with the real binary against a real memory daemon that
//! replicates to a file replica: a good verification (exit 0, the table of row counts), the
//! status (replica, replication, restore points, last verification), then the replica
//! replaced by a regular file: verify exits 1 naming the replica, the failure reaches the
//! `notify_url` stand-in as an Alertmanager-style alert, and status exits 1. Memory not
//! reachable: exit 2.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
#![allow(clippy::disallowed_methods)] // tests build their own HTTP clients (clippy.toml)

mod common;

use std::io::{Read, Write};
use std::process::{Command, Output};
use std::sync::mpsc;
use std::time::Duration;

use common::{Daemon, barnabee, closed_url};
use serde_json::Value;

fn run(args: &[&str]) -> Output {
    Command::new(barnabee())
        .args(args)
        .env("XDG_DATA_HOME", "/nonexistent-barnabee-test")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A one-shot HTTP server: the first request's body comes out of the channel.
fn notify_stand_in() -> (String, mpsc::Receiver<String>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/v1/notify/alertmanager",
        listener.local_addr().unwrap()
    );
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = s.read(&mut chunk).unwrap_or(0);
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            let t = String::from_utf8_lossy(&buf).to_string();
            if let Some(i) = t.find("\r\n\r\n") {
                let len = t[..i]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap())
                    })
                    .unwrap_or(0);
                if buf.len() >= i + 4 + len {
                    let _ = s.write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 24\r\n\r\n{\"queued\":1,\"duplicates\":0}"[..]
                            .as_ref(),
                    );
                    let _ = tx.send(t[i + 4..].to_owned());
                    break;
                }
            }
        }
    });
    (url, rx)
}

#[test]
fn verify_and_status_against_a_running_memory_daemon() {
    let (notify_url, notified) = notify_stand_in();
    let config = format!(
        "[service]\nlisten = \"@LISTEN@\"\n[service.log]\ntarget = \"stderr\"\n[database]\npath = \"@DIR@/memory.db\"\n[search]\nembedding_dimensions = 8\n[replication]\ntype = \"file\"\npath = \"@DIR@/replica\"\nsync_interval = 0.1\n[replication.verify]\nfirst_after = 3600\nnotify_url = \"{notify_url}\"\n"
    );
    let d = Daemon::start("memory", &config);
    let url = format!("memory={}", d.url);
    // Some data (verify ships what is committed first).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    for i in 0..5 {
        let r = rt
            .block_on(
                client
                    .post(format!("{}/v1/memories", d.url))
                    .json(&serde_json::json!({"summary": format!("memory {i}"), "memory_type": "fact", "owner": "a"}))
                    .send(),
            )
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
    }

    let o = run(&["backup", "verify", "--url", &url]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("backup verified: file://") && out.contains("integrity ok"),
        "{}",
        text(&o)
    );
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["memories", "5", "5"]),
        "{}",
        text(&o)
    );

    let o = run(&["backup", "status", "--url", &url]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    for needle in [
        "replica:       file://",
        "replication:   running, last shipped TXID",
        "restore points: 20",
        "retention:     snapshots every 1.0 days, kept 31.0 days",
        "verification:  last run good at",
    ] {
        assert!(out.contains(needle), "{needle:?} missing: {}", text(&o));
    }
    let o = run(&["backup", "status", "--url", &url, "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["verification"]["last"]["ok"], true, "{v}");

    // The replica's directory becomes a regular file: a clear failure.
    let replica = d.dir.path().join("replica");
    std::fs::rename(&replica, d.dir.path().join("replica.aside")).unwrap();
    std::fs::write(&replica, "not a directory\n").unwrap();
    let o = run(&["backup", "verify", "--url", &url, "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ok"], false, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains(&replica.display().to_string()),
        "{v}"
    );
    let o = run(&["backup", "verify", "--url", &url]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("backup verification FAILED"),
        "{}",
        text(&o)
    );
    let body = notified.recv_timeout(Duration::from_secs(10)).unwrap();
    let alert: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        alert["alerts"][0]["labels"]["alertname"], "BarnabeeBackupVerifyFailing",
        "{alert}"
    );
    assert_eq!(alert["alerts"][0]["labels"]["severity"], "critical");
    let o = run(&["backup", "status", "--url", &url]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("last run FAILED"),
        "{}",
        text(&o)
    );

    // Nobody there: exit 2, naming the URL.
    let closed = closed_url();
    let o = run(&["backup", "status", "--url", &format!("memory={closed}")]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(&closed),
        "{}",
        text(&o)
    );
}
