//! Recall by meaning: with `[embeddings]` every memory and conversation turn gets a text embedding from
//! barnabee-inference (`POST <url>` `{"texts": [...], "model": ...}` → `{"embeddings": ...}`,
//! the inference daemon's `/v1/embed/text`), and a search with a text query and no vector gets
//! the query's embedding the same way, so hybrid search works for callers that only have words.
//!
//! - Never on a write's path: a worker embeds memories without a vector (new ones, edited ones,
//!   whose old vector is cleared with the edit, and all of them once at start: the backfill) in
//!   batches, polling every second; a vector is written back only if the memory was not edited
//!   meanwhile. Turns are embedded the same way once no memory waits (memories are what recall
//!   reads first; a backfill of a long chat history must not delay a new memory).
//! - A model change (`[embeddings] model`) re-embeds every memory whose vector came from
//!   another model; until then those are searched with their old vectors (same dimensions) or
//!   not at all (other dimensions are refused by the store).
//! - Inference down: the `embeddings` health check fails (non-critical), the worker retries
//!   with backoff up to 30 s, and searches fall back to full text (the response's `mode` says
//!   `fts`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use barnabee_service::health::Component;
use serde_json::{Value, json};

use crate::config::EmbeddingsConfig;
use crate::store::Store;

/// Memories per inference request.
const BATCH: usize = 16;
/// How long a query embedding may take before the search goes on without it.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

pub struct Embedder {
    url: String,
    pub model: String,
    http: reqwest::Client,
}

impl Embedder {
    pub fn new(cfg: &EmbeddingsConfig) -> Result<Embedder, reqwest::Error> {
        Ok(Embedder {
            url: cfg.url.clone(),
            model: cfg.model.clone(),
            http: barnabee_service::http_client::build(|b| {
                b.no_proxy().timeout(Duration::from_secs(30))
            })?,
        })
    }

    /// One vector per text, in order.
    pub async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, String> {
        let n = texts.len();
        let resp = self
            .http
            .post(&self.url)
            .json(&json!({"texts": texts, "model": self.model}))
            .send()
            .await
            .map_err(|e| format!("{}: {e}", self.url))?;
        let status = resp.status();
        let body: Value = resp
            .json()
            .await
            .map_err(|e| format!("{}: unreadable answer: {e}", self.url))?;
        if !status.is_success() {
            return Err(format!(
                "{}: HTTP {status}: {}",
                self.url,
                body["error"].as_str().unwrap_or("")
            ));
        }
        let vectors: Vec<Vec<f32>> = serde_json::from_value(body["embeddings"].clone())
            .map_err(|e| format!("{}: `embeddings` is not a list of vectors: {e}", self.url))?;
        if vectors.len() != n {
            return Err(format!(
                "{}: {} vectors for {n} texts",
                self.url,
                vectors.len()
            ));
        }
        Ok(vectors)
    }

    /// The query's vector, or `None` (logged) when inference does not answer in time.
    pub async fn embed_query(&self, query: &str) -> Option<Vec<f32>> {
        match tokio::time::timeout(QUERY_TIMEOUT, self.embed(vec![query.to_owned()])).await {
            Ok(Ok(mut v)) => v.pop(),
            Ok(Err(e)) => {
                log::warn!(event = "query_embedding_failed"; "searching by words only: {e}");
                None
            }
            Err(_) => {
                log::warn!(event = "query_embedding_failed"; "searching by words only: no embedding within {QUERY_TIMEOUT:?}");
                None
            }
        }
    }
}

/// Embed what has no vector until `stop`; the health component says how it goes.
pub async fn run(
    store: Arc<Store>,
    e: Arc<Embedder>,
    health: Component,
    stop: barnabee_service::Shutdown,
) {
    let mut backoff = Duration::from_secs(1);
    let (mut memories_total, mut turns_total) = (0u64, 0u64);
    loop {
        let round = match embed_round(&store, &e).await {
            Ok(Round::Idle) => embed_turn_round(&store, &e).await,
            other => other,
        };
        let wait = match round {
            Ok(Round::Idle) => {
                health.ok(format!(
                    "model {} at {}; {memories_total} memories and {turns_total} turns embedded since start",
                    e.model, e.url
                ));
                backoff = Duration::from_secs(1);
                Duration::from_secs(1)
            }
            Ok(Round::Embedded {
                memories,
                turns,
                took,
            }) => {
                memories_total += memories as u64;
                turns_total += turns as u64;
                log::info!(event = "embedded", memories = memories, turns = turns, latency_ms = took.as_secs_f64() * 1e3; "embedded {memories} memories and {turns} turns with {} in {:.0} ms", e.model, took.as_secs_f64() * 1e3);
                backoff = Duration::from_secs(1);
                Duration::ZERO
            }
            Err(err) => {
                log::warn!(event = "embedding_failed"; "{err}; retrying in {} s", backoff.as_secs());
                health.fail(format!("cannot embed: {err}"));
                let w = backoff;
                backoff = (backoff * 2).min(Duration::from_secs(30));
                w
            }
        };
        tokio::select! {
            _ = stop.wait() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// What one round of the worker did.
enum Round {
    /// Nothing was waiting.
    Idle,
    Embedded {
        memories: usize,
        turns: usize,
        took: Duration,
    },
}

/// One batch of turns.
async fn embed_turn_round(store: &Arc<Store>, e: &Embedder) -> Result<Round, String> {
    let t0 = Instant::now();
    let s = store.clone();
    let model = e.model.clone();
    let todo = tokio::task::spawn_blocking(move || s.needing_turn_embedding(&model, BATCH))
        .await
        .map_err(|x| x.to_string())?
        .map_err(|x| x.to_string())?;
    if todo.is_empty() {
        return Ok(Round::Idle);
    }
    let vectors = e
        .embed(todo.iter().map(|t| t.text.clone()).collect())
        .await?;
    let s = store.clone();
    let model = e.model.clone();
    let turns = tokio::task::spawn_blocking(move || -> Result<usize, String> {
        let mut n = 0;
        for (t, v) in todo.iter().zip(vectors) {
            n += usize::from(
                s.set_turn_embedding(t.id, &v, &model)
                    .map_err(|x| x.to_string())?,
            );
        }
        Ok(n)
    })
    .await
    .map_err(|x| x.to_string())??;
    Ok(Round::Embedded {
        memories: 0,
        turns,
        took: t0.elapsed(),
    })
}

/// One batch of memories.
async fn embed_round(store: &Arc<Store>, e: &Embedder) -> Result<Round, String> {
    let t0 = Instant::now();
    let s = store.clone();
    let model = e.model.clone();
    let todo = tokio::task::spawn_blocking(move || s.needing_embedding(&model, BATCH))
        .await
        .map_err(|x| x.to_string())?
        .map_err(|x| x.to_string())?;
    if todo.is_empty() {
        return Ok(Round::Idle);
    }
    let n = todo.len();
    let vectors = e
        .embed(todo.iter().map(|t| t.text.clone()).collect())
        .await?;
    let s = store.clone();
    let model = e.model.clone();
    let written = tokio::task::spawn_blocking(move || -> Result<usize, String> {
        let mut n = 0;
        for (t, v) in todo.iter().zip(vectors) {
            if s.set_embedding(t.id, t.updated_at, &v, &model)
                .map_err(|x| x.to_string())?
            {
                n += 1;
            }
        }
        Ok(n)
    })
    .await
    .map_err(|x| x.to_string())??;
    if written < n {
        log::info!(
            "{} memories were edited while being embedded; they are embedded again",
            n - written
        );
    }
    Ok(Round::Embedded {
        memories: n,
        turns: 0,
        took: t0.elapsed(),
    })
}
