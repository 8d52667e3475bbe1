//! The two systemd protocols besides D-Bus: sd_notify (READY=1, and WATCHDOG=1 pings that keep
//! coming while units are supervised and restarted) and journald's native protocol (incident
//! records carry EVENT, SEVERITY, UNIT, REASON, ACTION).

use std::collections::BTreeMap;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::*;

const MEMORY: &str = "barnabee-memory.service";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchdog_pings_continue_while_supervising() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::start(dir.path());
    let sd = Systemd::new(&[(MEMORY, FakeUnit::active())]);
    let _svc = sd.serve(&bus.address).await;
    let memory = HealthServer::start(false).await;
    let notify_path = dir.path().join("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let state = dir.path().join("state");
    let cfg = config(
        &state,
        &[(MEMORY, &memory.url)],
        "backoff_initial = 0.3",
        "",
    );
    let _wd = Watchdog::start_env(
        dir.path(),
        &cfg,
        &bus.address,
        &[
            ("NOTIFY_SOCKET", notify_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "200000"),
        ],
    )
    .await;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        if let Ok(n) = notify.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    assert!(got.iter().any(|m| m.contains("READY=1")), "{got:?}");
    let pings = got.iter().filter(|m| m.contains("WATCHDOG=1")).count();
    // 100 ms period over ~2 s; allow for a slow machine but not for stalled heartbeats.
    assert!(pings >= 8, "only {pings} WATCHDOG=1 in 2 s: {got:?}");
    assert!(
        !sd.calls(MEMORY).is_empty(),
        "no restart happened while pinging"
    );
}

const HARNESS: &str = "BARNABEE_WATCHDOG_JOURNAL_HARNESS";

/// Runs itself again under `unshare -m` with a tmpfs over `/run`, where it binds
/// `/run/systemd/journal/socket` and runs a failing gate logging to journald.
#[test]
fn incident_reaches_journald_with_its_fields() {
    if std::env::var_os(HARNESS).is_some() {
        let out = std::env::var_os("BARNABEE_WATCHDOG_JOURNAL_OUT").unwrap();
        return journal_harness(Path::new(&out));
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("datagrams.json");
    rerun_with_private_run(
        "systemd_protocols::incident_reaches_journald_with_its_fields",
        HARNESS,
        &[("BARNABEE_WATCHDOG_JOURNAL_OUT", out.as_os_str())],
    );
    let records: Vec<BTreeMap<String, String>> =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let incident = records
        .iter()
        .find(|r| r.get("EVENT").map(String::as_str) == Some("incident"))
        .unwrap_or_else(|| panic!("no EVENT=incident record: {records:?}"));
    assert_eq!(incident["SEVERITY"], "P1");
    assert_eq!(incident["UNIT"], "system");
    assert_eq!(incident["REASON"], "gate_timeout");
    assert_eq!(incident["ACTION"], "rollback");
    assert_eq!(incident["PRIORITY"], "3");
    assert_eq!(incident["SYSLOG_IDENTIFIER"], "barnabee-watchdog");
    assert!(incident["MESSAGE"].contains(MEMORY), "{incident:?}");
}

fn journal_harness(out: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let socket = UnixDatagram::bind("/run/systemd/journal/socket").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let cfg = dir.path().join("gate.toml");
    std::fs::write(
        &cfg,
        format!(
            "state_dir = {:?}\n[service.log]\ntarget = \"journald\"\n[gate]\npoll_interval = 0.1\n\
             [rollback]\nrunner = []\ncommand = [\"/bin/true\"]\n[[units]]\nname = \"{MEMORY}\"\n",
            dir.path().join("state").display().to_string()
        ),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args(["gate", "--timeout", "0.3s", "--config"])
        .arg(&cfg)
        .env(
            "DBUS_SYSTEM_BUS_ADDRESS",
            format!("unix:path={}", dir.path().join("no-bus").display()),
        )
        .spawn()
        .unwrap();
    let mut records = Vec::new();
    let mut buf = vec![0u8; 65536];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match socket.recv(&mut buf) {
            Ok(n) => records.push(parse_native(&buf[..n])),
            Err(_) if child.try_wait().unwrap().is_some() => break,
            Err(_) => assert!(Instant::now() < deadline, "gate did not finish"),
        }
    }
    assert_eq!(child.wait().unwrap().code(), Some(1));
    std::fs::write(out, serde_json::to_string(&records).unwrap()).unwrap();
}

/// journald's native protocol: `KEY=value\n`, or `KEY\n<u64 LE length><value>\n`.
fn parse_native(mut data: &[u8]) -> BTreeMap<String, String> {
    let mut fields = BTreeMap::new();
    while let Some(nl) = data.iter().position(|&b| b == b'\n') {
        let line = &data[..nl];
        if let Some(eq) = line.iter().position(|&b| b == b'=') {
            fields.insert(
                String::from_utf8_lossy(&line[..eq]).into_owned(),
                String::from_utf8_lossy(&line[eq + 1..]).into_owned(),
            );
            data = &data[nl + 1..];
        } else {
            let key = String::from_utf8_lossy(line).into_owned();
            let rest = &data[nl + 1..];
            let len = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
            fields.insert(key, String::from_utf8_lossy(&rest[8..8 + len]).into_owned());
            data = &rest[8 + len + 1..];
        }
    }
    fields
}
