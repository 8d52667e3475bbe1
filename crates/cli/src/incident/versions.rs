//! `versions.txt`: this `barnabee`, every daemon binary found beside it or on `$PATH`
//! (`barnabee-<role> --version`), `uname -a` and `/etc/os-release`.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::daemons::{DAEMONS, find_binary};

/// Each `--version` (or `uname`) gets this long.
const TIMEOUT: Duration = Duration::from_secs(5);

pub struct Report {
    pub text: String,
    /// One line per thing that could not be found or run.
    pub problems: Vec<String>,
    /// Daemon binaries that answered `--version`.
    pub answered: usize,
}

pub async fn report() -> Report {
    let mut text = String::new();
    let mut problems = Vec::new();
    let mut answered = 0;
    let me = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|e| format!("path unknown: {e}"));
    let _ = writeln!(text, "barnabee {} ({me})", env!("CARGO_PKG_VERSION"));
    for daemon in DAEMONS {
        let name = daemon.binary();
        match find_binary(daemon, None) {
            None => {
                let _ = writeln!(text, "{name}: not found beside barnabee or on PATH");
                problems.push(format!("{name} not found"));
            }
            Some(path) => match run(&path, &["--version"]).await {
                Ok(out) => {
                    answered += 1;
                    let _ = writeln!(text, "{out} ({})", path.display());
                }
                Err(e) => {
                    let _ = writeln!(text, "{name} ({}): --version failed: {e}", path.display());
                    problems.push(format!("{name} --version failed"));
                }
            },
        }
    }
    match run(Path::new("uname"), &["-a"]).await {
        Ok(out) => {
            let _ = writeln!(text, "\nuname -a: {out}");
        }
        Err(e) => {
            let _ = writeln!(text, "\nuname -a: {e}");
            problems.push(format!("uname: {e}"));
        }
    }
    match std::fs::read_to_string("/etc/os-release") {
        Ok(t) => {
            let _ = write!(text, "\n/etc/os-release:\n{t}");
        }
        Err(e) => {
            let _ = writeln!(text, "\n/etc/os-release: {e}");
            problems.push(format!("/etc/os-release: {e}"));
        }
    }
    Report {
        text,
        problems,
        answered,
    }
}

/// Run `program args`: the first line of its stdout on success, else the exit status and the
/// first line of its stderr.
async fn run(program: &Path, args: &[&str]) -> Result<String, String> {
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => format!("{} not found", program.display()),
            _ => format!("cannot run {}: {e}", program.display()),
        })?;
    let out = tokio::time::timeout(TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| format!("no answer within {} s", TIMEOUT.as_secs()))?
        .map_err(|e| e.to_string())?;
    let first = |b: &[u8]| {
        String::from_utf8_lossy(b)
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("")
            .to_owned()
    };
    if out.status.success() {
        Ok(first(&out.stdout))
    } else {
        Err(format!("{}: {}", out.status, first(&out.stderr)))
    }
}
