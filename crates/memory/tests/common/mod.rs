//! Shared helpers: run the real binary on a free loopback port, wait until it serves, SIGTERM
//! on drop.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use barnabee_service::testing::DaemonProcess;

pub const BIN: &str = env!("CARGO_BIN_EXE_barnabee-memory");

pub struct Daemon {
    pub process: DaemonProcess,
    pub base: String,
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
        let mut cmd = Command::new(BIN);
        cmd.arg("--config")
            .arg(&config)
            .envs(env.iter().map(|(k, v)| (*k, *v)));
        let log = config.with_extension("stderr.log");
        let mut process = DaemonProcess::spawn(cmd, &log);
        let addr = process.wait_serving(Duration::from_secs(30));
        Daemon {
            process,
            base: format!("http://{addr}"),
            config,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// What this run of the daemon wrote to stderr.
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(&mut self) {
        self.process.kill9();
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) {
        self.process.stop();
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
