//! The HTTP API (besides `/health` and `/metrics` from barnabee-service):
//!
//! - `POST /v1/transcribe[?model=NAME][&language=xx]` — body WAV (16-bit PCM, any
//!   rate/channels) or raw s16le 16 kHz mono (`Content-Type: audio/pcm` or anything not RIFF)
//!   → `{text, model, family, timings_ms: {decode, features, encoder, decoder, total}}`
//!   (`language` picks a multilingual Whisper model's language; others ignore it).
//! - `POST /v1/synthesize` — `{"text": "...", "voice": NAME?, "speaker": ID?}` → `audio/wav`,
//!   streamed: the first sentence is synthesised before the answer (so errors get a status),
//!   the rest follows sentence by sentence (WAV sizes 0xFFFFFFFF, the streaming convention);
//!   the first sentence's timings in the `x-barnabee-timings` header (JSON).
//! - `POST /v1/embed/text` — `{"texts": [...]}` (or `"text"`) → `{model, dim, embeddings,
//!   timings_ms}`.
//! - `POST /v1/embed/speaker[?model=NAME]` — WAV/PCM body → `{model, family, embedding,
//!   timings_ms}` (`family`: `wespeaker` or `ge2e`).
//! - `POST /v1/vad` — WAV/PCM body → `{model, probabilities, events}`.
//! - `POST /v1/wake[?names=a,b]` — WAV/PCM body → `{model, detections: [{name, score, ms}],
//!   best}` (best score per wake word over the clip).
//! - `GET /v1/models` — loaded models, failures, the Wyoming address.
//!
//! Bad input is a 400 naming the problem, a missing model 404, admission control 503 with the
//! reason; never a 500 for bad input.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use crate::config::Kind;
use crate::registry::Inner;
use crate::{ApiError, App, tts, wav};

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::NoModel(_) => StatusCode::NOT_FOUND,
            ApiError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::BadInput(_) => StatusCode::BAD_REQUEST,
            ApiError::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, Json(json!({"error": self.to_string()}))).into_response()
    }
}

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/v1/transcribe", post(transcribe))
        .route("/v1/synthesize", post(synthesize))
        .route("/v1/embed/text", post(embed_text))
        .route("/v1/embed/speaker", post(embed_speaker))
        .route("/v1/vad", post(vad))
        .route("/v1/wake", post(wake))
        .route("/v1/models", get(models))
        .layer(DefaultBodyLimit::max(32 * 1024 * 1024))
        .with_state(app)
}

#[derive(Deserialize)]
struct ModelQuery {
    model: Option<String>,
}

#[derive(Deserialize)]
struct TranscribeQuery {
    model: Option<String>,
    language: Option<String>,
}

/// WAV or raw 16 kHz s16le → 16 kHz mono floats.
pub fn decode_audio(headers: &HeaderMap, body: &[u8]) -> Result<Vec<f32>, ApiError> {
    let is_wav = body.starts_with(b"RIFF")
        || headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.contains("wav"));
    let samples = if is_wav {
        let pcm = wav::parse(body).map_err(|e| ApiError::BadInput(e.to_string()))?;
        wav::to_mono_rate(&pcm, 16_000)
    } else {
        if !body.len().is_multiple_of(2) {
            return Err(ApiError::BadInput(
                "raw PCM must be 16-bit little-endian (even length)".into(),
            ));
        }
        wav::from_s16le(body)
    };
    if samples.is_empty() {
        return Err(ApiError::BadInput("no audio samples".into()));
    }
    Ok(crate::vad::pcm_to_f32(&samples))
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

async fn transcribe(
    State(app): State<Arc<App>>,
    Query(q): Query<TranscribeQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let t0 = Instant::now();
    let samples = decode_audio(&headers, &body)?;
    let decode = ms(t0);
    let model = app.model(Kind::Stt, q.model.as_deref())?;
    let name = model.name.clone();
    let family = match &model.inner {
        Inner::Stt(s) => s.family().as_str(),
        _ => "",
    };
    if let (Inner::Stt(crate::stt::Stt::Whisper(w)), Some(lang)) = (&model.inner, &q.language) {
        // a language the model lacks is the caller's mistake, not a failed inference
        w.check_language(lang).map_err(ApiError::BadInput)?;
    }
    let language = q.language;
    let tr = app
        .run_model(model, move |m| match &m.inner {
            Inner::Stt(s) => s.transcribe_in(&samples, language.as_deref()),
            _ => Err("not an STT model".into()),
        })
        .await?;
    let total = ms(t0);
    app.metrics.stt_latency.observe(total);
    Ok(Json(json!({
        "text": tr.text,
        "model": name,
        "family": family,
        "timings_ms": {"decode": decode, "features": tr.features_ms, "encoder": tr.encoder_ms, "decoder": tr.decoder_ms, "total": total},
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SynthesizeRequest {
    text: String,
    voice: Option<String>,
    speaker: Option<i64>,
}

async fn synthesize(State(app): State<Arc<App>>, body: Bytes) -> Result<Response, ApiError> {
    let t0 = Instant::now();
    let req: SynthesizeRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadInput(format!("request body: {e}")))?;
    let mut sentences = tts::sentences(&req.text).into_iter();
    let Some(first) = sentences.next() else {
        return Err(ApiError::BadInput("`text` is empty".into()));
    };
    let model = app.model(Kind::Tts, req.voice.as_deref())?;
    let sp = req.speaker;
    let run = move |app: Arc<App>, model: Arc<crate::registry::Model>, sentence: String| async move {
        app.run_model(model, move |m| match &m.inner {
            Inner::Tts(t) => t.sentence(&sentence, sp).map(|a| (a, t.rate)),
            _ => Err("not a TTS model".into()),
        })
        .await
    };
    // The first sentence before answering (so errors get their status); the rest streams.
    let (audio, rate) = run(app.clone(), model.clone(), first).await?;
    let first_ms = ms(t0);
    app.metrics.tts_latency.observe(first_ms);
    let timings = json!({"first_sentence": {"phonemize": audio.phonemize_ms, "model": audio.model_ms, "total": first_ms}});
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let mut head = wav::streaming_header(rate);
    head.extend(wav::to_s16le(&audio.pcm));
    let rest: Vec<String> = sentences.collect();
    tokio::spawn(async move {
        if tx.send(Ok(Bytes::from(head))).await.is_err() {
            return;
        }
        for s in rest {
            let item = match run(app.clone(), model.clone(), s).await {
                Ok((a, _)) => Ok(Bytes::from(wav::to_s16le(&a.pcm))),
                Err(e) => {
                    log::warn!("synthesis failed mid-stream: {e}");
                    Err(std::io::Error::other(e.to_string()))
                }
            };
            let stop = item.is_err();
            if tx.send(item).await.is_err() || stop {
                return;
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let mut resp = axum::body::Body::from_stream(stream).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("audio/wav"));
    if let Ok(v) = HeaderValue::from_str(&timings.to_string()) {
        resp.headers_mut().insert("x-barnabee-timings", v);
    }
    Ok(resp)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmbedTextRequest {
    text: Option<String>,
    texts: Option<Vec<String>>,
    model: Option<String>,
}

async fn embed_text(
    State(app): State<Arc<App>>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let t0 = Instant::now();
    let req: EmbedTextRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadInput(format!("request body: {e}")))?;
    let texts = match (req.text, req.texts) {
        (Some(t), None) => vec![t],
        (None, Some(ts)) if !ts.is_empty() => ts,
        _ => {
            return Err(ApiError::BadInput(
                "give exactly one of `text` or a non-empty `texts`".into(),
            ));
        }
    };
    let model = app.model(Kind::TextEmbedding, req.model.as_deref())?;
    let name = model.name.clone();
    let out = app
        .run_model(model, move |m| match &m.inner {
            Inner::TextEmbedding(e) => texts
                .iter()
                .map(|t| e.embed(t))
                .collect::<Result<Vec<_>, _>>(),
            _ => Err("not a text embedding model".into()),
        })
        .await?;
    Ok(Json(json!({
        "model": name,
        "dim": out.first().map_or(0, Vec::len),
        "embeddings": out,
        "timings_ms": {"total": ms(t0)},
    })))
}

async fn embed_speaker(
    State(app): State<Arc<App>>,
    Query(q): Query<ModelQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let t0 = Instant::now();
    let samples = decode_audio(&headers, &body)?;
    if samples.len() < 8000 {
        return Err(ApiError::BadInput(format!(
            "speaker embedding needs at least 0.5 s of 16 kHz audio, got {} samples",
            samples.len()
        )));
    }
    let model = app.model(Kind::Speaker, q.model.as_deref())?;
    let name = model.name.clone();
    let family = match &model.inner {
        Inner::Speaker(s) => s.family().as_str(),
        _ => "",
    };
    let v = app
        .run_model(model, move |m| match &m.inner {
            Inner::Speaker(s) => s.embed(&samples),
            _ => Err("not a speaker model".into()),
        })
        .await?;
    Ok(Json(
        json!({"model": name, "family": family, "embedding": v, "timings_ms": {"total": ms(t0)}}),
    ))
}

async fn vad(
    State(app): State<Arc<App>>,
    Query(q): Query<ModelQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let samples = decode_audio(&headers, &body)?;
    let model = app.model(Kind::Vad, q.model.as_deref())?;
    let name = model.name.clone();
    let (probs, events) = app
        .run_model(model, move |m| match &m.inner {
            Inner::Vad(v) => {
                let mut st = v.stream();
                v.push(&mut st, &samples)
            }
            _ => Err("not a VAD model".into()),
        })
        .await?;
    let events: Vec<serde_json::Value> = events
        .iter()
        .map(|e| match e {
            crate::vad::VadEvent::Started { ms } => json!({"started_ms": ms}),
            crate::vad::VadEvent::Stopped { ms } => json!({"stopped_ms": ms}),
        })
        .collect();
    Ok(Json(
        json!({"model": name, "probabilities": probs, "events": events}),
    ))
}

async fn models(State(app): State<Arc<App>>) -> Json<serde_json::Value> {
    let models: Vec<serde_json::Value> = app
        .registry
        .models
        .values()
        .map(|m| crate::describe_model(m))
        .collect();
    let wy = *app.wyoming_addr.lock().unwrap_or_else(|e| e.into_inner());
    Json(json!({
        "models": models,
        "failures": app.registry.failures,
        "wyoming": wy.map(|a| a.to_string()),
    }))
}

#[derive(Deserialize)]
struct WakeQuery {
    names: Option<String>,
    model: Option<String>,
}

async fn wake(
    State(app): State<Arc<App>>,
    Query(q): Query<WakeQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let t0 = Instant::now();
    let samples = decode_audio(&headers, &body)?;
    let pcm: Vec<i16> = samples.iter().map(|s| (s * 32768.0) as i16).collect();
    let model = app.model(Kind::Wake, q.model.as_deref())?;
    let names: Vec<String> = q
        .names
        .as_deref()
        .map(|n| {
            n.split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if let Inner::Wake(w) = &model.inner {
        let known = w.names();
        if let Some(bad) = names.iter().find(|n| !known.contains(n)) {
            return Err(ApiError::BadInput(format!(
                "unknown wake word {bad:?} (known: {known:?})"
            )));
        }
    }
    let name = model.name.clone();
    let (dets, best) = app
        .run_model(model, move |m| match &m.inner {
            Inner::Wake(w) => {
                let mut st = w.stream(names);
                let d = w.push(&mut st, &pcm)?;
                Ok((d, st.best))
            }
            _ => Err("not a wake model".into()),
        })
        .await?;
    let dets: Vec<serde_json::Value> = dets
        .iter()
        .map(|d| json!({"name": d.name, "score": d.score, "ms": d.ms}))
        .collect();
    Ok(Json(
        json!({"model": name, "detections": dets, "best": best, "timings_ms": {"total": ms(t0)}}),
    ))
}
