//! `journal.json`: `journalctl -u 'barnabee-*' --since=-<window> -o json --no-pager`, raw
//! (one JSON object per line, with our structured fields EVENT, SEVERITY, REQUEST_ID, ...),
//! spooled to a temp file because an hour of logs can be large; and `kernel.txt`, the kernel
//! log over the same window (`journalctl -k`), where OOM kills show.

use std::fs::File;
use std::process::Stdio;
use std::time::Duration;

/// journalctl gets this long; what it wrote so far is kept.
const TIMEOUT: Duration = Duration::from_secs(120);

pub struct Journal {
    /// journalctl's stdout (possibly partial when `error` is set); None if no spool file
    /// could be made.
    pub file: Option<File>,
    pub lines: usize,
    pub error: Option<String>,
    /// journalctl's stderr when it succeeded (e.g. "not seeing messages from other users").
    pub note: Option<String>,
}

/// The arguments, without the program name.
pub fn args(window: Duration) -> Vec<String> {
    vec![
        "-u".into(),
        "barnabee-*".into(),
        format!("--since=-{}s", window.as_secs()),
        "-o".into(),
        "json".into(),
        "--no-pager".into(),
    ]
}

/// `kernel.txt`: the kernel's messages over the window (OOM kills, I/O errors, GPU Xid
/// errors), as journald has them.
pub fn kernel_args(window: Duration) -> Vec<String> {
    vec![
        "-k".into(),
        format!("--since=-{}s", window.as_secs()),
        "-o".into(),
        "short-iso".into(),
        "--no-pager".into(),
    ]
}

/// The barnabee units' journal over the window.
pub async fn collect(window: Duration) -> Journal {
    run(args(window)).await
}

/// The kernel log over the window.
pub async fn collect_kernel(window: Duration) -> Journal {
    run(kernel_args(window)).await
}

async fn run(args: Vec<String>) -> Journal {
    let file = match tempfile::tempfile() {
        Ok(f) => f,
        Err(e) => return failed(format!("cannot create a spool file: {e}")),
    };
    let stdout = match file.try_clone() {
        Ok(f) => f,
        Err(e) => return failed(format!("cannot create a spool file: {e}")),
    };
    let child = tokio::process::Command::new("journalctl")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let child = match child {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Journal {
                file: Some(file),
                lines: 0,
                error: Some("journalctl not found on PATH (not a systemd host?)".into()),
                note: None,
            };
        }
        Err(e) => {
            return Journal {
                file: Some(file),
                lines: 0,
                error: Some(format!("cannot run journalctl: {e}")),
                note: None,
            };
        }
    };
    let outcome = tokio::time::timeout(TIMEOUT, child.wait_with_output()).await;
    let lines = count_lines(&file);
    let (error, note) = match outcome {
        Err(_) => (
            Some(format!(
                "journalctl did not finish within {} s (killed; its output so far is kept)",
                TIMEOUT.as_secs()
            )),
            None,
        ),
        Ok(Err(e)) => (Some(format!("waiting for journalctl: {e}")), None),
        Ok(Ok(out)) => {
            let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            if out.status.success() {
                (None, (!stderr.is_empty()).then_some(stderr))
            } else {
                (
                    Some(format!(
                        "journalctl failed ({}){}",
                        out.status,
                        if stderr.is_empty() {
                            String::new()
                        } else {
                            format!(": {stderr}")
                        }
                    )),
                    None,
                )
            }
        }
    };
    Journal {
        file: Some(file),
        lines,
        error,
        note,
    }
}

fn failed(error: String) -> Journal {
    Journal {
        file: None,
        lines: 0,
        error: Some(error),
        note: None,
    }
}

fn count_lines(file: &File) -> usize {
    use std::io::{BufRead, BufReader, Seek};
    let Ok(mut f) = file.try_clone() else {
        return 0;
    };
    if f.rewind().is_err() {
        return 0;
    }
    BufReader::new(f).split(b'\n').count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_the_runbooks() {
        assert_eq!(
            args(Duration::from_secs(3600)),
            [
                "-u",
                "barnabee-*",
                "--since=-3600s",
                "-o",
                "json",
                "--no-pager"
            ]
        );
    }
}
