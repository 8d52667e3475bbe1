//! The systemd notify protocol (`sd_notify(3)`): one datagram of `KEY=value` lines to the
//! socket named by `$NOTIFY_SOCKET`.
//!
//! Written here rather than taken from the `sd-notify` crate for two reasons: the manager may
//! hand out an abstract socket (`@name`, used by user managers and containers), which that
//! crate cannot reach; and tests construct a [`Notifier`] for a socket they bound themselves
//! instead of mutating the process environment.

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::PathBuf;
use std::time::Duration;

/// Where notifications go; `None` when not started by systemd (all calls are no-ops).
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    target: Option<Target>,
    watchdog: Option<Duration>,
}

#[derive(Debug, Clone)]
enum Target {
    Path(PathBuf),
    Abstract(Vec<u8>),
}

impl Notifier {
    /// From `$NOTIFY_SOCKET`, `$WATCHDOG_USEC` and `$WATCHDOG_PID` (the watchdog applies only
    /// when `WATCHDOG_PID` is unset or names this process, as `sd_watchdog_enabled(3)` says).
    pub fn from_env() -> Self {
        let target = std::env::var_os("NOTIFY_SOCKET").map(|s| Target::parse(s.as_encoded_bytes()));
        let for_us = std::env::var("WATCHDOG_PID")
            .ok()
            .and_then(|p| p.parse::<u32>().ok())
            .is_none_or(|pid| pid == std::process::id());
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|&usec| usec > 0 && for_us)
            .map(Duration::from_micros);
        Self { target, watchdog }
    }

    /// A notifier for an explicit socket path (tests, or a supervisor of our own).
    pub fn to_socket(path: impl Into<PathBuf>, watchdog: Option<Duration>) -> Self {
        Self {
            target: Some(Target::Path(path.into())),
            watchdog,
        }
    }

    /// A notifier that sends nothing.
    pub fn disabled() -> Self {
        Self::default()
    }

    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// The interval systemd expects `WATCHDOG=1` within (`WatchdogSec=`), if any.
    pub fn watchdog_timeout(&self) -> Option<Duration> {
        self.watchdog
    }

    pub fn ready(&self, status: &str) -> io::Result<()> {
        self.send(&format!("READY=1\nSTATUS={}\n", one_line(status)))
    }

    pub fn status(&self, status: &str) -> io::Result<()> {
        self.send(&format!("STATUS={}\n", one_line(status)))
    }

    pub fn watchdog(&self) -> io::Result<()> {
        self.send("WATCHDOG=1\n")
    }

    pub fn stopping(&self, status: &str) -> io::Result<()> {
        self.send(&format!("STOPPING=1\nSTATUS={}\n", one_line(status)))
    }

    /// Ask systemd for more time to start (or stop) than `TimeoutStartSec=` allows.
    pub fn extend_timeout(&self, by: Duration) -> io::Result<()> {
        self.send(&format!("EXTEND_TIMEOUT_USEC={}\n", by.as_micros()))
    }

    fn send(&self, message: &str) -> io::Result<()> {
        let Some(target) = &self.target else {
            return Ok(());
        };
        let socket = UnixDatagram::unbound()?;
        match target {
            Target::Path(path) => socket.send_to(message.as_bytes(), path)?,
            Target::Abstract(name) => {
                let addr = SocketAddr::from_abstract_name(name)?;
                socket.send_to_addr(message.as_bytes(), &addr)?
            }
        };
        Ok(())
    }
}

impl Target {
    fn parse(raw: &[u8]) -> Self {
        match raw.strip_prefix(b"@") {
            Some(name) => Target::Abstract(name.to_vec()),
            None => Target::Path(PathBuf::from(String::from_utf8_lossy(raw).into_owned())),
        }
    }
}

/// `STATUS=` is one line; a newline would start a new assignment.
fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_to_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::to_socket(&path, None);
        n.ready("serving\non 127.0.0.1").unwrap();
        let mut buf = [0u8; 256];
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=serving on 127.0.0.1\n");
    }

    #[test]
    fn sends_to_an_abstract_socket() {
        let name = format!("barnabee-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let server = UnixDatagram::bind_addr(&addr).unwrap();
        let n = Notifier {
            target: Some(Target::parse(format!("@{name}").as_bytes())),
            watchdog: None,
        };
        n.extend_timeout(Duration::from_secs(3)).unwrap();
        let mut buf = [0u8; 64];
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"EXTEND_TIMEOUT_USEC=3000000\n");
    }

    #[test]
    fn disabled_is_a_no_op() {
        let n = Notifier::disabled();
        assert!(!n.is_enabled());
        n.ready("x").unwrap();
        n.watchdog().unwrap();
    }
}
