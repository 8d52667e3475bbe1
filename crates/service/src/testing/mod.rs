//! Test doubles for what systemd provides, so every crate's tests can play systemd:
//! a notify socket ([`NotifyCapture`]), a journald socket speaking the native protocol
//! ([`JournalCapture`]) and a way to run a child process whose `/run/systemd/journal/socket`
//! is that capture ([`journal_namespace_command`]); and the way every crate's integration tests
//! run a daemon binary ([`DaemonProcess`]). Enabled by the `testing` feature; used only from
//! tests.
//!
//! journald's socket path is fixed (`/run/systemd/journal/socket`, hard-coded in
//! systemd-journal-logger and libsystemd alike), so the child runs in its own user and mount
//! namespace (`unshare -rm`) with a tmpfs on `/run` and the capture's directory bind-mounted
//! at `/run/systemd/journal`. The host's `/run` is never touched.

#![allow(clippy::unwrap_used)]

mod daemon;
pub use daemon::{DaemonProcess, sigterm};

use std::collections::BTreeMap;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A bound notify socket: what systemd's manager would receive.
pub struct NotifyCapture {
    socket: UnixDatagram,
    path: PathBuf,
}

impl NotifyCapture {
    pub fn bind(dir: &Path) -> Self {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        Self { socket, path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next datagram, or `None` after `timeout`.
    pub fn recv(&self, timeout: Duration) -> Option<String> {
        self.socket.set_read_timeout(Some(timeout)).unwrap();
        let mut buf = vec![0u8; 4096];
        match self.socket.recv(&mut buf) {
            Ok(n) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                None
            }
            Err(e) => panic!("notify socket: {e}"),
        }
    }

    /// Every datagram received during `window`, with its arrival time.
    pub fn collect_for(&self, window: Duration) -> Vec<(Instant, String)> {
        let end = Instant::now() + window;
        let mut out = Vec::new();
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            if left.is_zero() {
                break;
            }
            if let Some(msg) = self.recv(left) {
                out.push((Instant::now(), msg));
            }
        }
        out
    }

    /// Wait for a datagram containing `needle`; panics with what arrived instead.
    pub fn expect(&self, needle: &str, timeout: Duration) -> String {
        let end = Instant::now() + timeout;
        let mut seen = Vec::new();
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.recv(left) {
                Some(msg) if msg.contains(needle) => return msg,
                Some(msg) => seen.push(msg),
                None => break,
            }
        }
        panic!("no notify datagram containing {needle:?} within {timeout:?}; got {seen:?}");
    }
}

/// A bound journald socket receiving native-protocol datagrams.
pub struct JournalCapture {
    socket: UnixDatagram,
    dir: PathBuf,
}

/// One journal entry: field name → value.
pub type JournalEntry = BTreeMap<String, String>;

impl JournalCapture {
    /// Binds `<dir>/socket`; `dir` is what gets mounted at `/run/systemd/journal`.
    pub fn bind(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let socket = UnixDatagram::bind(dir.join("socket")).unwrap();
        Self {
            socket,
            dir: dir.to_owned(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The next entry, or `None` after `timeout`. Empty probe datagrams (sent by loggers to
    /// check the socket) are skipped.
    pub fn recv(&self, timeout: Duration) -> Option<JournalEntry> {
        let end = Instant::now() + timeout;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let left = end.checked_duration_since(Instant::now())?;
            if left.is_zero() {
                return None;
            }
            self.socket.set_read_timeout(Some(left)).unwrap();
            match self.socket.recv(&mut buf) {
                Ok(0) => continue,
                Ok(n) => return Some(parse_native(&buf[..n])),
                Err(_) => return None,
            }
        }
    }

    /// Wait for an entry whose `MESSAGE` contains `needle`.
    pub fn expect_message(&self, needle: &str, timeout: Duration) -> JournalEntry {
        let end = Instant::now() + timeout;
        let mut seen = Vec::new();
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.recv(left) {
                Some(e) if e.get("MESSAGE").is_some_and(|m| m.contains(needle)) => return e,
                Some(e) => seen.push(e.get("MESSAGE").cloned().unwrap_or_default()),
                None => break,
            }
        }
        panic!(
            "no journal entry with MESSAGE containing {needle:?} within {timeout:?}; got {seen:?}"
        );
    }
}

/// Parse journald's native protocol: `KEY=value\n`, or `KEY\n<u64 LE length><bytes>\n` for
/// values that contain newlines.
pub fn parse_native(mut data: &[u8]) -> JournalEntry {
    let mut entry = JournalEntry::new();
    while !data.is_empty() {
        let nl = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
        let line = &data[..nl];
        if let Some(eq) = line.iter().position(|&b| b == b'=') {
            entry.insert(
                String::from_utf8_lossy(&line[..eq]).into_owned(),
                String::from_utf8_lossy(&line[eq + 1..]).into_owned(),
            );
            data = &data[(nl + 1).min(data.len())..];
        } else {
            let key = String::from_utf8_lossy(line).into_owned();
            let rest = &data[nl + 1..];
            let len = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
            entry.insert(key, String::from_utf8_lossy(&rest[8..8 + len]).into_owned());
            data = &rest[(8 + len + 1).min(rest.len())..];
        }
    }
    entry
}

/// A command that runs `program args...` with `capture` as its journald socket, in a private
/// user + mount namespace. `INVOCATION_ID` is set so the child believes systemd started it.
/// Needs `unshare` (util-linux) and unprivileged user namespaces (or root).
pub fn journal_namespace_command(capture: &JournalCapture, program: &Path) -> Command {
    let mut cmd = Command::new("unshare");
    cmd.args(["-rm", "--", "sh", "-ec"])
        .arg(
            "mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/journal \
             && mount --bind \"$0\" /run/systemd/journal && exec \"$@\"",
        )
        .arg(capture.dir())
        .arg(program)
        .env("INVOCATION_ID", "0123456789abcdef0123456789abcdef")
        .env_remove("JOURNAL_STREAM");
    cmd
}

/// Environment variable naming the child test a re-executed test binary should run.
pub const CHILD_TEST_ENV: &str = "BARNABEE_CHILD_TEST";

/// A command re-running this test binary for the single test `name` (works under both
/// `cargo test` and nextest, which pass the same libtest arguments).
pub fn child_test_command(name: &str) -> (PathBuf, Vec<String>) {
    let exe = std::env::current_exe().unwrap();
    let args = vec![
        "--exact".to_owned(),
        name.to_owned(),
        "--nocapture".to_owned(),
        "--test-threads=1".to_owned(),
    ];
    (exe, args)
}

/// True inside a child started by [`child_test_command`] for test `name`.
pub fn is_child(name: &str) -> bool {
    std::env::var(CHILD_TEST_ENV).is_ok_and(|v| v == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_field_forms() {
        let mut data = b"MESSAGE=hi\nPRIORITY=6\n".to_vec();
        data.extend_from_slice(b"MULTI\n");
        data.extend_from_slice(&5u64.to_le_bytes());
        data.extend_from_slice(b"a\nb c\n");
        data.extend_from_slice(b"LAST=x\n");
        let e = parse_native(&data);
        assert_eq!(e["MESSAGE"], "hi");
        assert_eq!(e["MULTI"], "a\nb c");
        assert_eq!(e["LAST"], "x");
    }
}
