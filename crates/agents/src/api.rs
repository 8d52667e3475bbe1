//! `POST /v1/process`, `GET /v1/audit` (guarded actions). Bad input is a 400 naming the field; never a 500 for bad input.

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
