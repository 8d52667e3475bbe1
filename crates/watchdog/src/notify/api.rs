//! `POST /v1/notify/alertmanager` (Alertmanager's webhook receiver), `POST /v1/notify/test`
//! (a test message to every channel) and `GET /v1/notify` (channels, queue depth, last error,
//! last success). Without `[notify]` the POSTs answer 503 and the GET `{"enabled": false}`.

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::alertmanager::Payload;
use super::{Level, Message, Notifier, NotifyReport, now_ms};

/// The answer to both POSTs.
#[derive(Debug, Serialize, Deserialize)]
pub struct Queued {
    /// Messages queued (each goes to one or more channels).
    pub queued: usize,
    /// Alerts already queued within `dedup_window`, skipped.
    #[serde(default)]
    pub duplicates: usize,
}

pub fn routes(notifier: Option<Notifier>) -> Router {
    Router::new()
        .route("/v1/notify", get(show))
        .route("/v1/notify/alertmanager", post(alertmanager))
        .route("/v1/notify/test", post(test))
        .with_state(notifier)
}

fn off() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "the notifier is off: no [notify] section in the watchdog's config",
    )
        .into_response()
}

fn queue_error(route: &str, err: impl std::fmt::Display) -> Response {
    log::error!("{route}: {err}");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "notification queue unavailable",
    )
        .into_response()
}

async fn show(State(n): State<Option<Notifier>>) -> Json<NotifyReport> {
    Json(match n {
        Some(n) => n.report(),
        None => NotifyReport {
            enabled: false,
            channels: Vec::new(),
        },
    })
}

async fn alertmanager(
    State(n): State<Option<Notifier>>,
    body: Result<Json<Payload>, JsonRejection>,
) -> Response {
    let Some(n) = n else { return off() };
    let Json(payload) = match body {
        Ok(b) => b,
        Err(rej) => return (StatusCode::BAD_REQUEST, rej.body_text()).into_response(),
    };
    let mut out = Queued {
        queued: 0,
        duplicates: 0,
    };
    let window = n.config().dedup_window;
    for alert in &payload.alerts {
        let key = alert.dedup_key();
        match n.queue().first_seen(&key, window) {
            Ok(true) => {}
            Ok(false) => {
                log::info!(event = "notify_duplicate", fingerprint = alert.fingerprint.as_str(), status = alert.status.as_str(); "alert already queued within the dedup window");
                out.duplicates += 1;
                continue;
            }
            Err(err) => return queue_error("POST /v1/notify/alertmanager", err),
        }
        if let Err(err) = n.send(&alert.message(), false) {
            // Not queued: let Alertmanager's retry deliver it.
            let _ = n.queue().forget(&key);
            return queue_error("POST /v1/notify/alertmanager", err);
        }
        out.queued += 1;
    }
    Json(out).into_response()
}

async fn test(State(n): State<Option<Notifier>>) -> Response {
    let Some(n) = n else { return off() };
    let msg = Message::new(
        Level::Info,
        "Barnabee test notification",
        "If you can read this, Barnabee's watchdog can reach you on this channel (POST /v1/notify/test).",
        &format!("test_{}", now_ms()),
        "test",
    );
    match n.send(&msg, true) {
        Ok(_) => Json(Queued {
            queued: 1,
            duplicates: 0,
        })
        .into_response(),
        Err(err) => queue_error("POST /v1/notify/test", err),
    }
}
