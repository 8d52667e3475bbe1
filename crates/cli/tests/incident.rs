//! `barnabee incident collect` with the real binary: a real memory daemon and a real
//! watchdog answer, a stand-in `journalctl` (a script first on PATH that prints two JSON lines
//! and records its arguments), a daemon that is down; and the worst case: no journalctl at all
//! and every daemon down, where the bundle is still written and the manifest names each
//! failure. The bundle is decoded (zstd + tar) and its files checked.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
#![allow(clippy::disallowed_methods)] // tests build their own HTTP clients (clippy.toml)

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{Daemon, barnabee, closed_url, script};
use serde_json::Value;

const MEMORY: &str = "[service]\nlisten = \"@LISTEN@\"\n[service.log]\ntarget = \"stderr\"\n[database]\npath = \"@DIR@/memory.db\"\n";
/// The watchdog supervising no units, with a disk threshold every disk crosses: its first
/// host check records a P3 `disk_low` incident.
const WATCHDOG: &str = "state_dir = \"@DIR@\"\n[service]\nlisten = \"@LISTEN@\"\n[service.log]\ntarget = \"stderr\"\n[thresholds]\ndisk_paths = [\"/\"]\ndisk_warn_free_percent = 100\ndisk_critical_free_percent = 0\n";

/// What the stand-in journalctl prints for `-k`: an OOM kill as the kernel logs it.
const KERNEL_LINE: &str =
    "2026-12-02T03:04:05+0000 beelink kernel: Out of memory: Killed process 4242 (barnabee-agents)";
const JOURNAL_LINES: &str = concat!(
    r#"{"_SYSTEMD_UNIT":"barnabee-memory.service","MESSAGE":"served","REQUEST_ID":"r-1","LATENCY_MS":"3"}"#,
    "\n",
    r#"{"_SYSTEMD_UNIT":"barnabee-watchdog.service","MESSAGE":"disk low","EVENT":"incident","SEVERITY":"P3"}"#,
    "\n"
);

/// The bundle's files: name under the top folder → contents; and the top folder.
fn unpack(bundle: &Path) -> (String, BTreeMap<String, Vec<u8>>) {
    let dec = zstd::Decoder::new(std::fs::File::open(bundle).unwrap()).unwrap();
    let mut archive = tar::Archive::new(dec);
    let mut top = None;
    let mut files = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().display().to_string();
        let (first, rest) = path.split_once('/').unwrap();
        assert_eq!(
            *top.get_or_insert_with(|| first.to_owned()),
            first,
            "one top folder"
        );
        if rest.is_empty() {
            continue;
        }
        let mut body = Vec::new();
        entry.read_to_end(&mut body).unwrap();
        files.insert(rest.to_owned(), body);
    }
    (top.unwrap(), files)
}

fn json(files: &BTreeMap<String, Vec<u8>>, name: &str) -> Value {
    let body = files
        .get(name)
        .unwrap_or_else(|| panic!("{name} missing from the bundle: {:?}", files.keys()));
    serde_json::from_slice(body).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn section<'a>(manifest: &'a Value, name: &str) -> &'a Value {
    manifest["sections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no section {name} in {manifest:#}"))
}

/// `GET path` over a plain socket: the body as JSON.
fn get_json(url: &str, path: &str) -> Value {
    let addr = url.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (_, body) = text.split_once("\r\n\r\n").unwrap();
    serde_json::from_str(body).unwrap()
}

fn collect(path_var: &str, args: &[&str]) -> Output {
    let out = Command::new(barnabee())
        .args(["incident", "collect"])
        .args(args)
        .env("PATH", path_var)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .output()
        .unwrap();
    eprintln!(
        "barnabee incident collect {args:?}: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The one `*.tar.zst` in `dir`, and no leftover temp file.
fn only_bundle(dir: &Path) -> PathBuf {
    let names: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(
        names.len(),
        1,
        "expected exactly the bundle in {}: {names:?}",
        dir.display()
    );
    let p = names[0].clone();
    assert!(p.to_str().unwrap().ends_with(".tar.zst"), "{}", p.display());
    p
}

#[test]
fn collect_real_memory_and_watchdog_journalctl_stand_in_agents_down() {
    let memory = Daemon::start("memory", MEMORY);
    let watchdog = Daemon::start("watchdog", WATCHDOG);
    let agents = closed_url();
    // the watchdog's first host check runs at start; wait for its incident
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while get_json(&watchdog.url, "/v1/incidents")["incidents"]
        .as_array()
        .is_none_or(Vec::is_empty)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no disk incident from the watchdog: {}",
            watchdog.stderr()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    let fake = tempfile::tempdir().unwrap();
    let argv = fake.path().join("argv");
    script(
        &fake.path().join("journalctl"),
        &format!(
            "if [ \"$1\" = -k ]; then printf '%s\\n' \"$@\" > '{}.kernel'; echo '{KERNEL_LINE}'; exit 0; fi\n\
             printf '%s\\n' \"$@\" > '{}'\ncat <<'EOF'\n{JOURNAL_LINES}EOF\n",
            argv.display(),
            argv.display()
        ),
    );
    let path_var = format!(
        "{}:{}",
        fake.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out_dir = tempfile::tempdir().unwrap();
    let memory_arg = format!("memory={}", memory.url);
    let watchdog_arg = format!("watchdog={}", watchdog.url);
    let agents_arg = format!("agents={agents}");
    let out = collect(
        &path_var,
        &[
            "--out",
            out_dir.path().to_str().unwrap(),
            "--since",
            "2h",
            "--url",
            &memory_arg,
            "--url",
            &watchdog_arg,
            "--url",
            &agents_arg,
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    let bundle = only_bundle(out_dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("wrote {}", bundle.display())),
        "{stdout}"
    );

    // journalctl was asked for the barnabee units over the window, as JSON
    let args: Vec<String> = std::fs::read_to_string(&argv)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        args,
        [
            "-u",
            "barnabee-*",
            "--since=-7200s",
            "-o",
            "json",
            "--no-pager"
        ]
    );

    // and the kernel log over the same window (OOM kills)
    let kernel_args = std::fs::read_to_string(format!("{}.kernel", argv.display())).unwrap();
    assert_eq!(
        kernel_args.lines().collect::<Vec<_>>(),
        ["-k", "--since=-7200s", "-o", "short-iso", "--no-pager"]
    );

    let (top, files) = unpack(&bundle);
    let host = top
        .strip_prefix("barnabee-incident-")
        .and_then(|r| r.rsplit_once('-'))
        .unwrap();
    assert!(
        bundle
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with(&top),
        "bundle name {} vs top folder {top}",
        bundle.display()
    );
    assert!(
        host.1.len() == 16 && host.1.ends_with('Z'),
        "timestamp in {top}"
    );
    let names: Vec<&str> = files.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "MANIFEST.json",
            "generations.txt",
            "health/agents.json",
            "health/memory.json",
            "health/watchdog.json",
            "host.txt",
            "incidents.json",
            "journal.json",
            "kernel.txt",
            "units.json",
            "versions.txt",
        ]
    );
    assert_eq!(
        files["journal.json"],
        JOURNAL_LINES.as_bytes(),
        "raw journal lines kept"
    );
    assert_eq!(files["kernel.txt"], format!("{KERNEL_LINE}\n").as_bytes());

    let mem = json(&files, "health/memory.json");
    assert_eq!(mem["http_status"], 200, "{mem:#}");
    assert_eq!(mem["url"], format!("{}/health", memory.url));
    let direct = get_json(&memory.url, "/health");
    assert_eq!(mem["body"]["status"], direct["status"], "{mem:#}");
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&mem["body"]["checks"]), keys(&direct["checks"]));
    assert!(!keys(&direct["checks"]).is_empty());

    let down = json(&files, "health/agents.json");
    assert_eq!(
        down["error"],
        format!("{agents}/health: connection refused"),
        "{down:#}"
    );
    assert!(down.get("http_status").is_none());

    let incidents = json(&files, "incidents.json");
    let list = incidents["incidents"].as_array().unwrap();
    let disk = list
        .iter()
        .find(|i| i["reason"] == "disk_low")
        .unwrap_or_else(|| panic!("no disk_low incident: {incidents:#}"));
    assert_eq!(disk["severity"], "P3", "{disk:#}");
    assert_eq!(disk["unit"], "host", "{disk:#}");
    let units = json(&files, "units.json");
    assert!(units["units"].is_array(), "{units:#}");

    let versions = String::from_utf8(files["versions.txt"].clone()).unwrap();
    assert!(versions.starts_with("barnabee 0.1.0"), "{versions}");
    assert!(versions.contains("barnabee-memory 0.1.0"), "{versions}");
    assert!(versions.contains("uname -a: Linux"), "{versions}");
    assert!(versions.contains("/etc/os-release:"), "{versions}");
    let host_txt = String::from_utf8(files["host.txt"].clone()).unwrap();
    for needle in ["% free", "MemAvailable", "load:", "uptime:"] {
        assert!(host_txt.contains(needle), "{needle}: {host_txt}");
    }
    let generations = String::from_utf8(files["generations.txt"].clone()).unwrap();
    if !Path::new("/nix/var/nix/profiles/system").exists() {
        assert_eq!(
            generations,
            "not a NixOS system (no /nix/var/nix/profiles/system)\n"
        );
    }

    let manifest = json(&files, "MANIFEST.json");
    let journal = section(&manifest, "journal");
    assert_eq!(journal["status"], "ok", "{journal:#}");
    assert_eq!(journal["summary"], "2 lines");
    assert_eq!(journal["bytes"], JOURNAL_LINES.len());
    assert!(journal["duration_ms"].is_u64());
    assert_eq!(section(&manifest, "health/memory")["status"], "ok");
    assert_eq!(section(&manifest, "health/watchdog")["status"], "ok");
    assert_eq!(section(&manifest, "incidents")["status"], "ok");
    assert_eq!(section(&manifest, "units")["status"], "ok");
    let agents_section = section(&manifest, "health/agents");
    assert_eq!(agents_section["status"], "error");
    assert!(
        agents_section["error"]
            .as_str()
            .unwrap()
            .ends_with("connection refused"),
        "{agents_section:#}"
    );
    assert_eq!(manifest["window_s"], 7200);
    assert_eq!(
        manifest["since_ms"].as_i64().unwrap(),
        manifest["created_ms"].as_i64().unwrap() - 7_200_000,
        "incidents are asked for the same window as the journal"
    );
    let n = list.len();
    let noun = if n == 1 { "incident" } else { "incidents" };
    assert_eq!(
        section(&manifest, "incidents")["summary"],
        format!("{n} {noun}")
    );
    // the summary names each section; the failed one says why
    let agents_line = stdout
        .lines()
        .find(|l| l.contains("health/agents.json"))
        .unwrap();
    assert!(
        agents_line.contains("FAILED") && agents_line.contains("connection refused"),
        "{agents_line}"
    );
    let journal_line = stdout.lines().find(|l| l.contains("journal.json")).unwrap();
    assert!(
        journal_line.contains("ok") && journal_line.contains("2 lines"),
        "{journal_line}"
    );
}

#[test]
fn collect_without_journalctl_and_every_daemon_down_still_writes_the_bundle() {
    // PATH with nothing on it: no journalctl, no uname, no daemon binaries there
    let empty = tempfile::tempdir().unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let out_file = out_dir.path().join("incident.tar.zst");
    let roles = ["memory", "agents", "voice", "inference", "watchdog"];
    let urls: Vec<String> = roles
        .iter()
        .map(|r| format!("{r}={}", closed_url()))
        .collect();
    let mut args = vec!["--out", out_file.to_str().unwrap()];
    for u in &urls {
        args.extend(["--url", u.as_str()]);
    }
    let out = collect(empty.path().to_str().unwrap(), &args);
    assert_eq!(out.status.code(), Some(0), "a written bundle is success");
    assert_eq!(only_bundle(out_dir.path()), out_file);
    let (_, files) = unpack(&out_file);
    let manifest = json(&files, "MANIFEST.json");

    let journal = section(&manifest, "journal");
    assert_eq!(journal["status"], "error");
    assert!(
        journal["error"]
            .as_str()
            .unwrap()
            .contains("journalctl not found"),
        "{journal:#}"
    );
    assert_eq!(files["journal.json"], b"");
    assert_eq!(section(&manifest, "kernel")["status"], "error");
    assert_eq!(files["kernel.txt"], b"");
    for (role, spec) in roles.iter().zip(&urls) {
        let s = section(&manifest, &format!("health/{role}"));
        assert_eq!(s["status"], "error", "{s:#}");
        let url = spec.split_once('=').unwrap().1;
        assert_eq!(s["error"], format!("{url}/health: connection refused"));
        let file = json(&files, &format!("health/{role}.json"));
        assert_eq!(file["error"], s["error"]);
    }
    for name in ["incidents", "units"] {
        let s = section(&manifest, name);
        assert_eq!(s["status"], "error", "{s:#}");
        assert!(
            s["error"].as_str().unwrap().ends_with("connection refused"),
            "{s:#}"
        );
    }
    // the local sections still work; versions says what it could not run
    assert_eq!(section(&manifest, "host")["status"], "ok");
    assert_eq!(section(&manifest, "generations")["status"], "ok");
    let versions = section(&manifest, "versions");
    assert!(
        versions["note"].as_str().unwrap().contains("uname"),
        "{versions:#}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.lines().filter(|l| l.contains("FAILED")).count(),
        2 + roles.len() + 2,
        "{stdout}"
    );
    assert!(stdout.contains("9 failed: see MANIFEST.json"), "{stdout}");
}

#[test]
fn unwritable_destination_fails_naming_the_path() {
    let out = collect(
        &std::env::var("PATH").unwrap_or_default(),
        &[
            "--no-journal",
            "--url",
            &format!("memory={}", closed_url()),
            "--out",
            "/nonexistent-dir/incident.tar.zst",
        ],
    );
    assert_ne!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent-dir"), "{stderr}");
    assert!(
        out.stdout.is_empty(),
        "no summary for a bundle that was not written"
    );
}

#[test]
fn bad_url_and_window_are_refused_before_collecting() {
    let dir = tempfile::tempdir().unwrap();
    let path = std::env::var("PATH").unwrap_or_default();
    let out_arg = dir.path().to_str().unwrap().to_owned();
    let out = collect(&path, &["--out", &out_arg, "--url", "memory"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected ROLE=URL"));
    let out = collect(&path, &["--out", &out_arg, "--since", "1w"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown unit \"w\""));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
