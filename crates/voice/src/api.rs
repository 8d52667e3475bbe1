//! HTTP API: `GET /v1/latency?n=N` (the last N stage breakdowns, newest first),
//! `GET /v1/state` (the pipeline's state), `POST /v1/wake` (multi-device arbitration).

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::arbitration::{Arbiter, WakeEvent};
use crate::pipeline::Shared;

#[derive(Clone)]
pub struct ApiState {
    pub shared: Shared,
    pub arbiter: Arbiter,
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/v1/latency", get(latency))
        .route("/v1/state", get(pipeline_state))
        .route("/v1/wake", post(wake))
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
