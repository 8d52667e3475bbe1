//! The watchdog's own HTTP API (next to `/health` and `/metrics`):
//! `GET /v1/incidents?since_ms=<epoch ms>&limit=<n>` → `{"incidents": [Record, ...]}`,
//! newest first; what `barnabee incident collect` puts into the bundle.
//! `POST /v1/incidents/{id}/ack {"by": "..."}` → the record, acknowledged (404 unknown id).
//! `GET /v1/units` → `{"units": [UnitReport, ...]}`: the latest state of each supervised unit.
//! `/v1/notify...`: the notifier ([`crate::notify::api`]).

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::incident::{IncidentLog, Record};
use crate::supervisor::{UnitReport, UnitsView};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentQuery {
    /// Only records at or after this time (milliseconds since the epoch).
    #[serde(default)]
    pub since_ms: i64,
    /// At most this many (default 100, at most 1000).
    #[serde(default = "default_limit")]
    pub limit: u32,
}

fn default_limit() -> u32 {
    100
}

#[derive(Debug, Serialize, Deserialize)]
pub struct IncidentList {
    pub incidents: Vec<Record>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct UnitList {
    pub units: Vec<UnitReport>,
}

pub fn routes(
    log: Arc<IncidentLog>,
    view: UnitsView,
    notifier: Option<crate::notify::Notifier>,
) -> Router {
    Router::new()
        .route("/v1/incidents", get(list))
        .route("/v1/incidents/{id}/ack", axum::routing::post(acknowledge))
        .with_state(log)
        .merge(
            Router::new()
                .route("/v1/units", get(units))
                .with_state(view),
        )
        .merge(crate::notify::api::routes(notifier))
}

async fn units(State(view): State<UnitsView>) -> Json<UnitList> {
    let units = view
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .cloned()
        .collect();
    Json(UnitList { units })
}

async fn acknowledge(
    State(log): State<Arc<IncidentLog>>,
    axum::extract::Path(id): axum::extract::Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let bad = |field: &str, msg: String| {
        (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({"error": format!("{field}: {msg}"), "field": field})),
        )
            .into_response()
    };
    let Ok(id) = id.parse::<i64>() else {
        return bad("id", format!("{id:?} is not an incident id"));
    };
    let by = match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(v) => match v["by"].as_str().map(str::trim) {
            Some(b) if !b.is_empty() && b.len() <= 100 => b.to_owned(),
            _ => return bad("by", "who acknowledges: a name of 1 to 100 bytes".into()),
        },
        Err(e) => return bad("body", format!("expected {{\"by\": NAME}}: {e}")),
    };
    // SQLite off the async threads (the log is shared with the supervisor and the gate).
    let done = tokio::task::spawn_blocking(move || {
        let found = log.acknowledge(id, &by)?;
        if found {
            log::info!(event = "incident_acknowledged", incident = id; "incident {id} acknowledged by {by}");
        }
        Ok::<_, crate::incident::IncidentLogError>(if found { log.get(id)? } else { None })
    })
    .await;
    match done {
        Ok(Ok(Some(r))) => Json(r).into_response(),
        Ok(Ok(None)) => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({"error": format!("no incident {id}"), "field": "id"})),
        )
            .into_response(),
        Ok(Err(err)) => {
            log::error!("POST /v1/incidents/{id}/ack: {err}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "incident log unavailable",
            )
                .into_response()
        }
        Err(join) => {
            log::error!("POST /v1/incidents/{id}/ack: {join}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "incident log unavailable",
            )
                .into_response()
        }
    }
}

async fn list(State(log): State<Arc<IncidentLog>>, Query(q): Query<IncidentQuery>) -> Response {
    let listed = tokio::task::spawn_blocking(move || {
        log.list(q.since_ms, q.limit.min(1000))
            .map_err(|e| e.to_string())
    })
    .await
    .unwrap_or_else(|join| Err(join.to_string()));
    match listed {
        Ok(incidents) => Json(IncidentList { incidents }).into_response(),
        Err(err) => {
            log::error!("GET /v1/incidents: {err}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "incident log unavailable",
            )
                .into_response()
        }
    }
}
