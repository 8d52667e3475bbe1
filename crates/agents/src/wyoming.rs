//! Barnabee as Home Assistant's conversation agent: a Wyoming `handle` service.
//!
//! Home Assistant's `wyoming` integration turns a service whose `describe` lists an installed
//! `handle` program into a conversation entity; an Assist pipeline that picks it sends each
//! utterance as `transcript {text, context: {conversation_id}}` on a new connection and reads
//! until `handled` / `not-handled` (HA 2026.2.3, `components/wyoming/conversation.py`).
//!
//! - `describe` → `info` with one `handle` program (its model's `languages` are what HA offers
//!   the agent for).
//! - `transcript` → the same `App::process` as `POST /v1/process` → `handled {text, context}`.
//!   HA's `conversation_id` becomes the session (`ha:<id>`), so a follow-up in the same
//!   conversation keeps its context; HA 2026.2.3 sends no device or satellite id, so the
//!   device is `context.device_id` / `satellite_id` when a newer HA sends one, else
//!   `home-assistant`.
//! - Bad input is an `error {text, code}` and the connection stays usable: a transcript without
//!   text, over `[http] max_text_chars`, or in a language not served; an unknown event
//!   (`unknown-event`: Wyoming servers usually drop those silently, but this service has one
//!   job, and a client talking to the wrong service should hear why). A malformed frame gets
//!   an `error` and the connection is closed (the stream cannot be resynchronised).
//! - `ping` → `pong`.
//!
//! Why the agents daemon serves it (not inference's Wyoming server beside STT/TTS): the brain
//! lives here (router, sessions, memory, cost governor), typed Assist keeps working when the
//! beast is off, and no daemon calls another daemon's brain on its behalf. HA lists the two
//! as two Wyoming entries: the beast's (STT, TTS, wake) and this one (conversation).

use std::sync::Arc;

use barnabee_wyoming::{Event, Limits, read_event, write_event};
use serde_json::{Value, json};
use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};

use crate::app::{App, ProcessRequest};

/// What one connection may send: a transcript is text, so a 64 KiB header and data segment
/// are far above any utterance (the text limit is `[http] max_text_chars`); no payloads.
const LIMITS: Limits = Limits {
    header: 64 * 1024,
    data: 64 * 1024,
    payload: 0,
};

/// What the service needs besides the agents.
pub struct Service {
    pub app: Arc<App>,
    pub languages: Vec<String>,
    pub max_text_chars: usize,
}

pub async fn serve(listener: TcpListener, svc: Arc<Service>, stop: barnabee_service::Shutdown) {
    loop {
        tokio::select! {
            _ = stop.wait() => return,
            r = listener.accept() => match r {
                Ok((sock, peer)) => {
                    let svc = svc.clone();
                    tokio::spawn(async move {
                        if let Err(e) = connection(sock, svc).await {
                            log::warn!(peer = peer.to_string(), event = "wyoming_error"; "Wyoming connection from {peer} closed: {e}");
                        }
                    });
                }
                Err(e) => {
                    log::warn!("Wyoming accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    }
}

async fn connection(sock: TcpStream, svc: Arc<Service>) -> std::io::Result<()> {
    let _ = sock.set_nodelay(true);
    let (r, w) = sock.into_split();
    let mut r = BufReader::new(r);
    let mut w = BufWriter::new(w);
    loop {
        let reply = match read_event(&mut r, LIMITS).await {
            Ok(Some(ev)) => svc.handle(ev).await,
            Ok(None) => return Ok(()),
            Err(e) => {
                let text = format!("malformed Wyoming frame: {e}; closing the connection");
                log::warn!(event = "wyoming_malformed"; "{text}");
                let _ = write_event(&mut w, &Event::error(&text, "malformed-frame")).await;
                let _ = w.flush().await;
                return Ok(());
            }
        };
        write_event(&mut w, &reply).await?;
        w.flush().await?;
    }
}

impl Service {
    async fn handle(&self, ev: Event) -> Event {
        match ev.kind.as_str() {
            "describe" => self.info(),
            "ping" => Event::new("pong", json!({"text": ev.str("text")})),
            "transcript" => match self.request(&ev) {
                Ok(req) => {
                    let context = ev.data.get("context").cloned().unwrap_or(json!({}));
                    let res = self.app.process(req).await;
                    Event::new("handled", json!({"text": res.text, "context": context}))
                }
                Err(e) => e,
            },
            other => Event::error(
                &format!(
                    "unknown event `{other}`: this is Barnabee's conversation service; it answers \
                     describe, transcript and ping"
                ),
                "unknown-event",
            ),
        }
    }

    /// The agents' request for a `transcript`, or the `error` that says what is wrong with it.
    fn request(&self, ev: &Event) -> Result<ProcessRequest, Event> {
        let text = ev.str("text").map(str::trim).unwrap_or_default();
        if text.is_empty() {
            return Err(Event::error(
                "transcript has no text (`text` missing or empty)",
                "bad-input",
            ));
        }
        let n = text.chars().count();
        if n > self.max_text_chars {
            return Err(Event::error(
                &format!(
                    "transcript too long ({n} characters; at most {})",
                    self.max_text_chars
                ),
                "transcript-too-long",
            ));
        }
        if let Some(lang) = ev.str("language")
            && !self.serves(lang)
        {
            return Err(Event::error(
                &format!(
                    "language `{lang}` is not served (this agent understands {})",
                    self.languages.join(", ")
                ),
                "unsupported-language",
            ));
        }
        let context = ev.data.get("context");
        let id_of = |key: &str| {
            context
                .and_then(|c| c.get(key))
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty() && s.len() <= 190)
                .map(str::to_owned)
        };
        let session_id = match id_of("conversation_id") {
            Some(id) => format!("ha:{id}"),
            // No conversation: a one-off turn with no history to share.
            None => format!("ha:once:{}", next_once()),
        };
        let device_id = id_of("device_id")
            .or_else(|| id_of("satellite_id"))
            .unwrap_or_else(|| "home-assistant".to_owned());
        Ok(ProcessRequest {
            text: text.to_owned(),
            session_id,
            // HA identifies no speaker: guarded actions are refused from Assist (fail closed).
            speaker: None,
            speaker_confidence: None,
            device_id: Some(device_id),
        })
    }

    /// `en-GB` is served by `en`, and `en` by `en-GB`: Home Assistant's pipelines use both forms.
    fn serves(&self, lang: &str) -> bool {
        let base = |l: &str| {
            l.split(['-', '_'])
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase()
        };
        self.languages.iter().any(|l| base(l) == base(lang))
    }

    fn info(&self) -> Event {
        let attribution = json!({"name": "Barnabee", "url": "https://example.invalid/barnabee"});
        let version = env!("CARGO_PKG_VERSION");
        Event::new(
            "info",
            json!({
                "asr": [], "tts": [], "wake": [], "intent": [],
                "handle": [{
                    "name": "barnabee",
                    "attribution": attribution,
                    "installed": true,
                    "description": "Barnabee (router, Home Assistant actions, memory, LLM within budget)",
                    "version": version,
                    "models": [{
                        "name": "barnabee-agents",
                        "attribution": attribution,
                        "installed": true,
                        "description": "Barnabee agents",
                        "version": version,
                        "languages": self.languages,
                    }],
                    "supports_handled_streaming": false,
                }],
            }),
        )
    }
}

fn next_once() -> u64 {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}
