//! Test peers: the ONNX Runtime library and real models dev/setup unpacks under the cache,
//! espeak-ng speech, the generated stand-in models, the daemon binary, a tiny HTTP client.

#![allow(dead_code, clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use barnabee_inference::wav;
use barnabee_service::testing::DaemonProcess;

pub const ORT_VERSION: &str = "1.22.1";

/// `$BARNABEE_INFERENCE_CACHE`, else `$BARNABEE_CACHE/inference`, else `~/.cache/barnabee/inference`.
pub fn cache() -> PathBuf {
    if let Some(p) = std::env::var_os("BARNABEE_INFERENCE_CACHE") {
        return PathBuf::from(p);
    }
    let base = std::env::var_os("BARNABEE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache"))
                .join("barnabee")
        });
    base.join("inference")
}

fn need(path: PathBuf, what: &str) -> PathBuf {
    assert!(
        path.exists(),
        "{what} not found at {} — run dev/setup (dev/setup.d/70-inference.sh installs it)",
        path.display()
    );
    path
}

/// libonnxruntime.so: `$ORT_DYLIB_PATH` or the wheel's library under the cache.
pub fn ort_lib() -> PathBuf {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
        return need(PathBuf::from(p), "ORT_DYLIB_PATH");
    }
    need(
        cache().join(format!("onnxruntime-{ORT_VERSION}/libonnxruntime.so")),
        "libonnxruntime.so (ONNX Runtime from the PyPI wheel)",
    )
}

pub fn silero() -> PathBuf {
    need(
        cache().join("models/silero-vad-6.2.3/silero_vad.onnx"),
        "Silero VAD 6.2.3 model",
    )
}

pub fn oww(name: &str) -> PathBuf {
    need(
        cache().join(format!("models/openwakeword-0.5.1/{name}.onnx")),
        "openWakeWord 0.5.1 model",
    )
}

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The project venv's Python (`$BARNABEE_TEST_PYTHON` overrides it, for a venv set up
/// elsewhere with tests/requirements.txt).
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("BARNABEE_TEST_PYTHON") {
        return need(PathBuf::from(p), "BARNABEE_TEST_PYTHON");
    }
    need(
        workspace().join(".venv/bin/python"),
        "the project venv (.venv) with onnx/numpy",
    )
}

/// The stand-in models, generated once per test process into a temp dir.
pub fn standins() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!(
            "barnabee-inference-standins-{}",
            std::process::id()
        ));
        let out = Command::new(python())
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/make_models.py"))
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "make_models.py failed (needs onnx + numpy in .venv; run dev/setup): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}

/// espeak-ng speech at 16 kHz mono with `pad_s` seconds of silence each side.
pub fn speak(text: &str, voice: &str, rate_wpm: u32, pad_s: f32) -> Vec<i16> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.wav");
    let out = Command::new("espeak-ng")
        .args(["-v", voice, "-s", &rate_wpm.to_string(), "-w"])
        .arg(&path)
        .arg(text)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run espeak-ng ({e}): install the Debian package espeak-ng (dev/setup does)"
            )
        });
    assert!(
        out.status.success(),
        "espeak-ng: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pcm = wav::parse(&std::fs::read(&path).unwrap()).unwrap();
    let speech = wav::to_mono_rate(&pcm, 16_000);
    let pad = vec![0i16; (16_000.0 * pad_s) as usize];
    [pad.clone(), speech, pad].concat()
}

/// Deterministic white noise.
pub fn noise(samples: usize, amplitude: f32) -> Vec<i16> {
    let mut x: u64 = 0x2545F4914F6CDD1D;
    (0..samples)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (((x % 20001) as f32 / 10000.0 - 1.0) * amplitude) as i16
        })
        .collect()
}

pub fn sha(path: &Path) -> String {
    barnabee_inference::registry::sha256_file(path).unwrap()
}

/// A `[models.<name>]` TOML entry with hashes computed from the files.
pub fn model_toml(name: &str, kind: &str, files: &[(&str, &Path)], extra: &str) -> String {
    let mut s = format!("[models.\"{name}\"]\nkind = \"{kind}\"\n{extra}\n");
    for (role, path) in files {
        s.push_str(&format!(
            "files.{role} = {{ path = \"{}\", sha256 = \"{}\" }}\n",
            path.display(),
            sha(path)
        ));
    }
    s
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A minimal HTTP/1.1 client (Connection: close). Returns (status, headers, body).
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let mut body = buf[split + 4..].to_vec();
    if head.to_lowercase().contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    (status, head, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(p) = b.windows(2).position(|w| w == b"\r\n") {
        let n = usize::from_str_radix(std::str::from_utf8(&b[..p]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&b[p + 2..p + 2 + n]);
        b = &b[p + 2 + n + 2..];
    }
    out
}

pub fn json(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &serde_json::Value,
) -> (u16, serde_json::Value) {
    let (st, _, b) = http(
        addr,
        method,
        path,
        "application/json",
        body.to_string().as_bytes(),
    );
    (
        st,
        serde_json::from_slice(&b).unwrap_or(serde_json::Value::Null),
    )
}

/// The real daemon binary with a config; SIGTERM on drop.
pub struct Daemon {
    pub process: DaemonProcess,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
}

impl Daemon {
    /// `body` is appended after `[service]`/`[runtime]`/`[wyoming]` sections we write.
    pub fn start(extra: &str, wyoming_port: Option<u16>) -> Daemon {
        Self::start_with_env(extra, wyoming_port, &[])
    }

    pub fn start_with_env(extra: &str, wyoming_port: Option<u16>, env: &[(&str, &str)]) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let wy = match wyoming_port {
            Some(p) => format!("[wyoming]\nlisten = \"127.0.0.1:{p}\"\n"),
            None => "[wyoming]\nenabled = false\n".into(),
        };
        let cfg = format!(
            "[service]\nlisten = \"127.0.0.1:0\"\n[service.log]\ntarget = \"stderr\"\n[runtime]\nlibrary = \"{}\"\n{wy}{extra}",
            ort_lib().display()
        );
        let path = dir.path().join("inference.toml");
        std::fs::write(&path, &cfg).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_barnabee-inference"));
        cmd.arg("--config").arg(&path).envs(env.iter().copied());
        let mut process = DaemonProcess::spawn(cmd, &dir.path().join("stderr.log"));
        // Models load before the listener binds: a minute covers the largest test model.
        let addr = process.wait_serving(Duration::from_secs(60));
        if let Some(p) = wyoming_port {
            process.wait_listening(([127, 0, 0, 1], p).into(), Duration::from_secs(30));
        }
        Daemon { process, addr, dir }
    }

    pub fn stderr(&self) -> String {
        self.process.log()
    }

    pub fn health(&self) -> (u16, serde_json::Value) {
        json(self.addr, "GET", "/health", &serde_json::Value::Null)
    }
}

/// `dir` when it holds `file` (a model dev/setup made), else a loud SKIPPED naming `what` and
/// dev/setup, and a failure under `CI=true`.
pub fn model_dir_or_skip(test: &str, dir: PathBuf, file: &str, what: &str) -> Option<PathBuf> {
    if dir.join(file).exists() {
        return Some(dir);
    }
    let msg = format!(
        "{what} is not at {} (dev/setup.d/70-inference.sh puts it there: run dev/setup)",
        dir.display()
    );
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test}: {msg}"
    );
    eprintln!("\n******** SKIPPED ({msg}): {test} ********\n");
    None
}
