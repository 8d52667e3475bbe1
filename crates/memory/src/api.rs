//! The HTTP API (JSON). Bad input is a 400 naming the field, a missing record a 404, a
//! conflicting one a 409; only a fault of the daemon itself is a 500. Database work runs on the
//! blocking pool, never on the async runtime's threads.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use barnabee_service::Health;
use prometheus_client::metrics::histogram::Histogram;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::config::Config;
use crate::error::StoreError;
use crate::model::*;
use crate::store::Store;
use crate::time::now_ms;
use crate::vector::Filter;

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<Store>,
    /// The backup verification (`/v1/backup/*`).
    pub verifier: Arc<crate::verify::Verifier>,
    pub config: Arc<Config>,
    pub health: Health,
    /// `barnabee_memory_retrieval_latency_ms`.
    pub retrieval_latency: Histogram,
    /// `[embeddings]`: computes a text query's vector for hybrid and vector search.
    pub embedder: Option<Arc<crate::embedder::Embedder>>,
}

pub fn retrieval_histogram() -> Histogram {
    Histogram::new([
        0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 25.0, 40.0, 50.0, 100.0, 250.0, 1000.0,
    ])
}

/// An error answer: `{"error": "...", "field": "..."}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    field: Option<String>,
    message: String,
}

impl ApiError {
    fn bad(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            field: Some(field.into()),
            message: message.into(),
        }
    }

    fn internal(message: String) -> Self {
        log::error!(event = "incident"; "internal error: {message}");
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            field: None,
            message: "internal error; see the daemon's log".into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Invalid { field, message } => {
                ApiError::bad(field.clone(), format!("{field}: {message}"))
            }
            StoreError::NotFound { .. } => ApiError {
                status: StatusCode::NOT_FOUND,
                field: None,
                message: e.to_string(),
            },
            StoreError::Conflict(m) => ApiError {
                status: StatusCode::CONFLICT,
                field: None,
                message: m,
            },
            StoreError::Busy { .. } => ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                field: None,
                message: e.to_string(),
            },
            StoreError::Sqlite { .. } => ApiError::internal(e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = match &self.field {
            Some(f) => json!({"error": self.message, "field": f}),
            None => json!({"error": self.message}),
        };
        (self.status, axum::Json(body)).into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// Parse a JSON body; errors name the field (`keywords[2]`, `summary`, ...).
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.to_string();
        // serde reports missing and unknown fields at the parent's path; name the key itself.
        let named = message
            .strip_prefix("missing field `")
            .or_else(|| message.strip_prefix("unknown field `"))
            .and_then(|rest| rest.split('`').next());
        let field = match (named, path.as_str()) {
            (Some(key), "." | "") => key.to_owned(),
            (Some(key), p) if p == key || p.ends_with(&format!(".{key}")) => p.to_owned(),
            (Some(key), parent) => format!("{parent}.{key}"),
            (None, "." | "") => "body".to_owned(),
            (None, p) => p.to_owned(),
        };
        ApiError::bad(field.clone(), format!("{field}: {message}"))
    })?;
    de.end()
        .map_err(|e| ApiError::bad("body", format!("trailing data after the JSON value: {e}")))?;
    Ok(value)
}

type Params = Query<HashMap<String, String>>;

fn param<T: std::str::FromStr>(q: &HashMap<String, String>, name: &str) -> ApiResult<Option<T>> {
    match q.get(name) {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| ApiError::bad(name, format!("{name}: cannot parse {v:?}"))),
    }
}

fn required(q: &HashMap<String, String>, name: &str) -> ApiResult<String> {
    match q.get(name) {
        Some(v) if !v.trim().is_empty() => Ok(v.trim().to_owned()),
        _ => Err(ApiError::bad(
            name,
            format!("{name}: query parameter is required"),
        )),
    }
}

fn limit(q: &HashMap<String, String>, cfg: &Config) -> ApiResult<usize> {
    let n = param::<usize>(q, "limit")?.unwrap_or(cfg.search.default_limit);
    if n == 0 || n > cfg.search.max_limit {
        return Err(ApiError::bad(
            "limit",
            format!("limit: must be between 1 and {}", cfg.search.max_limit),
        ));
    }
    Ok(n)
}

fn id(raw: &str) -> ApiResult<i64> {
    raw.parse()
        .map_err(|_| ApiError::bad("id", format!("id: {raw:?} is not an integer")))
}

/// Run blocking database work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> ApiResult<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(ApiError::from),
        Err(join) => Err(ApiError::internal(format!("database task failed: {join}"))),
    }
}

fn created<T: Serialize>(v: T) -> Response {
    (StatusCode::CREATED, axum::Json(v)).into_response()
}

fn ok<T: Serialize>(v: T) -> Response {
    axum::Json(v).into_response()
}

pub fn router(state: AppState) -> Router {
    let limit = state.config.http.max_body_bytes;
    Router::new()
        .route("/v1/memories", get(list_memories).post(create_memory))
        .route(
            "/v1/memories/{id}",
            get(get_memory).patch(update_memory).delete(delete_memory),
        )
        .route("/v1/search", axum::routing::post(search))
        .route("/v1/turns/search", get(search_turns))
        .route(
            "/v1/conversations",
            get(list_conversations).post(create_conversation),
        )
        .route("/v1/conversations/recent", get(recent_turns))
        .route(
            "/v1/conversations/{id}",
            get(get_conversation).patch(update_conversation),
        )
        .route(
            "/v1/conversations/{id}/turns",
            get(list_turns).post(append_turn),
        )
        .route("/v1/speakers", get(list_speakers))
        .route(
            "/v1/speakers/{name}",
            get(get_speaker).put(put_speaker).delete(delete_speaker),
        )
        .route("/v1/stats", get(stats))
        .route("/v1/audit", get(read_audit).post(append_audit))
        .route("/v1/backup/verify", axum::routing::post(backup_verify))
        .route("/v1/backup/status", get(backup_status))
        .route("/health/detailed", get(health_detailed))
        .fallback(|| async {
            ApiError {
                status: StatusCode::NOT_FOUND,
                field: None,
                message: "no such endpoint".into(),
            }
        })
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

async fn create_memory(State(s): State<AppState>, body: Bytes) -> ApiResult<Response> {
    let new: NewMemory = parse_json(&body)?;
    let store = s.store.clone();
    Ok(created(blocking(move || store.create_memory(new)).await?))
}

async fn get_memory(
    State(s): State<AppState>,
    Path(raw): Path<String>,
    Query(q): Params,
) -> ApiResult<Response> {
    let id = id(&raw)?;
    let requester = required(&q, "requester")?;
    let store = s.store.clone();
    Ok(ok(blocking(move || store.get_memory(id, &requester)).await?))
}

async fn update_memory(
    State(s): State<AppState>,
    Path(raw): Path<String>,
    Query(q): Params,
    body: Bytes,
) -> ApiResult<Response> {
    let id = id(&raw)?;
    let requester = required(&q, "requester")?;
    let patch: MemoryPatch = parse_json(&body)?;
    let store = s.store.clone();
    Ok(ok(blocking(move || {
        store.update_memory(id, &requester, patch)
    })
    .await?))
}

async fn delete_memory(
    State(s): State<AppState>,
    Path(raw): Path<String>,
    Query(q): Params,
) -> ApiResult<Response> {
    let id = id(&raw)?;
    let requester = required(&q, "requester")?;
    let store = s.store.clone();
    blocking(move || store.delete_memory(id, &requester)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn filter_from_query(q: &HashMap<String, String>) -> ApiResult<Filter> {
    let memory_types = match q.get("memory_type") {
        None => None,
        Some(list) => Some(
            list.split(',')
                .map(|t| {
                    MemoryType::parse(t.trim()).ok_or_else(|| {
                        ApiError::bad("memory_type", format!("memory_type: unknown type {t:?}"))
                    })
                })
                .collect::<ApiResult<Vec<_>>>()?,
        ),
    };
    let visibility =
        match q.get("visibility") {
            None => None,
            Some(v) => Some(Visibility::parse(v).ok_or_else(|| {
                ApiError::bad("visibility", "visibility: must be private or family")
            })?),
        };
    Ok(Filter {
        requester: required(q, "requester")?,
        owner: q.get("owner").cloned(),
        visibility,
        memory_types,
        since: param(q, "since")?,
        until: param(q, "until")?,
        now: now_ms(),
    })
}

async fn list_memories(State(s): State<AppState>, Query(q): Params) -> ApiResult<Response> {
    let filter = filter_from_query(&q)?;
    let n = limit(&q, &s.config)?;
    let before = param::<i64>(&q, "before")?;
    let store = s.store.clone();
    Ok(ok(blocking(move || {
        store.list_memories(&filter, n, before)
    })
    .await?))
}

async fn search(State(s): State<AppState>, body: Bytes) -> ApiResult<Response> {
    let mut req: SearchRequest = parse_json(&body)?;
    let start = Instant::now();
    // Words only, and a mode that uses vectors: the query's vector from inference (without it,
    // hybrid falls back to full text; the response's `mode` says which ran).
    if let (Some(e), None, Some(q)) = (&s.embedder, &req.embedding, req.query.as_deref())
        && matches!(req.mode, SearchMode::Hybrid | SearchMode::Vector)
        && !q.trim().is_empty()
    {
        req.embedding = e.embed_query(q).await;
    }
    let store = s.store.clone();
    let cfg = s.config.clone();
    let resp = blocking(move || crate::search::search(&store, &req, &cfg.search)).await?;
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    s.retrieval_latency.observe(ms);
    log::debug!(latency_ms = ms, results = resp.results.len(); "search served");
    Ok(ok(resp))
}

async fn search_turns(State(s): State<AppState>, Query(q): Params) -> ApiResult<Response> {
    let query = required(&q, "query")?;
    let mode = match q.get("mode").map(String::as_str) {
        None | Some("hybrid") => SearchMode::Hybrid,
        Some("fts") => SearchMode::Fts,
        Some("vector") => SearchMode::Vector,
        Some(other) => {
            return Err(ApiError::bad(
                "mode",
                format!("mode: {other:?} is not one of fts, vector, hybrid"),
            ));
        }
    };
    let start = Instant::now();
    let embedding = match &s.embedder {
        Some(e) if mode != SearchMode::Fts => e.embed_query(&query).await,
        _ => None,
    };
    let tq = crate::turn_search::TurnQuery {
        query,
        speaker: q.get("speaker").cloned(),
        mode,
        embedding,
        limit: limit(&q, &s.config)?,
    };
    let store = s.store.clone();
    let rrf_k = s.config.search.rrf_k;
    let turns = blocking(move || store.search_turns(&tq, rrf_k)).await?;
    s.retrieval_latency
        .observe(start.elapsed().as_secs_f64() * 1000.0);
    Ok(ok(turns))
}

async fn create_conversation(State(s): State<AppState>, body: Bytes) -> ApiResult<Response> {
    let new: NewConversation = parse_json(&body)?;
    let store = s.store.clone();
    Ok(created(
        blocking(move || store.create_conversation(new)).await?,
    ))
}

async fn list_conversations(State(s): State<AppState>, Query(q): Params) -> ApiResult<Response> {
    let speaker = q.get("speaker").cloned();
    let since = param::<i64>(&q, "since")?;
    let n = limit(&q, &s.config)?;
    let store = s.store.clone();
    Ok(ok(blocking(move || {
        store.list_conversations(speaker.as_deref(), since, n)
    })
    .await?))
}

async fn recent_turns(State(s): State<AppState>, Query(q): Params) -> ApiResult<Response> {
    let speaker = required(&q, "speaker")?;
    let since = param::<i64>(&q, "since")?;
    let n = limit(&q, &s.config)?;
    let store = s.store.clone();
    Ok(ok(
        blocking(move || store.recent_turns(&speaker, since, n)).await?
    ))
}

async fn get_conversation(
    State(s): State<AppState>,
    Path(raw): Path<String>,
    Query(q): Params,
) -> ApiResult<Response> {
    let id = id(&raw)?;
    let with_turns = param::<bool>(&q, "turns")?.unwrap_or(true);
    let store = s.store.clone();
    Ok(ok(
        blocking(move || store.get_conversation(id, with_turns)).await?
    ))
}

async fn update_conversation(
    State(s): State<AppState>,
    Path(raw): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let id = id(&raw)?;
    let patch: ConversationPatch = parse_json(&body)?;
    let store = s.store.clone();
    Ok(ok(
        blocking(move || store.update_conversation(id, patch)).await?
    ))
}

async fn list_turns(State(s): State<AppState>, Path(raw): Path<String>) -> ApiResult<Response> {
    let id = id(&raw)?;
    let store = s.store.clone();
    Ok(ok(blocking(move || {
        store.get_conversation(id, false)?;
        store.turns(id)
    })
    .await?))
}

async fn append_turn(
    State(s): State<AppState>,
    Path(raw): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let id = id(&raw)?;
    let new: NewTurn = parse_json(&body)?;
    let store = s.store.clone();
    Ok(created(blocking(move || store.append_turn(id, new)).await?))
}

async fn list_speakers(State(s): State<AppState>) -> ApiResult<Response> {
    let store = s.store.clone();
    Ok(ok(blocking(move || store.list_speakers()).await?))
}

async fn get_speaker(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult<Response> {
    let store = s.store.clone();
    Ok(ok(blocking(move || store.get_speaker(&name)).await?))
}

async fn put_speaker(
    State(s): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let up: SpeakerUpdate = parse_json(&body)?;
    let store = s.store.clone();
    Ok(ok(blocking(move || store.put_speaker(&name, up)).await?))
}

async fn delete_speaker(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    let store = s.store.clone();
    blocking(move || store.delete_speaker(&name)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /v1/audit`: another daemon's entry in the audit log (`crate::audit_api`).
async fn append_audit(State(s): State<AppState>, body: Bytes) -> ApiResult<Response> {
    let e: crate::audit_api::NewAuditEntry = parse_json(&body)?;
    let store = s.store.clone();
    blocking(move || store.append_audit(&e)).await?;
    Ok(StatusCode::CREATED.into_response())
}

/// `GET /v1/audit?action=&limit=` (limit 1..=1000, default 50), newest first.
async fn read_audit(State(s): State<AppState>, Query(q): Params) -> ApiResult<Response> {
    let limit = param::<usize>(&q, "limit")?.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad("limit", "must be between 1 and 1000"));
    }
    let action = q.get("action").cloned();
    let store = s.store.clone();
    let entries = blocking(move || store.audit_entries(action.as_deref(), limit)).await?;
    Ok(ok(serde_json::json!({"entries": entries})))
}

async fn stats(State(s): State<AppState>) -> ApiResult<Response> {
    let store = s.store.clone();
    Ok(ok(blocking(move || store.stats()).await?))
}

/// Run a restore verification now: 200 with the result when it passed, 503 with the result
/// when it failed (the body says why), 409 without `[replication]`.
async fn backup_verify(State(s): State<AppState>) -> ApiResult<Response> {
    if s.config.replication.is_none() {
        return Err(ApiError {
            status: StatusCode::CONFLICT,
            field: None,
            message: "replication is not configured: nothing to verify".into(),
        });
    }
    let v = s.verifier.verify("request").await;
    let code = if v.ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok((code, axum::Json(v)).into_response())
}

/// Replica, lag, restore points, last verification.
async fn backup_status(State(s): State<AppState>) -> ApiResult<Response> {
    Ok(ok(s.verifier.status().await))
}

/// `/health`'s checks plus `PRAGMA integrity_check` (run now) and the schema numbers.
async fn health_detailed(State(s): State<AppState>) -> ApiResult<Response> {
    let report = s.health.report().await;
    let store = s.store.clone();
    let start = Instant::now();
    let (integrity, stats) =
        blocking(move || Ok((store.integrity_check()?, store.stats()?))).await?;
    let integrity_ok = integrity.len() == 1 && integrity[0] == "ok";
    let healthy = report.http_ok() && integrity_ok;
    let body = json!({
        "status": if integrity_ok { serde_json::to_value(report.status).unwrap_or_default() } else { json!("unhealthy") },
        "checks": report.checks,
        "integrity_check": {"ok": integrity_ok, "messages": integrity, "took_ms": start.elapsed().as_secs_f64() * 1000.0},
        "database": {
            "path": s.store.path().display().to_string(),
            "schema_version": stats.schema_version,
            "min_reader_version": stats.min_reader_version,
            "code_version": stats.code_version,
            "bytes": stats.db_bytes,
            "memories": stats.memories,
        },
    });
    let code = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok((code, axum::Json(body)).into_response())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn json_errors_name_the_field() {
        let e = parse_json::<NewMemory>(br#"{"summary": "x", "owner": "a"}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("memory_type"));
        let e =
            parse_json::<NewMemory>(br#"{"summary": "x", "owner": "a", "memory_type": "gossip"}"#)
                .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("memory_type"));
        let e = parse_json::<NewMemory>(
            br#"{"summary": "x", "owner": "a", "memory_type": "fact", "keywords": ["a", 3]}"#,
        )
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("keywords[1]"));
        let e = parse_json::<NewMemory>(
            br#"{"summary": "x", "owner": "a", "memory_type": "fact", "colour": 1}"#,
        )
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("colour"));
        let e = parse_json::<NewMemory>(b"{not json").unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
    }
}
