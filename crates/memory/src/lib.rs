//! barnabee-memory: the family's long-term memory (daemon layer; depends on barnabee-service).
//!
//! SQLite (WAL, foreign keys, FTS5) behind a JSON HTTP API on loopback: memories with
//! full-text, vector and hybrid search, conversations and their turns, speaker profiles, an
//! audit log. The schema carries a compatibility contract (`schema`, `migrations`) so upgrades
//! snapshot first and rollbacks either work or refuse without writing.

pub mod api;
pub mod audit_api;
pub mod config;
pub mod embed_store;
pub mod embedder;
pub mod error;
pub mod import;
pub mod maintenance;
pub mod migrations;
pub mod model;
pub mod replication;
pub mod schema;
pub mod search;
pub mod store;
pub mod time;
pub mod turn_search;
pub mod vector;
pub mod verify;

use std::sync::Arc;
use std::time::Duration;

use barnabee_service::{Check, Runtime};
use prometheus_client::metrics::gauge::Gauge;

use crate::config::Config;
use crate::schema::OpenOptions;
use crate::store::Store;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Path(#[from] config::PathError),
    #[error(transparent)]
    Schema(#[from] schema::SchemaError),
    #[error(transparent)]
    Replication(#[from] replication::ReplicationError),
    #[error(transparent)]
    Serve(#[from] barnabee_service::ServeError),
    #[error("start-up task failed: {0}")]
    Join(String),
    #[error("cannot build the embeddings client: {0}")]
    HttpClient(String),
}

/// Connection options from the config.
pub fn open_options(cfg: &Config, db: &std::path::Path) -> OpenOptions {
    OpenOptions {
        snapshot_dir: cfg.database.resolved_snapshot_dir(db),
        busy_timeout: cfg.database.busy_timeout,
        synchronous: cfg.database.synchronous,
        replication_owns_checkpoints: cfg.replication.is_some(),
    }
}

/// Open (create, migrate) the store the config names.
pub fn open_store(cfg: &Config) -> Result<Store, RunError> {
    let db = cfg.database.resolved_path()?;
    Ok(Store::open(
        &db,
        migrations::all(),
        &open_options(cfg, &db),
        cfg.database.readers,
        cfg.search.embedding_dimensions,
    )?)
}

/// The daemon: restore from the replica if the database is missing, open and migrate it,
/// start replication and maintenance, serve; after the drain, ship what is committed.
/// READY=1 is sent only once all of that is done.
pub async fn run(cfg: Config, rt: Runtime) -> Result<(), RunError> {
    let cfg = Arc::new(cfg);
    let db = cfg.database.resolved_path()?;
    // A restore downloads the whole database: give systemd time (TimeoutStartSec).
    replication::restore_in_daemon(&rt, cfg.replication.as_ref(), &db, Duration::from_secs(900))
        .await?;
    rt.status("opening database");
    // Migrations and snapshots of a large database can take a while.
    rt.extend_timeout(Duration::from_secs(300));
    let c = cfg.clone();
    let store = tokio::task::spawn_blocking(move || open_store(&c))
        .await
        .map_err(|e| RunError::Join(e.to_string()))??;
    let opened = store.opened().clone();
    log::info!(event = "database_open", schema_version = opened.to; "database {} open: schema {} -> {} (min reader {}){}", store.path().display(), opened.from, opened.to, opened.min_reader, opened.snapshot.as_ref().map(|s| format!(", snapshot {}", s.display())).unwrap_or_default());
    let store = Arc::new(store);

    let replication = replication::start_in_daemon(
        &rt,
        cfg.replication.as_ref(),
        store.path(),
        replication::UNIT,
    )
    .await?;

    let verifier = verify::Verifier::new(
        cfg.replication.as_ref(),
        store.clone(),
        replication.handle(),
        rt.metrics(),
    );
    let health = rt.health().clone();
    let v = verifier.clone();
    health.probe("backup_verify", move || {
        let c = v.check();
        async move { c }
    });
    let embeddings_health = health.component(
        "embeddings",
        match &cfg.embeddings {
            None => Check::fail("not configured (FTS only)").non_critical(),
            Some(e) => {
                Check::ok(format!("model {} at {}: starting", e.model, e.url)).non_critical()
            }
        },
    );
    let embedder = match &cfg.embeddings {
        Some(e) => Some(Arc::new(
            embedder::Embedder::new(e).map_err(|e| RunError::HttpClient(e.to_string()))?,
        )),
        None => None,
    };
    let s = store.clone();
    health.probe("database", move || {
        let s = s.clone();
        async move {
            match tokio::task::spawn_blocking(move || s.ping()).await {
                Ok(Ok(())) => Check::ok("SELECT 1 ok"),
                Ok(Err(e)) => Check::fail(e.to_string()),
                Err(e) => Check::fail(e.to_string()),
            }
        }
    });
    let maintenance_health = health.component(
        "maintenance",
        Check::ok("waiting for first pass").non_critical(),
    );

    use barnabee_service::catalog;
    let metrics = rt.metrics();
    let retrieval = api::retrieval_histogram();
    metrics.register_def(&catalog::MEMORY_RETRIEVAL_LATENCY, retrieval.clone());
    metrics.register_def(&catalog::MEMORY_SQLITE_QUERY_LATENCY, store.query_latency());
    let gauges = maintenance::Gauges {
        db_bytes: Gauge::default(),
        memories: Gauge::default(),
    };
    metrics.register_def(&catalog::MEMORY_DB_SIZE, gauges.db_bytes.clone());
    metrics.register_def(&catalog::MEMORY_MEMORIES, gauges.memories.clone());
    let schema_gauge = Gauge::<i64>::default();
    schema_gauge.set(i64::from(opened.to));
    metrics.register_def(&catalog::MEMORY_SCHEMA_VERSION, schema_gauge);
    gauges.refresh(&store);

    let heartbeat = rt.heartbeat(
        "maintenance",
        (cfg.maintenance.tick * 4).max(Duration::from_secs(120)),
    );
    let worker = tokio::spawn(maintenance::run(
        store.clone(),
        cfg.maintenance.clone(),
        heartbeat,
        maintenance_health,
        gauges,
        rt.shutdown(),
    ));

    let verify_task = tokio::spawn(verifier.clone().schedule(rt.shutdown()));
    let embed_task = embedder.clone().map(|e| {
        tokio::spawn(embedder::run(
            store.clone(),
            e,
            embeddings_health.clone(),
            rt.shutdown(),
        ))
    });
    let state = api::AppState {
        verifier,
        store: store.clone(),
        config: cfg.clone(),
        health,
        retrieval_latency: retrieval,
        embedder,
    };
    let shutdown = rt.shutdown();
    let listener = rt.bind().await?;
    if let (Some(replica), Ok(addr)) = (replication.replica(), listener.local_addr()) {
        // `serve_on` sends READY=1 with STATUS="serving on ..."; then name the replica too.
        let line = if replication.is_held() {
            format!("serving on http://{addr}; NOT replicating to {replica} (see /health)")
        } else {
            format!("serving on http://{addr}; replicating to {replica}")
        };
        let notifier = rt.notifier().clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let _ = notifier.status(&line);
        });
    }
    let served = rt.serve_on(listener, api::router(state)).await;
    shutdown.trigger();
    let _ = worker.await;
    if let Some(t) = embed_task {
        let _ = t.await;
    }
    // A verification in flight only reads the replica and writes its temporary directory
    // (removed at the next start if cut short): stop it rather than wait for a long restore.
    verify_task.abort();
    let _ = verify_task.await;
    // After the drain every acknowledged write is committed: ship it (bounded), then stop.
    // The replicator returns once its own connection is closed (without checkpointing), so
    // the next start resumes incrementally.
    replication.shutdown().await;
    served?;
    Ok(())
}
