//! `barnabee up --demo-home` driven by a test: start it, read its output, Ctrl-C it; HTTP to
//! Home Assistant and the daemons. Shared by demo_home.rs and assist.rs.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{barnabee, daemon_bin};

pub const HA_PORT: u16 = 8123;

fn cache_dir() -> Option<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("BARNABEE_CACHE")
        .or_else(|| var("XDG_CACHE_HOME").map(|x| x.join("barnabee")))
        .or_else(|| var("HOME").map(|h| h.join(".cache/barnabee")))
}

/// The `hass` that `barnabee up --demo-home` runs (as it looks for it): `$BARNABEE_HASS`, else
/// the current Home Assistant, else the 2024.3.3 floor.
pub fn hass_installed() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("BARNABEE_HASS").filter(|v| !v.is_empty()) {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    current_hass().or_else(|| {
        let p = cache_dir()?.join("home-assistant/bin/hass");
        p.is_file().then_some(p)
    })
}

/// The current Home Assistant (2026.2.3 in its trixie chroot, dev/setup.d/61-home-assistant-current.sh).
pub fn current_hass() -> Option<PathBuf> {
    let p = cache_dir()?.join("home-assistant-current/bin/hass");
    p.is_file().then_some(p)
}

/// An offset at which every default port `up` may use (the five daemons, inference's Wyoming
/// server, the agents' Wyoming service, Home Assistant) is free.
pub fn free_port_offset() -> u16 {
    let seed = std::process::id() as u16;
    (0..200u16)
        .map(|i| 1000 + (seed.wrapping_add(i * 53) % 40000))
        .find(|off| {
            [7701u16, 7702, 7703, 7704, 7705, 7706, 10300, 10800, HA_PORT]
                .iter()
                .all(|p| std::net::TcpListener::bind(("127.0.0.1", p + off)).is_ok())
        })
        .expect("no free port range")
}

pub struct Up {
    child: Child,
    demo_home: bool,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Up {
    /// `barnabee up --demo-home --only <only>` (daemon roles, comma-separated).
    pub fn start(data: &Path, offset: u16, only: &str) -> Up {
        Up::start_with(data, offset, only, true)
    }

    /// `barnabee up --only <only>`, with the demo home or not.
    pub fn start_with(data: &Path, offset: u16, only: &str, demo_home: bool) -> Up {
        // The daemons are built beside `barnabee`; each one asked for must be there.
        let bins = barnabee().parent().unwrap().to_owned();
        for role in only.split(',') {
            daemon_bin(role);
        }
        let mut args = vec!["up"];
        if demo_home {
            args.push("--demo-home");
        }
        let mut child = Command::new(barnabee())
            .args(args)
            .args(["--only", only, "--port-offset"])
            .arg(offset.to_string())
            .arg("--data-dir")
            .arg(data)
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
                eprintln!("{line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Up {
            child,
            demo_home,
            lines: rx,
            seen: Vec::new(),
        }
    }

    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> String {
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

    /// Ctrl-C; asserts that HA (with the demo home) and the daemons stopped cleanly (exit 0).
    pub fn stop(&mut self) {
        signal(self.child.id(), libc::SIGINT);
        // HA stops last but one and takes its time; the daemons are down by then.
        let rest = if self.demo_home {
            self.wait_for("[up] hass stopped", Duration::from_secs(60));
            Duration::from_secs(10)
        } else {
            Duration::from_secs(30)
        };
        self.wait_for("[up] stopped", rest);
        let exit = self.child.wait().unwrap();
        assert_eq!(exit.code(), Some(0), "output:\n{}", self.seen.join("\n"));
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        // A failed test: let `up` stop its children (HA among them) before giving up on it.
        if self.child.try_wait().ok().flatten().is_none() {
            signal(self.child.id(), libc::SIGINT);
            let end = Instant::now() + Duration::from_secs(20);
            while Instant::now() < end && self.child.try_wait().ok().flatten().is_none() {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) on a pid we started; no memory is shared.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

pub struct Http {
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
}

impl Http {
    pub fn new() -> Http {
        Http {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            client: reqwest::Client::builder()
                .no_proxy()
                // HA restarts on the same port: never reuse a connection to the old one.
                .pool_max_idle_per_host(0)
                .timeout(Duration::from_secs(15))
                .build()
                .unwrap(),
        }
    }

    /// Send `req` (with `token` as bearer auth when given): the status and the body as JSON
    /// (or as a string when it is not JSON).
    fn json(&self, mut req: reqwest::RequestBuilder, token: Option<&str>) -> (u16, Value) {
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        self.rt.block_on(async {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let text = r.text().await.unwrap();
            (
                status,
                serde_json::from_str(&text).unwrap_or(Value::String(text)),
            )
        })
    }

    pub fn get(&self, url: &str, token: Option<&str>) -> (u16, Value) {
        self.json(self.client.get(url), token)
    }

    /// GET without a token (a URL that carries its own, like HA's TTS proxy); the raw body.
    pub fn get_bytes(&self, url: &str) -> (u16, Vec<u8>) {
        self.rt.block_on(async {
            let r = self.client.get(url).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.bytes().await.unwrap().to_vec())
        })
    }

    pub fn patch(&self, url: &str, body: &Value) -> (u16, Value) {
        self.json(self.client.patch(url).json(body), None)
    }

    pub fn post(&self, url: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
        self.json(self.client.post(url).json(body), token)
    }
}

/// Loud NOT RUN (and a failure under CI=true) when `hass` is missing; `true`: go on.
pub fn have_hass(hass: Option<PathBuf>, test: &str, how: &str) -> bool {
    if hass.is_some() {
        return true;
    }
    let msg = format!("!!! NOT RUN: {test}: Home Assistant is not installed ({how}) !!!");
    eprintln!("\x1b[1;33m{msg}\x1b[0m");
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{msg}");
    false
}

pub fn state(http: &Http, ha: &str, token: &str, entity: &str) -> String {
    let (code, v) = http.get(&format!("{ha}/api/states/{entity}"), Some(token));
    assert_eq!(code, 200, "{entity}: {v}");
    v["state"].as_str().unwrap().to_owned()
}

/// Wait until the agents daemon's `home_assistant` check is ok (its entity index is loaded).
pub fn wait_agents_connected(http: &Http, agents: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, h) = http.get(&format!("{agents}/health"), None);
        if h["checks"]["home_assistant"]["ok"] == true {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "agents never connected to the demo home: {h}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
