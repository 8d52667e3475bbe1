//! The notifier against real peers: aiosmtpd (a real SMTP server, from the project venv) and
//! webhook / Home Assistant sinks (axum servers in the test), with the real daemon binary
//! started, SIGKILLed and restarted on the same state directory.
#![allow(clippy::disallowed_methods)] // tests build their own HTTP clients (clippy.toml)

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use serde_json::{Value, json};

use crate::common::{BIN, config, wait_for};

// ---------------------------------------------------------------- peers

/// One request a sink received: path, `Authorization` header, JSON body.
#[derive(Debug, Clone)]
struct Hit {
    path: String,
    auth: Option<String>,
    body: Value,
}

/// An HTTP server that answers 200 to every POST and records it.
struct Sink {
    url: String,
    hits: Arc<Mutex<Vec<Hit>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Sink {
    async fn start(port: u16) -> Sink {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
        async fn record(
            State(hits): State<Arc<Mutex<Vec<Hit>>>>,
            uri: Uri,
            headers: HeaderMap,
            body: String,
        ) -> &'static str {
            hits.lock().unwrap().push(Hit {
                path: uri.path().to_owned(),
                auth: headers
                    .get("authorization")
                    .map(|v| v.to_str().unwrap().to_owned()),
                body: serde_json::from_str(&body).unwrap_or(Value::Null),
            });
            "[]"
        }
        let app = axum::Router::new()
            .fallback(axum::routing::post(record))
            .with_state(hits.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Sink {
            url: format!("http://{addr}"),
            hits,
            task,
        }
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A port nobody listens on (yet).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn venv_python() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python")
}

/// aiosmtpd's `Debugging` handler, printing every message it receives to a file.
struct Smtp {
    child: Child,
    port: u16,
    out: PathBuf,
}

impl Smtp {
    /// `None` (after a loud SKIPPED line) when aiosmtpd is not installed; in CI (`CI=true`) a
    /// missing aiosmtpd fails the test instead.
    fn start(dir: &Path, test: &str) -> Option<Smtp> {
        Self::start_with(dir, test, &[])
    }

    /// With extra aiosmtpd arguments (`--tlscert`, `--tlskey`: STARTTLS, then required).
    fn start_with(dir: &Path, test: &str, args: &[&str]) -> Option<Smtp> {
        let python = venv_python();
        let found = Command::new(&python)
            .args(["-c", "import aiosmtpd"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            let why = format!(
                "aiosmtpd is not installed in {} (run dev/setup; crates/watchdog/tests/requirements.txt)",
                python.display()
            );
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{test}: {why}");
            }
            eprintln!("SKIPPED (the e-mail part of {test}): {why}");
            return None;
        }
        let port = free_port();
        let out = dir.join("smtp.out");
        let child = Command::new(&python)
            .args([
                "-u",
                "-m",
                "aiosmtpd",
                "-n",
                "-c",
                "aiosmtpd.handlers.Debugging",
                "-l",
            ])
            .arg(format!("127.0.0.1:{port}"))
            .args(args)
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(dir.join("smtp.err")).unwrap())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "aiosmtpd never listened on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Smtp { child, port, out })
    }

    fn received(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------- the daemon

/// The watchdog binary; `kill()` is SIGKILL (nothing is flushed or drained), drop SIGTERM.
pub struct Daemon {
    child: Child,
    stderr: PathBuf,
    base: String,
}

impl Daemon {
    pub async fn start(dir: &Path, config_text: &str) -> Daemon {
        let cfg = dir.join("watchdog.toml");
        std::fs::write(&cfg, config_text).unwrap();
        let n = std::fs::read_dir(dir).unwrap().count();
        let stderr = dir.join(format!("watchdog-{n}.stderr"));
        let child = Command::new(BIN)
            .arg("--config")
            .arg(&cfg)
            // No bus: the notifier does not need systemd.
            .env("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/bus")
            .env_remove("RUST_LOG")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("CREDENTIALS_DIRECTORY")
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let mut d = Daemon {
            child,
            stderr,
            base: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = d.child.try_wait().unwrap() {
                panic!("watchdog exited with {status}: {}", d.log());
            }
            if let Some(addr) = d
                .log()
                .split("serving on http://")
                .nth(1)
                .and_then(|s| s.split_whitespace().next())
            {
                let addr: SocketAddr = addr.parse().unwrap();
                d.base = format!("http://{addr}");
                return d;
            }
            assert!(Instant::now() < deadline, "never served: {}", d.log());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    async fn get(&self, path: &str) -> Value {
        let resp = reqwest::get(format!("{}{path}", self.base)).await.unwrap();
        resp.json().await.unwrap()
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let resp = reqwest::Client::new()
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn channel(&self, name: &str) -> Value {
        let v = self.get("/v1/notify").await;
        v["channels"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no channel {name} in {v}"))
            .clone()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A secret file with mode 0600.
pub fn secret(dir: &Path, name: &str, value: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, value).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

/// Poll an async condition.
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !cond().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn payload(status: &str) -> Value {
    json!({
        "version": "4",
        "groupKey": "{}:{alertname=\"DiskLow\"}",
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "barnabee",
        "groupLabels": {"alertname": "DiskLow"},
        "commonLabels": {"alertname": "DiskLow", "severity": "critical"},
        "commonAnnotations": {},
        "externalURL": "http://beelink:9093",
        "alerts": [{
            "status": status,
            "labels": {"alertname": "DiskLow", "severity": "critical", "instance": "beelink"},
            "annotations": {"summary": "Disk almost full", "description": "/ has 3% free"},
            "startsAt": "2026-12-02T05:00:00Z",
            "endsAt": if status == "resolved" { "2026-12-02T05:30:00Z" } else { "0001-01-01T00:00:00Z" },
            "generatorURL": "http://beelink:9090/graph",
            "fingerprint": "c0ffee0123456789"
        }]
    })
}

const FAST: &str = "[notify]\nbackoff_initial = 0.2\nbackoff_max = 1\ntimeout = 5\n";

// ---------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_alerts_reach_email_and_webhook_once() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let sink = Sink::start(0).await;
    let smtp = Smtp::start(
        dir.path(),
        "alertmanager_alerts_reach_email_and_webhook_once",
    );
    let token = secret(dir.path(), "ntfy-token", "s3cret\n");
    let mut extra = format!(
        "{FAST}[notify.webhook]\nurl = \"{}/barnabee\"\ntoken_file = {:?}\n",
        sink.url,
        token.display().to_string()
    );
    if let Some(smtp) = &smtp {
        extra.push_str(&format!(
            "[notify.email]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"none\"\n\
             from = \"Barnabee <barnabee@example.org>\"\nto = [\"anna@example.org\"]\nmin_severity = \"warning\"\n",
            smtp.port
        ));
    }
    let wd = Daemon::start(dir.path(), &config(&state, &[], "", &extra)).await;

    let (code, v) = wd.post("/v1/notify/alertmanager", &payload("firing")).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["queued"], 1);
    assert_eq!(v["duplicates"], 0);
    wait_for("the webhook message", Duration::from_secs(15), || {
        !sink.hits().is_empty()
    })
    .await;
    let hit = &sink.hits()[0];
    assert_eq!(hit.path, "/barnabee");
    assert_eq!(hit.auth.as_deref(), Some("Bearer s3cret"));
    assert_eq!(hit.body["title"], "Disk almost full");
    assert!(
        hit.body["message"]
            .as_str()
            .unwrap()
            .starts_with("/ has 3% free"),
        "{}",
        hit.body
    );
    assert_eq!(hit.body["priority"], 5);
    assert_eq!(
        hit.body["tags"],
        json!(["barnabee", "critical", "firing", "alertmanager"])
    );

    // Alertmanager repeating the same notification: not delivered again.
    let (code, v) = wd.post("/v1/notify/alertmanager", &payload("firing")).await;
    assert_eq!(code, 200);
    assert_eq!(v["queued"], 0);
    assert_eq!(v["duplicates"], 1);

    // Resolved: one "resolved" message.
    let (_, v) = wd
        .post("/v1/notify/alertmanager", &payload("resolved"))
        .await;
    assert_eq!(v["queued"], 1, "{v}");
    wait_for(
        "the resolved webhook message",
        Duration::from_secs(15),
        || sink.hits().len() >= 2,
    )
    .await;
    let hits = sink.hits();
    assert_eq!(hits[1].body["title"], "Resolved: Disk almost full");
    assert_eq!(hits[1].body["priority"], 3);
    assert_eq!(hits[1].body["tags"][2], "resolved");
    // The same channel delivers in order, so a duplicate would have come before the resolved.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.hits().len(), 2, "{:?}", sink.hits());

    if let Some(smtp) = &smtp {
        wait_for("both e-mails", Duration::from_secs(15), || {
            smtp.received().matches("X-Peer").count() >= 2
        })
        .await;
        let mail = smtp.received();
        assert!(
            mail.contains("Subject: [Barnabee CRITICAL] Disk almost full"),
            "{mail}"
        );
        assert!(
            mail.contains("Subject: [Barnabee RESOLVED] Resolved: Disk almost full"),
            "{mail}"
        );
        assert!(mail.contains("/ has 3% free"), "{mail}");
        assert!(mail.contains("To: anna@example.org"), "{mail}");
        assert_eq!(mail.matches("Subject:").count(), 2, "{mail}");
        let email = wd.channel("email").await;
        assert_eq!(email["sent"], 2, "{email}");
    }

    let hook = wd.channel("webhook").await;
    assert_eq!(hook["sent"], 2, "{hook}");
    assert_eq!(hook["queue_depth"], 0);
    assert_eq!(hook["failing"], false);
    assert!(hook["last_success_ms"].as_i64().unwrap() > 0);
    let metrics = wd.metrics().await;
    assert!(
        metrics.contains("barnabee_notify_sent_total{channel=\"webhook\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("barnabee_notify_queue_depth{channel=\"webhook\"} 0"),
        "{metrics}"
    );
    let health = wd.get("/health").await;
    assert_eq!(health["checks"]["notify"]["ok"], true, "{health}");
    assert!(wd.log().contains("notify_sent"), "{}", wd.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_channel_is_retried_across_a_restart_without_blocking_another() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let down = free_port();
    let ha = Sink::start(0).await;
    let token = secret(dir.path(), "ha-token", "ha-long-lived");
    let extra = format!(
        "{FAST}[notify.webhook]\nurl = \"http://127.0.0.1:{down}/hook\"\n\
         [notify.home_assistant]\nurl = \"{}\"\ntoken_file = {:?}\nservices = [\"mobile_app_test\"]\n",
        ha.url,
        token.display().to_string()
    );
    let cfg = config(&state, &[], "", &extra);
    let wd = Daemon::start(dir.path(), &cfg).await;
    let (code, v) = wd.post("/v1/notify/test", &json!({})).await;
    assert_eq!(code, 200, "{v}");

    // Home Assistant gets it at once: the webhook being down does not hold it up.
    wait_for(
        "Home Assistant's two calls",
        Duration::from_secs(15),
        || ha.hits().len() >= 2,
    )
    .await;
    let hits = ha.hits();
    assert_eq!(hits[0].path, "/api/services/notify/mobile_app_test");
    assert_eq!(hits[0].auth.as_deref(), Some("Bearer ha-long-lived"));
    assert_eq!(hits[0].body["title"], "Barnabee test notification");
    assert!(
        hits[0].body["data"]["tag"]
            .as_str()
            .unwrap()
            .starts_with("test_")
    );
    assert_eq!(hits[1].path, "/api/services/persistent_notification/create");
    assert!(
        hits[1].body["notification_id"]
            .as_str()
            .unwrap()
            .starts_with("barnabee_test_")
    );

    // The webhook is retried and reported.
    eventually(
        "the webhook reported failing",
        Duration::from_secs(15),
        || async {
            let c = wd.channel("webhook").await;
            c["failing"] == true && c["failures"].as_u64().unwrap_or(0) >= 2
        },
    )
    .await;
    let c = wd.channel("webhook").await;
    assert_eq!(c["queue_depth"], 1, "{c}");
    assert!(
        c["last_error"]
            .as_str()
            .unwrap()
            .contains(&format!("127.0.0.1:{down}")),
        "{c}"
    );
    assert!(c["last_success_ms"].is_null(), "{c}");
    let health = wd.get("/health").await;
    let notify = &health["checks"]["notify"];
    assert_eq!(notify["ok"], false);
    assert_eq!(notify["critical"], false);
    assert!(
        notify["detail"].as_str().unwrap().starts_with("webhook: "),
        "{notify}"
    );
    assert!(
        notify["detail"].as_str().unwrap().contains("(1 queued)"),
        "{notify}"
    );
    assert!(
        !notify["detail"]
            .as_str()
            .unwrap()
            .contains("home_assistant"),
        "{notify}"
    );
    let metrics = wd.metrics().await;
    assert!(
        metrics.contains("barnabee_notify_queue_depth{channel=\"webhook\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("barnabee_notify_sent_total{channel=\"home_assistant\"} 1"),
        "{metrics}"
    );
    assert!(wd.log().contains("notify_failed"), "{}", wd.log());

    // SIGKILL; a new daemon on the same state directory finds the message still queued and
    // keeps retrying while the webhook is down; once it comes up, the message is delivered.
    wd.kill();
    let wd = Daemon::start(dir.path(), &cfg).await;
    let c = wd.channel("webhook").await;
    assert_eq!(c["queue_depth"], 1, "lost in the restart: {c}");
    eventually(
        "the restarted daemon retrying",
        Duration::from_secs(15),
        || async {
            wd.channel("webhook").await["failures"]
                .as_u64()
                .unwrap_or(0)
                >= 2
        },
    )
    .await;
    let hook = Sink::start(down).await;
    wait_for(
        "the webhook delivery once it is up",
        Duration::from_secs(15),
        || !hook.hits().is_empty(),
    )
    .await;
    assert_eq!(hook.hits()[0].body["title"], "Barnabee test notification");
    assert_eq!(hook.hits()[0].auth, None);
    eventually(
        "the webhook reported healthy",
        Duration::from_secs(5),
        || async { wd.channel("webhook").await["queue_depth"] == 0 },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(hook.hits().len(), 1, "delivered twice: {:?}", hook.hits());
    assert_eq!(
        ha.hits().len(),
        2,
        "Home Assistant got it again: {:?}",
        ha.hits()
    );
    let c = wd.channel("webhook").await;
    assert_eq!(c["failing"], false, "{c}");
    assert!(c["last_success_ms"].as_i64().unwrap() > 0);
    let health = wd.get("/health").await;
    assert_eq!(health["checks"]["notify"]["ok"], true, "{health}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_token_is_not_provisioned_and_degrades() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let sink = Sink::start(0).await;
    let token = secret(dir.path(), "ntfy-token", "\n");
    let extra = format!(
        "{FAST}[notify.webhook]\nurl = \"{}/x\"\ntoken_file = {:?}\n",
        sink.url,
        token.display().to_string()
    );
    let wd = Daemon::start(dir.path(), &config(&state, &[], "", &extra)).await;
    eventually("notify degraded", Duration::from_secs(10), || async {
        wd.get("/health").await["checks"]["notify"]["ok"] == false
    })
    .await;
    let health = wd.get("/health").await;
    let detail = health["checks"]["notify"]["detail"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(detail.contains("not provisioned"), "{detail}");
    assert_eq!(health["status"], "degraded");
    // Provisioned later: picked up without a restart, and the queued message goes out.
    wd.post("/v1/notify/test", &json!({})).await;
    secret(dir.path(), "ntfy-token", "now-set\n");
    wait_for("delivery once provisioned", Duration::from_secs(15), || {
        !sink.hits().is_empty()
    })
    .await;
    assert_eq!(sink.hits()[0].auth.as_deref(), Some("Bearer now-set"));
    eventually("notify healthy", Duration::from_secs(10), || async {
        wd.get("/health").await["checks"]["notify"]["ok"] == true
    })
    .await;
}

#[test]
fn a_bad_notify_config_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[notify.email]\nhost = \"mail\"\nsecurity = \"startls\"\nfrom = \"a@b.org\"\nto = [\"c@d.org\"]\n",
            "notify.email.security",
        ),
        (
            "[notify.webhook]\nurl = \"not a url\"\n",
            "notify.webhook.url",
        ),
        (
            "[notify.home_assistant]\nurl = \"http://ha:8123\"\ntoken_file = \"t\"\nmin_severity = \"urgent\"\n",
            "notify.home_assistant.min_severity",
        ),
        (
            "[notify.webhook]\nurl = \"http://x\"\nretries = 3\n",
            "retries",
        ),
    ];
    for (text, key) in cases {
        let path = dir.path().join("w.toml");
        std::fs::write(&path, text).unwrap();
        let out = Command::new(BIN)
            .arg("--config")
            .arg(&path)
            .arg("--check-config")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text} was accepted");
        assert!(stderr.contains(key), "{key} not named in: {stderr}");
    }
    // No [notify]: accepted, the notifier is off.
    let path = dir.path().join("w.toml");
    std::fs::write(&path, "").unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&path)
        .arg("--check-config")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The gate (a separate process) queues its rollback notice; the daemon started afterwards
/// delivers it, then notifies its own P2 restart of an unhealthy unit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gate_rollback_and_incidents_are_notified() {
    use crate::common::{Bus, FakeUnit, HealthServer, Systemd, Watchdog};
    const MEMORY: &str = "barnabee-memory.service";
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::start(dir.path());
    let sd = Systemd::new(&[(MEMORY, FakeUnit::active())]);
    let _svc = sd.serve(&bus.address).await;
    let memory = HealthServer::start(false).await;
    let sink = Sink::start(0).await;
    let state = dir.path().join("state");
    let cfg = config(
        &state,
        &[(MEMORY, &memory.url)],
        "backoff_initial = 0.5\nmax_restarts = 10\n",
        &format!(
            "[gate]\npoll_interval = 0.1\n[rollback]\nrunner = []\ncommand = [\"/bin/true\"]\n\
             {FAST}[notify.webhook]\nurl = \"{}/hook\"\n",
            sink.url
        ),
    );
    let path = dir.path().join("gate.toml");
    std::fs::write(&path, &cfg).unwrap();
    let out = tokio::process::Command::new(BIN)
        .arg("--config")
        .arg(&path)
        .args(["gate", "--timeout", "1s"])
        .env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)
        .env_remove("INVOCATION_ID")
        .output()
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(sink.hits().is_empty(), "the gate itself delivered");

    let _wd = Watchdog::start(dir.path(), &cfg, &bus.address).await;
    wait_for(
        "the rollback notice and a restart notice",
        Duration::from_secs(20),
        || sink.hits().len() >= 2,
    )
    .await;
    let hits = sink.hits();
    let rollback = &hits[0].body;
    assert_eq!(
        rollback["title"],
        "Barnabee rolled the system back to the previous generation"
    );
    assert_eq!(rollback["priority"], 5);
    assert_eq!(
        rollback["tags"],
        json!(["barnabee", "critical", "firing", "watchdog"])
    );
    assert!(
        rollback["message"].as_str().unwrap().contains(MEMORY),
        "{rollback}"
    );
    let restart = &hits[1].body;
    assert_eq!(restart["title"], format!("P2 {MEMORY}: unhealthy"));
    assert_eq!(restart["priority"], 4);
}

/// A private CA and a `localhost` server certificate it signed: (ca.pem, leaf.pem, leaf.key).
fn private_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run openssl ({e}): install the Debian package openssl")
            });
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=Barnabee Test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "leaf.pem",
        "-days",
        "2",
        "-extfile",
        "leaf.ext",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("leaf.pem"),
        dir.join("leaf.key"),
    )
}

/// The default `security = "starttls"` against aiosmtpd requiring STARTTLS, its certificate
/// signed by a private CA given as `ca_file`; the server refuses mail before STARTTLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_goes_out_over_starttls() {
    let test = "email_goes_out_over_starttls";
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = private_ca(dir.path());
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let Some(smtp) = Smtp::start_with(dir.path(), test, &["--tlscert", &cert, "--tlskey", &key])
    else {
        return;
    };
    let state = dir.path().join("state");
    let extra = format!(
        "{FAST}[notify.email]\nhost = \"localhost\"\nport = {}\nca_file = {:?}\n\
         from = \"barnabee@example.org\"\nto = [\"anna@example.org\", \"ben@example.org\"]\n",
        smtp.port,
        ca.display().to_string()
    );
    let wd = Daemon::start(dir.path(), &config(&state, &[], "", &extra)).await;
    let (code, _) = wd.post("/v1/notify/test", &json!({})).await;
    assert_eq!(code, 200);
    wait_for("the e-mail over STARTTLS", Duration::from_secs(20), || {
        smtp.received().contains("Subject:")
    })
    .await;
    let mail = smtp.received();
    assert!(
        mail.contains("Subject: [Barnabee INFO] Barnabee test notification"),
        "{mail}"
    );
    assert!(
        mail.contains("To: anna@example.org, ben@example.org"),
        "{mail}"
    );
    let c = wd.channel("email").await;
    assert_eq!(c["sent"], 1, "{c}");
    assert_eq!(c["failures"], 0, "{c}");
}

/// A notification queue that cannot be opened turns the notifier off, never the watchdog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_queue_degrades_but_the_watchdog_runs() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    // A directory where the database file should be.
    std::fs::create_dir_all(state.join("notify.db")).unwrap();
    let extra = format!("{FAST}[notify.webhook]\nurl = \"http://127.0.0.1:9/\"\n");
    let wd = Daemon::start(dir.path(), &config(&state, &[], "", &extra)).await;
    let health = wd.get("/health").await;
    assert_eq!(health["checks"]["notify"]["ok"], false, "{health}");
    assert_eq!(health["checks"]["notify"]["critical"], false, "{health}");
    assert_eq!(health["checks"]["incident_log"]["ok"], true, "{health}");
    assert!(wd.log().contains("notify_queue_error"), "{}", wd.log());
    let (code, _) = wd.post("/v1/notify/test", &json!({})).await;
    assert_eq!(code, 503);
}
