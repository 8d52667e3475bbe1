//! The HTTP surface every daemon has: `/health` and `/metrics`, merged with the daemon's own
//! routes. Bad requests to those routes are the daemon's business; these two never fail.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::health::Health;
use crate::metrics::Metrics;

/// The request's id: the caller's `X-Request-Id` when it sent one (so one id follows a voice
/// request through voice, agents and memory), else a fresh one. Handlers read it from the
/// request extensions to put it on their own log records.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The daemon's routes plus `/health` and `/metrics`, every request logged once with
/// `REQUEST_ID`, `METHOD`, `PATH`, `STATUS` and `LATENCY_MS` (health and metrics scrapes at
/// debug level, so a watchdog probing every few seconds does not fill the journal).
pub fn router(routes: Router, health: Health, metrics: Metrics) -> Router {
    let counted = metrics.clone();
    with_routes(routes, health, metrics)
        .layer(axum::middleware::from_fn(log_request))
        .layer(axum::middleware::from_fn(
            move |request: Request, next: Next| {
                let metrics = counted.clone();
                count_request(metrics, request, next)
            },
        ))
}

/// `barnabee_http_requests_total{route, status}`: the 5xx rate per daemon is an alert rule.
async fn count_request(metrics: Metrics, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let response = next.run(request).await;
    metrics.http_request(&route, response.status().as_u16());
    response
}

fn with_routes(routes: Router, health: Health, metrics: Metrics) -> Router {
    let health_for_metrics = health.clone();
    routes
        .route(
            "/health",
            get(move || {
                let health = health.clone();
                async move { health_response(&health).await }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                let health = health_for_metrics.clone();
                async move {
                    // The health checks are metrics too (`barnabee_health_check_ok`), fresh
                    // at every scrape; probes are bounded by PROBE_TIMEOUT.
                    metrics.set_health(&health.report().await);
                    (
                        [(
                            header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        metrics.encode(),
                    )
                }
            }),
        )
}

async fn health_response(health: &Health) -> Response {
    let report = health.report().await;
    let code = if report.http_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(report)).into_response()
}

async fn log_request(mut request: Request, next: Next) -> Response {
    let start = Instant::now();
    let id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(new_request_id);
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    request.extensions_mut().insert(RequestId(id.clone()));
    let mut response = next.run(request).await;
    let latency_ms = start.elapsed().as_secs_f64() * 1000.0;
    let status = response.status().as_u16();
    let level = if path == "/health" || path == "/metrics" {
        log::Level::Debug
    } else if response.status().is_server_error() {
        log::Level::Warn
    } else {
        log::Level::Info
    };
    log::log!(
        level,
        request_id = id.as_str(),
        method = method.as_str(),
        path = path.as_str(),
        status = status,
        latency_ms = format!("{latency_ms:.2}").as_str();
        "{method} {path} {status} in {latency_ms:.1} ms"
    );
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

/// 16 hex digits: a per-process random prefix (so ids from two daemons or two runs do not
/// collide) and a counter.
fn new_request_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static PREFIX: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let prefix = *PREFIX.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        nanos ^ std::process::id().rotate_left(16)
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix:08x}{:08x}", n as u32)
}
