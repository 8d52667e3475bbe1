//! The store: one write connection, a few read connections, and the in-memory vector index.
//!
//! Every method is blocking; the HTTP layer calls them through `spawn_blocking`. Writes are
//! serialised by the writer mutex; the vector index is updated under it after the commit, so
//! its order of updates is the database's.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, RwLock};
use std::time::Instant;

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};

use crate::error::{StoreError, sql};
use crate::migrations::Migration;
use crate::model::*;
use crate::schema::{self, OpenOptions, Opened, SchemaError};
use crate::time::now_ms;
use crate::vector::{Filter, VecMeta, VectorIndex};

pub type LatencyFamily = Family<Vec<(String, String)>, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new([
        0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 30.0, 50.0, 100.0, 250.0, 1000.0,
    ])
}

/// `barnabee_memory_sqlite_query_latency_ms{op}`.
pub fn new_latency_family() -> LatencyFamily {
    Family::new_with_constructor(latency_histogram as fn() -> Histogram)
}

pub struct Store {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    vectors: RwLock<VectorIndex>,
    /// Conversation turns' vectors (schema 2), searched by `crate::turn_search`.
    turn_vectors: RwLock<VectorIndex>,
    opened: Opened,
    code_version: u32,
    query_latency: LatencyFamily,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Full-text searches score at most about this many postings (see [`Store::search_fts`]).
pub const FTS_POSTINGS_BUDGET: i64 = 2500;
/// When every query word is common, the newest this-many memories are ranked first.
pub const FTS_RECENT_WINDOW: i64 = 5000;

/// Text limits; the body limit bounds the total.
const MAX_SUMMARY: usize = 2_000;
const MAX_SHORT: usize = 200;
const MAX_KEYWORDS: usize = 64;

const MEMORY_COLUMNS: &str = "id, summary, content, keywords, memory_type, owner, visibility, source, created_at, updated_at, expires_at, embedding_model, embedding IS NOT NULL, external_id";

impl Store {
    /// Open (create, migrate) the database and load the vector index.
    pub fn open(
        path: &Path,
        migrations: &[Migration],
        opts: &OpenOptions,
        readers: usize,
        dims: usize,
    ) -> Result<Self, SchemaError> {
        let (writer, opened) = schema::open(path, migrations, opts)?;
        let mut conns = Vec::new();
        for _ in 0..readers.max(1) {
            let c = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(|source| SchemaError::Sqlite {
                db: path.to_owned(),
                op: "open reader".into(),
                source,
            })?;
            schema::configure(&c, path, opts)?;
            c.pragma_update(None, "query_only", "ON")
                .map_err(|source| SchemaError::Sqlite {
                    db: path.to_owned(),
                    op: "set query_only".into(),
                    source,
                })?;
            conns.push(Mutex::new(c));
        }
        let store = Self {
            path: path.to_owned(),
            writer: Mutex::new(writer),
            readers: conns,
            next_reader: AtomicUsize::new(0),
            vectors: RwLock::new(VectorIndex::new(dims)),
            turn_vectors: RwLock::new(VectorIndex::new(dims)),
            opened,
            code_version: migrations.last().map_or(0, |m| m.version),
            query_latency: new_latency_family(),
        };
        store
            .load_vectors()
            .and_then(|()| store.load_turn_vectors())
            .map_err(|e| SchemaError::Sqlite {
                db: path.to_owned(),
                op: format!("load embeddings: {e}"),
                source: rusqlite::Error::InvalidQuery,
            })?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn opened(&self) -> &Opened {
        &self.opened
    }

    pub fn dims(&self) -> usize {
        self.read_vectors().dims()
    }

    pub fn query_latency(&self) -> LatencyFamily {
        self.query_latency.clone()
    }

    fn read_vectors(&self) -> std::sync::RwLockReadGuard<'_, VectorIndex> {
        self.vectors.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn write_vectors(&self) -> std::sync::RwLockWriteGuard<'_, VectorIndex> {
        self.vectors.write().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn read_turn_vectors(&self) -> std::sync::RwLockReadGuard<'_, VectorIndex> {
        self.turn_vectors.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn write_turn_vectors(&self) -> std::sync::RwLockWriteGuard<'_, VectorIndex> {
        self.turn_vectors.write().unwrap_or_else(|e| e.into_inner())
    }

    /// A read connection (round robin; waits if all are busy).
    pub(crate) fn reader(&self) -> MutexGuard<'_, Connection> {
        let n = self.readers.len();
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            if let Ok(g) = self.readers[(start + i) % n].try_lock() {
                return g;
            }
        }
        lock(&self.readers[start % n])
    }

    pub(crate) fn writer(&self) -> MutexGuard<'_, Connection> {
        lock(&self.writer)
    }

    pub(crate) fn timed<T>(&self, op: &str, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = f();
        self.query_latency
            .get_or_create(&vec![("op".to_owned(), op.to_owned())])
            .observe(start.elapsed().as_secs_f64() * 1000.0);
        out
    }

    fn load_vectors(&self) -> Result<(), StoreError> {
        let conn = self.reader();
        let mut stmt = conn
            .prepare("SELECT id, owner, visibility, memory_type, created_at, expires_at, embedding FROM memories WHERE embedding IS NOT NULL")
            .map_err(sql("load embeddings"))?;
        let mut rows = stmt.query([]).map_err(sql("load embeddings"))?;
        let mut idx = self.write_vectors();
        let mut skipped = 0usize;
        while let Some(row) = rows.next().map_err(sql("load embeddings"))? {
            let (id, meta) = vec_meta(row).map_err(sql("load embeddings"))?;
            let blob: Vec<u8> = row.get(6).map_err(sql("load embeddings"))?;
            if !idx.upsert(id, &blob_to_f32(&blob), &meta) {
                skipped += 1;
            }
        }
        if skipped > 0 {
            log::warn!(
                "{skipped} stored embeddings have another length than {} or are zero; they are not searchable by vector",
                idx.dims()
            );
        }
        Ok(())
    }

    // ---- validation -------------------------------------------------------------------

    pub(crate) fn check_embedding(&self, field: &str, v: &[f32]) -> Result<(), StoreError> {
        let dims = self.dims();
        if v.len() != dims {
            return Err(StoreError::invalid(
                field,
                format!("has {} values, this store uses {dims}", v.len()),
            ));
        }
        if v.iter().any(|x| !x.is_finite()) {
            return Err(StoreError::invalid(field, "contains a non-finite value"));
        }
        if v.iter().all(|x| *x == 0.0) {
            return Err(StoreError::invalid(field, "is all zeros"));
        }
        Ok(())
    }

    // ---- memories ---------------------------------------------------------------------

    pub fn create_memory(&self, new: NewMemory) -> Result<Memory, StoreError> {
        check_text("summary", &new.summary, MAX_SUMMARY, true)?;
        check_text("owner", &new.owner, MAX_SHORT, true)?;
        check_word_list("keywords", &new.keywords)?;
        if let Some(s) = &new.source {
            check_text("source", s, MAX_SHORT, false)?;
        }
        if let Some(e) = &new.embedding {
            self.check_embedding("embedding", e)?;
        }
        if let Some(x) = &new.external_id {
            check_text("external_id", x, MAX_SHORT, true)?;
        }
        let now = now_ms();
        let created = new.created_at.unwrap_or(now);
        let keywords = json_list(&new.keywords);
        let blob = new.embedding.as_deref().map(f32_to_blob);
        let model = new.embedding.as_ref().map(|_| {
            new.embedding_model
                .clone()
                .unwrap_or_else(|| "caller".into())
        });
        let conn = self.writer();
        let id = self.timed("insert_memory", || -> Result<i64, StoreError> {
            let tx = conn.unchecked_transaction().map_err(sql("begin"))?;
            let res = tx.execute(
                "INSERT INTO memories (summary, content, keywords, memory_type, owner, visibility, source, created_at, updated_at, expires_at, embedding, embedding_model, external_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                params![new.summary.trim(), new.content, keywords, new.memory_type.as_str(), new.owner.trim(), new.visibility.as_str(), new.source, created, now, new.expires_at, blob, model, new.external_id],
            );
            match res {
                Err(e) if is_unique_violation(&e) => {
                    return Err(StoreError::Conflict(format!(
                        "a memory with external_id {:?} already exists",
                        new.external_id.as_deref().unwrap_or_default()
                    )));
                }
                other => other.map_err(sql("insert memory"))?,
            };
            let id = tx.last_insert_rowid();
            audit(&tx, Some(new.owner.trim()), "create", "memory", &id.to_string(), None)?;
            tx.commit().map_err(sql("commit"))?;
            Ok(id)
        })?;
        if let Some(e) = &new.embedding {
            let meta = VecMeta {
                owner: new.owner.trim().to_owned(),
                visibility: new.visibility,
                memory_type: new.memory_type,
                created_at: created,
                expires_at: new.expires_at,
            };
            self.write_vectors().upsert(id, e, &meta);
        }
        drop(conn);
        self.get_memory_unchecked(id)?
            .ok_or_else(|| not_found("memory", id))
    }

    /// Fetch without visibility rules (internal).
    fn get_memory_unchecked(&self, id: i64) -> Result<Option<Memory>, StoreError> {
        let conn = self.reader();
        self.timed("get_memory", || {
            conn.prepare_cached(&format!(
                "SELECT {MEMORY_COLUMNS} FROM memories WHERE id = ?1"
            ))
            .and_then(|mut s| s.query_row([id], memory_row).optional())
            .map_err(sql("get memory"))
        })
    }

    /// A memory as `requester` may see it: another owner's private memory is "not found".
    pub fn get_memory(&self, id: i64, requester: &str) -> Result<Memory, StoreError> {
        match self.get_memory_unchecked(id)? {
            Some(m) if visible(&m, requester) => Ok(m),
            _ => Err(not_found("memory", id)),
        }
    }

    pub fn update_memory(
        &self,
        id: i64,
        requester: &str,
        patch: MemoryPatch,
    ) -> Result<Memory, StoreError> {
        if let Some(s) = &patch.summary {
            check_text("summary", s, MAX_SUMMARY, true)?;
        }
        if let Some(k) = &patch.keywords {
            check_word_list("keywords", k)?;
        }
        if let Some(Some(s)) = &patch.source {
            check_text("source", s, MAX_SHORT, false)?;
        }
        if let Some(Some(e)) = &patch.embedding {
            self.check_embedding("embedding", e)?;
        }
        let conn = self.writer();
        let current = self.get_memory(id, requester)?;
        let summary = patch
            .summary
            .as_deref()
            .map(str::trim)
            .unwrap_or(&current.summary)
            .to_owned();
        let content = patch.content.clone().unwrap_or(current.content.clone());
        let keywords = patch.keywords.clone().unwrap_or(current.keywords.clone());
        let memory_type = patch.memory_type.unwrap_or(current.memory_type);
        let visibility = patch.visibility.unwrap_or(current.visibility);
        let source = patch.source.clone().unwrap_or(current.source.clone());
        let expires_at = patch.expires_at.unwrap_or(current.expires_at);
        let now = now_ms();
        self.timed("update_memory", || -> Result<(), StoreError> {
            let tx = conn.unchecked_transaction().map_err(sql("begin"))?;
            tx.execute(
                "UPDATE memories SET summary=?2, content=?3, keywords=?4, memory_type=?5, visibility=?6, source=?7, expires_at=?8, updated_at=?9 WHERE id=?1",
                params![id, summary, content, json_list(&keywords), memory_type.as_str(), visibility.as_str(), source, expires_at, now],
            )
            .map_err(sql("update memory"))?;
            // New words without a new vector: the old vector no longer describes the memory;
            // clear it (the embedder computes a new one, when configured).
            let text_changed = summary != current.summary || content != current.content;
            if patch.embedding.is_none() && text_changed {
                tx.execute(
                    "UPDATE memories SET embedding=NULL, embedding_model=NULL WHERE id=?1",
                    [id],
                )
                .map_err(sql("clear embedding"))?;
            }
            match &patch.embedding {
                Some(Some(e)) => {
                    let model = patch.embedding_model.clone().unwrap_or_else(|| "caller".into());
                    tx.execute(
                        "UPDATE memories SET embedding=?2, embedding_model=?3 WHERE id=?1",
                        params![id, f32_to_blob(e), model],
                    )
                    .map_err(sql("update embedding"))?;
                }
                Some(None) => {
                    tx.execute(
                        "UPDATE memories SET embedding=NULL, embedding_model=NULL WHERE id=?1",
                        [id],
                    )
                    .map_err(sql("clear embedding"))?;
                }
                None => {}
            }
            audit(&tx, Some(requester), "update", "memory", &id.to_string(), None)?;
            tx.commit().map_err(sql("commit"))
        })?;
        let meta = VecMeta {
            owner: current.owner.clone(),
            visibility,
            memory_type,
            created_at: current.created_at,
            expires_at,
        };
        {
            let mut idx = self.write_vectors();
            let text_changed = summary != current.summary || content != current.content;
            match &patch.embedding {
                Some(Some(e)) => {
                    idx.upsert(id, e, &meta);
                }
                Some(None) => idx.remove(id),
                None if text_changed => idx.remove(id),
                None => idx.update_meta(id, &meta),
            }
        }
        drop(conn);
        self.get_memory(id, requester)
    }

    pub fn delete_memory(&self, id: i64, requester: &str) -> Result<(), StoreError> {
        let conn = self.writer();
        self.get_memory(id, requester)?;
        self.timed("delete_memory", || -> Result<(), StoreError> {
            let tx = conn.unchecked_transaction().map_err(sql("begin"))?;
            tx.execute("DELETE FROM memories WHERE id = ?1", [id])
                .map_err(sql("delete memory"))?;
            audit(
                &tx,
                Some(requester),
                "delete",
                "memory",
                &id.to_string(),
                None,
            )?;
            tx.commit().map_err(sql("commit"))
        })?;
        self.write_vectors().remove(id);
        Ok(())
    }

    /// Newest first, as `requester` may see them.
    pub fn list_memories(
        &self,
        filter: &Filter,
        limit: usize,
        before_id: Option<i64>,
    ) -> Result<Vec<Memory>, StoreError> {
        let conn = self.reader();
        let bound = FilterParams::of(filter);
        self.timed("list_memories", || {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {MEMORY_COLUMNS} FROM memories m WHERE {FILTER_SQL} AND (?9 IS NULL OR m.id < ?9) ORDER BY m.id DESC LIMIT ?10"
                ))
                .map_err(sql("list memories"))?;
            let rows = stmt
                .query_map(
                    &*bound.with(&[&Option::<i64>::None, &before_id, &(limit as i64)]),
                    memory_row,
                )
                .map_err(sql("list memories"))?;
            rows.collect::<Result<Vec<_>, _>>()
                .map_err(sql("list memories"))
        })
    }

    // ---- search -----------------------------------------------------------------------

    /// Full-text search: (id, bm25 score, higher better), best first.
    ///
    /// BM25 in FTS5 scores every matching row, so the cost follows the number of matches, not
    /// `k`. To bound it: stopwords are dropped; each term's document frequency is counted (the
    /// count stops at [`FTS_POSTINGS_BUDGET`]); terms are taken rarest first while the sum of
    /// their frequencies stays within the budget (the rarest always). The terms left out are
    /// the common ones, whose IDF weight is near zero, so the ranking of the top results barely
    /// changes. When even the rarest word is in more memories than the budget, only the newest
    /// [`FTS_RECENT_WINDOW`] memories are ranked (then all, if that finds fewer than `k`).
    /// The ranked FTS list is then cut to a window and filtered
    /// (owner/visibility/type/time) by a join on just that window, widened if the filter left
    /// fewer than `k`.
    pub fn search_fts(
        &self,
        query: &str,
        filter: &Filter,
        k: usize,
    ) -> Result<Vec<(i64, f64)>, StoreError> {
        let terms = crate::search::fts_terms(query);
        if terms.is_empty() || k == 0 {
            return Ok(Vec::new());
        }
        let bound = FilterParams::of(filter);
        let conn = self.reader();
        self.timed("search_fts", || {
            let mut df = conn
                .prepare_cached(
                    "SELECT count(*) FROM (SELECT 1 FROM memories_fts WHERE memories_fts MATCH ?1 LIMIT ?2)",
                )
                .map_err(sql("search"))?;
            let mut counted = Vec::with_capacity(terms.len());
            for t in &terms {
                let n: i64 = df
                    .query_row(params![crate::search::quote(t), FTS_POSTINGS_BUDGET + 1], |r| r.get(0))
                    .map_err(sql("search"))?;
                if n > 0 {
                    counted.push((n, t));
                }
            }
            counted.sort();
            let mut chosen = Vec::new();
            let mut postings = 0i64;
            for (n, t) in counted {
                if chosen.is_empty() || postings + n <= FTS_POSTINGS_BUDGET {
                    chosen.push(crate::search::quote(t));
                    postings += n;
                }
            }
            if chosen.is_empty() {
                return Ok(Vec::new());
            }
            let matchq = chosen.join(" OR ");
            // Every word is common (the rarest is in more than the budget's memories): rank
            // only the newest FTS_RECENT_WINDOW memories first, which bounds the work; fall back
            // to all of them if the filter leaves fewer than k there.
            let mut floor = i64::MIN;
            if postings > FTS_POSTINGS_BUDGET {
                let max: Option<i64> = conn
                    .query_row("SELECT max(id) FROM memories", [], |r| r.get(0))
                    .map_err(sql("search"))?;
                floor = max.unwrap_or(0) - FTS_RECENT_WINDOW;
            }
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT f.rowid, f.score FROM (
                         SELECT rowid, bm25(memories_fts, 3.0, 1.0, 2.0) AS score FROM memories_fts
                         WHERE memories_fts MATCH ?8 AND rowid > ?11 ORDER BY score LIMIT ?9
                     ) f JOIN memories m ON m.id = f.rowid
                     WHERE {FILTER_SQL}
                     ORDER BY f.score LIMIT ?10"
                ))
                .map_err(sql("search"))?;
            let mut window = (k as i64 * 8).max(200);
            loop {
                let rows = stmt
                    .query_map(
                        &*bound.with(&[&matchq, &window, &(k as i64), &floor]),
                        |r| Ok((r.get::<_, i64>(0)?, -r.get::<_, f64>(1)?)),
                    )
                    .map_err(sql("search"))?;
                let found = rows.collect::<Result<Vec<_>, _>>().map_err(sql("search"))?;
                if found.len() >= k {
                    return Ok(found);
                }
                // Did the window hold every match? Above the floor at most FTS_RECENT_WINDOW
                // rows match; otherwise `postings` is an upper bound unless it was capped.
                let complete = if floor == i64::MIN {
                    window > postings && postings <= FTS_POSTINGS_BUDGET
                } else {
                    window > FTS_RECENT_WINDOW
                };
                if complete && floor != i64::MIN {
                    floor = i64::MIN;
                    continue;
                }
                if complete || window >= i64::from(i32::MAX) {
                    return Ok(found);
                }
                window = window.saturating_mul(8);
            }
        })
    }

    /// Vector search: (id, cosine), best first.
    pub fn search_vector(&self, query: &[f32], filter: &Filter, k: usize) -> Vec<(i64, f32)> {
        self.timed("search_vector", || {
            self.read_vectors().search(query, filter, k)
        })
    }

    /// Cosine similarity of `query` and memory `id`'s vector, if it has one.
    pub fn memory_similarity(&self, id: i64, query: &[f32]) -> Option<f32> {
        self.read_vectors().similarity(id, query)
    }

    /// Fetch many memories by id, keeping the order given; vanished ids are skipped.
    pub fn memories_by_id(&self, ids: &[i64]) -> Result<Vec<Memory>, StoreError> {
        let conn = self.reader();
        self.timed("hydrate", || {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {MEMORY_COLUMNS} FROM memories WHERE id = ?1"
                ))
                .map_err(sql("hydrate"))?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some(m) = stmt
                    .query_row([id], memory_row)
                    .optional()
                    .map_err(sql("hydrate"))?
                {
                    out.push(m);
                }
            }
            Ok(out)
        })
    }

    // ---- conversations ------------------------------------------------------------------

    pub fn create_conversation(&self, new: NewConversation) -> Result<Conversation, StoreError> {
        for (field, v) in [("speaker", &new.speaker), ("mode", &new.mode)] {
            if let Some(v) = v {
                check_text(field, v, MAX_SHORT, true)?;
            }
        }
        check_word_list("topic_tags", &new.topic_tags)?;
        let started = new.started_at.unwrap_or_else(now_ms);
        let conn = self.writer();
        let id = self.timed("insert_conversation", || -> Result<i64, StoreError> {
            let res = conn.execute(
                "INSERT INTO conversations (started_at, ended_at, speaker, mode, summary, topic_tags, external_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![started, new.ended_at, new.speaker, new.mode, new.summary, json_list(&new.topic_tags), new.external_id],
            );
            match res {
                Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(format!(
                    "a conversation with external_id {:?} already exists",
                    new.external_id.as_deref().unwrap_or_default()
                ))),
                other => other.map(|_| conn.last_insert_rowid()).map_err(sql("insert conversation")),
            }
        })?;
        drop(conn);
        self.get_conversation(id, false)
    }

    pub fn update_conversation(
        &self,
        id: i64,
        patch: ConversationPatch,
    ) -> Result<Conversation, StoreError> {
        if let Some(t) = &patch.topic_tags {
            check_word_list("topic_tags", t)?;
        }
        let current = self.get_conversation(id, false)?;
        let conn = self.writer();
        self.timed("update_conversation", || {
            conn.execute(
                "UPDATE conversations SET ended_at=?2, summary=?3, topic_tags=?4, mode=?5 WHERE id=?1",
                params![
                    id,
                    patch.ended_at.unwrap_or(current.ended_at),
                    patch.summary.clone().unwrap_or(current.summary.clone()),
                    json_list(patch.topic_tags.as_ref().unwrap_or(&current.topic_tags)),
                    patch.mode.clone().unwrap_or(current.mode.clone()),
                ],
            )
            .map_err(sql("update conversation"))
        })?;
        drop(conn);
        self.get_conversation(id, false)
    }

    pub fn get_conversation(&self, id: i64, with_turns: bool) -> Result<Conversation, StoreError> {
        let mut conv = {
            let conn = self.reader();
            self.timed("get_conversation", || {
                conn.prepare_cached(&format!(
                    "SELECT {CONV_COLUMNS} FROM conversations c WHERE c.id = ?1"
                ))
                .and_then(|mut s| s.query_row([id], conversation_row).optional())
                .map_err(sql("get conversation"))
            })?
            .ok_or_else(|| not_found("conversation", id))?
        };
        if with_turns {
            conv.turns = Some(self.turns(id)?);
        }
        Ok(conv)
    }

    pub fn list_conversations(
        &self,
        speaker: Option<&str>,
        since: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Conversation>, StoreError> {
        let conn = self.reader();
        self.timed("list_conversations", || {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {CONV_COLUMNS} FROM conversations c WHERE (?1 IS NULL OR c.speaker = ?1) AND (?2 IS NULL OR c.started_at >= ?2) ORDER BY c.started_at DESC, c.id DESC LIMIT ?3"
                ))
                .map_err(sql("list conversations"))?;
            let rows = stmt
                .query_map(params![speaker, since, limit as i64], conversation_row)
                .map_err(sql("list conversations"))?;
            rows.collect::<Result<Vec<_>, _>>()
                .map_err(sql("list conversations"))
        })
    }

    pub fn append_turn(&self, conversation: i64, new: NewTurn) -> Result<Turn, StoreError> {
        check_text("utterance", &new.utterance, 64 * 1024, false)?;
        check_text("role", &new.role, MAX_SHORT, true)?;
        if let Some(r) = &new.route {
            check_text("route", r, MAX_SHORT, true)?;
        }
        if new.latency_ms.is_some_and(|l| l < 0) {
            return Err(StoreError::invalid("latency_ms", "must be >= 0"));
        }
        let conn = self.writer();
        let id = self.timed("append_turn", || -> Result<i64, StoreError> {
            let tx = conn.unchecked_transaction().map_err(sql("begin"))?;
            let ended: Option<Option<i64>> = tx
                .query_row("SELECT ended_at FROM conversations WHERE id = ?1", [conversation], |r| r.get(0))
                .optional()
                .map_err(sql("append turn"))?;
            match ended {
                None => return Err(not_found("conversation", conversation)),
                Some(Some(_)) => {
                    return Err(StoreError::Conflict(format!(
                        "conversation {conversation} has ended; start a new one"
                    )));
                }
                Some(None) => {}
            }
            tx.execute(
                "INSERT INTO turns (conversation_id, number, role, utterance, response, route, latency_ms, created_at)
                 VALUES (?1, (SELECT COALESCE(MAX(number), 0) + 1 FROM turns WHERE conversation_id = ?1), ?2, ?3, ?4, ?5, ?6, ?7)",
                params![conversation, new.role, new.utterance, new.response, new.route, new.latency_ms, new.created_at.unwrap_or_else(now_ms)],
            )
            .map_err(sql("append turn"))?;
            let id = tx.last_insert_rowid();
            tx.commit().map_err(sql("commit"))?;
            Ok(id)
        })?;
        drop(conn);
        let conn = self.reader();
        conn.query_row(
            &format!("SELECT {TURN_COLUMNS} FROM turns t WHERE t.id = ?1"),
            [id],
            turn_row,
        )
        .map_err(sql("get turn"))
    }

    pub fn turns(&self, conversation: i64) -> Result<Vec<Turn>, StoreError> {
        let conn = self.reader();
        self.timed("list_turns", || {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {TURN_COLUMNS} FROM turns t WHERE t.conversation_id = ?1 ORDER BY t.number"
                ))
                .map_err(sql("list turns"))?;
            let rows = stmt
                .query_map([conversation], turn_row)
                .map_err(sql("list turns"))?;
            rows.collect::<Result<Vec<_>, _>>().map_err(sql("list turns"))
        })
    }

    /// The speaker's latest turns across conversations, newest first.
    pub fn recent_turns(
        &self,
        speaker: &str,
        since: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Turn>, StoreError> {
        let conn = self.reader();
        self.timed("recent_turns", || {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {TURN_COLUMNS} FROM turns t JOIN conversations c ON c.id = t.conversation_id
                     WHERE c.speaker = ?1 AND (?2 IS NULL OR t.created_at >= ?2)
                     ORDER BY t.created_at DESC, t.id DESC LIMIT ?3"
                ))
                .map_err(sql("recent turns"))?;
            let rows = stmt
                .query_map(params![speaker, since, limit as i64], turn_row)
                .map_err(sql("recent turns"))?;
            rows.collect::<Result<Vec<_>, _>>()
                .map_err(sql("recent turns"))
        })
    }

    // ---- speakers ---------------------------------------------------------------------

    pub fn put_speaker(&self, name: &str, up: SpeakerUpdate) -> Result<SpeakerProfile, StoreError> {
        check_text("name", name, MAX_SHORT, true)?;
        check_text(
            "embedding_model_hash",
            &up.embedding_model_hash,
            MAX_SHORT,
            true,
        )?;
        if up.centroid.is_empty() || up.centroid.len() > 8192 {
            return Err(StoreError::invalid("centroid", "must have 1..=8192 values"));
        }
        if up.centroid.iter().any(|x| !x.is_finite()) {
            return Err(StoreError::invalid(
                "centroid",
                "contains a non-finite value",
            ));
        }
        if up.sample_count < 0 {
            return Err(StoreError::invalid("sample_count", "must be >= 0"));
        }
        let conn = self.writer();
        self.timed("put_speaker", || -> Result<(), StoreError> {
            let tx = conn.unchecked_transaction().map_err(sql("begin"))?;
            tx.execute(
                "INSERT INTO speaker_profiles (name, embedding_model_hash, centroid, sample_count, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(name) DO UPDATE SET embedding_model_hash=excluded.embedding_model_hash, centroid=excluded.centroid, sample_count=excluded.sample_count, updated_at=excluded.updated_at",
                params![name, up.embedding_model_hash, f32_to_blob(&up.centroid), up.sample_count, now_ms()],
            )
            .map_err(sql("put speaker"))?;
            audit(&tx, None, "put", "speaker", name, Some(&up.embedding_model_hash))?;
            tx.commit().map_err(sql("commit"))
        })?;
        drop(conn);
        self.get_speaker(name)
    }

    pub fn get_speaker(&self, name: &str) -> Result<SpeakerProfile, StoreError> {
        let conn = self.reader();
        conn.query_row(
            "SELECT name, embedding_model_hash, centroid, sample_count, updated_at FROM speaker_profiles WHERE name = ?1",
            [name],
            speaker_row,
        )
        .optional()
        .map_err(sql("get speaker"))?
        .ok_or_else(|| StoreError::NotFound {
            kind: "speaker",
            id: name.to_owned(),
        })
    }

    pub fn list_speakers(&self) -> Result<Vec<SpeakerProfile>, StoreError> {
        let conn = self.reader();
        let mut stmt = conn
            .prepare_cached("SELECT name, embedding_model_hash, centroid, sample_count, updated_at FROM speaker_profiles ORDER BY name")
            .map_err(sql("list speakers"))?;
        let rows = stmt
            .query_map([], speaker_row)
            .map_err(sql("list speakers"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(sql("list speakers"))
    }

    pub fn delete_speaker(&self, name: &str) -> Result<(), StoreError> {
        let conn = self.writer();
        let n = conn
            .execute("DELETE FROM speaker_profiles WHERE name = ?1", [name])
            .map_err(sql("delete speaker"))?;
        if n == 0 {
            return Err(StoreError::NotFound {
                kind: "speaker",
                id: name.to_owned(),
            });
        }
        audit(&conn, None, "delete", "speaker", name, None)
    }

    // ---- stats and maintenance ------------------------------------------------------------

    /// Bytes of the database file plus its WAL.
    pub fn db_bytes(&self) -> u64 {
        let size = |p: PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        size(self.path.clone()) + size(PathBuf::from(format!("{}-wal", self.path.display())))
    }

    pub fn stats(&self) -> Result<Stats, StoreError> {
        let conn = self.reader();
        let count = |q: &str| -> Result<i64, StoreError> {
            conn.query_row(q, [], |r| r.get(0)).map_err(sql("stats"))
        };
        let mut by_type = std::collections::BTreeMap::new();
        {
            let mut stmt = conn
                .prepare_cached("SELECT memory_type, count(*) FROM memories GROUP BY memory_type")
                .map_err(sql("stats"))?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                .map_err(sql("stats"))?;
            for row in rows {
                let (t, n) = row.map_err(sql("stats"))?;
                by_type.insert(t, n);
            }
        }
        let meta = schema::read_meta(&conn, &self.path).ok().flatten();
        Ok(Stats {
            memories: count("SELECT count(*) FROM memories")?,
            memories_by_type: by_type,
            memories_with_embedding: count(
                "SELECT count(*) FROM memories WHERE embedding IS NOT NULL",
            )?,
            conversations: count("SELECT count(*) FROM conversations")?,
            turns: count("SELECT count(*) FROM turns")?,
            turns_with_embedding: count("SELECT count(*) FROM turns WHERE embedding IS NOT NULL")?,
            speakers: count("SELECT count(*) FROM speaker_profiles")?,
            db_bytes: self.db_bytes(),
            schema_version: meta.as_ref().map_or(0, |m| m.schema_version),
            min_reader_version: meta.as_ref().map_or(0, |m| m.min_reader_version),
            code_version: self.code_version,
        })
    }

    pub fn memory_count(&self) -> Result<i64, StoreError> {
        let conn = self.reader();
        conn.query_row("SELECT count(*) FROM memories", [], |r| r.get(0))
            .map_err(sql("count memories"))
    }

    /// A cheap liveness query.
    pub fn ping(&self) -> Result<(), StoreError> {
        let conn = self.reader();
        conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
            .map(|_| ())
            .map_err(sql("ping"))
    }

    /// `PRAGMA integrity_check`: "ok" or the problems found.
    pub fn integrity_check(&self) -> Result<Vec<String>, StoreError> {
        let conn = self.reader();
        self.timed("integrity_check", || {
            let mut stmt = conn
                .prepare("PRAGMA integrity_check")
                .map_err(sql("integrity_check"))?;
            let rows = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(sql("integrity_check"))?;
            rows.collect::<Result<Vec<_>, _>>()
                .map_err(sql("integrity_check"))
        })
    }

    pub fn optimize(&self) -> Result<(), StoreError> {
        let conn = self.writer();
        self.timed("optimize", || {
            conn.execute_batch("PRAGMA optimize;")
                .map_err(sql("optimize"))
        })
    }

    /// Return up to `pages` free pages to the file system; returns the free pages left.
    pub fn incremental_vacuum(&self, pages: u32) -> Result<i64, StoreError> {
        let conn = self.writer();
        self.timed("incremental_vacuum", || {
            conn.execute_batch(&format!("PRAGMA incremental_vacuum({pages});"))
                .map_err(sql("incremental vacuum"))?;
            conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))
                .map_err(sql("freelist_count"))
        })
    }

    /// Delete memories whose `expires_at` has passed; returns how many.
    pub fn delete_expired(&self, now: i64) -> Result<Vec<i64>, StoreError> {
        let conn = self.writer();
        let ids = self.timed("retention", || -> Result<Vec<i64>, StoreError> {
            let tx = conn.unchecked_transaction().map_err(sql("begin"))?;
            let ids: Vec<i64> = {
                let mut stmt = tx
                    .prepare("DELETE FROM memories WHERE expires_at IS NOT NULL AND expires_at <= ?1 RETURNING id")
                    .map_err(sql("retention"))?;
                let rows = stmt.query_map([now], |r| r.get(0)).map_err(sql("retention"))?;
                rows.collect::<Result<_, _>>().map_err(sql("retention"))?
            };
            if !ids.is_empty() {
                audit(&tx, Some("maintenance"), "expire", "memory", &format!("{} memories", ids.len()), None)?;
            }
            tx.commit().map_err(sql("commit"))?;
            Ok(ids)
        })?;
        let mut idx = self.write_vectors();
        for id in &ids {
            idx.remove(*id);
        }
        Ok(ids)
    }

    /// Delete audit-log entries older than `before` (Unix ms); returns how many.
    pub fn prune_audit(&self, before: i64) -> Result<usize, StoreError> {
        let conn = self.writer();
        self.timed("prune_audit", || {
            conn.execute("DELETE FROM audit_log WHERE at < ?1", [before])
                .map_err(sql("prune audit log"))
        })
    }

    /// Run `f` with the write connection inside one transaction (the importer's batches).
    /// Run `f` with the write connection held, outside any transaction: the daemon's own
    /// writers wait meanwhile, so what `f` reads (on that connection) is the last committed
    /// state and stays it until `f` returns. The backup verification ships everything
    /// committed and counts rows under it (`crate::verify`).
    pub fn with_writes_held<T>(&self, f: impl FnOnce(&rusqlite::Connection) -> T) -> T {
        let conn = self.writer();
        f(&conn)
    }

    pub fn with_write_tx<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let conn = self.writer();
        let tx = conn.unchecked_transaction().map_err(sql("begin"))?;
        let out = f(&tx)?;
        tx.commit().map_err(sql("commit"))?;
        Ok(out)
    }
}

/// The shared visibility/owner/type/time filter; parameters ?1..?7.
const FILTER_SQL: &str = "(m.visibility = 'family' OR m.owner = ?1)
    AND (?2 IS NULL OR m.owner = ?2)
    AND (?3 IS NULL OR m.visibility = ?3)
    AND (?4 IS NULL OR m.created_at >= ?4)
    AND (?5 IS NULL OR m.created_at < ?5)
    AND (m.expires_at IS NULL OR m.expires_at > ?6)
    AND (?7 IS NULL OR m.memory_type IN (SELECT value FROM json_each(?7)))";

/// The values of [`FILTER_SQL`]'s `?1`..`?7`, in that order; a statement's own parameters
/// follow from `?8` ([`FilterParams::with`]).
struct FilterParams<'a> {
    filter: &'a Filter,
    visibility: Option<&'static str>,
    types: Option<String>,
}

impl<'a> FilterParams<'a> {
    fn of(filter: &'a Filter) -> Self {
        FilterParams {
            filter,
            visibility: filter.visibility.map(|v| v.as_str()),
            types: filter
                .memory_types
                .as_ref()
                .map(|t| json_list(&t.iter().map(|t| t.as_str().to_owned()).collect::<Vec<_>>())),
        }
    }

    /// `?1`..`?7`, then `rest` as `?8`, `?9`, ...
    fn with<'b>(&'b self, rest: &[&'b dyn rusqlite::ToSql]) -> Vec<&'b dyn rusqlite::ToSql> {
        let f = self.filter;
        let mut v: Vec<&dyn rusqlite::ToSql> = vec![
            &f.requester,
            &f.owner,
            &self.visibility,
            &f.since,
            &f.until,
            &f.now,
            &self.types,
        ];
        v.extend_from_slice(rest);
        v
    }
}

const CONV_COLUMNS: &str = "c.id, c.started_at, c.ended_at, c.speaker, c.mode, c.summary, c.topic_tags, (SELECT count(*) FROM turns WHERE conversation_id = c.id)";
pub(crate) const TURN_COLUMNS: &str = "t.id, t.conversation_id, t.number, t.role, t.utterance, t.response, t.route, t.latency_ms, t.created_at";

pub fn visible(m: &Memory, requester: &str) -> bool {
    m.visibility == Visibility::Family || m.owner == requester
}

fn not_found(kind: &'static str, id: i64) -> StoreError {
    StoreError::NotFound {
        kind,
        id: id.to_string(),
    }
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE)
}

pub fn audit(
    conn: &Connection,
    actor: Option<&str>,
    action: &str,
    kind: &str,
    target: &str,
    detail: Option<&str>,
) -> Result<(), StoreError> {
    conn.prepare_cached("INSERT INTO audit_log (at, actor, action, target_kind, target_id, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
        .and_then(|mut s| s.execute(params![now_ms(), actor, action, kind, target, detail]))
        .map(|_| ())
        .map_err(sql("audit"))
}

pub fn check_text(field: &str, v: &str, max: usize, required: bool) -> Result<(), StoreError> {
    if required && v.trim().is_empty() {
        return Err(StoreError::invalid(field, "must not be empty"));
    }
    if v.chars().count() > max {
        return Err(StoreError::invalid(
            field,
            format!("longer than {max} characters"),
        ));
    }
    Ok(())
}

/// A list of short words (`keywords`, `topic_tags`): at most [`MAX_KEYWORDS`], each non-empty
/// and short; errors name the element (`keywords[3]`).
fn check_word_list(field: &str, k: &[String]) -> Result<(), StoreError> {
    if k.len() > MAX_KEYWORDS {
        return Err(StoreError::invalid(
            field,
            format!("more than {MAX_KEYWORDS}"),
        ));
    }
    for (i, w) in k.iter().enumerate() {
        check_text(&format!("{field}[{i}]"), w, MAX_SHORT, true)?;
    }
    Ok(())
}

pub fn json_list(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

fn parse_list(s: String) -> Vec<String> {
    serde_json::from_str(&s).unwrap_or_default()
}

fn bad_enum(col: usize, v: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        col,
        rusqlite::types::Type::Text,
        format!("unexpected value {v:?}").into(),
    )
}

fn memory_row(r: &Row<'_>) -> rusqlite::Result<Memory> {
    let t: String = r.get(4)?;
    let v: String = r.get(6)?;
    Ok(Memory {
        id: r.get(0)?,
        summary: r.get(1)?,
        content: r.get(2)?,
        keywords: parse_list(r.get(3)?),
        memory_type: MemoryType::parse(&t).ok_or_else(|| bad_enum(4, &t))?,
        owner: r.get(5)?,
        visibility: Visibility::parse(&v).ok_or_else(|| bad_enum(6, &v))?,
        source: r.get(7)?,
        created_at: r.get(8)?,
        updated_at: r.get(9)?,
        expires_at: r.get(10)?,
        embedding_model: r.get(11)?,
        has_embedding: r.get(12)?,
        external_id: r.get(13)?,
    })
}

pub(crate) fn vec_meta(r: &Row<'_>) -> rusqlite::Result<(i64, VecMeta)> {
    let v: String = r.get(2)?;
    let t: String = r.get(3)?;
    Ok((
        r.get(0)?,
        VecMeta {
            owner: r.get(1)?,
            visibility: Visibility::parse(&v).ok_or_else(|| bad_enum(2, &v))?,
            memory_type: MemoryType::parse(&t).ok_or_else(|| bad_enum(3, &t))?,
            created_at: r.get(4)?,
            expires_at: r.get(5)?,
        },
    ))
}

fn conversation_row(r: &Row<'_>) -> rusqlite::Result<Conversation> {
    Ok(Conversation {
        id: r.get(0)?,
        started_at: r.get(1)?,
        ended_at: r.get(2)?,
        speaker: r.get(3)?,
        mode: r.get(4)?,
        summary: r.get(5)?,
        topic_tags: parse_list(r.get(6)?),
        turn_count: r.get(7)?,
        turns: None,
    })
}

pub(crate) fn turn_row(r: &Row<'_>) -> rusqlite::Result<Turn> {
    Ok(Turn {
        id: r.get(0)?,
        conversation_id: r.get(1)?,
        number: r.get(2)?,
        role: r.get(3)?,
        utterance: r.get(4)?,
        response: r.get(5)?,
        route: r.get(6)?,
        latency_ms: r.get(7)?,
        created_at: r.get(8)?,
    })
}

fn speaker_row(r: &Row<'_>) -> rusqlite::Result<SpeakerProfile> {
    let blob: Vec<u8> = r.get(2)?;
    Ok(SpeakerProfile {
        name: r.get(0)?,
        embedding_model_hash: r.get(1)?,
        centroid: blob_to_f32(&blob),
        sample_count: r.get(3)?,
        updated_at: r.get(4)?,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn filter(requester: &str) -> Filter {
        Filter {
            requester: requester.into(),
            owner: None,
            visibility: None,
            memory_types: None,
            since: None,
            until: None,
            now: now_ms(),
        }
    }

    /// Past the postings budget: only common words, ranked among the newest first, and the
    /// fallback to all memories when the filter leaves too few there.
    #[test]
    fn common_words_are_bounded_and_fall_back_when_filtered() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("m.db");
        let store = Store::open(
            &db,
            crate::migrations::all(),
            &OpenOptions::for_db(&db),
            1,
            4,
        )
        .unwrap();
        let n = FTS_POSTINGS_BUDGET + FTS_RECENT_WINDOW + 100;
        store
            .with_write_tx(|tx| {
                for i in 0..n {
                    // The oldest memory is the only one "zed" owns; everything says "common".
                    let owner = if i == 0 { "zed" } else { "a" };
                    tx.execute(
                        "INSERT INTO memories (summary, memory_type, owner, visibility, created_at, updated_at) VALUES (?1, 'fact', ?2, 'family', 1, 1)",
                        params![format!("common word number {i}"), owner],
                    )
                    .unwrap();
                }
                Ok(())
            })
            .unwrap();
        let hits = store.search_fts("common", &filter("a"), 10).unwrap();
        assert_eq!(hits.len(), 10);
        assert!(
            hits.iter().all(|h| h.0 > n - FTS_RECENT_WINDOW),
            "ranked among the newest"
        );
        let mut f = filter("a");
        f.owner = Some("zed".into());
        let hits = store.search_fts("common", &f, 10).unwrap();
        assert_eq!(hits.iter().map(|h| h.0).collect::<Vec<_>>(), vec![1]);
        // A rare word next to the common one is searched exactly.
        let hits = store.search_fts("common 17", &filter("a"), 1).unwrap();
        assert_eq!(hits[0].0, 18);
    }
}
