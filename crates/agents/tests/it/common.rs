//! Shared helpers: run the real binary on a free loopback port, wait until it serves, SIGTERM
//! on drop.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub use barnabee_service::testing::{DaemonProcess, sigterm};

use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_barnabee-agents");

pub struct Daemon {
    pub process: DaemonProcess,
    pub base: String,
}

/// Write `agents.toml` in `dir`: a loopback listener, stderr logging, the ledger in `dir`,
/// then `extra` (TOML).
pub fn write_config(dir: &Path, extra: &str) -> PathBuf {
    let cfg = dir.join("agents.toml");
    let text = format!(
        "state_dir = \"{}\"\n{extra}\n[service]\nlisten = \"127.0.0.1:0\"\ndrain_timeout = 2\n[service.log]\ntarget = \"stderr\"\nlevel = \"info\"\n",
        dir.display()
    );
    std::fs::write(&cfg, text).unwrap();
    cfg
}

impl Daemon {
    pub fn start(dir: &Path, extra: &str) -> Daemon {
        Self::start_with(&write_config(dir, extra))
    }

    pub fn start_with(config: &Path) -> Daemon {
        Self::start_with_env(config, &[])
    }

    /// Start with extra environment variables (e.g. `CREDENTIALS_DIRECTORY`).
    pub fn start_with_env(config: &Path, env: &[(&str, &Path)]) -> Daemon {
        let mut cmd = Command::new(BIN);
        cmd.arg("--config")
            .arg(config)
            .envs(env.iter().map(|(k, v)| (*k, *v)));
        let mut process = DaemonProcess::spawn(cmd, &config.with_extension("stderr.log"));
        let addr = process.wait_serving(Duration::from_secs(30));
        Daemon {
            process,
            base: format!("http://{addr}"),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn log(&self) -> String {
        self.process.log()
    }

    /// POST /v1/process; returns (status, body).
    pub fn process_raw(&self, body: &[u8]) -> (u16, Value) {
        let resp = http()
            .post(self.url("/v1/process"))
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// POST /v1/process {text, session_id}; asserts 200.
    pub fn say(&self, session: &str, text: &str) -> Value {
        let body = json!({"text": text, "session_id": session}).to_string();
        let (status, v) = self.process_raw(body.as_bytes());
        assert_eq!(status, 200, "{text:?} -> {v}\n{}", self.log());
        v
    }

    pub fn health(&self) -> (u16, Value) {
        let resp = http().get(self.url("/health")).send().unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().unwrap())
    }

    pub fn metrics(&self) -> String {
        http()
            .get(self.url("/metrics"))
            .send()
            .unwrap()
            .text()
            .unwrap()
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) {
        self.process.stop();
    }
}

pub fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// A secret file with mode 0600.
pub fn secret_file(dir: &Path, name: &str, value: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, value).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

/// A loopback port nobody listens on (bound, then released).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}
