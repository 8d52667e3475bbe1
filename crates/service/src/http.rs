//! The HTTP surface every daemon has: `/health` and `/metrics`, merged with the daemon's own
//! routes. Bad requests to those routes are the daemon's business; these two never fail.

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::health::Health;
use crate::metrics::Metrics;

/// The daemon's routes plus `/health` and `/metrics`.
pub fn router(routes: Router, health: Health, metrics: Metrics) -> Router {
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
                async move {
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
