//! `barnabee up`: the local appliance. Every daemon built in this workspace runs as a child
//! process with an embedded development config and its state under one data dir; their logs
//! are prefixed with the daemon's name; a daemon that dies is restarted with backoff (and given
//! up on after five deaths in a minute); Ctrl-C or SIGTERM stops them all (SIGTERM, then
//! SIGKILL after a bound) and exits 0 when every daemon stopped cleanly.
//!
//! With `--demo-home`, a Home Assistant demo ([`demo_home`]) starts first, supervised the
//! same way, and the agents daemon is wired to it.
//!
//! Children run in their own process groups so a terminal's Ctrl-C reaches only this process,
//! which then stops the children in reverse start order.

mod demo_home;

pub use demo_home::{ROLE as DEMO_HOME_ROLE, probe as probe_demo_home};

use std::collections::VecDeque;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

use crate::daemons::{DAEMONS, find_binary};
use crate::health;

#[derive(clap::Args)]
pub struct UpArgs {
    /// Where configs, state and `up.json` go (default: $XDG_DATA_HOME/barnabee, else
    /// ~/.local/share/barnabee).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Look for the daemon binaries here only (default: beside this executable, then $PATH).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Start only these daemons (comma-separated roles).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Add this to every default port (to run two local appliances side by side).
    #[arg(long, default_value_t = 0)]
    port_offset: u16,
    /// How long each daemon may take to become healthy.
    #[arg(long, default_value = "60", value_name = "SECONDS")]
    start_timeout: u64,
    /// Also start the Home Assistant demo home that `dev/setup home-assistant` installs (lights,
    /// switches, ... in a Kitchen, a Living Room, ...; state in <data dir>/state/hass) and wire
    /// the agents daemon to it, so "turn on the kitchen lights" works.
    #[arg(long)]
    demo_home: bool,
}

/// How long stopping may take before the stragglers are killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// A daemon that dies this often within [`RESTART_WINDOW`] is given up on.
const MAX_RESTARTS: usize = 5;
const RESTART_WINDOW: Duration = Duration::from_secs(60);

/// What `barnabee up` records for `barnabee status`.
#[derive(Debug, Serialize, Deserialize)]
pub struct UpState {
    pub pid: u32,
    pub daemons: Vec<UpDaemon>,
    /// The demo home of `--demo-home`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home_assistant: Option<UpHomeAssistant>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct UpHomeAssistant {
    pub url: String,
    /// The long-lived token the agents daemon uses.
    pub token_file: PathBuf,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct UpDaemon {
    pub role: String,
    pub url: String,
}

impl UpState {
    fn path(data_dir: &Path) -> PathBuf {
        data_dir.join("up.json")
    }

    /// The state of a `barnabee up` that is still running, if any.
    pub fn read(data_dir: &Path) -> anyhow::Result<Option<UpState>> {
        let path = Self::path(data_dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let state: UpState =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        // A stale file from a killed `up` names a process that no longer exists.
        let alive = Path::new(&format!("/proc/{}", state.pid)).exists();
        Ok(alive.then_some(state))
    }
}

/// The data dir: the flag, else `$XDG_DATA_HOME/barnabee`, else `~/.local/share/barnabee`.
pub fn data_dir(flag: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = flag {
        return Ok(dir.to_owned());
    }
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(xdg).join("barnabee"));
    }
    let home =
        std::env::var_os("HOME").context("neither --data-dir, $XDG_DATA_HOME nor $HOME is set")?;
    Ok(PathBuf::from(home).join(".local/share/barnabee"))
}

/// One child as `up` runs it: a daemon, or the demo home.
struct Plan {
    role: &'static str,
    binary: PathBuf,
    args: Vec<OsString>,
    state_dir: PathBuf,
    addr: SocketAddr,
    /// Set for the demo home, which has no `/health` and is made ready differently.
    demo: Option<Arc<demo_home::DemoHome>>,
}

impl Plan {
    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// What a supervisor task reports.
#[derive(Debug, Clone, PartialEq)]
enum Phase {
    Starting,
    Running,
    /// Died; being restarted.
    Restarting(String),
    /// Died too often.
    GaveUp(String),
    Stopped {
        clean: bool,
    },
}

pub fn run(args: UpArgs) -> anyhow::Result<ExitCode> {
    let data_dir = data_dir(args.data_dir.as_deref())?;
    if let Some(running) = UpState::read(&data_dir)? {
        anyhow::bail!(
            "another `barnabee up` (pid {}) is using {}; stop it or pass --data-dir",
            running.pid,
            data_dir.display()
        );
    }
    let plans = plan(&args, &data_dir)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(supervise_all(
        plans,
        &data_dir,
        Duration::from_secs(args.start_timeout),
    ))
}

fn plan(args: &UpArgs, data_dir: &Path) -> anyhow::Result<Vec<Plan>> {
    for role in &args.only {
        if !DAEMONS.iter().any(|d| d.role == role) {
            let known: Vec<_> = DAEMONS.iter().map(|d| d.role).collect();
            anyhow::bail!(
                "--only {role:?}: no such daemon (known: {})",
                known.join(", ")
            );
        }
    }
    let mut plans = Vec::new();
    let demo = if args.demo_home {
        let home = Arc::new(demo_home::DemoHome::prepare(data_dir, args.port_offset)?);
        if std::net::TcpListener::bind(home.addr).is_err() {
            anyhow::bail!(
                "{} (the demo home) cannot listen on {}: the port is in use (another `barnabee up`? use --port-offset)",
                demo_home::ROLE,
                home.addr
            );
        }
        plans.push(Plan {
            role: demo_home::ROLE,
            binary: home.hass.clone(),
            args: home.args(),
            state_dir: home.dir.clone(),
            addr: home.addr,
            demo: Some(home.clone()),
        });
        Some(home)
    } else {
        None
    };
    for daemon in DAEMONS {
        if !args.only.is_empty() && !args.only.iter().any(|r| r == daemon.role) {
            continue;
        }
        let Some(binary) = find_binary(daemon, args.bin_dir.as_deref()) else {
            println!(
                "[up] {:<9} not built in this workspace; skipped",
                daemon.role
            );
            continue;
        };
        let port = daemon
            .port
            .checked_add(args.port_offset)
            .context("--port-offset too large")?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let state_dir = data_dir.join("state").join(daemon.role);
        let config = data_dir
            .join("config")
            .join(format!("{}.toml", daemon.role));
        std::fs::create_dir_all(&state_dir)
            .with_context(|| format!("creating {}", state_dir.display()))?;
        std::fs::create_dir_all(config.parent().unwrap_or(data_dir))?;
        let mut text = daemon.render_config(&state_dir, args.port_offset);
        if daemon.role == "agents"
            && let Some(home) = &demo
        {
            text.push_str(&home.agents_config());
        }
        std::fs::write(&config, text).with_context(|| format!("writing {}", config.display()))?;
        if daemon.role == "inference" {
            let models = crate::models::dev_inference(crate::models::inference_cache().as_deref());
            if !models.missing.is_empty() {
                println!(
                    "[up] inference: not in the set-up cache, left out: {} (run dev/setup inference)",
                    models.missing.join(", ")
                );
            }
        }
        if std::net::TcpListener::bind(addr).is_err() {
            anyhow::bail!(
                "{} cannot listen on {addr}: the port is in use (another `barnabee up`? use --port-offset)",
                daemon.role
            );
        }
        plans.push(Plan {
            role: daemon.role,
            binary,
            args: vec!["--config".into(), config.into_os_string()],
            state_dir,
            addr,
            demo: None,
        });
    }
    if plans.iter().all(|p| p.demo.is_some()) {
        anyhow::bail!(
            "no daemon binaries found; build the workspace first (`cargo build --workspace`)"
        );
    }
    Ok(plans)
}

async fn supervise_all(
    plans: Vec<Plan>,
    data_dir: &Path,
    start_timeout: Duration,
) -> anyhow::Result<ExitCode> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let client = health::client()?;

    let mut running = Vec::new();
    for plan in plans {
        let phase = Arc::new(Mutex::new(Phase::Starting));
        let task = tokio::spawn(supervise(plan_ref(&plan), phase.clone(), stop_rx.clone()));
        println!("[up] starting {} ({})", plan.role, plan.binary.display());
        let started = tokio::select! {
            r = wait_ready(&client, &plan, &phase, start_timeout) => r,
            _ = sigterm.recv() => Err(anyhow::anyhow!("SIGTERM during start-up")),
            _ = sigint.recv() => Err(anyhow::anyhow!("interrupted during start-up")),
        };
        running.push((plan, phase, task));
        if let Err(err) = started {
            eprintln!("[up] {err:#}; stopping everything");
            stop_tx.send_replace(true);
            stop_in_reverse(running).await;
            return Ok(ExitCode::from(1));
        }
    }

    let state = UpState {
        pid: std::process::id(),
        daemons: running
            .iter()
            .filter(|(p, _, _)| p.demo.is_none())
            .map(|(p, _, _)| UpDaemon {
                role: p.role.to_owned(),
                url: p.url(),
            })
            .collect(),
        home_assistant: running
            .iter()
            .find_map(|(p, _, _)| p.demo.as_ref())
            .map(|home| UpHomeAssistant {
                url: home.url(),
                token_file: home.token_file(),
            }),
    };
    std::fs::write(UpState::path(data_dir), serde_json::to_vec_pretty(&state)?)?;
    println!(
        "[up] the local appliance is up (data in {}):",
        data_dir.display()
    );
    for (plan, _, _) in &running {
        println!("[up]   {:<9} {}", plan.role, plan.url());
        if plan.role == "console" {
            println!(
                "[up]             log in with the password in {}",
                plan.state_dir.join("initial-password").display()
            );
        }
    }
    println!("[up] `barnabee status` shows their health; Ctrl-C stops them all.");

    let reason = tokio::select! {
        _ = sigterm.recv() => "SIGTERM",
        _ = sigint.recv() => "interrupt",
    };
    println!("[up] {reason}: stopping every daemon");
    stop_tx.send_replace(true);
    let clean = stop_in_reverse(running).await;
    let _ = std::fs::remove_file(UpState::path(data_dir));
    println!(
        "[up] stopped{}",
        if clean {
            ""
        } else {
            " (not every daemon stopped cleanly)"
        }
    );
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The parts of a plan the supervisor task owns.
struct PlanRef {
    role: &'static str,
    binary: PathBuf,
    args: Vec<OsString>,
    state_dir: PathBuf,
}

fn plan_ref(plan: &Plan) -> PlanRef {
    PlanRef {
        role: plan.role,
        binary: plan.binary.clone(),
        args: plan.args.clone(),
        state_dir: plan.state_dir.clone(),
    }
}

/// A child that died while `up` waits for it.
fn check_alive(plan: &Plan, phase: &Mutex<Phase>) -> anyhow::Result<()> {
    let current = phase.lock().unwrap_or_else(|e| e.into_inner()).clone();
    match current {
        Phase::Restarting(why) | Phase::GaveUp(why) => {
            anyhow::bail!(
                "{} exited during start-up ({why}); its log is above",
                plan.role
            )
        }
        Phase::Stopped { .. } => anyhow::bail!("{} stopped during start-up", plan.role),
        Phase::Starting | Phase::Running => Ok(()),
    }
}

async fn wait_ready(
    client: &reqwest::Client,
    plan: &Plan,
    phase: &Mutex<Phase>,
    timeout: Duration,
) -> anyhow::Result<()> {
    match &plan.demo {
        Some(home) => wait_demo_home(client, plan, home, phase, timeout).await,
        None => wait_healthy(client, plan, phase, timeout).await,
    }
}

/// The demo home: HTTP up, then a token, areas, RUNNING (Home Assistant has no `/health`). It
/// gets at least two minutes: its first start on a busy machine is slow.
async fn wait_demo_home(
    client: &reqwest::Client,
    plan: &Plan,
    home: &demo_home::DemoHome,
    phase: &Mutex<Phase>,
    timeout: Duration,
) -> anyhow::Result<()> {
    let timeout = timeout.max(Duration::from_secs(120));
    let deadline = Instant::now() + timeout;
    let steps = loop {
        check_alive(plan, phase)?;
        match home.http_up(client).await {
            Ok(steps) => break steps,
            Err(why) if Instant::now() > deadline => {
                anyhow::bail!(
                    "{} (the demo home) not up after {timeout:?}: {why}",
                    plan.role
                )
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    let connect = home.connect(client, &steps, deadline);
    tokio::pin!(connect);
    // Watch for the child dying while connecting.
    let line = loop {
        tokio::select! {
            r = &mut connect => break r.with_context(|| format!("{} (the demo home in {})", plan.role, home.dir.display()))?,
            _ = tokio::time::sleep(Duration::from_millis(200)) => check_alive(plan, phase)?,
        }
    };
    println!("[up] {}: {line}", plan.role);
    Ok(())
}

async fn wait_healthy(
    client: &reqwest::Client,
    plan: &Plan,
    phase: &Mutex<Phase>,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        check_alive(plan, phase)?;
        let outcome = health::fetch(client, &plan.url()).await;
        if outcome.serving() {
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "{} not healthy after {timeout:?}: {} {}",
                plan.role,
                outcome.word(),
                outcome.detail()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Stop the supervisors in reverse start order; true if every daemon exited cleanly.
async fn stop_in_reverse(
    running: Vec<(Plan, Arc<Mutex<Phase>>, tokio::task::JoinHandle<()>)>,
) -> bool {
    let mut clean = true;
    for (plan, phase, task) in running.into_iter().rev() {
        let _ = task.await;
        let end = phase.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match end {
            Phase::Stopped { clean: true } => println!("[up] {} stopped", plan.role),
            other => {
                clean = false;
                println!("[up] {} did not stop cleanly: {other:?}", plan.role);
            }
        }
    }
    clean
}

/// Run one daemon until told to stop, restarting it when it dies.
async fn supervise(plan: PlanRef, phase: Arc<Mutex<Phase>>, mut stop: watch::Receiver<bool>) {
    let set = |p: Phase| *phase.lock().unwrap_or_else(|e| e.into_inner()) = p;
    let mut deaths: VecDeque<Instant> = VecDeque::new();
    let mut backoff = Duration::from_secs(1);
    loop {
        let mut child = match spawn(&plan) {
            Ok(c) => c,
            Err(err) => {
                println!("[up] {}: {err:#}", plan.role);
                set(Phase::GaveUp(format!("{err:#}")));
                return;
            }
        };
        let started = Instant::now();
        let was_starting = matches!(
            *phase.lock().unwrap_or_else(|e| e.into_inner()),
            Phase::Starting
        );
        if !was_starting {
            set(Phase::Running);
        }
        let status = tokio::select! {
            status = child.wait() => status,
            _ = stopped(&mut stop) => {
                let clean = terminate(&mut child, plan.role).await;
                set(Phase::Stopped { clean });
                return;
            }
        };
        let why = describe(status);
        println!("[up] {} exited unexpectedly: {why}", plan.role);
        let now = Instant::now();
        deaths.push_back(now);
        while deaths
            .front()
            .is_some_and(|t| now.duration_since(*t) > RESTART_WINDOW)
        {
            deaths.pop_front();
        }
        if deaths.len() >= MAX_RESTARTS {
            println!(
                "[up] {} died {MAX_RESTARTS} times within {RESTART_WINDOW:?}; giving up on it",
                plan.role
            );
            set(Phase::GaveUp(why));
            return;
        }
        set(Phase::Restarting(why));
        if started.elapsed() > RESTART_WINDOW {
            backoff = Duration::from_secs(1);
        }
        println!("[up] restarting {} in {backoff:?}", plan.role);
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stopped(&mut stop) => {
                set(Phase::Stopped { clean: true });
                return;
            }
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

/// Resolves once `up` is stopping (the guard `wait_for` returns is not Send, so drop it here).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

fn spawn(plan: &PlanRef) -> anyhow::Result<Child> {
    let mut child = Command::new(&plan.binary)
        .args(&plan.args)
        .env("STATE_DIRECTORY", &plan.state_dir)
        // Not started by systemd: log to stderr, which `up` prefixes.
        .env_remove("NOTIFY_SOCKET")
        .env_remove("INVOCATION_ID")
        .env_remove("JOURNAL_STREAM")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", plan.binary.display()))?;
    if let Some(out) = child.stdout.take() {
        tokio::spawn(forward(out, plan.role));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(forward(err, plan.role));
    }
    Ok(child)
}

async fn forward(stream: impl AsyncRead + Unpin, role: &'static str) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        println!("{role:>9} | {line}");
    }
}

/// SIGTERM, then SIGKILL after [`STOP_TIMEOUT`]; true when it exited 0 in time.
async fn terminate(child: &mut Child, role: &str) -> bool {
    if let Some(pid) = child.id() {
        // SAFETY: kill(2) with our own child's pid; no memory is shared.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGTERM);
        }
    }
    match tokio::time::timeout(STOP_TIMEOUT, child.wait()).await {
        Ok(Ok(status)) => status.success(),
        Ok(Err(err)) => {
            println!("[up] {role}: cannot wait for it: {err}");
            false
        }
        Err(_) => {
            println!("[up] {role} did not stop within {STOP_TIMEOUT:?}; killing it");
            let _ = child.kill().await;
            false
        }
    }
}

fn describe(status: std::io::Result<ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(code), _) => format!("exit code {code}"),
            (None, Some(sig)) => format!("killed by signal {sig}"),
            _ => s.to_string(),
        },
        Err(e) => format!("wait failed: {e}"),
    }
}
