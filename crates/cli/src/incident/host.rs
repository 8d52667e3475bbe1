//! `host.txt`: the figures the watchdog's host checks use (disk free, available memory, load)
//! plus uptime, read the same way an operator would (statvfs, `/proc`).

use std::fmt::Write as _;
use std::path::Path;

/// The file systems to report; `/nix` only where it exists.
const MOUNTS: &[&str] = &["/", "/var/lib", "/nix"];

pub struct Report {
    pub text: String,
    /// What could not be read (the text says it too).
    pub problems: Vec<String>,
}

pub fn report() -> Report {
    let mut text = String::new();
    let mut problems = Vec::new();

    let _ = writeln!(text, "disk (statvfs; free = available to non-root):");
    for mount in MOUNTS {
        if *mount == "/nix" && !Path::new(mount).exists() {
            continue;
        }
        match disk(Path::new(mount)) {
            Ok(d) => {
                let _ = writeln!(text, "  {}", d.line(mount));
            }
            Err(e) => {
                let _ = writeln!(text, "  {mount:<9} unreadable: {e}");
                problems.push(format!("statvfs {mount}: {e}"));
            }
        }
    }

    match std::fs::read_to_string("/proc/meminfo") {
        Ok(t) => {
            let _ = writeln!(text, "memory: {}", memory_line(&t));
        }
        Err(e) => {
            let _ = writeln!(text, "memory: /proc/meminfo unreadable: {e}");
            problems.push(format!("/proc/meminfo: {e}"));
        }
    }
    match std::fs::read_to_string("/proc/loadavg") {
        Ok(t) => {
            let _ = writeln!(text, "load: {}", load_line(&t));
        }
        Err(e) => {
            let _ = writeln!(text, "load: /proc/loadavg unreadable: {e}");
            problems.push(format!("/proc/loadavg: {e}"));
        }
    }
    match std::fs::read_to_string("/proc/uptime") {
        Ok(t) => {
            let _ = writeln!(text, "uptime: {}", uptime_line(&t));
        }
        Err(e) => {
            let _ = writeln!(text, "uptime: /proc/uptime unreadable: {e}");
            problems.push(format!("/proc/uptime: {e}"));
        }
    }
    Report { text, problems }
}

struct Disk {
    size: u64,
    free: u64,
}

impl Disk {
    fn line(&self, mount: &str) -> String {
        let pct = if self.size == 0 {
            0.0
        } else {
            self.free as f64 * 100.0 / self.size as f64
        };
        format!(
            "{mount:<9} size {:>10}  free {:>10}  ({pct:.1} % free)",
            bytes(self.size),
            bytes(self.free)
        )
    }
}

fn disk(path: &Path) -> Result<Disk, String> {
    let s = rustix::fs::statvfs(path).map_err(|e| e.to_string())?;
    Ok(Disk {
        size: s.f_blocks.saturating_mul(s.f_frsize),
        free: s.f_bavail.saturating_mul(s.f_frsize),
    })
}

/// `MemTotal`, `MemAvailable`, `SwapTotal`, `SwapFree` of `/proc/meminfo`, human-readable.
fn memory_line(meminfo: &str) -> String {
    let kib = |key: &str| -> Option<u64> {
        meminfo.lines().find_map(|l| {
            let rest = l.strip_prefix(key)?.strip_prefix(':')?;
            rest.split_whitespace().next()?.parse().ok()
        })
    };
    ["MemTotal", "MemAvailable", "SwapTotal", "SwapFree"]
        .iter()
        .map(|k| match kib(k) {
            Some(v) => format!("{k} {}", bytes(v.saturating_mul(1024))),
            None => format!("{k} ?"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `0.85 1.18 1.50 2/345 6789` → `0.85 1.18 1.50 (1/5/15 min), 2 running of 345 tasks`.
fn load_line(loadavg: &str) -> String {
    let f: Vec<&str> = loadavg.split_whitespace().collect();
    match (f.first(), f.get(1), f.get(2), f.get(3)) {
        (Some(a), Some(b), Some(c), Some(tasks)) => {
            let tasks = match tasks.split_once('/') {
                Some((run, all)) => format!(", {run} running of {all} tasks"),
                None => String::new(),
            };
            format!("{a} {b} {c} (1/5/15 min){tasks}")
        }
        _ => format!("unparsed: {}", loadavg.trim()),
    }
}

/// `9960.12 19000.5` → `2 h 46 min (9960 s)`.
fn uptime_line(uptime: &str) -> String {
    let Some(secs) = uptime
        .split_whitespace()
        .next()
        .and_then(|s| s.parse::<f64>().ok())
    else {
        return format!("unparsed: {}", uptime.trim());
    };
    let s = secs as u64;
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    let human = if d > 0 {
        format!("{d} d {h} h {m} min")
    } else {
        format!("{h} h {m} min")
    };
    format!("{human} ({s} s)")
}

/// Binary units, one decimal.
pub fn bytes(n: u64) -> String {
    const UNITS: &[&str] = &["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_load_uptime_parse() {
        let meminfo = "MemTotal:       16318480 kB\nMemFree:  1 kB\nMemAvailable:    9437184 kB\nSwapTotal: 0 kB\nSwapFree:              0 kB\n";
        assert_eq!(
            memory_line(meminfo),
            "MemTotal 15.6 GiB, MemAvailable 9.0 GiB, SwapTotal 0 B, SwapFree 0 B"
        );
        assert_eq!(
            memory_line("MemTotal: 1024 kB\n"),
            "MemTotal 1.0 MiB, MemAvailable ?, SwapTotal ?, SwapFree ?"
        );
        assert_eq!(
            load_line("0.85 1.18 1.50 2/345 6789\n"),
            "0.85 1.18 1.50 (1/5/15 min), 2 running of 345 tasks"
        );
        assert_eq!(load_line("garbage"), "unparsed: garbage");
        assert_eq!(uptime_line("9960.12 19000.5\n"), "2 h 46 min (9960 s)");
        assert_eq!(uptime_line("180000.0 1"), "2 d 2 h 0 min (180000 s)");
    }

    #[test]
    fn disk_line_has_size_free_and_percent() {
        let d = Disk {
            size: 100 << 30,
            free: 15 << 30,
        };
        assert_eq!(
            d.line("/"),
            "/         size  100.0 GiB  free   15.0 GiB  (15.0 % free)"
        );
        // this machine's root
        let real = disk(Path::new("/")).unwrap_or_else(|e| panic!("statvfs /: {e}"));
        assert!(real.size > 0 && real.free <= real.size);
        assert!(disk(Path::new("/nonexistent-path")).is_err());
    }

    #[test]
    fn report_covers_every_figure_on_this_machine() {
        let r = report();
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        for needle in ["disk", "/var/lib", "MemAvailable", "load:", "uptime:"] {
            assert!(r.text.contains(needle), "{needle} missing:\n{}", r.text);
        }
    }
}
