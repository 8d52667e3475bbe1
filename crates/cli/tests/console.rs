//! The operator console (issue #19) in a real browser: `barnabee up --only
//! memory,agents,voice,inference,watchdog,console` (the real models from the set-up cache) and a
//! headless Debian Chromium over WebDriver, its fake microphone playing an espeak-ng recording.
//!
//! Logged out, every page goes to the login page and every change is refused; a wrong password
//! says so; logged in, the overview shows each daemon's health and a daemon that stops
//! answering shows as down within the refresh interval; a memory written through memory's API
//! is found on the Memories page and deleted from it; the "local only" switch on the Cost page
//! reaches the agents daemon; the Backups page shows memory's replica; a request spoken through
//! the voice daemon appears on the Voice page with its stage times; a family member is enrolled
//! from the browser's microphone on the Family page (the profile lands in memory), samples are
//! added, the profile deleted; a stale CSRF token, an oversize form and an oversize recording get
//! a clear message. Screenshots of each page go to
//! `target/tmp/console-screenshots/`; the first load of the overview (server time), its weight
//! and the console's peak RSS are printed.

#![allow(clippy::unwrap_used)]
#![allow(clippy::disallowed_methods)] // tests build their own HTTP clients (clippy.toml)

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::demo_home::*;
use common::webdriver::{Browser, have_browser};
use serde_json::json;

fn espeak(path: &std::path::Path, text: &str) {
    let st = std::process::Command::new("espeak-ng")
        .args(["-s", "150", "-w"])
        .arg(path)
        .arg(text)
        .status()
        .expect("espeak-ng (dev/setup installs it)");
    assert!(st.success());
}

fn shots() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots")
}

/// The pid of `barnabee-<role>` started by this test's `barnabee up` (its config is in `data`).
fn pid_of(role: &str, data: &std::path::Path) -> u32 {
    let config = data.join("config").join(format!("{role}.toml"));
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(&format!("barnabee-{role} ")) && cmd.contains(&*config.to_string_lossy()) {
            return pid;
        }
    }
    panic!("no barnabee-{role} process for {}", config.display());
}

/// A `/proc/<pid>/status` figure in MB (`VmRSS`, `VmHWM` the peak).
fn status_mb(pid: u32, key: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap();
    kb / 1024.0
}

/// Plain HTTP to the console (no redirects followed, cookie by hand).
struct Raw {
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
}

impl Raw {
    fn new() -> Raw {
        Raw {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            http: reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    fn send(&self, r: reqwest::RequestBuilder) -> (u16, Option<String>, String) {
        self.rt.block_on(async {
            let r = r.send().await.unwrap();
            let status = r.status().as_u16();
            let location = r
                .headers()
                .get("location")
                .map(|v| v.to_str().unwrap().to_owned());
            (status, location, r.text().await.unwrap())
        })
    }

    fn get(&self, url: &str, cookie: Option<&str>) -> (u16, Option<String>, String) {
        let mut r = self.http.get(url);
        if let Some(c) = cookie {
            r = r.header("cookie", format!("barnabee_console={c}"));
        }
        self.send(r)
    }

    fn post(&self, url: &str, cookie: Option<&str>, form: &str) -> (u16, Option<String>, String) {
        let mut r = self
            .http
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.to_owned());
        if let Some(c) = cookie {
            r = r.header("cookie", format!("barnabee_console={c}"));
        }
        self.send(r)
    }
}

#[test]
fn console_in_a_real_browser() {
    if !have_browser("console_in_a_real_browser") {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let offset = free_port_offset();
    let console = format!("http://127.0.0.1:{}", 7706 + offset);
    let memory = format!("http://127.0.0.1:{}", 7701 + offset);
    let agents = format!("http://127.0.0.1:{}", 7702 + offset);
    let voice = format!("http://127.0.0.1:{}", 7703 + offset);
    let watchdog = format!("http://127.0.0.1:{}", 7705 + offset);
    let mut up = Up::start_with(
        data.path(),
        offset,
        "memory,agents,inference,voice,watchdog,console",
        false,
    );
    up.wait_for("the local appliance is up", Duration::from_secs(300));
    let password_file = data.path().join("state/console/initial-password");
    let password = std::fs::read_to_string(&password_file).unwrap();
    let password = password.trim();
    let raw = Raw::new();
    let http = Http::new();

    // Logged out: every page goes to the login page, every change is refused.
    for page in ["/", "/memories", "/cost", "/backups", "/nope"] {
        let (code, location, _) = raw.get(&format!("{console}{page}"), None);
        assert_eq!(code, 303, "{page}");
        assert!(location.unwrap().starts_with("/login"), "{page}");
    }
    for action in [
        "/memories/delete",
        "/cost/mode",
        "/backups/verify",
        "/logout",
        "/incidents/ack",
        "/family/delete",
    ] {
        let (code, _, body) = raw.post(
            &format!("{console}{action}"),
            None,
            "csrf=x&id=1&local_only=true",
        );
        assert_eq!(code, 403, "{action}");
        assert!(body.contains("not logged in"), "{action}: {body}");
    }
    // A forged session cookie is no session.
    let (code, _, _) = raw.get(&format!("{console}/"), Some("00ff"));
    assert_eq!(code, 303);

    // The fake microphone's recording: a sentence of ordinary speech.
    let mic = data.path().join("mic.wav");
    espeak(
        &mic,
        "My name is Anna, and this is how I sound when I talk to Barnabee in the kitchen.",
    );
    let b = Browser::start(Some(&mic));
    b.go(&format!("{console}/cost"));
    assert!(b.url().contains("/login"), "{}", b.url());
    b.screenshot(&shots().join("login.png"));
    b.type_into("input[name=password]", "not the password");
    b.click("form[action='/login'] button");
    b.wait_text("Wrong password.", Duration::from_secs(5));
    b.type_into("input[name=password]", password);
    b.click("form[action='/login'] button");
    // Back where the browser wanted to go.
    b.wait_text("Monthly report for", Duration::from_secs(10));
    assert!(b.url().ends_with("/cost"), "{}", b.url());

    // Overview: each daemon's health; agents shown down within the refresh interval once it
    // stops answering (SIGSTOP: the process stays, it just does not answer), up again after.
    b.go(&format!("{console}/"));
    let t = b.wait_text("Daemons", Duration::from_secs(5));
    for role in ["memory", "agents", "watchdog"] {
        let status = b.script(
            "return document.querySelector(`tr[data-role='${arguments[0]}'] td:nth-child(3)`).innerText",
            json!([role]),
        );
        let status = status.as_str().unwrap();
        assert!(
            status.starts_with("healthy") || status.starts_with("degraded"),
            "{role}: {status}\n{t}"
        );
    }
    // Host figures from the watchdog's and inference's /metrics.
    let hosts = b.script(
        "return document.querySelector('#hosts').innerText",
        json!([]),
    );
    let hosts = hosts.as_str().unwrap();
    assert!(
        hosts.contains("% free") && hosts.contains("GiB available") && hosts.contains("load "),
        "{hosts}"
    );
    assert!(hosts.contains("GPU") || hosts.contains("NVML"), "{hosts}");
    b.screenshot(&shots().join("overview.png"));
    let agents_pid = pid_of("agents", data.path());
    signal(agents_pid, libc::SIGSTOP);
    let stopped = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let s = b.script(
            "return document.querySelector(`tr[data-role='agents'] td:nth-child(3)`).innerText",
            json!([]),
        );
        if s.as_str().unwrap_or("").starts_with("down") {
            break;
        }
        assert!(Instant::now() < deadline, "agents not shown as down: {s}");
        std::thread::sleep(Duration::from_millis(250));
    }
    eprintln!(
        "a stopped agents daemon shown as down {:.1} s after it stopped answering (refresh 5 s, timeout 1.5 s)",
        stopped.elapsed().as_secs_f64()
    );
    b.screenshot(&shots().join("overview-agents-down.png"));
    signal(agents_pid, libc::SIGCONT);

    // An incident in the watchdog's log (written as the watchdog writes them): open on the
    // overview, acknowledged from it, and the watchdog records who.
    let incidents_db = data.path().join("state/watchdog/incidents.db");
    let out = std::process::Command::new("sqlite3")
        .arg(&incidents_db)
        .arg("PRAGMA busy_timeout=5000; INSERT INTO incidents (ts_ms, severity, unit, reason, action, detail) VALUES (strftime('%s','now')*1000, 'P2', 'barnabee-voice.service', 'unhealthy', 'restart', 'voice stopped answering /health; restarted'); SELECT last_insert_rowid();")
        .output()
        .expect("sqlite3 (dev/setup installs it)");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let incident: i64 = text
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .next_back()
        .unwrap_or_else(|| panic!("no id from sqlite3: {text}"));
    b.go(&format!("{console}/"));
    b.wait_text(
        "voice stopped answering /health; restarted",
        Duration::from_secs(5),
    );
    b.screenshot(&shots().join("overview-incident.png"));
    b.click(&format!("tr[data-incident='{incident}'] button"));
    b.wait_text(
        &format!("Incident {incident} acknowledged."),
        Duration::from_secs(5),
    );
    let (_, inc) = http.get(&format!("{watchdog}/v1/incidents"), None);
    let rec = inc["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == incident)
        .unwrap()
        .clone();
    assert_eq!(rec["acknowledged_by"], "console", "{inc}");
    let row = b.script(
        "return document.querySelector(`tr[data-incident='${arguments[0]}']`).innerText",
        json!([incident]),
    );
    assert!(row.as_str().unwrap().contains("by console"), "{row}");

    // Memories: one written through memory's API is found, then deleted from the page.
    let (code, m) = http.post(
        &format!("{memory}/v1/memories"),
        None,
        &json!({"summary": "The spare key is under the blue flowerpot", "memory_type": "fact", "owner": "family", "visibility": "family"}),
    );
    assert_eq!(code, 201, "{m}");
    let id = m["id"].as_i64().unwrap();
    b.go(&format!("{console}/memories?q=spare+key&mode=fts"));
    b.wait_text(
        "The spare key is under the blue flowerpot",
        Duration::from_secs(5),
    );
    b.screenshot(&shots().join("memories.png"));
    b.click(&format!("tr[data-memory-id='{id}'] button"));
    b.wait_text(&format!("Memory {id} deleted."), Duration::from_secs(5));
    let (code, _) = http.get(&format!("{memory}/v1/memories/{id}?requester=family"), None);
    assert_eq!(code, 404, "the memory is gone from memory itself");

    // Cost: the local-only switch reaches the agents daemon at once.
    b.go(&format!("{console}/cost"));
    b.wait_text("Local only is off", Duration::from_secs(5));
    b.click("form[action='/cost/mode'] button");
    b.wait_text("Local only is on.", Duration::from_secs(5));
    let (_, state) = http.get(&format!("{agents}/v1/cost/mode"), None);
    assert_eq!(state["local_only"], true, "{state}");
    b.screenshot(&shots().join("cost.png"));
    b.click("form[action='/cost/mode'] button");
    b.wait_text("Local only is off.", Duration::from_secs(5));
    let (_, state) = http.get(&format!("{agents}/v1/cost/mode"), None);
    assert_eq!(state["local_only"], false, "{state}");
    b.go(&format!("{console}/cost?month=2026-13"));
    b.wait_text("month", Duration::from_secs(5));
    assert!(b.text().contains("HTTP 400"), "{}", b.text());

    // Backups: memory's replica as memory reports it.
    b.go(&format!("{console}/backups"));
    let t = b.wait_text("Verify now", Duration::from_secs(5));
    assert!(t.contains("replica") && t.contains("file"), "{t}");
    b.screenshot(&shots().join("backups.png"));

    // Voice: a request spoken through the voice daemon (no sound card here: its say endpoint)
    // appears with its stage times.
    let ask = data.path().join("ask.wav");
    espeak(&ask, "hey jarvis, what time is it");
    let said = raw.send(
        raw.http
            .post(format!("{voice}/v1/say"))
            .header("content-type", "audio/wav")
            .body(std::fs::read(&ask).unwrap()),
    );
    assert_eq!(said.0, 200, "{}", said.2);
    b.go(&format!("{console}/voice"));
    let t = b.wait_text("speech to text", Duration::from_secs(5));
    assert!(t.to_lowercase().contains("what time"), "{t}");
    let stt = b.script(
        "return document.querySelector(\"tr[data-stage='stt_ms'] td:nth-child(2)\").innerText",
        json!([]),
    );
    assert!(stt.as_str().unwrap().ends_with(" ms"), "{stt}");
    assert_eq!(
        b.script(
            "return document.querySelectorAll('#latency-chart rect').length > 0",
            json!([])
        ),
        true
    );
    b.screenshot(&shots().join("voice.png"));

    // Family: enrol from the browser's (fake) microphone, add a sample, delete.
    b.go(&format!("{console}/family"));
    b.wait_text("No voice profiles yet", Duration::from_secs(5));
    b.type_into("#rec-name", "anna");
    b.type_into("#rec-seconds", "2");
    for i in 1..=2 {
        b.click("#rec-sample");
        b.wait_text(&format!("Sample {i} recorded"), Duration::from_secs(20));
        let status = b.script(
            "return document.querySelector('#rec-status').innerText",
            json!([]),
        );
        eprintln!(
            "family page, the fake microphone: {}",
            status.as_str().unwrap_or("")
        );
    }
    b.click("#rec-save");
    b.wait_text(
        "Enrolled anna from 2 samples: 2 samples in the profile.",
        Duration::from_secs(60),
    );
    let (code, p) = http.get(&format!("{memory}/v1/speakers/anna"), None);
    assert_eq!(code, 200, "{p}");
    assert_eq!(p["sample_count"], 2, "{p}");
    b.wait_text("not heard recently", Duration::from_secs(10)); // reloaded: the table has anna
    b.screenshot(&shots().join("family.png"));
    b.type_into("#rec-name", "anna");
    b.type_into("#rec-seconds", "2");
    b.click("#rec-add");
    b.click("#rec-sample");
    b.wait_text("Sample 1 recorded", Duration::from_secs(20));
    b.click("#rec-save");
    b.wait_text(
        "Added to anna from 1 sample: 3 samples in the profile.",
        Duration::from_secs(60),
    );
    let (_, p2) = http.get(&format!("{memory}/v1/speakers/anna"), None);
    assert_eq!(p2["sample_count"], 3, "{p2}");
    // (Chromium's fake microphone restarts its file for each recording, so the samples are the
    // same words and the centroid may not move; the merge itself is unit-tested in voice.)
    assert!(
        p2["updated_at"].as_i64() > p["updated_at"].as_i64(),
        "the profile was stored again: {p2}"
    );
    // An oversize recording: a message, not a broken page.
    let csrf = b
        .script(
            "return document.querySelector('#rec-csrf').value",
            json!([]),
        )
        .as_str()
        .unwrap()
        .to_owned();
    let cookie = b.cookie("barnabee_console").expect("session cookie");
    // Refused by its declared length: the answer comes before the body is sent (a browser
    // reads it; a client still writing would see the connection closed).
    let big = {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(console.trim_start_matches("http://")).unwrap();
        write!(
            c,
            "POST /family/enroll HTTP/1.1\r\nhost: console\r\ncookie: barnabee_console={cookie}\r\nx-csrf-token: {csrf}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            9 * 1024 * 1024
        )
        .unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut answer = String::new();
        let _ = c.read_to_string(&mut answer);
        answer
    };
    assert!(big.starts_with("HTTP/1.1 413"), "{big}");
    assert!(big.contains("too large (9.0 MB; at most 8 MB)"), "{big}");
    b.wait_text("not heard recently", Duration::from_secs(10));
    b.click("tr[data-speaker='anna'] button");
    b.wait_text("anna's voice profile deleted.", Duration::from_secs(5));
    let (code, _) = http.get(&format!("{memory}/v1/speakers/anna"), None);
    assert_eq!(code, 404, "the profile is gone from memory");

    // A stale CSRF token: a clear page, nothing changed.
    b.go(&format!("{console}/cost"));
    b.wait_text("Local only is off", Duration::from_secs(5));
    b.script(
        "document.querySelector(\"form[action='/cost/mode'] input[name=csrf]\").value = 'stale'",
        json!([]),
    );
    b.click("form[action='/cost/mode'] button");
    b.wait_text("This form is out of date", Duration::from_secs(5));
    let (_, state) = http.get(&format!("{agents}/v1/cost/mode"), None);
    assert_eq!(state["local_only"], false, "{state}");
    b.screenshot(&shots().join("stale-csrf.png"));

    // Server time, weight, memory: the overview as a logged-in browser loads it.
    let mut ms = Vec::new();
    let mut bytes = 0;
    for _ in 0..20 {
        let t = Instant::now();
        let (code, _, body) = raw.get(&format!("{console}/"), Some(&cookie));
        ms.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(code, 200);
        bytes = body.len();
    }
    let first = ms[0];
    ms.sort_by(f64::total_cmp);
    // An oversize form: a page that says so.
    let (code, _, body) = raw.post(
        &format!("{console}/cost/mode"),
        Some(&cookie),
        &format!("csrf=x&pad={}", "a".repeat(100_000)),
    );
    assert_eq!(code, 413, "{body}");
    assert!(body.contains("too large"), "{body}");
    let console_pid = pid_of("console", data.path());
    eprintln!(
        "console overview (5 daemons configured and running): first load {:.1} ms, p50 {:.1} ms, max {:.1} ms over 20 loads; page weight {bytes} bytes (no other resources); console RSS {:.1} MB, peak {:.1} MB",
        first,
        ms[ms.len() / 2],
        ms[ms.len() - 1],
        status_mb(console_pid, "VmRSS:"),
        status_mb(console_pid, "VmHWM:")
    );

    // Logging out ends the session: the cookie no longer opens a page.
    b.go(&format!("{console}/"));
    b.click("header form button");
    b.wait_text("Password", Duration::from_secs(5));
    let (code, _, _) = raw.get(&format!("{console}/"), Some(&cookie));
    assert_eq!(code, 303, "the old session still works after logging out");
    eprintln!("screenshots in {}", shots().display());
    drop(b);
    up.stop();
}
