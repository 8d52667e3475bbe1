use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::common::*;

const MEMORY: &str = "barnabee-memory.service";
const AGENTS: &str = "barnabee-agents.service";

/// A runner script that records its arguments (it stands in for systemd-run).
fn recorder(dir: &Path) -> (String, std::path::PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let record = dir.join("rollback-called");
    let script = dir.join("fake-systemd-run");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}'\n",
            record.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let rollback = format!(
        "[rollback]\nrunner = [\"{}\", \"--unit=barnabee-rollback\", \"--collect\", \"--\"]\ncommand = [\"/bin/sh\", \"-c\", \"echo rolling back\"]\n",
        script.display()
    );
    (rollback, record)
}

async fn gate(dir: &Path, cfg: &str, bus: &str, args: &[&str]) -> (Output, Duration) {
    let path = dir.join("gate.toml");
    std::fs::write(&path, cfg).unwrap();
    let mut cmd = tokio::process::Command::new(BIN);
    // The unit files' order, `--config X gate --timeout ...`; the journald test uses
    // `gate --config X`.
    cmd.arg("--config")
        .arg(&path)
        .arg("gate")
        .args(args)
        .env("DBUS_SYSTEM_BUS_ADDRESS", bus)
        .env_remove("INVOCATION_ID");
    let start = Instant::now();
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("gate hung")
        .unwrap();
    (out, start.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_passes_once_all_units_turn_healthy() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::start(dir.path());
    let sd = Systemd::new(&[
        (MEMORY, FakeUnit::with_state("activating", "start")),
        (AGENTS, FakeUnit::active()),
    ]);
    let _svc = sd.serve(&bus.address).await;
    let memory = HealthServer::start(false).await;
    let agents = HealthServer::start(true).await;
    let (rollback, record) = recorder(dir.path());
    let state = dir.path().join("state");
    let cfg = config(
        &state,
        &[(MEMORY, &memory.url), (AGENTS, &agents.url)],
        "",
        &format!("[gate]\npoll_interval = 0.1\n{rollback}"),
    );
    let (sd2, mem2) = (sd.clone(), memory.clone());
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(800)).await;
        sd2.set(MEMORY, "active", "running");
        tokio::time::sleep(Duration::from_millis(400)).await;
        mem2.set_healthy(true);
    });
    let (out, took) = gate(dir.path(), &cfg, &bus.address, &["--timeout", "20s"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        took >= Duration::from_millis(1200),
        "passed before the unit was healthy ({took:?})"
    );
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert!(stderr.contains("event=gate_passed"), "{stderr}");
    assert!(!record.exists(), "rollback ran although the gate passed");
    assert!(
        sd.calls(MEMORY).is_empty(),
        "the gate must not restart units"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_times_out_and_runs_the_rollback() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::start(dir.path());
    let sd = Systemd::new(&[(MEMORY, FakeUnit::active()), (AGENTS, FakeUnit::active())]);
    let _svc = sd.serve(&bus.address).await;
    let memory = HealthServer::start(false).await;
    let agents = HealthServer::start(true).await;
    let (rollback, record) = recorder(dir.path());
    let state = dir.path().join("state");
    let cfg = config(
        &state,
        &[(MEMORY, &memory.url), (AGENTS, &agents.url)],
        "",
        &format!("[gate]\npoll_interval = 0.1\n{rollback}"),
    );

    // --dry-run: says what it would do, does nothing.
    let (out, _) = gate(
        dir.path(),
        &cfg,
        &bus.address,
        &["--timeout", "1s", "--dry-run"],
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("would record a P1 incident and run:"),
        "{stdout}"
    );
    assert!(
        stdout.contains("--unit=barnabee-rollback --collect -- /bin/sh -c 'echo rolling back'"),
        "{stdout}"
    );
    assert!(
        stdout.contains(MEMORY) && !stdout.contains(AGENTS),
        "{stdout}"
    );
    assert!(!record.exists(), "--dry-run ran the rollback");

    let (out, took) = gate(dir.path(), &cfg, &bus.address, &["--timeout", "1s"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(took >= Duration::from_secs(1), "{took:?}");
    let called = std::fs::read_to_string(&record).expect("the rollback runner was not called");
    assert_eq!(
        called,
        "--unit=barnabee-rollback\n--collect\n--\n/bin/sh\n-c\necho rolling back\n"
    );
    let rows = incident_rows(&state);
    let last = rows.last().unwrap();
    assert_eq!(
        (
            last.0.as_str(),
            last.1.as_str(),
            last.2.as_str(),
            last.3.as_str()
        ),
        ("P1", "system", "gate_timeout", "rollback")
    );
    assert!(
        last.4.contains(MEMORY) && last.4.contains("HTTP 503"),
        "{}",
        last.4
    );
    assert!(
        stderr
            .contains("event=incident severity=P1 unit=system reason=gate_timeout action=rollback"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_rollback_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::start(dir.path());
    let sd = Systemd::new(&[(MEMORY, FakeUnit::with_state("failed", "failed"))]);
    let _svc = sd.serve(&bus.address).await;
    let state = dir.path().join("state");
    let cfg = config(
        &state,
        &[],
        "",
        "[rollback]\nrunner = []\ncommand = [\"/bin/false\"]\n",
    ) + &format!("[[units]]\nname = \"{MEMORY}\"\n");
    let (out, _) = gate(dir.path(), &cfg, &bus.address, &["--timeout", "0.3s"]).await;
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = incident_rows(&state);
    assert!(
        rows.iter().any(|r| r.2 == "rollback_failed" && r.0 == "P1"),
        "{rows:?}"
    );
}

#[test]
fn check_config_accepts_the_example_and_names_bad_keys() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/watchdog.example.toml");
    let out = Command::new(BIN)
        .args(["--config", example, "--check-config"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[supervision]\nmax_restart = 3\n").unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&bad)
        .arg("--check-config")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml:2:") && err.contains("max_restart"),
        "{err}"
    );
}
