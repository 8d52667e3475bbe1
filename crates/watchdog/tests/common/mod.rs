//! Test peers: a private dbus-daemon, a test service that implements the subset of
//! `org.freedesktop.systemd1` the watchdog uses (units whose state the test drives, recorded
//! Restart/Start calls, `JobRemoved` signals), `/health` servers, and the real watchdog binary.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use zbus::object_server::SignalEmitter;
use zbus::{Connection, OwnedObjectPath, interface};

// ---------------------------------------------------------------- the bus

/// A private `dbus-daemon` listening on a fixed socket path, so a test can kill it and start a
/// new one at the same address.
pub struct Bus {
    pub address: String,
    socket: PathBuf,
    child: Child,
}

impl Bus {
    pub fn start(dir: &Path) -> Bus {
        let socket = dir.join("bus");
        let _ = std::fs::remove_file(&socket);
        let address = format!("unix:path={}", socket.display());
        let mut child = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--nopidfile", "--print-address=1"])
            .arg(format!("--address={address}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run dbus-daemon ({e}): install the Debian package dbus-daemon (dev/setup does)")
            });
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("dbus-daemon address");
        assert!(line.starts_with("unix:"), "dbus-daemon printed {line:?}");
        Bus {
            address,
            socket,
            child,
        }
    }

    /// Kill the daemon: every connection on it is lost.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---------------------------------------------------------------- private /run

/// Run this test binary's test `test` again inside `unshare -m` with a private tmpfs on `/run`
/// (so it may bind `/run/systemd/journal/socket` or create `/run/systemd/system` without
/// touching the host), with `flag=1` set so the test knows it is the inner run. Output is
/// inherited; panics when the inner run fails.
pub fn rerun_with_private_run(test: &str, flag: &str, extra: &[(&str, &std::ffi::OsStr)]) {
    let status = Command::new("unshare")
        .args(["-m", "--propagation", "private", "--", "sh", "-c"])
        .arg("mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/journal /run/systemd/system && exec \"$@\"")
        .arg("sh")
        .arg(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(flag, "1")
        .envs(extra.iter().copied())
        .status()
        .unwrap_or_else(|e| panic!("cannot run unshare ({e}): install util-linux (dev/setup does)"));
    assert!(
        status.success(),
        "the inner run of {test} under `unshare -m` failed (see its output above; it needs root for unshare and mount)"
    );
}

// ---------------------------------------------------------------- a real systemd

/// A real systemd (`systemd --user`) on the private bus: the Manager API the watchdog uses on
/// the system bus, with units from `<dir>/cfg/systemd/user`. Needs [`rerun_with_private_run`]
/// (systemd insists on `/run/systemd/system`).
pub struct UserManager {
    child: Child,
    pub log: PathBuf,
}

pub const SYSTEMD: &str = "/usr/lib/systemd/systemd";

impl UserManager {
    /// `dir` must be the directory [`Bus::start`] was given.
    pub fn start(dir: &Path, bus_address: &str, units: &[(&str, &str)]) -> UserManager {
        use std::os::unix::fs::PermissionsExt;
        let unit_dir = dir.join("cfg/systemd/user");
        std::fs::create_dir_all(&unit_dir).unwrap();
        for (name, text) in units {
            std::fs::write(unit_dir.join(name), text).unwrap();
        }
        // The user manager connects to the bus at $XDG_RUNTIME_DIR/bus, where Bus::start puts it.
        let runtime = dir.to_owned();
        std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
        let log = dir.join("systemd.log");
        let systemd = std::env::var("BARNABEE_SYSTEMD").unwrap_or_else(|_| SYSTEMD.to_owned());
        let child = Command::new(&systemd)
            .args(["--user", "--log-target=console", "--log-level=info"])
            .env("XDG_RUNTIME_DIR", &runtime)
            .env("XDG_CONFIG_HOME", dir.join("cfg"))
            .env("DBUS_SESSION_BUS_ADDRESS", bus_address)
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(dir.join("systemd.stderr")).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {systemd} ({e}): install the Debian package systemd (dev/setup does)"));
        UserManager { child, log }
    }
}

impl Drop for UserManager {
    fn drop(&mut self) {
        // SIGTERM: the user manager stops its units, then exits.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------- the fake systemd

#[derive(Debug, Clone)]
pub struct FakeUnit {
    pub active_state: String,
    pub sub_state: String,
    pub n_restarts: u32,
    pub exec_main_status: i32,
    pub invocation: u8,
    pub active_enter_us: u64,
}

impl FakeUnit {
    pub fn active() -> Self {
        FakeUnit {
            active_state: "active".into(),
            sub_state: "running".into(),
            n_restarts: 0,
            exec_main_status: 0,
            invocation: 1,
            active_enter_us: now_us(),
        }
    }

    pub fn with_state(active: &str, sub: &str) -> Self {
        FakeUnit {
            active_state: active.into(),
            sub_state: sub.into(),
            ..FakeUnit::active()
        }
    }
}

/// One recorded job request.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: &'static str,
    pub unit: String,
    pub mode: String,
    pub at: Instant,
}

type Hook = Arc<dyn Fn(&str) + Send + Sync>;

#[derive(Default)]
pub struct FakeState {
    pub units: BTreeMap<String, FakeUnit>,
    pub calls: Vec<Call>,
    pub subscribes: u32,
    next_job: u32,
    on_restart: Option<Hook>,
}

/// The state the test drives, shared by every incarnation of the fake service.
#[derive(Clone, Default)]
pub struct Systemd {
    pub state: Arc<Mutex<FakeState>>,
}

impl Systemd {
    pub fn new(units: &[(&str, FakeUnit)]) -> Self {
        let s = Systemd::default();
        for (name, unit) in units {
            s.state
                .lock()
                .unwrap()
                .units
                .insert((*name).to_owned(), unit.clone());
        }
        s
    }

    pub fn set(&self, unit: &str, active: &str, sub: &str) {
        let mut st = self.state.lock().unwrap();
        let u = st.units.get_mut(unit).expect("known unit");
        u.active_state = active.into();
        u.sub_state = sub.into();
    }

    /// Run `hook(unit)` whenever a unit is restarted or started.
    pub fn on_restart(&self, hook: impl Fn(&str) + Send + Sync + 'static) {
        self.state.lock().unwrap().on_restart = Some(Arc::new(hook));
    }

    pub fn calls(&self, unit: &str) -> Vec<Call> {
        self.state
            .lock()
            .unwrap()
            .calls
            .iter()
            .filter(|c| c.unit == unit)
            .cloned()
            .collect()
    }

    pub fn subscribes(&self) -> u32 {
        self.state.lock().unwrap().subscribes
    }

    /// Own `org.freedesktop.systemd1` on the bus and serve the manager and every unit.
    pub async fn serve(&self, address: &str) -> Connection {
        let names: Vec<String> = self.state.lock().unwrap().units.keys().cloned().collect();
        let mut builder = zbus::connection::Builder::address(address)
            .name("org.freedesktop.systemd1")
            .serve_at("/org/freedesktop/systemd1", Manager { sd: self.clone() });
        for name in names {
            let path = OwnedObjectPath::try_from(unit_path(&name)).expect("unit path");
            builder = builder
                .serve_at(
                    path.clone(),
                    UnitIface {
                        sd: self.clone(),
                        name: name.clone(),
                    },
                )
                .serve_at(
                    path,
                    ServiceIface {
                        sd: self.clone(),
                        name,
                    },
                );
        }
        builder
            .build()
            .await
            .expect("fake systemd on the private bus")
    }

    fn unit<T>(&self, name: &str, f: impl FnOnce(&FakeUnit) -> T) -> T {
        f(&self.state.lock().unwrap().units[name])
    }

    fn job(
        &self,
        method: &'static str,
        unit: &str,
        mode: &str,
        conn: &Connection,
    ) -> zbus::fdo::Result<OwnedObjectPath> {
        let (id, hook) = {
            let mut st = self.state.lock().unwrap();
            let Some(u) = st.units.get_mut(unit) else {
                return Err(zbus::fdo::Error::Failed(format!("Unit {unit} not found.")));
            };
            u.active_state = "active".into();
            u.sub_state = "running".into();
            u.n_restarts += 1;
            u.invocation = u.invocation.wrapping_add(1);
            u.active_enter_us = now_us();
            st.calls.push(Call {
                method,
                unit: unit.to_owned(),
                mode: mode.to_owned(),
                at: Instant::now(),
            });
            st.next_job += 1;
            (st.next_job, st.on_restart.clone())
        };
        if let Some(hook) = hook {
            hook(unit);
        }
        let path = OwnedObjectPath::try_from(format!("/org/freedesktop/systemd1/job/{id}"))
            .expect("job path");
        let (conn, job, unit) = (conn.clone(), path.clone(), unit.to_owned());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let emitter = SignalEmitter::new(&conn, "/org/freedesktop/systemd1").expect("emitter");
            let _ = Manager::job_removed(&emitter, id, job.as_ref(), &unit, "done").await;
        });
        Ok(path)
    }
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// systemd's object-path escaping (`-` → `_2d`, `.` → `_2e`).
fn unit_path(name: &str) -> String {
    let mut out = String::from("/org/freedesktop/systemd1/unit/");
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() {
            out.push(b as char);
        } else {
            out.push_str(&format!("_{b:02x}"));
        }
    }
    out
}

fn glob(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((pre, post)) => {
            name.len() >= pre.len() + post.len() && name.starts_with(pre) && name.ends_with(post)
        }
    }
}

#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "org.freedesktop.systemd1")]
enum SdError {
    #[zbus(error)]
    ZBus(zbus::Error),
    NoSuchUnit(String),
}

struct Manager {
    sd: Systemd,
}

type UnitRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    OwnedObjectPath,
    u32,
    String,
    OwnedObjectPath,
);

#[interface(name = "org.freedesktop.systemd1.Manager")]
impl Manager {
    fn list_units_by_patterns(&self, states: Vec<String>, patterns: Vec<String>) -> Vec<UnitRow> {
        let st = self.sd.state.lock().unwrap();
        st.units
            .iter()
            .filter(|(n, _)| patterns.is_empty() || patterns.iter().any(|p| glob(p, n)))
            .filter(|(_, u)| states.is_empty() || states.contains(&u.active_state))
            .map(|(n, u)| {
                (
                    n.clone(),
                    format!("test unit {n}"),
                    "loaded".into(),
                    u.active_state.clone(),
                    u.sub_state.clone(),
                    String::new(),
                    OwnedObjectPath::try_from(unit_path(n)).expect("path"),
                    0,
                    String::new(),
                    OwnedObjectPath::try_from("/").expect("path"),
                )
            })
            .collect()
    }

    fn get_unit(&self, name: &str) -> Result<OwnedObjectPath, SdError> {
        if self.sd.state.lock().unwrap().units.contains_key(name) {
            Ok(OwnedObjectPath::try_from(unit_path(name)).expect("path"))
        } else {
            Err(SdError::NoSuchUnit(format!("Unit {name} not loaded.")))
        }
    }

    fn load_unit(&self, name: &str) -> Result<OwnedObjectPath, SdError> {
        self.get_unit(name)
    }

    fn restart_unit(
        &self,
        name: &str,
        mode: &str,
        #[zbus(connection)] conn: &Connection,
    ) -> zbus::fdo::Result<OwnedObjectPath> {
        self.sd.job("RestartUnit", name, mode, conn)
    }

    fn start_unit(
        &self,
        name: &str,
        mode: &str,
        #[zbus(connection)] conn: &Connection,
    ) -> zbus::fdo::Result<OwnedObjectPath> {
        self.sd.job("StartUnit", name, mode, conn)
    }

    fn subscribe(&self) {
        self.sd.state.lock().unwrap().subscribes += 1;
    }

    #[zbus(signal)]
    async fn job_removed(
        emitter: &SignalEmitter<'_>,
        id: u32,
        job: zbus::ObjectPath<'_>,
        unit: &str,
        result: &str,
    ) -> zbus::Result<()>;
}

struct UnitIface {
    sd: Systemd,
    name: String,
}

#[interface(name = "org.freedesktop.systemd1.Unit")]
impl UnitIface {
    #[zbus(property)]
    fn active_state(&self) -> String {
        self.sd.unit(&self.name, |u| u.active_state.clone())
    }
    #[zbus(property)]
    fn sub_state(&self) -> String {
        self.sd.unit(&self.name, |u| u.sub_state.clone())
    }
    #[zbus(property, name = "InvocationID")]
    fn invocation_id(&self) -> Vec<u8> {
        self.sd.unit(&self.name, |u| vec![u.invocation; 16])
    }
    #[zbus(property)]
    fn active_enter_timestamp(&self) -> u64 {
        self.sd.unit(&self.name, |u| u.active_enter_us)
    }
}

struct ServiceIface {
    sd: Systemd,
    name: String,
}

#[interface(name = "org.freedesktop.systemd1.Service")]
impl ServiceIface {
    #[zbus(property, name = "NRestarts")]
    fn n_restarts(&self) -> u32 {
        self.sd.unit(&self.name, |u| u.n_restarts)
    }
    #[zbus(property)]
    fn exec_main_status(&self) -> i32 {
        self.sd.unit(&self.name, |u| u.exec_main_status)
    }
}

// ---------------------------------------------------------------- /health servers

#[derive(Default)]
struct HealthMode {
    healthy: bool,
    until: Option<Instant>,
}

/// A `/health` endpoint whose answer the test sets.
#[derive(Clone)]
pub struct HealthServer {
    pub url: String,
    mode: Arc<Mutex<HealthMode>>,
}

impl HealthServer {
    pub async fn start(healthy: bool) -> HealthServer {
        use axum::http::StatusCode;
        let mode = Arc::new(Mutex::new(HealthMode {
            healthy,
            until: None,
        }));
        let m = mode.clone();
        let app = axum::Router::new().route(
            "/health",
            axum::routing::get(move || {
                let m = m.clone();
                async move {
                    let mode = m.lock().unwrap();
                    if mode.healthy || mode.until.is_some_and(|t| Instant::now() < t) {
                        (StatusCode::OK, "{\"status\":\"healthy\"}")
                    } else {
                        (
                            StatusCode::SERVICE_UNAVAILABLE,
                            "{\"status\":\"unhealthy\"}",
                        )
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        HealthServer {
            url: format!("http://{addr}/health"),
            mode,
        }
    }

    pub fn set_healthy(&self, healthy: bool) {
        let mut m = self.mode.lock().unwrap();
        m.healthy = healthy;
        m.until = None;
    }

    /// Healthy for `d`, then unhealthy again (a flapping daemon).
    pub fn healthy_for(&self, d: Duration) {
        let mut m = self.mode.lock().unwrap();
        m.healthy = false;
        m.until = Some(Instant::now() + d);
    }
}

// ---------------------------------------------------------------- the watchdog binary

pub const BIN: &str = env!("CARGO_BIN_EXE_barnabee-watchdog");

/// Fast supervision settings for tests; `extra` is appended to the config.
pub fn config(state_dir: &Path, units: &[(&str, &str)], supervision: &str, extra: &str) -> String {
    let mut text = format!(
        "state_dir = {:?}\n[service]\nlisten = \"127.0.0.1:0\"\ndrain_timeout = 1\n[service.log]\ntarget = \"stderr\"\nlevel = \"info\"\n\
         [supervision]\ninterval = 0.1\nprobe_timeout = 0.5\nunhealthy_after = 2\njob_timeout = 5\nwatch = [\"barnabee-*.service\"]\n{supervision}\n\
         [thresholds]\ninterval = 3600\ndisk_paths = []\nmemory_warn_available_gb = 0\nmemory_critical_available_gb = 0\nload_warn_per_cpu = 1000\nload_critical_per_cpu = 1000\n",
        state_dir.display().to_string()
    );
    for (name, url) in units {
        text.push_str(&format!(
            "[[units]]\nname = \"{name}\"\nhealth_url = \"{url}\"\n"
        ));
    }
    text.push_str(extra);
    text
}

/// The running daemon; SIGTERM on drop.
pub struct Watchdog {
    child: Child,
    pub stderr: PathBuf,
    pub addr: SocketAddr,
}

impl Watchdog {
    pub async fn start(dir: &Path, config_text: &str, bus_address: &str) -> Watchdog {
        Self::start_env(dir, config_text, bus_address, &[]).await
    }

    /// Start with extra environment variables (`NOTIFY_SOCKET`, `WATCHDOG_USEC`).
    pub async fn start_env(
        dir: &Path,
        config_text: &str,
        bus_address: &str,
        env: &[(&str, &str)],
    ) -> Watchdog {
        let cfg = dir.join("watchdog.toml");
        std::fs::write(&cfg, config_text).unwrap();
        let stderr = dir.join("watchdog.stderr");
        let child = Command::new(BIN)
            .arg("--config")
            .arg(&cfg)
            .env("DBUS_SYSTEM_BUS_ADDRESS", bus_address)
            .env_remove("RUST_LOG")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("INVOCATION_ID")
            .envs(env.iter().copied())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let mut wd = Watchdog {
            child,
            stderr,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = wd.child.try_wait().unwrap() {
                panic!("watchdog exited with {status}: {}", wd.log());
            }
            if let Some(addr) = wd
                .log()
                .split("serving on http://")
                .nth(1)
                .and_then(|s| s.split_whitespace().next())
            {
                wd.addr = addr.parse().unwrap();
                break;
            }
            assert!(
                Instant::now() < deadline,
                "watchdog never served: {}",
                wd.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        wd
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let resp = reqwest::get(format!("http://{}{path}", self.addr))
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Poll `cond` until it holds or `timeout` passes.
pub async fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Rows of the incident log: (severity, unit, reason, action, detail).
pub fn incident_rows(state_dir: &Path) -> Vec<(String, String, String, String, String)> {
    let db = rusqlite::Connection::open(state_dir.join("incidents.db")).unwrap();
    let mut stmt = db
        .prepare("SELECT severity, unit, reason, action, detail FROM incidents ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}
