//! Shared helpers for the CLI's integration tests: the `barnabee` binary, the workspace's
//! daemon binaries beside it (SIGTERM on drop), free ports.

#![allow(dead_code, clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use barnabee_service::testing::DaemonProcess;

pub fn barnabee() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_barnabee"))
}

/// A daemon binary of this workspace; it must be built beside `barnabee`.
pub fn daemon_bin(role: &str) -> PathBuf {
    let bin = barnabee()
        .parent()
        .unwrap()
        .join(format!("barnabee-{role}"));
    assert!(
        bin.is_file(),
        "{} is not built; run the workspace tests (`cargo nextest run --workspace`) or `cargo build --workspace` first",
        bin.display()
    );
    bin
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A base URL nothing listens on.
pub fn closed_url() -> String {
    format!("http://127.0.0.1:{}", free_port())
}

/// A real daemon with its config and state in a temp dir; SIGTERM on drop.
pub struct Daemon {
    pub process: DaemonProcess,
    pub url: String,
    pub dir: tempfile::TempDir,
}

impl Daemon {
    /// Start `barnabee-<role>` with `config` (`@DIR@` → its temp dir, `@LISTEN@` → a free
    /// loopback address) and wait until it accepts connections.
    pub fn start(role: &str, config: &str) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let path = dir.path().join(format!("{role}.toml"));
        std::fs::write(
            &path,
            config
                .replace("@DIR@", &dir.path().display().to_string())
                .replace("@LISTEN@", &format!("127.0.0.1:{port}")),
        )
        .unwrap();
        let mut cmd = Command::new(daemon_bin(role));
        cmd.arg("--config")
            .arg(&path)
            .env("STATE_DIRECTORY", dir.path())
            .stdin(Stdio::null());
        let mut process = DaemonProcess::spawn(cmd, &dir.path().join("stderr.log"));
        process.wait_listening(([127, 0, 0, 1], port).into(), Duration::from_secs(60));
        Daemon {
            process,
            url: format!("http://127.0.0.1:{port}"),
            dir,
        }
    }

    pub fn stderr(&self) -> String {
        self.process.log()
    }
}

/// Write an executable shell script.
pub fn script(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}
pub mod demo_home;
pub mod webdriver;
