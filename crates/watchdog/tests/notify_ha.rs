//! The Home Assistant channel against a real Home Assistant Core 2024.3.3 (the one the agents'
//! tests use: `$BARNABEE_TEST_HASS`, else `~/.cache/barnabee/home-assistant/bin/hass` after
//! `dev/setup home-assistant`): an Alertmanager alert becomes a `notify.family` call (HA's
//! `file` notify platform writes it to a file) and a persistent notification, read back over
//! HA's WebSocket (`persistent_notification/get`); the resolved alert dismisses it.
#![allow(clippy::disallowed_methods)] // tests build their own HTTP clients (clippy.toml)

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as Ws;

use crate::common::config;
use crate::notify::{Daemon, eventually, payload, secret};

/// The hass binary, or `None` after a loud SKIPPED line (a failure when `CI=true`).
fn hass_binary(test: &str) -> Option<PathBuf> {
    let p = match std::env::var_os("BARNABEE_TEST_HASS") {
        Some(p) => PathBuf::from(p),
        None => {
            let cache = std::env::var_os("BARNABEE_CACHE")
                .map(PathBuf::from)
                .or_else(|| {
                    std::env::var_os("XDG_CACHE_HOME").map(|x| PathBuf::from(x).join("barnabee"))
                })
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                        .join(".cache/barnabee")
                });
            cache.join("home-assistant/bin/hass")
        }
    };
    if p.exists() {
        return Some(p);
    }
    let why = format!(
        "Home Assistant Core is not installed at {} (nor is BARNABEE_TEST_HASS set): run `dev/setup home-assistant`",
        p.display()
    );
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: {why}");
    }
    eprintln!("SKIPPED {test}: {why}");
    None
}

const HA_CONFIG: &str = "
homeassistant:
  name: Test Home
  latitude: 52.3731
  longitude: 4.8922
  elevation: 0
  unit_system: metric
  time_zone: UTC
  currency: EUR
  country: NL
  language: en
http:
  server_host: 127.0.0.1
  server_port: __PORT__
logger:
  default: warning
api:
websocket_api:
onboarding:
notify:
  - name: family
    platform: file
    filename: family.txt
";

struct Hass {
    child: Child,
    base: String,
    dir: PathBuf,
}

impl Hass {
    fn start(bin: &Path, dir: &Path) -> Hass {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(
            dir.join("configuration.yaml"),
            HA_CONFIG.replace("__PORT__", &port.to_string()),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("hass.log")).unwrap();
        let child = Command::new(bin)
            .arg("-c")
            .arg(dir)
            .arg("--skip-pip")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        Hass {
            child,
            base: format!("http://127.0.0.1:{port}"),
            dir: dir.to_owned(),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("hass.log")).unwrap_or_default()
    }

    /// Poll GET `path` until 200 and `ok(body)`; fail fast if HA exits.
    async fn wait_for(&mut self, path: &str, token: Option<&str>, ok: impl Fn(&Value) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(120);
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("hass exited ({status}):\n{}", self.log());
            }
            let mut req = client.get(format!("{}{path}", self.base));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            if let Ok(r) = req.send().await
                && r.status().is_success()
                && let Ok(v) = r.json::<Value>().await
                && ok(&v)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "HA not ready ({path}) in 120 s:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Onboard the owner and return a (30-minute) access token.
    async fn onboard(&self) -> String {
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let cid = format!("{}/", self.base);
        let v: Value = client
            .post(format!("{}/api/onboarding/users", self.base))
            .json(
                &json!({"client_id": cid, "name": "Test Admin", "username": "admin",
                          "password": "admin-password", "language": "en"}),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let code = v["auth_code"].as_str().unwrap_or_else(|| panic!("{v}"));
        let v: Value = client
            .post(format!("{}/auth/token", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "grant_type=authorization_code&code={}&client_id={}",
                urlencode(code),
                urlencode(&cid)
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("{v}"))
            .to_owned()
    }

    /// `persistent_notification/get` over the WebSocket.
    async fn persistent_notifications(&self, token: &str) -> Value {
        let url = format!("{}/api/websocket", self.base.replacen("http", "ws", 1));
        let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .unwrap();
        ws.next().await.unwrap().unwrap();
        let auth = json!({"type": "auth", "access_token": token}).to_string();
        ws.send(Ws::Text(auth.into())).await.unwrap();
        ws.next().await.unwrap().unwrap();
        let get = json!({"id": 1, "type": "persistent_notification/get"}).to_string();
        ws.send(Ws::Text(get.into())).await.unwrap();
        loop {
            if let Some(Ok(Ws::Text(t))) = ws.next().await {
                let r: Value = serde_json::from_str(t.as_str()).unwrap();
                if r["id"] == 1 {
                    assert_eq!(r["success"], true, "{r}");
                    return r["result"].clone();
                }
            }
        }
    }
}

impl Drop for Hass {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn find(list: &Value, id: &str) -> Option<Value> {
    list.as_array()?
        .iter()
        .find(|n| n["notification_id"] == id)
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_reach_a_real_home_assistant() {
    let test = "alerts_reach_a_real_home_assistant";
    let Some(bin) = hass_binary(test) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ha_dir = dir.path().join("ha");
    let mut hass = Hass::start(&bin, &ha_dir);
    hass.wait_for("/api/onboarding", None, |_| true).await;
    let token = hass.onboard().await;
    hass.wait_for("/api/config", Some(&token), |v| v["state"] == "RUNNING")
        .await;
    hass.wait_for("/api/services", Some(&token), |v| {
        v.as_array().is_some_and(|domains| {
            domains
                .iter()
                .any(|d| d["domain"] == "notify" && d["services"].get("family").is_some())
        })
    })
    .await;

    let token_file = secret(dir.path(), "ha-token", &token);
    let extra = format!(
        "[notify]\nbackoff_initial = 0.2\nbackoff_max = 1\n\
         [notify.home_assistant]\nurl = \"{}\"\ntoken_file = {:?}\nservices = [\"family\"]\npersistent = true\n",
        hass.base,
        token_file.display().to_string()
    );
    let state = dir.path().join("state");
    let wd = Daemon::start(dir.path(), &config(&state, &[], "", &extra)).await;
    let id = "barnabee_am_c0ffee0123456789";

    let (code, v) = wd.post("/v1/notify/alertmanager", &payload("firing")).await;
    assert_eq!(code, 200, "{v}");
    eventually(
        "the persistent notification",
        Duration::from_secs(20),
        || async { find(&hass.persistent_notifications(&token).await, id).is_some() },
    )
    .await;
    let n = find(&hass.persistent_notifications(&token).await, id).unwrap();
    assert_eq!(n["title"], "Disk almost full", "{n}");
    assert!(
        n["message"].as_str().unwrap().starts_with("/ has 3% free"),
        "{n}"
    );
    let family = ha_dir.join("family.txt");
    let text = std::fs::read_to_string(&family).unwrap_or_default();
    assert!(
        text.contains("/ has 3% free"),
        "notify.family wrote: {text:?}"
    );

    let (_, v) = wd
        .post("/v1/notify/alertmanager", &payload("resolved"))
        .await;
    assert_eq!(v["queued"], 1, "{v}");
    eventually("the dismissal", Duration::from_secs(20), || async {
        find(&hass.persistent_notifications(&token).await, id).is_none()
    })
    .await;
    eventually(
        "the resolved notify.family call",
        Duration::from_secs(10),
        || async {
            std::fs::read_to_string(&family)
                .unwrap_or_default()
                .contains("resolved at: 2026-12-02T05:30:00Z")
        },
    )
    .await;
    let c = wd.channel("home_assistant").await;
    assert_eq!(c["sent"], 2, "{c}");
    assert_eq!(c["failing"], false, "{c}");
    drop(wd);
    drop(hass);
}
