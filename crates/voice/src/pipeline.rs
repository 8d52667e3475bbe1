//! The voice pipeline as an explicit state machine:
//!
//! ```text
//! idle ──wake──▶ wake_detected ─▶ capturing ──VAD silence / max length──▶ endpointed
//!   ▲                                 │ no speech in time                     │
//!   │◀────────────────────────────────┘                                     ▼
//!   │◀── speaking ◀── thinking (agents) ◀── transcribing (STT) ◀─────────────┘
//!   │       │ wake while speaking (barge-in): stop playback ─▶ wake_detected
//! ```
//!
//! Remote mode (the only one built): wake word, VAD, STT and TTS run in barnabee-inference
//! on the beast, over Wyoming. Idle and speaking stream frames to a `detect` connection;
//! capturing streams them to a `transcribe` connection whose VAD events (`voice-started` /
//! `voice-stopped`, timestamped in audio time) drive endpointing; `audio-stop` then yields the
//! transcript. Every chunk is followed by a `ping` and the pipeline waits for the `pong`
//! ([`Client::chunk_lockstep`]), so each decision is tied to the frame that caused it and a
//! file source can run faster than real time with the same outcome.
//!
//! Audio time (samples read from the source) times the audio stages; wall-clock time times
//! STT, agents and TTS.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;

use crate::announce::{Announcement, Announcements};
use crate::audio::{AudioSink, AudioSource, FRAME, RATE};
use crate::config::{AgentsConfig, InferenceConfig, PipelineConfig};
use crate::latency::{self, Breakdown, Breakdowns, VoiceMetrics};
use crate::speaker::SpeakerId;
use crate::wyoming::{Client, Event, WyomingError, audio_format, pcm_from_le};
use barnabee_service::health::Component;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Idle,
    WakeDetected,
    Capturing,
    Endpointed,
    Transcribing,
    Thinking,
    Speaking,
}

/// What the HTTP API and tests can see of a running pipeline.
#[derive(Clone)]
pub struct Shared {
    pub state: Arc<Mutex<State>>,
    pub transitions: Arc<Mutex<Vec<State>>>,
    pub breakdowns: Breakdowns,
    pub metrics: VoiceMetrics,
    pub inference_health: Option<Component>,
    /// What `POST /v1/announce` queued for this pipeline to speak when idle.
    pub announcements: Announcements,
    next_id: Arc<AtomicU64>,
}

impl Shared {
    pub fn new(keep: usize, metrics: VoiceMetrics, inference_health: Option<Component>) -> Shared {
        Shared {
            state: Arc::new(Mutex::new(State::Idle)),
            transitions: Arc::default(),
            breakdowns: Breakdowns::new(keep),
            metrics,
            inference_health,
            announcements: Announcements::default(),
            next_id: Arc::new(AtomicU64::new(1)),
        }
    }
    /// A view for a one-shot pipeline beside the live one (`POST /v1/say`): its own state,
    /// transitions and breakdowns (so the live pipeline's state machine never sees it, and its
    /// caller finds its own breakdown), the same metrics, inference health and request ids.
    pub fn detached(&self) -> Shared {
        Shared {
            state: Arc::new(Mutex::new(State::Idle)),
            transitions: Arc::default(),
            breakdowns: Breakdowns::new(4),
            metrics: self.metrics.clone(),
            inference_health: self.inference_health.clone(),
            // never live: announcements go to the live pipeline only
            announcements: Announcements::default(),
            next_id: self.next_id.clone(),
        }
    }
    pub fn state(&self) -> State {
        *self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn set(&self, s: State) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = s;
        let mut t = self.transitions.lock().unwrap_or_else(|e| e.into_inner());
        if t.len() > 10_000 {
            t.clear();
        }
        t.push(s);
    }
    fn inference_ok(&self, detail: &str) {
        if let Some(c) = &self.inference_health {
            c.ok(detail);
        }
    }
    fn inference_fail(&self, detail: &str) {
        if let Some(c) = &self.inference_health {
            c.fail(detail);
        }
    }
}

/// Marks the queue live while a pipeline runs (`run` returns on any path: the guard resets it).
struct TakingAnnouncements(Announcements);

impl TakingAnnouncements {
    fn new(a: &Announcements) -> Self {
        a.set_live(true);
        TakingAnnouncements(a.clone())
    }
}

impl Drop for TakingAnnouncements {
    fn drop(&mut self) {
        self.0.set_live(false);
    }
}

/// Test hooks (the daemon uses the defaults).
#[derive(Debug, Clone, Default)]
pub struct Hooks {
    /// Replace the STT model's transcript with this text (the STT round trip still runs and is
    /// timed). For tests where the STT model is a generated stand-in.
    pub inject_transcript: Option<String>,
}

struct Capture {
    conn: Client,
    id: u64,
    wake_word: Option<String>,
    /// Audio time (ms) at the wake detection and at the capture start.
    wake_ms: f64,
    start_ms: f64,
    speech_start: Option<f64>,
    /// Where speech ended (the VAD's `voice-stopped` timestamp: the end of the last speech
    /// window), for the latency breakdown.
    speech_end: Option<f64>,
    /// When the VAD decided that (its hangover later): `end_silence_ms` counts from here, as
    /// documented ("VAD hangover + end_silence_ms").
    stop_decided: Option<f64>,
    /// The captured audio (for speaker identification).
    audio: Vec<i16>,
}

pub struct Pipeline<S: AudioSource, K: AudioSink> {
    pub inference: InferenceConfig,
    pub agents: AgentsConfig,
    pub cfg: PipelineConfig,
    pub hooks: Hooks,
    pub shared: Shared,
    /// Speaker identification, when enabled.
    pub speaker: Option<SpeakerId>,
    /// Wake arbitration coordinator base URL (`POST {url}/v1/wake`), when several satellites
    /// may hear the same wake word.
    pub coordinator: Option<String>,
    /// Local wake word + VAD (`mode = "local"`); `None`: both on the beast over Wyoming.
    pub local: Option<crate::local::Local>,
    /// Stop after the first request (any outcome) or the first inference failure: a recording
    /// played as the microphone (`POST /v1/say`) is one utterance, and a second wake word in
    /// it or the reply's playout must not keep it running.
    pub single_request: bool,
    /// Requests finished (breakdowns recorded) by this pipeline.
    requests_done: u64,
    /// The last inference failure, "stage: error" (for a one-shot caller to report).
    last_inference_error: Option<String>,
    source: S,
    sink: K,
    /// Built once; an error (no TLS library) is reported by each request that needs it.
    http: Result<reqwest::Client, String>,
    /// Samples read so far (the audio clock).
    samples: u64,
    wake: Option<Client>,
    /// When to try reconnecting to the inference server (audio ms) after a failure.
    retry_at_ms: f64,
    inference_down: bool,
    /// Remaining playback (audio ms) while speaking.
    speaking_left_ms: f64,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

impl<S: AudioSource, K: AudioSink> Pipeline<S, K> {
    pub fn new(
        inference: InferenceConfig,
        agents: AgentsConfig,
        cfg: PipelineConfig,
        shared: Shared,
        source: S,
        sink: K,
    ) -> Self {
        let http =
            barnabee_service::http_client::build(|b| b.timeout(agents.timeout)).map_err(|e| {
                format!(
                    "cannot build an HTTP client: {}",
                    barnabee_service::error_chain(&e)
                )
            });
        Pipeline {
            inference,
            agents,
            cfg,
            hooks: Hooks::default(),
            shared,
            speaker: None,
            coordinator: None,
            local: None,
            single_request: false,
            requests_done: 0,
            last_inference_error: None,
            source,
            sink,
            http,
            samples: 0,
            wake: None,
            retry_at_ms: 0.0,
            inference_down: false,
            speaking_left_ms: 0.0,
        }
    }

    pub fn sink(&self) -> &K {
        &self.sink
    }

    /// Requests finished so far (each left a breakdown).
    pub fn requests_done(&self) -> u64 {
        self.requests_done
    }

    /// The last inference failure ("wake word: cannot connect to ..."), if any.
    pub fn last_inference_error(&self) -> Option<&str> {
        self.last_inference_error.as_deref()
    }

    fn now_ms(&self) -> f64 {
        self.samples as f64 * 1000.0 / RATE as f64
    }

    /// Run until the source ends (files) or `stop` fires.
    pub async fn run(&mut self, stop: Option<barnabee_service::Shutdown>) -> Result<(), String> {
        self.shared.set(State::Idle);
        let _taking = TakingAnnouncements::new(&self.shared.announcements);
        let mut capture: Option<Capture> = None;
        loop {
            let frame = match &stop {
                Some(s) => tokio::select! {
                    _ = s.wait() => return Ok(()),
                    f = self.source.read_frame() => f,
                },
                None => self.source.read_frame().await,
            };
            let frame = match frame.map_err(|e| e.to_string())? {
                Some(f) => f,
                None => {
                    if self.shared.state() == State::Speaking {
                        let _ = self.sink.finish();
                        self.shared.set(State::Idle);
                    }
                    return Ok(());
                }
            };
            self.samples += frame.len() as u64;
            match capture.take() {
                Some(c) => capture = self.capturing(c, &frame).await,
                None => capture = self.listening(&frame).await,
            }
            if capture.is_none()
                && self.shared.state() == State::Idle
                && let Some(a) = self.shared.announcements.pop()
            {
                self.announce(a).await;
            }
            if self.single_request
                && capture.is_none()
                && (self.requests_done > 0 || self.inference_down)
            {
                // the reply is fully synthesized into the sink by now: close it
                if self.shared.state() == State::Speaking {
                    let _ = self.sink.finish();
                    self.shared.set(State::Idle);
                }
                return Ok(());
            }
        }
    }

    async fn connect_wake(&mut self) -> Result<Client, WyomingError> {
        let mut c = Client::connect(&self.inference.wyoming, self.inference.timeout).await?;
        let names = &self.inference.wake_words;
        let data = if names.is_empty() {
            json!({})
        } else {
            json!({ "names": names })
        };
        c.send(&Event::new("detect", data)).await?;
        c.send(&Event::new("audio-start", audio_format())).await?;
        Ok(c)
    }

    fn inference_error(&mut self, stage: &str, e: &WyomingError) {
        if !self.inference_down {
            log::error!(event = "incident", stage = stage, error = e.to_string().as_str(); "inference unreachable during {stage}: {e}; retrying every 2 s");
        }
        self.inference_down = true;
        self.last_inference_error = Some(format!("{stage}: {e}"));
        self.shared
            .inference_fail(&format!("inference unreachable ({stage}): {e}"));
        self.retry_at_ms = self.now_ms() + 2000.0;
    }

    fn inference_back(&mut self) {
        if self.inference_down {
            log::info!(event = "recovered"; "inference reachable again at {}", self.inference.wyoming);
            self.inference_down = false;
        }
        self.shared
            .inference_ok(&format!("Wyoming at {}", self.inference.wyoming));
    }

    /// Idle or speaking: feed the wake word detector.
    async fn listening(&mut self, frame: &[i16]) -> Option<Capture> {
        if self.shared.state() == State::Speaking {
            self.speaking_left_ms -= ms(FRAME);
            if self.speaking_left_ms <= 0.0 {
                let _ = self.sink.finish();
                self.shared.set(State::Idle);
            }
        }
        if let Some(local) = self.local.as_mut() {
            let det = match local.wake_push(frame) {
                Ok(d) => d?,
                Err(e) => {
                    log::error!(event = "incident"; "local wake word failed: {e}");
                    local.wake_reset();
                    return None;
                }
            };
            local.wake_reset();
            let (name, score) = det;
            let ev = Event::new("detection", json!({"name": name, "score": score}));
            return self.woke(ev).await;
        }
        if self.wake.is_none() {
            if self.now_ms() < self.retry_at_ms {
                return None;
            }
            match self.connect_wake().await {
                Ok(c) => {
                    self.wake = Some(c);
                    self.inference_back();
                }
                Err(e) => {
                    self.inference_error("wake word", &e);
                    return None;
                }
            }
        }
        let conn = self.wake.as_mut()?;
        let events = match conn
            .chunk_lockstep(frame, "during wake word detection")
            .await
        {
            Ok(ev) => ev,
            Err(e) => {
                self.wake = None;
                self.inference_error("wake word", &e);
                return None;
            }
        };
        let det = events.into_iter().find(|e| e.kind == "detection")?;
        // a fresh detector after each request (no stale model state, no re-trigger)
        self.wake = None;
        self.woke(det).await
    }

    /// A wake word was detected (remote or local): arbitrate, barge in, start capturing.
    async fn woke(&mut self, det: Event) -> Option<Capture> {
        let wake_word = det.str("name").map(str::to_owned);
        if let Some(url) = self.coordinator.clone() {
            // openWakeWord detections over Wyoming carry no score; 1.0 unless one is sent
            let confidence = det.f64("score").unwrap_or(1.0).clamp(0.0, 1.0);
            match self.arbitrate(&url, confidence, wake_word.as_deref()).await {
                Ok(true) => {}
                Ok(false) => {
                    log::info!(event = "stood_down", device_id = self.cfg.device_id.as_str(); "wake word heard, another satellite won the arbitration: standing down");
                    self.shared
                        .metrics
                        .requests
                        .get_or_create(&vec![("outcome".into(), "stood_down".into())])
                        .inc();
                    return None;
                }
                Err(e) => {
                    log::warn!(event = "arbitration_failed"; "wake arbitration at {url} failed ({e}); answering anyway");
                }
            }
        }
        if self.shared.state() == State::Speaking {
            self.sink.stop();
            self.shared.metrics.barge_ins.inc();
            log::info!(event = "barge_in"; "wake word while speaking: playback stopped");
        }
        self.shared.set(State::WakeDetected);
        let id = self.shared.next_id.fetch_add(1, Ordering::SeqCst);
        let now = self.now_ms();
        log::info!(request_id = id, wake_word = wake_word.as_deref().unwrap_or(""); "wake word {:?} at {:.0} ms", wake_word, now);
        // no discard here: audio buffered while arbitrating is the start of the request
        if let Some(local) = self.local.as_mut() {
            local.vad_reset();
        }
        match self.open_capture().await {
            Ok(conn) => {
                self.shared.set(State::Capturing);
                Some(Capture {
                    conn,
                    id,
                    wake_word,
                    wake_ms: now,
                    start_ms: now,
                    speech_start: None,
                    speech_end: None,
                    stop_decided: None,
                    audio: Vec::new(),
                })
            }
            Err(e) => {
                self.inference_error("capture", &e);
                self.finish(Breakdown {
                    request_id: id,
                    outcome: "stt_failed".into(),
                    wake_word,
                    error: Some(e.to_string()),
                    ..Default::default()
                });
                None
            }
        }
    }

    /// Ask the coordinator whether this satellite won; `Ok(false)`: stand down.
    async fn arbitrate(
        &self,
        url: &str,
        confidence: f64,
        wake_word: Option<&str>,
    ) -> Result<bool, String> {
        let url = format!("{}/v1/wake", url.trim_end_matches('/'));
        let r = self
            .http
            .as_ref()
            .map_err(Clone::clone)?
            .post(&url)
            .json(&json!({"device_id": self.cfg.device_id, "confidence": confidence, "wake_word": wake_word}))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let st = r.status();
        let v: serde_json::Value = r.json().await.map_err(|e| e.to_string())?;
        if !st.is_success() {
            return Err(format!("HTTP {st}: {v}"));
        }
        v["winner"]
            .as_bool()
            .ok_or_else(|| format!("no \"winner\" in {v}"))
    }

    async fn open_capture(&self) -> Result<Client, WyomingError> {
        let mut c = Client::connect(&self.inference.wyoming, self.inference.timeout).await?;
        c.send(&Event::new(
            "transcribe",
            json!({"language": self.inference.language}),
        ))
        .await?;
        c.send(&Event::new("audio-start", audio_format())).await?;
        Ok(c)
    }

    fn finish(&mut self, mut b: Breakdown) {
        b.device_id = self.cfg.device_id.clone();
        if b.outcome != "answered" {
            self.shared.set(State::Idle);
        }
        latency::log(&b);
        self.shared.metrics.record(&b);
        self.shared.breakdowns.push(b);
        self.requests_done += 1;
        self.source.discard_pending();
    }

    /// Capturing: stream to the STT connection, endpoint on VAD silence or max length.
    async fn capturing(&mut self, mut c: Capture, frame: &[i16]) -> Option<Capture> {
        let events = match c.conn.chunk_lockstep(frame, "during capture").await {
            Ok(ev) => ev,
            Err(e) => {
                self.shared.metrics.stt_outcome(false);
                self.inference_error("capture", &e);
                self.finish(Breakdown {
                    request_id: c.id,
                    outcome: "stt_failed".into(),
                    wake_word: c.wake_word,
                    error: Some(e.to_string()),
                    ..Default::default()
                });
                return None;
            }
        };
        if c.audio.len() < RATE as usize * 30 {
            c.audio.extend_from_slice(frame);
        }
        let events = match self.local.as_mut() {
            // local VAD decides; the server's own voice events are ignored
            Some(local) => match local.vad_push(frame) {
                Ok(evs) => evs
                    .into_iter()
                    .map(|e| match e {
                        crate::local::VadEvent::Started { ms } => {
                            Event::new("voice-started", json!({ "timestamp": ms }))
                        }
                        crate::local::VadEvent::Stopped { ms } => {
                            Event::new("voice-stopped", json!({ "timestamp": ms }))
                        }
                    })
                    .collect(),
                Err(e) => {
                    log::error!(event = "incident"; "local VAD failed: {e}");
                    Vec::new()
                }
            },
            None => events,
        };
        for ev in events {
            let ts = ev.f64("timestamp").map(|t| c.start_ms + t);
            match ev.kind.as_str() {
                "voice-started" => {
                    if c.speech_start.is_none() {
                        c.speech_start = Some(ts.unwrap_or(self.now_ms()));
                    }
                    c.speech_end = None;
                    c.stop_decided = None;
                }
                "voice-stopped" => {
                    let end = ts.unwrap_or(self.now_ms());
                    match c.speech_start {
                        Some(st) if end - st < self.cfg.min_utterance_ms as f64 => {
                            // a blip: not a request yet
                            log::debug!(
                                "speech of {:.0} ms ignored (< min_utterance_ms)",
                                end - st
                            );
                            c.speech_start = None;
                        }
                        Some(_) => {
                            c.speech_end = Some(end);
                            c.stop_decided = Some(self.now_ms().max(end));
                        }
                        None => {}
                    }
                }
                _ => {}
            }
        }
        let now = self.now_ms();
        let elapsed = now - c.start_ms;
        let silence_done = c
            .stop_decided
            .is_some_and(|d| now - d >= self.cfg.end_silence_ms as f64);
        let too_long = elapsed >= self.cfg.max_utterance_ms as f64;
        if c.speech_start.is_none() && elapsed >= self.cfg.no_speech_timeout_ms as f64 {
            log::info!(request_id = c.id, event = "no_request"; "wake word but no request within {} ms", self.cfg.no_speech_timeout_ms);
            self.finish(Breakdown {
                request_id: c.id,
                outcome: "no_request".into(),
                wake_word: c.wake_word,
                ..Default::default()
            });
            return None;
        }
        if !(silence_done || too_long && c.speech_start.is_some()) {
            if too_long {
                // over the max with no speech at all: the no-speech timeout handles it
            }
            return Some(c);
        }
        self.shared.set(State::Endpointed);
        let truncated = !silence_done;
        if truncated {
            log::warn!(request_id = c.id, event = "max_utterance"; "utterance cut at max_utterance_ms = {}", self.cfg.max_utterance_ms);
        }
        let speech_end = c.speech_end.unwrap_or(now);
        self.respond(c, speech_end, now, truncated).await;
        None
    }

    async fn respond(&mut self, mut c: Capture, speech_end: f64, endpoint: f64, truncated: bool) {
        let mut b = Breakdown {
            request_id: c.id,
            wake_word: c.wake_word.clone(),
            truncated,
            wake_to_speech_end_ms: Some(speech_end - c.wake_ms),
            endpoint_ms: Some(endpoint - speech_end),
            ..Default::default()
        };
        // transcribing
        self.shared.set(State::Transcribing);
        let t = Instant::now();
        let conn = &mut c.conn;
        let stt = async {
            conn.send(&Event::new("audio-stop", json!({}))).await?;
            let r = loop {
                let ev = conn.recv("waiting for the transcript").await?;
                if ev.kind == "transcript" {
                    break ev.str("text").unwrap_or("").to_owned();
                }
            };
            Ok::<_, WyomingError>((r, t.elapsed()))
        };
        // speaker identification runs beside STT
        let audio = std::mem::take(&mut c.audio);
        let spk = self.speaker.as_mut();
        let who = async move {
            match spk {
                Some(s) => {
                    let t = Instant::now();
                    Some((s.identify(&audio).await, t.elapsed()))
                }
                None => None,
            }
        };
        let (stt, who) = tokio::join!(stt, who);
        let stt = stt.map(|(text, d)| {
            b.stt_ms = Some(ms(d));
            text
        });
        if b.stt_ms.is_none() {
            b.stt_ms = Some(ms(t.elapsed()));
        }
        let mut speaker = None;
        match who {
            Some((Ok(d), took)) => {
                self.shared.metrics.speaker_confidence(d.confidence);
                log::info!(request_id = c.id, speaker = d.speaker.as_str(), confidence = d.confidence, speaker_ms = ms(took); "speaker {} ({:.2} against threshold {:.2}, margin {:.2})", d.speaker, d.confidence, d.threshold, d.margin);
                b.speaker = Some(d.speaker.clone());
                b.speaker_confidence = Some(d.confidence);
                speaker = Some((d.speaker, d.confidence));
            }
            Some((Err(e), _)) => {
                log::warn!(request_id = c.id, event = "speaker_id_failed"; "speaker identification failed: {e}");
                b.speaker = Some(crate::speaker::GUEST.into());
            }
            None => {}
        }
        let mut text = match stt {
            Ok(t) => {
                self.shared.metrics.stt_outcome(true);
                t
            }
            Err(e) => {
                self.shared.metrics.stt_outcome(false);
                self.inference_error("STT", &e);
                b.outcome = "stt_failed".into();
                b.error = Some(e.to_string());
                self.finish(b);
                return;
            }
        };
        if let Some(inj) = &self.hooks.inject_transcript {
            text = inj.clone();
            b.transcript_injected = true;
        }
        b.transcript = Some(text.clone());
        if text.trim().is_empty() {
            b.outcome = "empty_transcript".into();
            self.finish(b);
            return;
        }
        // thinking
        self.shared.set(State::Thinking);
        let t = Instant::now();
        let (reply, route, err) = self
            .ask_agents(&text, speaker.as_ref().map(|(s, c)| (s.as_str(), *c)), c.id)
            .await;
        b.agents_ms = Some(ms(t.elapsed()));
        b.route = route;
        b.reply = Some(reply.clone());
        if let Some(e) = err {
            b.error = Some(e);
        }
        // speaking
        let t = Instant::now();
        match self.speak(&reply).await {
            Ok((first, played_ms)) => {
                b.tts_first_audio_ms = Some(ms(first));
                b.total_ms = Some(
                    b.endpoint_ms.unwrap_or(0.0)
                        + b.stt_ms.unwrap_or(0.0)
                        + b.agents_ms.unwrap_or(0.0)
                        + ms(first),
                );
                b.wake_to_first_audio_ms =
                    Some(b.wake_to_speech_end_ms.unwrap_or(0.0) + b.total_ms.unwrap_or(0.0));
                b.outcome = "answered".into();
                self.speaking_left_ms = played_ms;
                self.finish(b);
            }
            Err(e) => {
                let _ = t;
                self.inference_error("TTS", &e);
                b.outcome = "tts_failed".into();
                b.error = Some(e.to_string());
                self.finish(b);
            }
        }
    }

    /// `POST /v1/process`; on failure the configured apology (and the error).
    async fn ask_agents(
        &self,
        text: &str,
        speaker: Option<(&str, f64)>,
        id: u64,
    ) -> (String, Option<String>, Option<String>) {
        if self.agents.url.is_empty() {
            let e = "agents not configured ([agents] url is empty)".to_owned();
            log::error!(request_id = id; "{e}");
            return (self.cfg.agents_down_reply.clone(), None, Some(e));
        }
        let url = format!("{}/v1/process", self.agents.url.trim_end_matches('/'));
        let mut body = json!({
            "text": text,
            "session_id": format!("voice-{}", self.cfg.device_id),
            "device_id": self.cfg.device_id,
        });
        // The agents' guard needs how sure the identification is, not only who.
        if let Some((sp, confidence)) = speaker {
            body["speaker"] = json!(sp);
            body["speaker_confidence"] = json!(confidence);
        }
        let r = async {
            let resp = self
                .http
                .as_ref()
                .map_err(Clone::clone)?
                .post(&url)
                .json(&body)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let st = resp.status();
            let v: serde_json::Value = resp.json().await.map_err(|e| e.to_string())?;
            if !st.is_success() {
                return Err(format!("HTTP {st}: {v}"));
            }
            Ok(v)
        }
        .await;
        match r {
            Ok(v) => (
                v["text"].as_str().unwrap_or_default().to_owned(),
                v["route"].as_str().map(str::to_owned),
                None,
            ),
            Err(e) => {
                let e = format!("agents at {url} failed: {e}");
                log::error!(request_id = id, event = "incident"; "{e}");
                (self.cfg.agents_down_reply.clone(), None, Some(e))
            }
        }
    }

    /// Speak an announcement (idle only; a wake word during it barges in like during a reply).
    async fn announce(&mut self, a: Announcement) {
        match self.speak(&a.text).await {
            Ok((first, played_ms)) => {
                self.speaking_left_ms = played_ms;
                self.shared.metrics.announcement("played");
                log::info!(event = "announced", from = a.from.as_str(); "announcement from {}: {:.0} ms of audio, first after {:.0} ms: {:?}", a.from, played_ms, ms(first), a.text);
            }
            Err(e) => {
                self.shared.metrics.announcement("failed");
                log::warn!(event = "announce_failed", from = a.from.as_str(); "announcement from {} not spoken: {e}", a.from);
                self.inference_error("TTS", &e);
            }
        }
    }

    /// Synthesize and queue on the sink; returns (time to first audio, audio duration in ms).
    async fn speak(&mut self, text: &str) -> Result<(Duration, f64), WyomingError> {
        let t = Instant::now();
        let mut c = Client::connect(&self.inference.wyoming, self.inference.timeout).await?;
        let mut data = json!({"text": text});
        if !self.inference.voice.is_empty() {
            data["voice"] = json!({"name": self.inference.voice});
        }
        c.send(&Event::new("synthesize", data)).await?;
        let mut first = None;
        let mut rate = 22_050u32;
        let mut samples = 0usize;
        loop {
            let ev = c.recv("waiting for TTS audio").await?;
            match ev.kind.as_str() {
                "audio-start" => {
                    rate = ev.u64("rate").unwrap_or(22_050) as u32;
                }
                "audio-chunk" => {
                    if first.is_none() {
                        first = Some(t.elapsed());
                        rate = ev.u64("rate").map(|r| r as u32).unwrap_or(rate);
                        self.shared.set(State::Speaking);
                        if let Err(e) = self.sink.start(rate) {
                            log::error!("audio output: {e}");
                        }
                    }
                    let pcm = pcm_from_le(&ev.payload);
                    samples += pcm.len();
                    if let Err(e) = self.sink.write(&pcm) {
                        log::error!("audio output: {e}");
                    }
                }
                "audio-stop" => break,
                _ => {}
            }
        }
        let first = first.ok_or_else(|| WyomingError::Closed {
            addr: c.addr.clone(),
            during: "before any TTS audio".into(),
        })?;
        Ok((first, samples as f64 * 1000.0 / rate as f64))
    }
}
