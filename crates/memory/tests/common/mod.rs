//! Shared helpers: run the real binary on a free loopback port, wait until it serves, SIGTERM
//! on drop.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_barnabee-memory");

pub struct Daemon {
    pub child: Option<Child>,
    pub base: String,
    pub stderr: Arc<Mutex<String>>,
    pub config: PathBuf,
}

/// Write a config for a database under `dir`; `extra` is appended (TOML).
pub fn write_config(dir: &Path, extra: &str) -> PathBuf {
    let cfg = dir.join("memory.toml");
    let text = format!(
        "[service]\nlisten = \"127.0.0.1:0\"\ndrain_timeout = 2\n[service.log]\ntarget = \"stderr\"\nlevel = \"info\"\n[database]\npath = \"{}\"\n{extra}",
        dir.join("memory.db").display()
    );
    std::fs::write(&cfg, text).unwrap();
    cfg
}

/// The small embedding size the tests use (`[search] embedding_dimensions`).
pub const DIMS: usize = 8;

pub fn small_dims() -> String {
    format!("[search]\nembedding_dimensions = {DIMS}\n")
}

impl Daemon {
    pub fn start(dir: &Path, extra: &str) -> Daemon {
        let config = write_config(dir, extra);
        Self::start_with(config)
    }

    pub fn start_with(config: PathBuf) -> Daemon {
        Self::start_with_env(config, &[])
    }

    /// Start with extra environment variables (e.g. `CREDENTIALS_DIRECTORY`).
    pub fn start_with_env(config: PathBuf, env: &[(&str, &Path)]) -> Daemon {
        let mut child = Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .env_remove("NOTIFY_SOCKET")
            .env_remove("STATE_DIRECTORY")
            .env_remove("CREDENTIALS_DIRECTORY")
            .envs(env.iter().map(|(k, v)| (*k, *v)))
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
                    config,
                };
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "barnabee-memory exited ({status}) before serving:\n{}",
                    stderr.lock().unwrap()
                );
            }
            assert!(
                Instant::now() < deadline,
                "barnabee-memory did not serve within 30 s:\n{}",
                stderr.lock().unwrap()
            );
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            sigterm(c.id());
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                if let Some(status) = c.try_wait().unwrap() {
                    assert!(
                        status.success(),
                        "exit {status}:\n{}",
                        self.stderr.lock().unwrap()
                    );
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

fn sigterm(pid: u32) {
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

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// A unit vector along `axis` mixed with `other` by `mix` (for ranking fixtures).
pub fn vector(axis: usize, other: usize, mix: f32) -> Vec<f32> {
    let mut v = vec![0.0; DIMS];
    v[axis] = 1.0 - mix;
    v[other] += mix;
    v
}

/// Run the binary with `args`; (exit code, stdout, stderr).
pub fn run_cli(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn testdata(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(case)
}
