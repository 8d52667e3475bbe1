//! The Wyoming server: one task per TCP connection (Home Assistant opens one per request).
//!
//! - `describe` → `info` listing every loaded STT model (`asr`), TTS voice (`tts`), wake word
//!   (`wake`) and VAD model (`vad`, ignored by clients that don't know it).
//! - `transcribe` (optional) + `audio-start` / `audio-chunk`… / `audio-stop` → `transcript`;
//!   with a VAD model loaded, `voice-started` / `voice-stopped` are sent as the audio arrives.
//! - `synthesize` → `audio-start`, `audio-chunk`…, `audio-stop`. Streaming:
//!   `synthesize-start`, `synthesize-chunk`… (each finished sentence is synthesised at once and
//!   sent as its own `audio-start … audio-stop`), the compat `synthesize` (ignored while
//!   streaming), `synthesize-stop` → the rest, then `synthesize-stopped`.
//! - `detect {names?}` + audio → `detection {name, timestamp}` per hit; `audio-stop` →
//!   `not-detected` when nothing fired.
//! - `ping` → `pong`; unknown events are ignored (that is what keeps new clients compatible).
//!
//! Application errors are sent as `error {text, code}` and the connection stays open; a
//! malformed frame gets an `error` and the connection is closed. The server keeps serving.

use std::sync::Arc;

use serde_json::{Value, json};
use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};

use crate::config::Kind;
use crate::registry::{Inner, Model};
use crate::{ApiError, App, tts, vad, wake, wav};
use barnabee_wyoming::{Event, Limits, read_event, write_event};

/// Samples per outgoing audio chunk (wyoming-piper uses 1024).
const CHUNK_SAMPLES: usize = 1024;

pub async fn serve(listener: TcpListener, app: Arc<App>, stop: barnabee_service::Shutdown) {
    loop {
        tokio::select! {
            _ = stop.wait() => return,
            r = listener.accept() => match r {
                Ok((sock, peer)) => {
                    let app = app.clone();
                    tokio::spawn(async move {
                        if let Err(e) = connection(sock, app).await {
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

enum Mode {
    Idle,
    Transcribe {
        model: Option<String>,
        language: Option<String>,
    },
    Detect,
}

struct Audio {
    rate: u32,
    channels: u32,
    samples: Vec<i16>,
}

struct Conn {
    app: Arc<App>,
    mode: Mode,
    audio: Option<Audio>,
    vad: Option<(Arc<Model>, vad::VadStream)>,
    wake: Option<(Arc<Model>, wake::WakeStream, bool)>,
    streaming: Option<(Option<String>, String)>,
    /// Where events go; synthesis writes each sentence's audio as soon as it exists.
    w: BufWriter<tokio::net::tcp::OwnedWriteHalf>,
}

fn error_event(text: &str, code: &str) -> Event {
    Event::error(text, code)
}

async fn connection(sock: TcpStream, app: Arc<App>) -> std::io::Result<()> {
    let _ = sock.set_nodelay(true);
    let (r, w) = sock.into_split();
    let mut r = BufReader::new(r);
    let w = BufWriter::new(w);
    // `max_header_bytes` bounds the data segment too (documented with the key).
    let limits = Limits {
        header: app.cfg.wyoming.max_header_bytes,
        data: app.cfg.wyoming.max_header_bytes,
        payload: app.cfg.wyoming.max_payload_bytes,
    };
    let mut c = Conn {
        app,
        mode: Mode::Idle,
        audio: None,
        vad: None,
        wake: None,
        streaming: None,
        w,
    };
    loop {
        let ev = match read_event(&mut r, limits).await {
            Ok(Some(ev)) => ev,
            Ok(None) => return Ok(()),
            Err(e) => {
                let text = format!("malformed Wyoming frame: {e}; closing the connection");
                log::warn!(event = "wyoming_malformed"; "{text}");
                let _ = c.send(&[error_event(&text, "malformed-frame")]).await;
                return Ok(());
            }
        };
        let out = c.handle(ev).await;
        c.send(&out).await?;
    }
}

fn api_error(e: &ApiError) -> Event {
    let code = match e {
        ApiError::NoModel(_) => "no-model",
        ApiError::Busy(_) => "busy",
        ApiError::BadInput(_) => "bad-input",
        ApiError::Failed(_) => "failed",
    };
    error_event(&e.to_string(), code)
}

fn attribution() -> Value {
    json!({"name": "Barnabee", "url": "https://example.invalid/barnabee"})
}

pub fn info(app: &App) -> Event {
    let name = &app.cfg.wyoming.name;
    let artifact = |m: &Model| {
        json!({"name": m.name, "attribution": attribution(), "installed": true,
               "description": format!("{} ({})", m.name, m.kind.as_str()), "version": env!("CARGO_PKG_VERSION"),
               "languages": m.languages})
    };
    let stt: Vec<Value> = app
        .registry
        .of_kind(Kind::Stt)
        .iter()
        .map(|m| artifact(m))
        .collect();
    let voices: Vec<Value> = app
        .registry
        .of_kind(Kind::Tts)
        .iter()
        .map(|m| artifact(m))
        .collect();
    let mut wake_models = Vec::new();
    for m in app.registry.of_kind(Kind::Wake) {
        if let Inner::Wake(w) = &m.inner {
            for n in w.names() {
                wake_models.push(json!({"name": n, "attribution": attribution(), "installed": true,
                    "description": format!("{n} ({})", m.name), "version": env!("CARGO_PKG_VERSION"),
                    "languages": m.languages, "phrase": n.replace('_', " ")}));
            }
        }
    }
    let vads: Vec<Value> = app
        .registry
        .of_kind(Kind::Vad)
        .iter()
        .map(|m| artifact(m))
        .collect();
    let program = |what: &str, key: &str, items: Vec<Value>, extra: Value| {
        let mut p = json!({"name": format!("{name}-{what}"), "attribution": attribution(), "installed": true,
            "description": format!("Barnabee {what}"), "version": env!("CARGO_PKG_VERSION")});
        if let (Some(o), Value::Object(x)) = (p.as_object_mut(), extra) {
            o.insert(key.into(), Value::Array(items));
            o.extend(x);
        }
        vec![p]
    };
    let mut data = serde_json::Map::new();
    if !stt.is_empty() {
        data.insert(
            "asr".into(),
            json!(program(
                "stt",
                "models",
                stt,
                json!({"supports_transcript_streaming": false})
            )),
        );
    }
    if !voices.is_empty() {
        data.insert(
            "tts".into(),
            json!(program(
                "tts",
                "voices",
                voices,
                json!({"supports_synthesize_streaming": true})
            )),
        );
    }
    if !wake_models.is_empty() {
        data.insert(
            "wake".into(),
            json!(program("wake", "models", wake_models, json!({}))),
        );
    }
    if !vads.is_empty() {
        data.insert(
            "vad".into(),
            json!(program("vad", "models", vads, json!({}))),
        );
    }
    for k in ["asr", "tts", "wake", "handle", "intent"] {
        data.entry(k).or_insert(json!([]));
    }
    Event::new("info", Value::Object(data))
}

impl Conn {
    async fn send(&mut self, events: &[Event]) -> std::io::Result<()> {
        for e in events {
            write_event(&mut self.w, e).await?;
        }
        self.w.flush().await
    }

    async fn handle(&mut self, ev: Event) -> Vec<Event> {
        match ev.kind.as_str() {
            "describe" => vec![info(&self.app)],
            "ping" => vec![Event::new("pong", json!({"text": ev.str("text")}))],
            "transcribe" => {
                self.mode = Mode::Transcribe {
                    model: ev.str("name").map(str::to_owned),
                    language: ev.str("language").map(str::to_owned),
                };
                vec![]
            }
            "detect" => {
                let names: Vec<String> = ev
                    .data
                    .get("names")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                self.mode = Mode::Detect;
                match self.app.model(Kind::Wake, None) {
                    Ok(m) => {
                        let st = match &m.inner {
                            Inner::Wake(w) => {
                                let known = w.names();
                                w.stream(names.into_iter().filter(|n| known.contains(n)).collect())
                            }
                            _ => return vec![error_event("wake model misconfigured", "failed")],
                        };
                        self.wake = Some((m, st, false));
                        vec![]
                    }
                    Err(e) => vec![api_error(&e)],
                }
            }
            "audio-start" => self.audio_start(&ev),
            "audio-chunk" => self.audio_chunk(ev).await,
            "audio-stop" => self.audio_stop().await,
            "synthesize" => {
                if self.streaming.is_some() {
                    return vec![]; // the compat copy inside a stream
                }
                let text = ev.str("text").unwrap_or_default().to_owned();
                let voice = voice_name(&ev);
                self.synthesize(&text, voice.as_deref()).await
            }
            "synthesize-start" => {
                self.streaming = Some((voice_name(&ev), String::new()));
                vec![]
            }
            "synthesize-chunk" => {
                let Some((voice, buf)) = self.streaming.as_mut() else {
                    return vec![error_event(
                        "synthesize-chunk without synthesize-start",
                        "bad-input",
                    )];
                };
                buf.push_str(ev.str("text").unwrap_or_default());
                let voice = voice.clone();
                // synthesise every finished sentence now; keep the unfinished tail
                let parts = tts::sentences(buf);
                let done_all = buf.trim_end().ends_with(['.', '!', '?', ';', ':']);
                let keep = if done_all { 0 } else { 1 };
                if parts.len() <= keep {
                    return vec![];
                }
                let ready: Vec<String> = parts[..parts.len() - keep].to_vec();
                *buf = if keep == 1 {
                    parts.last().cloned().unwrap_or_default()
                } else {
                    String::new()
                };
                let mut out = Vec::new();
                for s in ready {
                    out.extend(self.synthesize(&s, voice.as_deref()).await);
                }
                out
            }
            "synthesize-stop" => {
                let Some((voice, buf)) = self.streaming.take() else {
                    return vec![Event::new("synthesize-stopped", json!({}))];
                };
                let mut out = Vec::new();
                if !buf.trim().is_empty() {
                    out.extend(self.synthesize(&buf, voice.as_deref()).await);
                }
                out.push(Event::new("synthesize-stopped", json!({})));
                out
            }
            _ => vec![],
        }
    }

    fn audio_start(&mut self, ev: &Event) -> Vec<Event> {
        let rate = ev.u64("rate").unwrap_or(16_000) as u32;
        let width = ev.u64("width").unwrap_or(2) as u32;
        let channels = ev.u64("channels").unwrap_or(1) as u32;
        if width != 2 || rate == 0 || channels == 0 || channels > 8 {
            return vec![error_event(
                &format!(
                    "unsupported audio format: rate {rate}, width {width}, channels {channels} (16-bit PCM only)"
                ),
                "bad-input",
            )];
        }
        self.audio = Some(Audio {
            rate,
            channels,
            samples: Vec::new(),
        });
        if !matches!(self.mode, Mode::Detect) {
            self.vad = self.app.model(Kind::Vad, None).ok().and_then(|m| {
                let st = match &m.inner {
                    Inner::Vad(v) => v.stream(),
                    _ => return None,
                };
                Some((m, st))
            });
        }
        vec![]
    }

    async fn audio_chunk(&mut self, ev: Event) -> Vec<Event> {
        if self.audio.is_none() {
            // clients may skip audio-start; take the format from the chunk
            let out = self.audio_start(&ev);
            if !out.is_empty() {
                return out;
            }
        }
        let Some(a) = self.audio.as_mut() else {
            return vec![];
        };
        let pcm16 = wav::to_mono_rate(
            &wav::Pcm {
                rate: a.rate,
                channels: a.channels as u16,
                samples: wav::from_s16le(&ev.payload),
            },
            16_000,
        );
        let mut out = Vec::new();
        if let Some((m, st, fired)) = self.wake.as_mut()
            && matches!(self.mode, Mode::Detect)
            && let Inner::Wake(w) = &m.inner
        {
            match tokio::task::block_in_place(|| w.push(st, &pcm16)) {
                Ok(dets) => {
                    for d in dets {
                        *fired = true;
                        out.push(Event::new(
                            "detection",
                            json!({"name": d.name, "timestamp": d.ms}),
                        ));
                    }
                }
                Err(e) => out.push(error_event(&format!("wake word: {e}"), "failed")),
            }
            return out;
        }
        if let Some((m, st)) = self.vad.as_mut()
            && let Inner::Vad(v) = &m.inner
        {
            let f = vad::pcm_to_f32(&pcm16);
            match tokio::task::block_in_place(|| v.push(st, &f)) {
                Ok((_, events)) => {
                    for e in events {
                        out.push(match e {
                            vad::VadEvent::Started { ms } => {
                                Event::new("voice-started", json!({"timestamp": ms}))
                            }
                            vad::VadEvent::Stopped { ms } => {
                                Event::new("voice-stopped", json!({"timestamp": ms}))
                            }
                        });
                    }
                }
                Err(e) => out.push(error_event(&format!("VAD: {e}"), "failed")),
            }
        }
        if let Some(a) = self.audio.as_mut() {
            if a.samples.len() + pcm16.len() > 16_000 * 120 {
                return vec![error_event("utterance longer than 120 s", "bad-input")];
            }
            a.samples.extend(pcm16);
        }
        out
    }

    async fn audio_stop(&mut self) -> Vec<Event> {
        let audio = self.audio.take();
        self.vad = None;
        match std::mem::replace(&mut self.mode, Mode::Idle) {
            Mode::Detect => {
                let fired = self.wake.take().is_some_and(|(_, _, f)| f);
                if fired {
                    vec![]
                } else {
                    vec![Event::new("not-detected", json!({}))]
                }
            }
            Mode::Transcribe { model, language } => self.transcribe(audio, model, language).await,
            Mode::Idle => {
                // `transcribe` is optional for STT clients: transcribe when we can
                if self.app.registry.find(Kind::Stt, None).is_some() {
                    self.transcribe(audio, None, None).await
                } else {
                    vec![]
                }
            }
        }
    }

    async fn transcribe(
        &self,
        audio: Option<Audio>,
        model: Option<String>,
        language: Option<String>,
    ) -> Vec<Event> {
        let t0 = std::time::Instant::now();
        let samples = audio
            .map(|a| vad::pcm_to_f32(&a.samples))
            .unwrap_or_default();
        // HA sends its own model names; fall back to the first STT model when unknown
        let m = match self.app.model(Kind::Stt, model.as_deref()) {
            Ok(m) => m,
            Err(_) => match self.app.model(Kind::Stt, None) {
                Ok(m) => m,
                Err(e) => return vec![api_error(&e)],
            },
        };
        let lang = language.or_else(|| m.languages.first().cloned());
        // a multilingual Whisper decodes in the asked language when it has it, else its own
        let ask = match &m.inner {
            crate::registry::Inner::Stt(crate::stt::Stt::Whisper(w)) => {
                lang.clone().filter(|l| w.check_language(l).is_ok())
            }
            _ => None,
        };
        let r = self
            .app
            .run_model(m, move |m| match &m.inner {
                crate::registry::Inner::Stt(s) => s.transcribe_in(&samples, ask.as_deref()),
                _ => Err("not an STT model".into()),
            })
            .await;
        match r {
            Ok(t) => {
                self.app
                    .metrics
                    .stt_latency
                    .observe(t0.elapsed().as_secs_f64() * 1e3);
                vec![Event::new(
                    "transcript",
                    json!({"text": t.text, "language": lang}),
                )]
            }
            Err(e) => vec![api_error(&e)],
        }
    }

    /// Synthesise `text` sentence by sentence, sending each sentence's audio as soon as it is
    /// ready (one `audio-start` … `audio-stop` around all of it). Returns the events still to
    /// send (an error).
    async fn synthesize(&mut self, text: &str, voice: Option<&str>) -> Vec<Event> {
        let t0 = std::time::Instant::now();
        let m = match self.app.model(Kind::Tts, voice) {
            Ok(m) => m,
            Err(_) => match self.app.model(Kind::Tts, None) {
                Ok(m) => m,
                Err(e) => return vec![api_error(&e)],
            },
        };
        let mut first = true;
        for s in tts::sentences(text) {
            let r = self
                .app
                .run_model(m.clone(), move |m| match &m.inner {
                    Inner::Tts(t) => t.sentence(&s, None).map(|a| (a, t.rate)),
                    _ => Err("not a TTS model".into()),
                })
                .await;
            let (a, rate) = match r {
                Ok(x) => x,
                Err(e) => return vec![api_error(&e)],
            };
            let fmt = json!({"rate": rate, "width": 2, "channels": 1});
            let mut out = Vec::new();
            if first {
                self.app
                    .metrics
                    .tts_latency
                    .observe(t0.elapsed().as_secs_f64() * 1e3);
                out.push(Event::new("audio-start", fmt.clone()));
                first = false;
            }
            for c in a.pcm.chunks(CHUNK_SAMPLES) {
                out.push(Event::new("audio-chunk", fmt.clone()).with_payload(wav::to_s16le(c)));
            }
            if let Err(e) = self.send(&out).await {
                log::warn!("Wyoming client went away during synthesis: {e}");
                return vec![];
            }
        }
        if first {
            return vec![error_event(
                "nothing to synthesise (empty text)",
                "bad-input",
            )];
        }
        vec![Event::new("audio-stop", json!({}))]
    }
}

fn voice_name(ev: &Event) -> Option<String> {
    ev.data
        .get("voice")
        .and_then(|v| v.get("name"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}
