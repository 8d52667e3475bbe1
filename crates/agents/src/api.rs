//! `POST /v1/process`, `GET /v1/audit` (guarded actions), `GET /v1/cost/report`,
//! `GET/POST /v1/cost/mode`. Bad input is a 400 naming the field; never a 500 for bad input.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;

use crate::app::{App, ProcessRequest};

#[derive(Clone)]
pub struct ApiState {
    pub app: Arc<App>,
    pub max_text_chars: usize,
}

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    field: String,
    message: String,
}

impl ApiError {
    /// A fault of the daemon: logged in full, the client gets a short 500.
    fn internal(message: String) -> Self {
        log::error!("{message}");
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            field: String::new(),
            message: "internal error (see the agents daemon's journal)".into(),
        }
    }

    fn bad(field: impl Into<String>, message: impl Into<String>) -> Self {
        let field = field.into();
        Self {
            status: StatusCode::BAD_REQUEST,
            message: format!("{field}: {}", message.into()),
            field,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            axum::Json(json!({"error": self.message, "field": self.field})),
        )
            .into_response()
    }
}

pub fn router(state: ApiState, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/v1/process", post(process))
        .route("/v1/audit", axum::routing::get(audit))
        .route("/v1/cost/report", axum::routing::get(cost_report))
        .route("/v1/cost/mode", post(cost_mode).get(cost_state))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

/// Parse and check a request; errors name the field.
pub fn parse_request(body: &[u8], max_text_chars: usize) -> Result<ProcessRequest, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad(
            "body",
            "empty; expected a JSON object with text and session_id",
        ));
    }
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::bad(
            "body",
            "expected a JSON object with text and session_id",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let req: ProcessRequest = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        let named = message
            .strip_prefix("missing field `")
            .or_else(|| message.strip_prefix("unknown field `"))
            .and_then(|rest| rest.split('`').next());
        let field = match (named, path.as_str()) {
            (Some(key), "." | "") => key.to_owned(),
            (_, "." | "") => "body".to_owned(),
            (_, p) => p.to_owned(),
        };
        ApiError::bad(field, message)
    })?;
    de.end()
        .map_err(|e| ApiError::bad("body", format!("trailing data after the JSON value: {e}")))?;
    let text = req.text.trim();
    if text.is_empty() {
        return Err(ApiError::bad("text", "must not be empty"));
    }
    let n = text.chars().count();
    if n > max_text_chars {
        return Err(ApiError::bad(
            "text",
            format!("too long ({n} characters; at most {max_text_chars})"),
        ));
    }
    if req.session_id.trim().is_empty() {
        return Err(ApiError::bad("session_id", "must not be empty"));
    }
    if req.session_id.len() > 200 {
        return Err(ApiError::bad("session_id", "too long (at most 200 bytes)"));
    }
    if req
        .speaker_confidence
        .is_some_and(|c| !(0.0..=1.0).contains(&c))
    {
        return Err(ApiError::bad(
            "speaker_confidence",
            "must be between 0 and 1",
        ));
    }
    for (field, v) in [("speaker", &req.speaker), ("device_id", &req.device_id)] {
        if v.as_ref().is_some_and(|s| s.len() > 200) {
            return Err(ApiError::bad(field, "too long (at most 200 bytes)"));
        }
    }
    Ok(req)
}

/// `GET /v1/audit?limit=N`: the guarded actions' audit log, newest first (N: 1..=1000, 50).
async fn audit(
    State(s): State<ApiState>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let limit = match q.get("limit") {
        None => 50,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => return Err(ApiError::bad("limit", "must be an integer from 1 to 1000")),
        },
    };
    let app = s.app.clone();
    let entries = tokio::task::spawn_blocking(move || app.action.guard.audit.recent(limit))
        .await
        .map_err(|e| ApiError::internal(format!("audit log: {e}")))?
        .map_err(|e| ApiError::internal(format!("audit log: {e}")))?;
    Ok(axum::Json(json!({"entries": entries})).into_response())
}

/// `GET /v1/cost/report?month=YYYY-MM` (default: this month): see `crate::cost_report`.
async fn cost_report(
    State(s): State<ApiState>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let gov = s.app.interaction.governor.clone();
    let month = match q.get("month") {
        Some(m) => crate::cost_report::parse_month(m).map_err(|e| ApiError::bad("month", e))?,
        None => gov.clock.now().format("%Y-%m").to_string(),
    };
    let local: std::collections::HashSet<String> = s
        .app
        .interaction
        .llm
        .providers
        .iter()
        .filter(|p| p.cfg.local)
        .map(|p| p.cfg.name.clone())
        .collect();
    let report =
        tokio::task::spawn_blocking(move || gov.ledger.report(&month, &|p| local.contains(p)))
            .await
            .map_err(|e| ApiError::internal(format!("cost report: {e}")))?
            .map_err(|e| ApiError::internal(format!("cost report: {e}")))?;
    Ok(axum::Json(report).into_response())
}

/// `POST /v1/cost/mode {"local_only"?: bool, "reset_today"?: bool}`: runtime switches, kept
/// in the ledger. Answers the mode and the spend after the change.
async fn cost_mode(State(s): State<ApiState>, body: Bytes) -> Result<Response, ApiError> {
    let v: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad("body", format!("not JSON: {e}")))?;
    let Some(m) = v.as_object() else {
        return Err(ApiError::bad(
            "body",
            "expected a JSON object with local_only and/or reset_today",
        ));
    };
    for k in m.keys() {
        if k != "local_only" && k != "reset_today" {
            return Err(ApiError::bad(k.as_str(), "unknown field"));
        }
    }
    let flag = |k: &str| match m.get(k) {
        None => Ok(None),
        Some(serde_json::Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(ApiError::bad(k, "must be true or false")),
    };
    let (local_only, reset_today) = (flag("local_only")?, flag("reset_today")?);
    if local_only.is_none() && reset_today.is_none() {
        return Err(ApiError::bad("body", "set local_only and/or reset_today"));
    }
    let gov = s.app.interaction.governor.clone();
    let spend = tokio::task::spawn_blocking(move || {
        if let Some(on) = local_only {
            gov.set_local_only(on)?;
        }
        if reset_today == Some(true) {
            gov.ledger.reset_today(gov.clock.as_ref())?;
            log::info!(event = "cost_mode", reset_today = true; "today's spend no longer counts against the daily budget");
        }
        gov.spend().map(|spend| (gov.is_local_only(), spend))
    })
    .await
    .map_err(|e| ApiError::internal(format!("cost mode: {e}")))?
    .map_err(|e| ApiError::internal(format!("cost mode: {e}")))?;
    s.app.interaction.budget_state().await;
    Ok(axum::Json(json!({"local_only": spend.0, "budget": spend.1})).into_response())
}

/// `GET /v1/cost/mode`: the switches and today's and this month's spend against the budget
/// (what the operator console shows), the same shape `POST` answers with.
async fn cost_state(State(s): State<ApiState>) -> Result<Response, ApiError> {
    let gov = s.app.interaction.governor.clone();
    let spend =
        tokio::task::spawn_blocking(move || gov.spend().map(|spend| (gov.is_local_only(), spend)))
            .await
            .map_err(|e| ApiError::internal(format!("cost state: {e}")))?
            .map_err(|e| ApiError::internal(format!("cost state: {e}")))?;
    Ok(axum::Json(json!({"local_only": spend.0, "budget": spend.1})).into_response())
}

async fn process(State(s): State<ApiState>, body: Bytes) -> Result<Response, ApiError> {
    let req = parse_request(&body, s.max_text_chars)?;
    Ok(axum::Json(s.app.process(req).await).into_response())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn field(body: &[u8]) -> String {
        parse_request(body, 100).unwrap_err().field
    }

    #[test]
    fn bad_input_names_the_field() {
        assert_eq!(field(b""), "body");
        assert_eq!(field(b"{\"session_id\":\"s\"}"), "text");
        assert_eq!(field(b"{\"text\":\"hi\"}"), "session_id");
        assert_eq!(field(b"{\"text\":\"  \",\"session_id\":\"s\"}"), "text");
        assert_eq!(field(b"{\"text\":5,\"session_id\":\"s\"}"), "text");
        assert_eq!(field(b"{\"text\":\"hi\",\"session_id\":[1]}"), "session_id");
        assert_eq!(
            field(b"{\"text\":\"hi\",\"session_id\":\"s\",\"colour\":1}"),
            "colour"
        );
        assert_eq!(
            field(b"{\"text\":\"hi\",\"session_id\":\"s\",\"speaker\":7}"),
            "speaker"
        );
        assert_eq!(
            field(b"{\"text\":\"\xff\xfe\",\"session_id\":\"s\"}"),
            "text"
        );
        assert_eq!(field(b"[1,2]"), "body");
        let long = format!("{{\"text\":\"{}\",\"session_id\":\"s\"}}", "a".repeat(101));
        assert_eq!(field(long.as_bytes()), "text");
        assert!(parse_request(b"{\"text\":\"hi\",\"session_id\":\"s\"}", 100).is_ok());
    }
}
