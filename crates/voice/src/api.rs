//! HTTP API: `GET /v1/latency?n=N` (the last N stage breakdowns, newest first),
//! `GET /v1/state` (the pipeline's state), `POST /v1/wake` (multi-device arbitration),
//! `POST /v1/speakers/{name}/enroll` (speaker enrolment, [`enroll_router`]),
//! `POST /v1/announce` (speak a text when idle, [`crate::announce`]); `POST /v1/say`
//! (a WAV file as the microphone) is in [`crate::say`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::arbitration::{Arbiter, WakeEvent};
use crate::config::SpeakerConfig;
use crate::enroll::{self, EnrollRequest, EnrollResponse};
use crate::pipeline::Shared;

#[derive(Clone)]
pub struct ApiState {
    pub shared: Shared,
    pub arbiter: Arbiter,
    /// This satellite's `[pipeline] device_id`: an announcement for another device is refused.
    pub device_id: String,
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/v1/latency", get(latency))
        .route("/v1/state", get(pipeline_state))
        .route("/v1/wake", post(wake))
        .route("/v1/announce", post(announce))
        .with_state(state)
}

fn bad(field: &str, why: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": format!("{field}: {why}"), "field": field})),
    )
        .into_response()
}

async fn latency(State(s): State<ApiState>, Query(q): Query<HashMap<String, String>>) -> Response {
    let n = match q.get("n") {
        None => 10,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => return bad("n", "must be an integer from 1 to 1000"),
        },
    };
    Json(json!({"breakdowns": s.shared.breakdowns.last(n)})).into_response()
}

async fn pipeline_state(State(s): State<ApiState>) -> Response {
    Json(json!({"state": s.shared.state()})).into_response()
}

/// `POST /v1/announce {text, device_id?, from?}` → 202 `{queued: N}` (N = its place in the
/// queue); 400 naming the field, 404 for another device, 429 when the queue is full, 503 when
/// no pipeline runs here (no audio device, inference not configured).
async fn announce(State(s): State<ApiState>, body: axum::body::Bytes) -> Response {
    use crate::announce::{AnnounceError, Announcement, MAX_CHARS};
    let v: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(serde_json::Value::Object(m)) => serde_json::Value::Object(m),
        Ok(_) => return bad("body", "expected a JSON object with text"),
        Err(e) => return bad("body", &format!("not JSON: {e}")),
    };
    for k in v.as_object().into_iter().flat_map(|m| m.keys()) {
        if !["text", "device_id", "from"].contains(&k.as_str()) {
            return bad(k, "unknown field");
        }
    }
    let Some(text) = v["text"].as_str().map(str::trim) else {
        return bad("text", "required, a string");
    };
    if text.is_empty() {
        return bad("text", "must not be empty");
    }
    let n = text.chars().count();
    if n > MAX_CHARS {
        return bad(
            "text",
            &format!("too long ({n} characters; at most {MAX_CHARS})"),
        );
    }
    let from = match &v["from"] {
        serde_json::Value::Null => "api".to_owned(),
        serde_json::Value::String(f) if !f.trim().is_empty() && f.len() <= 100 => {
            f.trim().to_owned()
        }
        _ => return bad("from", "must be a non-empty string of at most 100 bytes"),
    };
    match &v["device_id"] {
        serde_json::Value::Null => {}
        serde_json::Value::String(d) if *d == s.device_id => {}
        serde_json::Value::String(d) => {
            return (
                StatusCode::NOT_FOUND,
                Json(json!({"error": format!("device_id: {d:?} is not this voice daemon (this is {:?})", s.device_id), "field": "device_id"})),
            )
                .into_response();
        }
        _ => return bad("device_id", "must be a string"),
    }
    let a = Announcement {
        text: text.to_owned(),
        from,
    };
    match s.shared.announcements.push(
        a,
        "no audio device, or inference not configured; /health says which",
    ) {
        Ok(place) => (StatusCode::ACCEPTED, Json(json!({"queued": place}))).into_response(),
        Err(e) => {
            s.shared.metrics.announcement("refused");
            let status = match e {
                AnnounceError::Full => StatusCode::TOO_MANY_REQUESTS,
                AnnounceError::NotRunning(_) => StatusCode::SERVICE_UNAVAILABLE,
            };
            (status, Json(json!({"error": e.to_string()}))).into_response()
        }
    }
}

async fn wake(State(s): State<ApiState>, body: axum::body::Bytes) -> Response {
    let v: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(serde_json::Value::Object(m)) => serde_json::Value::Object(m),
        Ok(_) => {
            return bad(
                "body",
                "expected a JSON object with device_id and confidence",
            );
        }
        Err(e) => return bad("body", &format!("not JSON: {e}")),
    };
    for k in v.as_object().into_iter().flat_map(|m| m.keys()) {
        if !["device_id", "confidence", "wake_word"].contains(&k.as_str()) {
            return bad(k, "unknown field");
        }
    }
    let Some(device_id) = v["device_id"].as_str() else {
        return bad("device_id", "required, a string");
    };
    if device_id.trim().is_empty() {
        return bad("device_id", "must not be empty");
    }
    let Some(confidence) = v["confidence"].as_f64() else {
        return bad("confidence", "required, a number from 0 to 1");
    };
    if !(0.0..=1.0).contains(&confidence) {
        return bad("confidence", "must be between 0 and 1");
    }
    let wake_word = match &v["wake_word"] {
        serde_json::Value::Null => None,
        serde_json::Value::String(w) => Some(w.clone()),
        _ => return bad("wake_word", "must be a string"),
    };
    let ev = WakeEvent {
        device_id: device_id.to_owned(),
        confidence,
        wake_word,
    };
    Json(s.arbiter.submit(ev).await).into_response()
}

/// Enrolment request bodies may be this large: 20 utterances of 30 s of 16 kHz 16-bit mono
/// (960 KB each) base64-encoded are about 26 MB.
pub const ENROLL_MAX_BODY: usize = 32 << 20;

/// `POST /v1/speakers/{name}/enroll`, with the speaker section's inference and memory URLs.
/// Kept apart from [`router`] so the pipeline's API needs no speaker configuration.
pub fn enroll_router(cfg: SpeakerConfig) -> Router {
    Router::new()
        .route("/v1/speakers/{name}/enroll", post(enroll_speaker))
        .layer(DefaultBodyLimit::max(ENROLL_MAX_BODY))
        .with_state(Arc::new(cfg))
}

/// Enrol `name` from WAV files (what `barnabee voice enroll NAME WAV...` sends).
///
/// Body: `{"utterances": [{"file": "a.wav", "wav_base64": "<standard base64>"}, ...], "add"?:
/// bool}`; `add` adds the utterances to the existing profile instead of replacing it.
/// JSON with base64 rather than multipart because: the files are small (an enrolment phrase
/// is a few seconds, 32 KB/s at 16 kHz mono), so the encoding's third more does not matter;
/// it needs no extra axum/reqwest features (multer) in the voice daemon or the CLI; and the
/// request, its refusals and the response are all one JSON shape, checked with
/// `deny_unknown_fields` like every other body.
///
/// Each WAV: PCM at 16 kHz or more, any channel count, 0.5 to 30 s; other than 16 kHz mono
/// 16-bit it is downmixed and resampled with live capture's code, and the response lists
/// what was converted ([`enroll::decode`]). Bad input (name, body, a non-WAV, a rate below
/// 16 kHz, too short or long) → 400 naming the field and the utterance by number and file;
/// `[speaker]` URLs not configured → 503; the inference or memory daemon failing → 502 with
/// its message. Success → 200 with the profile as memory stored it ([`EnrollResponse`]).
async fn enroll_speaker(
    State(cfg): State<Arc<SpeakerConfig>>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    if let Err(r) = enroll::check_name(&name) {
        return refused(&r);
    }
    let req: EnrollRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return bad(
                "body",
                &format!(
                    "expected {{\"utterances\": [{{\"file\": NAME, \"wav_base64\": BASE64}}, ...]}}: {e}"
                ),
            );
        }
    };
    let decoded = match enroll::decode(&req) {
        Ok(d) => d,
        Err(r) => return refused(&r),
    };
    let converted: Vec<String> = decoded.iter().filter_map(|d| d.converted.clone()).collect();
    let pcm: Vec<Vec<i16>> = decoded.into_iter().map(|d| d.pcm).collect();
    for (key, value) in [
        ("inference_url", &cfg.inference_url),
        ("memory_url", &cfg.memory_url),
    ] {
        if value.trim().is_empty() {
            return failure(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "[speaker] {key} is not set in the voice daemon's config; enrolment needs it"
                ),
            );
        }
    }
    let n = match crate::speaker::enroll(&cfg.inference_url, &cfg.memory_url, &name, &pcm, req.add)
        .await
    {
        Ok(n) => n,
        Err(e) => {
            log::warn!(speaker = name.as_str(); "enrolment failed: {e}");
            return failure(StatusCode::BAD_GATEWAY, format!("enrolment failed: {e}"));
        }
    };
    match stored_profile(&cfg.memory_url, &name).await {
        Ok(p) => {
            log::info!(
                speaker = name.as_str(),
                utterances = n,
                embedding_dim = p.centroid.len(),
                embedding_model = p.embedding_model_hash.as_str();
                "speaker enrolled"
            );
            Json(EnrollResponse {
                name: p.name,
                utterances: n,
                sample_count: p.sample_count,
                embedding_dim: p.centroid.len(),
                embedding_model: p.embedding_model_hash,
                updated_at: p.updated_at,
                converted,
            })
            .into_response()
        }
        Err(e) => failure(
            StatusCode::BAD_GATEWAY,
            format!("enrolled from {n} utterances, but reading the profile back failed: {e}"),
        ),
    }
}

/// barnabee-memory's stored profile (`GET /v1/speakers/{name}`).
#[derive(serde::Deserialize)]
struct StoredProfile {
    name: String,
    embedding_model_hash: String,
    centroid: Vec<f32>,
    sample_count: i64,
    updated_at: i64,
}

async fn stored_profile(memory_url: &str, name: &str) -> Result<StoredProfile, String> {
    let url = format!("{}/v1/speakers/{name}", memory_url.trim_end_matches('/'));
    let http = barnabee_service::http_client::build(|b| b.timeout(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let r = http
        .get(&url)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let status = r.status();
    if !status.is_success() {
        return Err(format!(
            "{url}: HTTP {status}: {}",
            r.text().await.unwrap_or_default()
        ));
    }
    r.json().await.map_err(|e| format!("{url}: {e}"))
}

fn refused(r: &enroll::Refusal) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": r.message, "field": r.field})),
    )
        .into_response()
}

fn failure(status: StatusCode, message: String) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}
