//! `generations.txt`: which NixOS system generation runs, which booted, which the system
//! profile points at, and every `system-N-link` (newest first) — what an operator needs to
//! decide on (or confirm) a rollback.
//!
//! Only links are read (never followed into `/nix/store`), so a test can mimic the layout
//! under a temp dir: [`report`] takes the root (`/` on the appliance).

use std::fmt::Write as _;
use std::path::Path;

use crate::utc;

/// The system profile, relative to the root.
const PROFILE: &str = "nix/var/nix/profiles/system";

/// The report, and whether this is a NixOS system at all.
pub struct Report {
    pub text: String,
    pub nixos: bool,
    /// Number of `system-N-link` generations found.
    pub generations: usize,
}

/// One `system-N-link`.
#[derive(Debug, PartialEq)]
struct Generation {
    number: u64,
    target: String,
    mtime: Option<i64>,
}

pub fn report(root: &Path) -> Report {
    let profile = root.join(PROFILE);
    if profile.symlink_metadata().is_err() {
        return Report {
            text: format!("not a NixOS system (no {})\n", display(root, PROFILE)),
            nixos: false,
            generations: 0,
        };
    }
    let current = read_link(&root.join("run/current-system"));
    let booted = read_link(&root.join("run/booted-system"));
    let profile_link = read_link(&profile);
    let gens = list(&root.join("nix/var/nix/profiles"));
    // The profile points at `system-N-link` (relative); that generation is the "profile" one.
    let profile_number = profile_link
        .as_ref()
        .ok()
        .and_then(|t| generation_number(Path::new(t).file_name()?.to_str()?));

    let mut text = String::new();
    let row = |text: &mut String, label: &str, path: &str, target: &Result<String, String>| {
        let shown = match target {
            Ok(t) => format!("-> {t}"),
            Err(e) => format!("({e})"),
        };
        let _ = writeln!(text, "{label:<16}{path} {shown}");
    };
    row(&mut text, "running system", "/run/current-system", &current);
    row(&mut text, "booted system", "/run/booted-system", &booted);
    row(
        &mut text,
        "system profile",
        &display(root, PROFILE),
        &profile_link,
    );
    if let Some(n) = profile_number
        && let Some(g) = gens.iter().find(|g| g.number == n)
    {
        let _ = writeln!(text, "{:<16}{}", "", format_args!("-> {}", g.target));
    }
    let running_number = current
        .as_ref()
        .ok()
        .and_then(|c| gens.iter().find(|g| &g.target == c).map(|g| g.number));
    let booted_number = booted
        .as_ref()
        .ok()
        .and_then(|b| gens.iter().find(|g| &g.target == b).map(|g| g.number));
    let previous_number = running_number
        .or(profile_number)
        .and_then(|n| gens.iter().map(|g| g.number).find(|m| *m < n));

    let _ = writeln!(text, "\ngenerations ({}, newest first):", gens.len());
    for g in &gens {
        let mut marks = Vec::new();
        if Some(g.number) == profile_number {
            marks.push("profile");
        }
        if Some(g.number) == running_number {
            marks.push("running");
        }
        if Some(g.number) == booted_number {
            marks.push("booted");
        }
        if Some(g.number) == previous_number {
            marks.push("previous");
        }
        let when = g
            .mtime
            .map(utc::readable)
            .unwrap_or_else(|| "mtime unknown".into());
        let marks = if marks.is_empty() {
            String::new()
        } else {
            format!("  ({})", marks.join(", "))
        };
        let _ = writeln!(text, "{:>5}  {when}  {}{marks}", g.number, g.target);
    }
    if running_number.is_none() && current.is_ok() {
        let _ = writeln!(
            text,
            "\nthe running system is not one of the profile's generations (a `nixos-rebuild test` or a removed generation)"
        );
    }
    Report {
        text,
        nixos: true,
        generations: gens.len(),
    }
}

/// `system-N-link` entries of `dir`, newest (highest N) first.
fn list(dir: &Path) -> Vec<Generation> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut gens: Vec<Generation> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name();
            let number = generation_number(name.to_str()?)?;
            let link = e.path();
            let target = read_link(&link).unwrap_or_else(|e| format!("({e})"));
            let mtime = link
                .symlink_metadata()
                .and_then(|m| m.modified())
                .ok()
                .map(utc::epoch_secs);
            Some(Generation {
                number,
                target,
                mtime,
            })
        })
        .collect();
    gens.sort_by_key(|g| std::cmp::Reverse(g.number));
    gens
}

/// `system-42-link` → 42.
fn generation_number(name: &str) -> Option<u64> {
    name.strip_prefix("system-")?
        .strip_suffix("-link")?
        .parse()
        .ok()
}

fn read_link(path: &Path) -> Result<String, String> {
    std::fs::read_link(path)
        .map(|t| t.display().to_string())
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => "absent".to_owned(),
            std::io::ErrorKind::InvalidInput => "not a link".to_owned(),
            _ => e.to_string(),
        })
}

/// The path as the appliance sees it (`/nix/...`) when the root is `/`, else the real path.
fn display(root: &Path, rel: &str) -> String {
    root.join(rel).display().to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::symlink;
    use std::time::{Duration, SystemTime};

    fn set_link_mtime(link: &Path, secs: u64) {
        // std can set a symlink's own times only through File; the profile links' mtimes are
        // what nix-env sets, so fake them with `touch -h`.
        let stamp = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        let ok = std::process::Command::new("touch")
            .arg("-h")
            .arg("-d")
            .arg(format!("@{}", utc::epoch_secs(stamp)))
            .arg(link)
            .status()
            .unwrap()
            .success();
        assert!(ok, "touch -h failed");
    }

    /// A root with generations 40, 41, 42 (profile → 42, running 42, booted 41).
    fn nixos_root() -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let profiles = root.path().join("nix/var/nix/profiles");
        std::fs::create_dir_all(&profiles).unwrap();
        std::fs::create_dir_all(root.path().join("run")).unwrap();
        for (n, secs) in [
            (40, 1_700_000_000),
            (41, 1_750_000_000),
            (42, 1_795_462_500),
        ] {
            let link = profiles.join(format!("system-{n}-link"));
            symlink(format!("/nix/store/hash{n}-nixos-system-beelink"), &link).unwrap();
            set_link_mtime(&link, secs);
        }
        // not a generation: ignored
        symlink("/nix/store/x-default", profiles.join("default-1-link")).unwrap();
        symlink("system-42-link", profiles.join("system")).unwrap();
        symlink(
            "/nix/store/hash42-nixos-system-beelink",
            root.path().join("run/current-system"),
        )
        .unwrap();
        symlink(
            "/nix/store/hash41-nixos-system-beelink",
            root.path().join("run/booted-system"),
        )
        .unwrap();
        root
    }

    #[test]
    fn generations_newest_first_with_marks_and_mtimes() {
        let root = nixos_root();
        let r = report(root.path());
        assert!(r.nixos);
        assert_eq!(r.generations, 3);
        let text = r.text;
        assert!(
            text.contains(
                "running system  /run/current-system -> /nix/store/hash42-nixos-system-beelink"
            ),
            "{text}"
        );
        assert!(
            text.contains("booted system   /run/booted-system -> /nix/store/hash41"),
            "{text}"
        );
        assert!(
            text.contains("nix/var/nix/profiles/system -> system-42-link"),
            "{text}"
        );
        let rows: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.starts_with("generations"))
            .skip(1)
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(rows.len(), 3, "{text}");
        assert!(
            rows[0]
                .trim_start()
                .starts_with("42  2026-11-23 19:35:00 UTC  /nix/store/hash42"),
            "{}",
            rows[0]
        );
        assert!(rows[0].ends_with("(profile, running)"), "{}", rows[0]);
        assert!(
            rows[1].trim_start().starts_with("41  2025-06-15"),
            "{}",
            rows[1]
        );
        assert!(rows[1].ends_with("(booted, previous)"), "{}", rows[1]);
        assert!(
            rows[2].trim_start().starts_with("40  2023-11-14"),
            "{}",
            rows[2]
        );
        assert!(!rows[2].contains('('), "{}", rows[2]);
        assert!(!text.contains("default-1-link"), "{text}");
    }

    #[test]
    fn after_a_rollback_running_is_older_than_the_newest() {
        let root = nixos_root();
        let p = root.path();
        std::fs::remove_file(p.join("nix/var/nix/profiles/system")).unwrap();
        symlink("system-41-link", p.join("nix/var/nix/profiles/system")).unwrap();
        std::fs::remove_file(p.join("run/current-system")).unwrap();
        symlink(
            "/nix/store/hash41-nixos-system-beelink",
            p.join("run/current-system"),
        )
        .unwrap();
        let text = report(p).text;
        let row41 = text
            .lines()
            .find(|l| l.trim_start().starts_with("41 "))
            .unwrap();
        assert!(row41.ends_with("(profile, running, booted)"), "{text}");
        let row40 = text
            .lines()
            .find(|l| l.trim_start().starts_with("40 "))
            .unwrap();
        assert!(row40.ends_with("(previous)"), "{text}");
    }

    #[test]
    fn running_system_outside_the_profile_is_said() {
        let root = nixos_root();
        let p = root.path();
        std::fs::remove_file(p.join("run/current-system")).unwrap();
        symlink("/nix/store/zzz-test-build", p.join("run/current-system")).unwrap();
        let text = report(p).text;
        assert!(
            text.contains("not one of the profile's generations"),
            "{text}"
        );
    }

    #[test]
    fn not_nixos_says_so() {
        let root = tempfile::tempdir().unwrap();
        let r = report(root.path());
        assert!(!r.nixos);
        assert_eq!(
            r.text,
            format!(
                "not a NixOS system (no {}/nix/var/nix/profiles/system)\n",
                root.path().display()
            )
        );
        assert_eq!(
            report(Path::new("/nonexistent-root")).text,
            "not a NixOS system (no /nonexistent-root/nix/var/nix/profiles/system)\n"
        );
    }
}
