//! `barnabee up --demo-home`: a real Home Assistant Core (the one `dev/setup home-assistant`
//! installs) with its `demo` integration, started beside the daemons and supervised like them,
//! so that "turn on the kitchen lights" works with no configuration.
//!
//! Its config dir is `<data dir>/state/hass/config`. The first start onboards it (an owner
//! `barnabee` with a random password kept in `state/hass/owner-password`) and makes a
//! long-lived token (`state/hass/token`, 0600), which the agents daemon's config names; later
//! starts reuse both, and a token HA no longer accepts is replaced through the login flow. Every
//! start puts the demo's entities in areas (Kitchen, Living Room, ...), gives a few of them the
//! names a family says ("living room light", "fairy lights"), and switches the lights off, so
//! the first request visibly acts.

use std::ffi::OsString;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::daemons::toml_escape;

/// The name `up` gives it in its log prefix, `up.json` and `barnabee status`.
pub const ROLE: &str = "hass";
/// Home Assistant's default port, shifted by `--port-offset` like the daemons'.
pub const PORT: u16 = 8123;
const CONFIG: &str = include_str!("home-assistant.yaml");
const OWNER: &str = "barnabee";
/// One WebSocket session (token, areas) may take this long.
const WS_TIMEOUT: Duration = Duration::from_secs(30);

/// Which demo entities go in which area (areas are what a family names: "the kitchen lights").
const AREAS: &[(&str, &[&str])] = &[
    ("Kitchen", &["light.kitchen_lights", "cover.kitchen_window"]),
    (
        "Living Room",
        &[
            "light.living_room_rgbww_lights",
            "fan.living_room_fan",
            "cover.living_room_window",
            "climate.hvac",
        ],
    ),
    ("Bedroom", &["light.bed_light"]),
    ("Office", &["light.office_rgbw_lights", "switch.ac"]),
    (
        "Hall",
        &["light.entrance_color_white_lights", "cover.hall_window"],
    ),
];

/// Spoken names for entities whose demo names nobody says ("Living Room RGBWW Lights").
const ALIASES: &[(&str, &[&str])] = &[
    (
        "light.living_room_rgbww_lights",
        &["living room light", "living room lights"],
    ),
    ("light.bed_light", &["bedside lamp"]),
    ("switch.decorative_lights", &["fairy lights"]),
];

/// The demo home as `up` runs it.
pub struct DemoHome {
    /// The `hass` executable.
    pub hass: PathBuf,
    /// `<data dir>/state/hass`.
    pub dir: PathBuf,
    pub addr: SocketAddr,
}

/// Where `dev/setup` installs `hass`: `$BARNABEE_HASS` if set, else the current Home Assistant
/// (2026.2.3 in its Debian trixie chroot, `<cache>/home-assistant-current/bin/hass`, set up as
/// root), else the 2024.3.3 floor (`<cache>/home-assistant/bin/hass`); `<cache>`:
/// `$BARNABEE_CACHE`, else `$XDG_CACHE_HOME/barnabee`, else `~/.cache/barnabee`.
pub fn hass_binary() -> anyhow::Result<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(p) = var("BARNABEE_HASS") {
        if !p.is_file() {
            bail!(
                "--demo-home: $BARNABEE_HASS names {}, which is not a file",
                p.display()
            );
        }
        return Ok(p);
    }
    let cache = var("BARNABEE_CACHE")
        .or_else(|| var("XDG_CACHE_HOME").map(|x| x.join("barnabee")))
        .or_else(|| var("HOME").map(|h| h.join(".cache/barnabee")))
        .context("--demo-home: neither $BARNABEE_HASS, $BARNABEE_CACHE, $XDG_CACHE_HOME nor $HOME is set")?;
    let current = cache.join("home-assistant-current/bin/hass");
    if current.is_file() {
        return Ok(current);
    }
    let hass = cache.join("home-assistant/bin/hass");
    if !hass.is_file() {
        bail!(
            "--demo-home: Home Assistant is not installed ({} is missing): run `dev/setup home-assistant` (or set $BARNABEE_HASS)",
            hass.display()
        );
    }
    Ok(hass)
}

impl DemoHome {
    /// Find `hass` and write its configuration (the port may change between runs).
    pub fn prepare(data_dir: &Path, port_offset: u16) -> anyhow::Result<Self> {
        let hass = hass_binary()?;
        let port = PORT
            .checked_add(port_offset)
            .context("--port-offset too large")?;
        // The voice daemon `up` runs (its announce endpoint, for HA's rest_command).
        let voice_port = crate::daemons::DAEMONS
            .iter()
            .find(|d| d.role == "voice")
            .map_or(7703, |d| d.port);
        let voice = SocketAddr::from((
            [127, 0, 0, 1],
            voice_port
                .checked_add(port_offset)
                .context("--port-offset too large")?,
        ));
        let home = DemoHome {
            hass,
            dir: data_dir.join("state").join(ROLE),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        let config_dir = home.config_dir();
        std::fs::create_dir_all(&config_dir)
            .with_context(|| format!("creating {}", config_dir.display()))?;
        let yaml = config_dir.join("configuration.yaml");
        std::fs::write(
            &yaml,
            CONFIG
                .replace("__ADDR__", &home.addr.to_string())
                .replace("__PORT__", &port.to_string())
                .replace("__VOICE__", &voice.to_string()),
        )
        .with_context(|| format!("writing {}", yaml.display()))?;
        let automations = config_dir.join("automations.yaml");
        if !automations.exists() {
            std::fs::write(&automations, "[]\n")
                .with_context(|| format!("writing {}", automations.display()))?;
        }
        Ok(home)
    }

    pub fn config_dir(&self) -> PathBuf {
        self.dir.join("config")
    }

    /// The long-lived token the agents daemon reads.
    pub fn token_file(&self) -> PathBuf {
        self.dir.join("token")
    }

    fn password_file(&self) -> PathBuf {
        self.dir.join("owner-password")
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `hass`'s arguments: this config dir, and never pip-install at run time (offline).
    pub fn args(&self) -> Vec<OsString> {
        vec![
            "-c".into(),
            self.config_dir().into_os_string(),
            "--skip-pip".into(),
        ]
    }

    /// The section the agents daemon's config gets.
    pub fn agents_config(&self) -> String {
        format!(
            "\n# barnabee up --demo-home: the Home Assistant demo started beside the daemons.\n\
             [home_assistant]\nurl = \"{}\"\ntoken_file = \"{}\"\n",
            self.url(),
            toml_escape(&self.token_file().display().to_string())
        )
    }

    /// `GET /api/onboarding` (no auth): answers once HA's HTTP server is up.
    pub async fn http_up(&self, client: &reqwest::Client) -> Result<Value, String> {
        let url = format!("{}/api/onboarding", self.url());
        let response = client
            .get(&url)
            .send()
            .await
            .map_err(|e| format!("{url}: {}", crate::health::brief(e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("{url}: HTTP {status}"));
        }
        response
            .json()
            .await
            .map_err(|e| format!("{url}: not JSON: {e}"))
    }

    /// Once HTTP is up (`steps` is what `/api/onboarding` said): a token that works (reused,
    /// else made), HA running with the demo's entities, areas and aliases set, the lights
    /// off. Returns a line for the log.
    pub async fn connect(
        &self,
        client: &reqwest::Client,
        steps: &Value,
        deadline: Instant,
    ) -> anyhow::Result<String> {
        let onboarded = steps
            .as_array()
            .is_some_and(|s| s.iter().any(|x| x["step"] == "user" && x["done"] == true));
        let (token, how) = match self.saved_token(client, onboarded).await? {
            Some(token) => (token, "reused its long-lived token"),
            None => {
                let code = if onboarded {
                    self.log_in(client).await?
                } else {
                    self.onboard(client).await?
                };
                let access = self.access_token(client, &code).await?;
                let token = tokio::time::timeout(WS_TIMEOUT, self.long_lived_token(&access))
                    .await
                    .context("Home Assistant's WebSocket API did not answer in time")??;
                write_private(&self.token_file(), &token)?;
                (
                    token,
                    if onboarded {
                        "logged in again and made a new long-lived token"
                    } else {
                        "onboarded a new demo home"
                    },
                )
            }
        };
        self.wait_running(client, &token, deadline).await?;
        tokio::time::timeout(WS_TIMEOUT, self.areas_and_aliases(&token))
            .await
            .context("Home Assistant's WebSocket API did not answer in time")??;
        let url = format!("{}/api/services/light/turn_off", self.url());
        let response = client
            .post(&url)
            .bearer_auth(&token)
            .json(&json!({"entity_id": "all"}))
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{url}: {}", crate::health::brief(e)))?;
        if !response.status().is_success() {
            bail!("{url}: HTTP {}", response.status());
        }
        let states = get_json(client, &format!("{}/api/states", self.url()), &token).await?;
        let count = states.as_array().map_or(0, Vec::len);
        Ok(format!(
            "{how} ({}); {count} entities, lights switched off; token in {}",
            self.dir.display(),
            self.token_file().display()
        ))
    }

    /// The saved token, if HA still accepts it.
    async fn saved_token(
        &self,
        client: &reqwest::Client,
        onboarded: bool,
    ) -> anyhow::Result<Option<String>> {
        let path = self.token_file();
        let token = match std::fs::read_to_string(&path) {
            Ok(t) => t.trim().to_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        if !onboarded || token.is_empty() {
            // A token from an HA state that is gone.
            return Ok(None);
        }
        let url = format!("{}/api/", self.url());
        let response = client
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{url}: {}", crate::health::brief(e)))?;
        match response.status().as_u16() {
            200 => Ok(Some(token)),
            401 | 403 => Ok(None),
            other => bail!("{url}: HTTP {other} with the token in {}", path.display()),
        }
    }

    /// A fresh HA: create the owner; returns an authorization code.
    async fn onboard(&self, client: &reqwest::Client) -> anyhow::Result<String> {
        let password = random_hex(16)?;
        write_private(&self.password_file(), &password)?;
        let url = format!("{}/api/onboarding/users", self.url());
        let v = post_json(
            client,
            &url,
            &json!({"client_id": self.client_id(), "name": "Barnabee", "username": OWNER,
                    "password": password, "language": "en"}),
        )
        .await?;
        v["auth_code"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("{url}: no auth_code in {v}"))
    }

    /// An onboarded HA whose token is lost or refused: log in as the owner; returns an
    /// authorization code.
    async fn log_in(&self, client: &reqwest::Client) -> anyhow::Result<String> {
        let path = self.password_file();
        let password = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "the demo home in {} is onboarded but its token is missing or refused, and the owner's password cannot be read; delete {} to start it afresh",
                self.dir.display(),
                self.dir.display()
            )
        })?;
        let cid = self.client_id();
        let url = format!("{}/auth/login_flow", self.url());
        let v = post_json(
            client,
            &url,
            &json!({"client_id": cid, "handler": ["homeassistant", null], "redirect_uri": cid}),
        )
        .await?;
        let flow = v["flow_id"]
            .as_str()
            .with_context(|| format!("{url}: no flow_id in {v}"))?;
        let url = format!("{url}/{flow}");
        let v = post_json(
            client,
            &url,
            &json!({"client_id": cid, "username": OWNER, "password": password.trim()}),
        )
        .await?;
        if v["type"] != "create_entry" {
            bail!(
                "Home Assistant refused the owner password in {} ({v}); delete {} to start the demo home afresh",
                path.display(),
                self.dir.display()
            );
        }
        v["result"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("{url}: no code in {v}"))
    }

    async fn access_token(&self, client: &reqwest::Client, code: &str) -> anyhow::Result<String> {
        let url = format!("{}/auth/token", self.url());
        let body = form_encode(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("client_id", &self.client_id()),
        ]);
        let response = client
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{url}: {}", crate::health::brief(e)))?;
        let v = read_json(&url, response).await?;
        v["access_token"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("{url}: no access_token in the answer"))
    }

    fn client_id(&self) -> String {
        format!("{}/", self.url())
    }

    async fn long_lived_token(&self, access: &str) -> anyhow::Result<String> {
        let mut ws = Ws::connect(&self.url(), access).await?;
        // HA refuses a second long-lived token with the same client name.
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let v = ws
            .call(json!({"type": "auth/long_lived_access_token",
                         "client_name": format!("barnabee up ({stamp})"), "lifespan": 3650}))
            .await?;
        v.as_str()
            .map(str::to_owned)
            .with_context(|| format!("auth/long_lived_access_token: no token in {v}"))
    }

    /// Poll `/api/config` until HA has finished starting and the demo's kitchen light exists.
    async fn wait_running(
        &self,
        client: &reqwest::Client,
        token: &str,
        deadline: Instant,
    ) -> anyhow::Result<()> {
        let config = format!("{}/api/config", self.url());
        let kitchen = format!("{}/api/states/light.kitchen_lights", self.url());
        loop {
            let running = get_json(client, &config, token)
                .await
                .is_ok_and(|v| v["state"] == "RUNNING");
            if running && get_json(client, &kitchen, token).await.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "Home Assistant did not finish starting (no RUNNING state and demo entities from {config})"
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Put the demo's entities in areas and give them aliases (idempotent).
    async fn areas_and_aliases(&self, token: &str) -> anyhow::Result<()> {
        let mut ws = Ws::connect(&self.url(), token).await?;
        let areas = ws
            .call(json!({"type": "config/area_registry/list"}))
            .await?;
        let mut ids: Vec<(String, String)> = areas
            .as_array()
            .map(|list| {
                list.iter()
                    .filter_map(|a| {
                        Some((
                            a["name"].as_str()?.to_owned(),
                            a["area_id"].as_str()?.to_owned(),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        for (name, entities) in AREAS {
            let id = match ids.iter().find(|(n, _)| n == name) {
                Some((_, id)) => id.clone(),
                None => {
                    let a = ws
                        .call(json!({"type": "config/area_registry/create", "name": name}))
                        .await?;
                    let id = a["area_id"]
                        .as_str()
                        .with_context(|| {
                            format!("config/area_registry/create {name}: no area_id in {a}")
                        })?
                        .to_owned();
                    ids.push(((*name).to_owned(), id.clone()));
                    id
                }
            };
            for entity in *entities {
                ws.call(json!({"type": "config/entity_registry/update", "entity_id": entity, "area_id": id}))
                    .await
                    .with_context(|| format!("putting {entity} in the area {name}"))?;
            }
        }
        for (entity, aliases) in ALIASES {
            ws.call(json!({"type": "config/entity_registry/update", "entity_id": entity, "aliases": aliases}))
                .await
                .with_context(|| format!("giving {entity} the aliases {aliases:?}"))?;
        }
        Ok(())
    }
}

/// What `barnabee status` says about the demo home: `Ok(detail)` when HA answers with the
/// token the agents daemon uses and has finished starting.
pub async fn probe(
    client: &reqwest::Client,
    url: &str,
    token_file: &Path,
) -> Result<String, String> {
    let token = std::fs::read_to_string(token_file)
        .map_err(|e| format!("cannot read the token {}: {e}", token_file.display()))?;
    let token = token.trim();
    let config = get_json(client, &format!("{url}/api/config"), token)
        .await
        .map_err(|e| format!("{e:#}"))?;
    let state = config["state"].as_str().unwrap_or("unknown");
    if state != "RUNNING" {
        return Err(format!("Home Assistant is {state}, not RUNNING yet"));
    }
    let states = get_json(client, &format!("{url}/api/states"), token)
        .await
        .map_err(|e| format!("{e:#}"))?;
    let count = states.as_array().map_or(0, Vec::len);
    let version = config["version"].as_str().unwrap_or("?");
    Ok(format!(
        "Home Assistant {version} demo home, {count} entities"
    ))
}

async fn get_json(client: &reqwest::Client, url: &str, token: &str) -> anyhow::Result<Value> {
    let response = client
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{url}: {}", crate::health::brief(e)))?;
    read_json(url, response).await
}

async fn post_json(client: &reqwest::Client, url: &str, body: &Value) -> anyhow::Result<Value> {
    let response = client
        .post(url)
        .json(body)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{url}: {}", crate::health::brief(e)))?;
    read_json(url, response).await
}

async fn read_json(url: &str, response: reqwest::Response) -> anyhow::Result<Value> {
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|e| anyhow::anyhow!("{url}: {}", crate::health::brief(e)))?;
    if !status.is_success() {
        bail!("{url}: HTTP {status}: {}", text.trim());
    }
    serde_json::from_str(&text)
        .with_context(|| format!("{url}: HTTP {status} but not JSON: {text}"))
}

/// An authenticated WebSocket session with Home Assistant.
struct Ws {
    stream: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next_id: u64,
}

impl Ws {
    async fn connect(base: &str, token: &str) -> anyhow::Result<Ws> {
        let url = format!("{}/api/websocket", base.replacen("http", "ws", 1));
        let (stream, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .with_context(|| format!("connecting to {url}"))?;
        let mut ws = Ws { stream, next_id: 0 };
        let hello = ws.recv().await?;
        if hello["type"] != "auth_required" {
            bail!("{url}: expected auth_required, got {hello}");
        }
        ws.send(json!({"type": "auth", "access_token": token}))
            .await?;
        let auth = ws.recv().await?;
        if auth["type"] != "auth_ok" {
            bail!("{url}: the token was refused: {auth}");
        }
        Ok(ws)
    }

    async fn send(&mut self, msg: Value) -> anyhow::Result<()> {
        self.stream
            .send(Message::Text(msg.to_string().into()))
            .await
            .context("sending to Home Assistant's WebSocket")
    }

    async fn recv(&mut self) -> anyhow::Result<Value> {
        loop {
            match self.stream.next().await {
                Some(Ok(Message::Text(t))) => {
                    return serde_json::from_str(t.as_str()).with_context(|| {
                        format!("Home Assistant sent a frame that is not JSON: {t}")
                    });
                }
                Some(Ok(Message::Close(_))) | None => {
                    bail!("Home Assistant closed the WebSocket")
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e).context("reading Home Assistant's WebSocket"),
            }
        }
    }

    /// One command; its result, or an error with HA's message.
    async fn call(&mut self, mut msg: Value) -> anyhow::Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        msg["id"] = json!(id);
        let what = msg["type"].as_str().unwrap_or("?").to_owned();
        self.send(msg).await?;
        loop {
            let r = self.recv().await?;
            if r["id"] == json!(id) {
                if r["success"] != true {
                    bail!("{what}: Home Assistant said {}", r["error"]);
                }
                return Ok(r["result"].clone());
            }
        }
    }
}

fn form_encode(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn random_hex(bytes: usize) -> anyhow::Result<String> {
    use std::io::Read;
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .context("reading /dev/urandom for the demo home's owner password")?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// Write a secret readable by this user only (through a temporary file, so a crash leaves the
/// old one or the new one).
fn write_private(path: &Path, secret: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(secret.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agents_section_is_valid_toml_naming_url_and_token() {
        let home = DemoHome {
            hass: PathBuf::from("/x/hass"),
            dir: PathBuf::from("/data \"q\"/state/hass"),
            addr: SocketAddr::from(([127, 0, 0, 1], 8223)),
        };
        let table: toml::Table = toml::from_str(&home.agents_config()).unwrap_or_default();
        let ha = &table["home_assistant"];
        assert_eq!(ha["url"].as_str(), Some("http://127.0.0.1:8223"));
        assert_eq!(
            ha["token_file"].as_str(),
            Some("/data \"q\"/state/hass/token")
        );
    }

    #[test]
    fn form_encoding_escapes_reserved_characters() {
        assert_eq!(
            form_encode(&[("a", "x y/z"), ("b", "ok-1")]),
            "a=x%20y%2Fz&b=ok-1"
        );
    }
}
