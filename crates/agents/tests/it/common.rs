//! Shared helpers: run the real binary on a free loopback port, wait until it serves, SIGTERM
//! on drop.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_barnabee-agents");

pub struct Daemon {
    pub child: Option<Child>,
    pub base: String,
    pub stderr: Arc<Mutex<String>>,
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
        let mut child = Command::new(BIN)
            .arg("--config")
            .arg(config)
            .env_remove("NOTIFY_SOCKET")
            .env_remove("STATE_DIRECTORY")
            .env_remove("CREDENTIALS_DIRECTORY")
            .env("NO_PROXY", "127.0.0.1,localhost")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let pipe = child.stderr.take().unwrap();
        let log = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                log.lock().unwrap().push_str(&line);
                log.lock().unwrap().push('\n');
                if let Some(i) = line.find("serving on http://") {
                    let addr: String = line[i + "serving on http://".len()..]
                        .chars()
                        .take_while(|c| !c.is_whitespace())
                        .collect();
                    let _ = tx.send(addr);
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(addr) = rx.recv_timeout(Duration::from_millis(50)) {
                return Daemon {
                    child: Some(child),
                    base: format!("http://{addr}"),
                    stderr,
                };
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "barnabee-agents exited ({status}) before serving:\n{}",
                    stderr.lock().unwrap()
                );
            }
            assert!(
                Instant::now() < deadline,
                "barnabee-agents did not serve within 30 s:\n{}",
                stderr.lock().unwrap()
            );
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
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

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            sigterm(c.id());
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                if let Some(status) = c.try_wait().unwrap() {
                    assert!(status.success(), "exit {status}:\n{}", self.log());
                    return;
                }
                if Instant::now() > deadline {
                    let _ = c.kill();
                    panic!("no exit 15 s after SIGTERM");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

pub fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

pub fn sigterm(pid: u32) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            sigterm(c.id());
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if c.try_wait().ok().flatten().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
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
