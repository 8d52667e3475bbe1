//! A daemon binary run by a test as systemd would run it, minus systemd: its own environment
//! (nothing of the test runner's `NOTIFY_SOCKET`, `STATE_DIRECTORY`, `CREDENTIALS_DIRECTORY`,
//! `JOURNAL_STREAM` or `RUST_LOG` leaks in; loopback never goes through a proxy), its stderr
//! in a file the test can read, and a bounded stop: SIGTERM, then SIGKILL if it does not exit.
//! Every crate's integration tests start their daemons through [`DaemonProcess`] instead of
//! each carrying its own copy.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// What [`crate::Runtime`] logs once its listener is bound.
const SERVING: &str = "serving on http://";

/// A running daemon process; SIGTERM on drop (SIGKILL after 5 s).
pub struct DaemonProcess {
    child: Option<Child>,
    name: String,
    log: PathBuf,
}

impl DaemonProcess {
    /// Spawn `cmd` (program, arguments and any extra environment set by the caller) with its
    /// stderr in `log` (truncated: the file is this process's alone). Does not wait for
    /// anything: see [`Self::wait_serving`] and [`Self::wait_listening`].
    pub fn spawn(mut cmd: Command, log: &Path) -> DaemonProcess {
        let name = Path::new(cmd.get_program())
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let file = std::fs::File::create(log)
            .unwrap_or_else(|e| panic!("cannot open the log file {}: {e}", log.display()));
        // Explicit values the caller set win over the removals (Command keeps the last one).
        let overrides: Vec<_> = cmd
            .get_envs()
            .map(|(k, v)| (k.to_owned(), v.map(|v| v.to_owned())))
            .collect();
        // JOURNAL_STREAM would send its log to journald and RUST_LOG could hide the
        // `serving on` line: a test under a systemd-run runner must see the same stderr.
        for var in [
            "NOTIFY_SOCKET",
            "STATE_DIRECTORY",
            "CREDENTIALS_DIRECTORY",
            "JOURNAL_STREAM",
            "RUST_LOG",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("NO_PROXY", "127.0.0.1,localhost");
        for (k, v) in overrides {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        DaemonProcess {
            child: Some(child),
            name,
            log: log.to_owned(),
        }
    }

    /// Wait until the daemon logs `serving on http://ADDR` and return ADDR; panics with its
    /// log if it exits first or `timeout` passes.
    pub fn wait_serving(&mut self, timeout: Duration) -> SocketAddr {
        self.wait(timeout, "log 'serving on http://'", |p| {
            let log = p.log();
            let at = log.find(SERVING)? + SERVING.len();
            log[at..]
                .split_whitespace()
                .next()
                .and_then(|a| a.parse().ok())
        })
    }

    /// Wait until `addr` accepts TCP connections (a listener the daemon does not announce,
    /// such as a Wyoming port); panics with its log if it exits first or `timeout` passes.
    pub fn wait_listening(&mut self, addr: SocketAddr, timeout: Duration) {
        self.wait(timeout, &format!("listen on {addr}"), |_| {
            TcpStream::connect(addr).ok().map(|_| ())
        })
    }

    fn wait<T>(
        &mut self,
        timeout: Duration,
        what: &str,
        mut ready: impl FnMut(&Self) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = ready(self) {
                return v;
            }
            if let Some(status) = self.try_wait() {
                panic!(
                    "{} exited ({status}) before it did {what}:\n{}",
                    self.name,
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} did not {what} within {timeout:?}:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Everything it wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Its exit status if it has exited (reaped), else None.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// SIGKILL: no chance to flush or notify anything.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait (15 s at most) for a clean exit; panics with its log on a non-zero
    /// status or no exit.
    pub fn stop(&mut self) {
        let Some(c) = self.child.take() else {
            return;
        };
        match terminate(c, Duration::from_secs(15)) {
            Some(status) => assert!(
                status.success(),
                "{} exit {status}:\n{}",
                self.name,
                self.log()
            ),
            None => panic!(
                "{} did not exit 15 s after SIGTERM:\n{}",
                self.name,
                self.log()
            ),
        }
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        if let Some(c) = self.child.take() {
            terminate(c, Duration::from_secs(5));
        }
    }
}

/// SIGTERM, then wait up to `grace` for the exit status; SIGKILL (and None) if it did not come.
fn terminate(mut c: Child, grace: Duration) -> Option<ExitStatus> {
    sigterm(c.id());
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Some(status) = c.try_wait().ok().flatten() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = c.kill();
    let _ = c.wait();
    None
}

/// SIGTERM through kill(1): the workspace forbids unsafe code, so no libc::kill here.
pub fn sigterm(pid: u32) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_the_serving_line_and_stops_with_sigterm() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("d.log");
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "trap 'exit 0' TERM; sleep 0.2; echo 'INFO serving on http://127.0.0.1:4321 ok' >&2; while :; do sleep 0.05; done",
        ]);
        let mut d = DaemonProcess::spawn(cmd, &log);
        let addr = d.wait_serving(Duration::from_secs(10));
        assert_eq!(addr, "127.0.0.1:4321".parse().unwrap());
        assert!(d.pid().is_some());
        d.stop();
        assert!(d.pid().is_none());
    }

    #[test]
    #[should_panic(expected = "exited (exit status: 3) before it did log 'serving on http://'")]
    fn an_early_exit_is_reported_with_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo 'bad config: no such key' >&2; exit 3"]);
        let mut d = DaemonProcess::spawn(cmd, &dir.path().join("d.log"));
        d.wait_serving(Duration::from_secs(10));
    }

    #[test]
    fn the_runners_systemd_environment_does_not_leak_in_but_explicit_values_do() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("env.log");
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "echo \"N=${NOTIFY_SOCKET:-none} C=${CREDENTIALS_DIRECTORY:-none}\" >&2",
        ])
        .env("CREDENTIALS_DIRECTORY", "/creds");
        let mut d = DaemonProcess::spawn(cmd, &log);
        let t0 = Instant::now();
        while d.try_wait().is_none() && t0.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(d.log().trim(), "N=none C=/creds");
    }
}
