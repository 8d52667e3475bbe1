//! `POST /v1/say`: a WAV file as the microphone and memory as the speaker, for a machine with
//! no sound card (`barnabee say request.wav` sends it; `barnabee up` on a laptop or CI runner
//! has no audio device, so the live pipeline reports `audio` degraded and never listens).
//!
//! The recording runs through a [`Pipeline`] exactly as live audio does: the wake word and VAD
//! on the inference daemon over Wyoming, endpointing, STT, speaker identification (when
//! enabled), the agents, TTS. Only the source ([`WavSource`] on a free-running clock: as fast
//! as the inference server answers, with the same decisions, see [`crate::pipeline`]) and the
//! sink ([`MemorySink`]) differ. So the recording must start with the wake word, like speech
//! in the kitchen ("hey jarvis, what time is it"); none heard → 422, which says so.
//!
//! Decisions:
//! - **One utterance**: the pipeline stops after the first request (any outcome), so a second
//!   wake word in the file is not answered and the reply's playout is not waited for.
//! - **The live pipeline is not disturbed**: the one-shot pipeline has its own state, audio
//!   and sink ([`Shared::detached`]); it shares only the metrics, the request ids, the
//!   inference health and the `/v1/latency` history (its breakdown is added there, so a say
//!   request is timed like any other). While the live pipeline is answering someone (state
//!   not idle) a say request is refused with 409 rather than compete for the inference server
//!   with a person who is waiting; one say request at a time (another → 409). A live wake
//!   word during a say request is answered as usual: the two share no device.
//! - **Not arbitrated**: a file heard by no other satellite must not win (or lose) a wake
//!   arbitration against real speech, so the coordinator is not asked.
//! - **Wake word and VAD on the inference server** even in `mode = "local"` (the local models
//!   belong to the live pipeline, which keeps them while it runs).
//!
//! Request: the WAV file's bytes as the body (`Content-Type: audio/wav`), PCM at 16 kHz or
//! more, any channel count (converted to 16 kHz mono as enrolment does,
//! [`crate::enroll::decode_wav`]), 0.5 to 30 s, at most [`SAY_MAX_BODY`] bytes.
//!
//! Answers: 200 with [`SayResponse`] (also when the agents failed and the configured apology
//! was spoken: `error` says why); 400 bad input, naming it; 409 busy; 422 nothing to answer
//! (no wake word, no request after it, an empty transcript), with what was heard; 502 the
//! inference daemon failed (unreachable, STT or TTS); 503 `[inference] wyoming` or
//! `[agents] url` not configured; 504 no answer within [`SAY_TIMEOUT`].

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::audio::wav::{MemorySink, WavSource, wav_bytes};
use crate::audio::{Clock, ManualClock, RATE};
use crate::config::{AgentsConfig, InferenceConfig, PipelineConfig, SpeakerConfig};
use crate::latency::Breakdown;
use crate::pipeline::{Pipeline, Shared, State as PipelineState};

/// A recording's length: at least a wake word and a word...
pub const MIN_SECONDS: f64 = 0.5;
/// ...and at most a request (the live pipeline cuts a request at 10 s by default).
pub const MAX_SECONDS: f64 = 30.0;
/// 30 s of 48 kHz stereo 32-bit float is 11.5 MB: the largest WAV worth decoding.
pub const SAY_MAX_BODY: usize = 16 << 20;
/// The whole request, wake word to the last TTS audio. Every Wyoming and agents exchange has
/// its own timeout; this bounds the sum (Whisper on a loaded CPU takes seconds).
pub const SAY_TIMEOUT: Duration = Duration::from_secs(300);

/// Silence played before the recording (see [`say`]).
pub const LEAD_IN: Duration = Duration::from_millis(1500);

/// What the handler needs: the daemon's pipeline settings and the live pipeline's view.
#[derive(Clone)]
pub struct SayState {
    pub inference: InferenceConfig,
    pub agents: AgentsConfig,
    pub pipeline: PipelineConfig,
    pub speaker: SpeakerConfig,
    /// The live pipeline's (its state decides 409; its history receives the breakdown).
    pub shared: Shared,
    /// Held while a say request runs: one at a time.
    busy: Arc<tokio::sync::Mutex<()>>,
}

impl SayState {
    pub fn new(cfg: &crate::Config, shared: Shared) -> SayState {
        SayState {
            inference: cfg.inference.clone(),
            agents: cfg.agents.clone(),
            pipeline: cfg.pipeline.clone(),
            speaker: cfg.speaker.clone(),
            shared,
            busy: Arc::default(),
        }
    }
}

pub fn router(state: SayState) -> Router {
    Router::new()
        .route("/v1/say", post(say))
        .layer(DefaultBodyLimit::max(SAY_MAX_BODY))
        .with_state(state)
}

/// Stage timings of the request, in ms (`None`: the stage was not reached). Audio time for
/// the stages before the endpoint (the recording's own time), wall-clock time after it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Timings {
    pub wake_to_speech_end_ms: Option<f64>,
    pub endpoint_ms: Option<f64>,
    pub stt_ms: Option<f64>,
    pub agents_ms: Option<f64>,
    pub tts_first_audio_ms: Option<f64>,
    /// End of speech → first audio (the 1 s target).
    pub total_ms: Option<f64>,
    pub wake_to_first_audio_ms: Option<f64>,
}

impl From<&Breakdown> for Timings {
    fn from(b: &Breakdown) -> Timings {
        Timings {
            wake_to_speech_end_ms: b.wake_to_speech_end_ms,
            endpoint_ms: b.endpoint_ms,
            stt_ms: b.stt_ms,
            agents_ms: b.agents_ms,
            tts_first_audio_ms: b.tts_first_audio_ms,
            total_ms: b.total_ms,
            wake_to_first_audio_ms: b.wake_to_first_audio_ms,
        }
    }
}

/// The 200 answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SayResponse {
    pub request_id: u64,
    pub wake_word: Option<String>,
    /// What STT heard after the wake word.
    pub transcript: String,
    pub reply: String,
    /// The agents' route (`instant`, `action`, `memory`, `interaction`); `None` when the
    /// agents failed.
    pub route: Option<String>,
    /// The identified speaker, when `[speaker] enabled`.
    pub speaker: Option<String>,
    pub timings: Timings,
    /// The spoken reply: a 16-bit mono WAV at the TTS voice's rate, standard base64.
    pub reply_wav_base64: String,
    pub reply_rate: u32,
    pub reply_seconds: f64,
    /// How the recording was converted, when it was not 16 kHz mono 16-bit.
    pub converted: Option<String>,
    /// The agents failed and the apology was spoken: why.
    pub error: Option<String>,
}

fn refuse(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

async fn say(State(s): State<SayState>, body: axum::body::Bytes) -> Response {
    if body.is_empty() {
        return bad("empty; send a WAV file (Content-Type: audio/wav)".into());
    }
    let (pcm, converted) = match crate::enroll::decode_wav(&body, MIN_SECONDS, MAX_SECONDS) {
        Ok(d) => d,
        Err(why) => return bad(why),
    };
    for (key, value) in [
        ("[inference] wyoming", &s.inference.wyoming),
        ("[agents] url", &s.agents.url),
    ] {
        if value.trim().is_empty() {
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{key} is not set in the voice daemon's config; /v1/say needs it"),
            );
        }
    }
    let Ok(_one_at_a_time) = s.busy.try_lock() else {
        return refuse(
            StatusCode::CONFLICT,
            "another /v1/say request is being answered; try again when it is done".into(),
        );
    };
    let live = s.shared.state();
    if live != PipelineState::Idle {
        return refuse(
            StatusCode::CONFLICT,
            format!(
                "the live pipeline is answering someone (state {}); /v1/say does not compete with it, try again in a few seconds",
                serde_json::to_value(live)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            ),
        );
    }
    // Silence after the recording: enough for the VAD to endpoint a request that runs to the
    // file's end, and for the no-speech timeout to fire after a lone wake word, so every wake
    // word heard ends in a breakdown (free-running clock: costs lockstep round trips, not time).
    let trailing =
        Duration::from_millis(s.pipeline.no_speech_timeout_ms + s.pipeline.end_silence_ms + 2000);
    // Silence before it: a live wake word detector has always been hearing the room when
    // someone starts to speak, while a file starts it cold; openWakeWord's mel and embedding
    // windows need about a second of audio before they score (measured: a wake word 0.5 s
    // into a file was missed).
    let lead_in = vec![0i16; (LEAD_IN.as_secs_f64() * f64::from(RATE)) as usize];
    let source = WavSource::from_pcm(
        [lead_in, pcm].concat(),
        Clock::Manual(ManualClock::free_running()),
        trailing,
    );
    let mine = s.shared.detached();
    let mut p = Pipeline::new(
        s.inference.clone(),
        s.agents.clone(),
        s.pipeline.clone(),
        mine.clone(),
        source,
        MemorySink::default(),
    );
    p.single_request = true;
    if s.speaker.enabled {
        p.speaker = Some(crate::speaker::SpeakerId::new(s.speaker.clone()));
    }
    match tokio::time::timeout(SAY_TIMEOUT, p.run(None)).await {
        Err(_) => {
            return refuse(
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "no answer within {} s (inference at {}, agents at {})",
                    SAY_TIMEOUT.as_secs(),
                    s.inference.wyoming,
                    s.agents.url
                ),
            );
        }
        Ok(Err(e)) => {
            return refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("reading the recording failed: {e}"),
            );
        }
        Ok(Ok(())) => {}
    }
    let Some(b) = mine.breakdowns.last(1).into_iter().next() else {
        if let Some(e) = p.last_inference_error() {
            return refuse(
                StatusCode::BAD_GATEWAY,
                format!(
                    "the inference daemon at {} failed during {e}; nothing was heard",
                    s.inference.wyoming
                ),
            );
        }
        let words = if s.inference.wake_words.is_empty() {
            "any of the inference daemon's wake words".to_owned()
        } else {
            s.inference.wake_words.join(", ")
        };
        return refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "no wake word heard in the recording (listening for {words}): start with it, as in \"hey jarvis, what time is it\""
            ),
        );
    };
    // /v1/latency and the metrics count it like a live request (the metrics already did)
    s.shared.breakdowns.push(b.clone());
    let failed = |status: StatusCode, message: String| {
        (
            status,
            Json(json!({
                "error": message,
                "outcome": b.outcome,
                "request_id": b.request_id,
                "wake_word": b.wake_word,
                "transcript": b.transcript,
                "timings": Timings::from(&b),
            })),
        )
            .into_response()
    };
    let wake = b.wake_word.clone().unwrap_or_else(|| "wake word".into());
    match b.outcome.as_str() {
        "answered" => {}
        "no_request" => {
            return failed(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "heard {wake:?} but no request after it within {} ms",
                    s.pipeline.no_speech_timeout_ms
                ),
            );
        }
        "empty_transcript" => {
            return failed(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("heard {wake:?} and speech after it, but STT made no words of it"),
            );
        }
        other => {
            return failed(
                StatusCode::BAD_GATEWAY,
                format!(
                    "{other}: {}",
                    b.error.as_deref().unwrap_or("the inference daemon failed")
                ),
            );
        }
    }
    let (rate, pcm) = match p.sink().played().utterances.first() {
        Some((rate, pcm, _)) => (*rate, pcm.clone()),
        None => (22_050, Vec::new()),
    };
    let resp = SayResponse {
        request_id: b.request_id,
        wake_word: b.wake_word.clone(),
        transcript: b.transcript.clone().unwrap_or_default(),
        reply: b.reply.clone().unwrap_or_default(),
        route: b.route.clone(),
        speaker: b.speaker.clone(),
        timings: Timings::from(&b),
        reply_seconds: pcm.len() as f64 / f64::from(rate.max(1)),
        reply_wav_base64: base64::engine::general_purpose::STANDARD.encode(wav_bytes(rate, &pcm)),
        reply_rate: rate,
        converted,
        error: b.error.clone(),
    };
    Json(resp).into_response()
}

fn bad(why: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": format!("body: {why}"), "field": "body"})),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn state() -> SayState {
        let mut cfg = crate::Config::default();
        // never contacted: the refusals below come first
        cfg.inference.wyoming = "127.0.0.1:9".into();
        cfg.agents.url = "http://127.0.0.1:9".into();
        let metrics = crate::latency::VoiceMetrics::new(&barnabee_service::metrics::Metrics::new());
        SayState::new(&cfg, Shared::new(4, metrics, None))
    }

    async fn error_of(r: Response) -> (StatusCode, String) {
        let st = r.status();
        let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        (st, v["error"].as_str().unwrap().to_owned())
    }

    #[tokio::test]
    async fn busy_live_pipeline_or_another_say_is_409() {
        let s = state();
        let one_second = axum::body::Bytes::from(wav_bytes(RATE, &[0; 16_000]));
        *s.shared.state.lock().unwrap() = PipelineState::Capturing;
        let (st, e) = error_of(say(State(s.clone()), one_second.clone()).await).await;
        assert_eq!(st, StatusCode::CONFLICT);
        assert!(
            e.starts_with("the live pipeline is answering someone (state capturing)"),
            "{e}"
        );
        // the live pipeline saw nothing of it
        assert!(s.shared.transitions.lock().unwrap().is_empty());
        assert!(s.shared.breakdowns.last(1).is_empty());

        *s.shared.state.lock().unwrap() = PipelineState::Idle;
        let _held = s.busy.clone().try_lock_owned().unwrap();
        let (st, e) = error_of(say(State(s.clone()), one_second).await).await;
        assert_eq!(st, StatusCode::CONFLICT);
        assert!(e.starts_with("another /v1/say request"), "{e}");
    }
}
