//! `GET /v1/turns/search`: the family's past conversations by words (FTS5 over utterance and
//! response), by meaning (the turns' vectors, schema 2) or both, fused by reciprocal rank as
//! memory search does. "What did I ask you about dinner?" finds "set a timer for the lasagne".
//!
//! Each hit is the turn itself plus how it matched; `similarity` (cosine of the query with
//! what was said) lets a caller drop turns that are merely the nearest of unrelated ones.

use std::collections::HashMap;

use rusqlite::params;
use serde::Serialize;

use crate::error::{StoreError, sql};
use crate::model::{SearchMode, Turn};
use crate::search::{fts_terms, quote, rrf};
use crate::store::{Store, TURN_COLUMNS, turn_row};
use crate::vector::Filter;

/// One search over turns.
#[derive(Debug, Clone)]
pub struct TurnQuery {
    pub query: String,
    /// Only this speaker's conversations.
    pub speaker: Option<String>,
    pub mode: SearchMode,
    /// The query's vector (from the embedder); without it hybrid is full text only.
    pub embedding: Option<Vec<f32>>,
    pub limit: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct TurnHit {
    #[serde(flatten)]
    pub turn: Turn,
    /// Fused score (hybrid), BM25-derived order (fts) or cosine (vector); higher is better.
    pub score: f64,
    pub fts_rank: Option<usize>,
    pub vector_rank: Option<usize>,
    /// Cosine similarity of the query and the turn's vector, when both exist.
    pub similarity: Option<f32>,
}

/// The mode actually run: hybrid without a vector is full text; vector needs one.
pub fn effective_mode(q: &TurnQuery) -> Result<SearchMode, StoreError> {
    let has_text = !fts_terms(&q.query).is_empty();
    match (q.mode, q.embedding.is_some()) {
        (SearchMode::Vector, false) => Err(StoreError::invalid(
            "mode",
            "vector search needs the query embedded; this memory has no [embeddings] or inference did not answer",
        )),
        (SearchMode::Fts | SearchMode::Hybrid, _) if !has_text && q.embedding.is_none() => {
            Err(StoreError::invalid("query", "needs at least one word"))
        }
        (SearchMode::Hybrid, false) => Ok(SearchMode::Fts),
        (m, _) => Ok(m),
    }
}

impl Store {
    /// Full-text search over turns, best first: (turn id, BM25 order).
    fn search_turns_fts(
        &self,
        query: &str,
        speaker: Option<&str>,
        limit: usize,
    ) -> Result<Vec<i64>, StoreError> {
        let terms = fts_terms(query);
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        let matchq = terms
            .iter()
            .map(|t| quote(t))
            .collect::<Vec<_>>()
            .join(" OR ");
        let conn = self.reader();
        self.timed("search_turns", || {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT t.id FROM turns_fts JOIN turns t ON t.id = turns_fts.rowid
                     JOIN conversations c ON c.id = t.conversation_id
                     WHERE turns_fts MATCH ?1 AND (?2 IS NULL OR c.speaker = ?2)
                     ORDER BY bm25(turns_fts) LIMIT ?3",
                )
                .map_err(sql("search turns"))?;
            let rows = stmt
                .query_map(params![matchq, speaker, limit as i64], |r| r.get(0))
                .map_err(sql("search turns"))?;
            rows.collect::<Result<Vec<i64>, _>>()
                .map_err(sql("search turns"))
        })
    }

    /// Nearest turns by meaning: (turn id, cosine), best first.
    fn search_turns_vector(
        &self,
        embedding: &[f32],
        speaker: Option<&str>,
        limit: usize,
    ) -> Vec<(i64, f32)> {
        let filter = Filter {
            // Turns are indexed as family-visible: the requester plays no part.
            requester: String::new(),
            owner: speaker.map(str::to_owned),
            visibility: None,
            memory_types: None,
            since: None,
            until: None,
            now: i64::MIN,
        };
        self.timed("search_turn_vectors", || {
            self.read_turn_vectors().search(embedding, &filter, limit)
        })
    }

    fn turns_by_id(&self, ids: &[i64]) -> Result<HashMap<i64, Turn>, StoreError> {
        let conn = self.reader();
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT {TURN_COLUMNS} FROM turns t WHERE t.id = ?1"
            ))
            .map_err(sql("read turns"))?;
        let mut out = HashMap::new();
        for id in ids {
            let turn = stmt.query_row([id], turn_row).map_err(sql("read turns"))?;
            out.insert(*id, turn);
        }
        Ok(out)
    }

    /// Search turns; see the module documentation.
    pub fn search_turns(&self, q: &TurnQuery, rrf_k: f64) -> Result<Vec<TurnHit>, StoreError> {
        if let Some(e) = &q.embedding {
            self.check_embedding("embedding", e)?;
        }
        let speaker = q.speaker.as_deref();
        let embedding = q.embedding.as_deref().unwrap_or(&[]);
        // (id, score, fts rank, vector rank)
        let ranked: Vec<(i64, f64, Option<usize>, Option<usize>)> = match effective_mode(q)? {
            SearchMode::Fts => self
                .search_turns_fts(&q.query, speaker, q.limit)?
                .into_iter()
                .enumerate()
                .map(|(i, id)| (id, 1.0 / (i + 1) as f64, Some(i + 1), None))
                .collect(),
            SearchMode::Vector => self
                .search_turns_vector(embedding, speaker, q.limit)
                .into_iter()
                .enumerate()
                .map(|(i, (id, s))| (id, f64::from(s), None, Some(i + 1)))
                .collect(),
            SearchMode::Hybrid => {
                let depth = (q.limit * 3).max(30);
                let fts = self.search_turns_fts(&q.query, speaker, depth)?;
                let vec: Vec<i64> = self
                    .search_turns_vector(embedding, speaker, depth)
                    .into_iter()
                    .map(|(id, _)| id)
                    .collect();
                let mut fused = rrf(&fts, &vec, rrf_k);
                fused.truncate(q.limit);
                fused
            }
        };
        let ids: Vec<i64> = ranked.iter().map(|r| r.0).collect();
        let mut turns = self.turns_by_id(&ids)?;
        let index = self.read_turn_vectors();
        Ok(ranked
            .into_iter()
            .filter_map(|(id, score, fts_rank, vector_rank)| {
                Some(TurnHit {
                    turn: turns.remove(&id)?,
                    score,
                    fts_rank,
                    vector_rank,
                    similarity: q.embedding.as_deref().and_then(|e| index.similarity(id, e)),
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::model::{NewConversation, NewTurn};
    use crate::schema::OpenOptions;

    fn open(db: &std::path::Path, migrations: &[crate::migrations::Migration]) -> Store {
        Store::open(db, migrations, &OpenOptions::for_db(db), 1, 3).unwrap()
    }

    fn turn(store: &Store, speaker: &str, utterance: &str) -> i64 {
        let c = store
            .create_conversation(NewConversation {
                speaker: Some(speaker.into()),
                mode: None,
                started_at: None,
                ended_at: None,
                summary: None,
                topic_tags: Vec::new(),
                external_id: None,
            })
            .unwrap();
        store
            .append_turn(
                c.id,
                NewTurn {
                    role: "user".into(),
                    utterance: utterance.into(),
                    response: Some("Okay.".into()),
                    route: Some("instant".into()),
                    latency_ms: None,
                    created_at: None,
                },
            )
            .unwrap()
            .id
    }

    fn q(query: &str, speaker: Option<&str>, mode: SearchMode, e: Option<Vec<f32>>) -> TurnQuery {
        TurnQuery {
            query: query.into(),
            speaker: speaker.map(str::to_owned),
            mode,
            embedding: e,
            limit: 5,
        }
    }

    fn ids(hits: &[TurnHit]) -> Vec<i64> {
        hits.iter().map(|h| h.turn.id).collect()
    }

    /// Turns are embedded after they are written, found by meaning per speaker, fused with
    /// full text, reloaded at open; a turn without a vector is still found by its words.
    #[test]
    fn turns_by_words_and_meaning() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("m.db");
        let store = open(&db, crate::migrations::all());
        let lasagne = turn(&store, "anna", "set a timer for the lasagne");
        let lights = turn(&store, "anna", "turn on the porch light");
        let other = turn(&store, "leo", "start a timer for my pasta");
        let todo: Vec<i64> = store
            .needing_turn_embedding("m", 10)
            .unwrap()
            .iter()
            .map(|t| t.id)
            .collect();
        assert_eq!(todo, vec![lasagne, lights, other]);
        // Three made-up directions: "food", "light", and food again for Leo's turn.
        assert!(
            store
                .set_turn_embedding(lasagne, &[1.0, 0.1, 0.0], "m")
                .unwrap()
        );
        assert!(
            store
                .set_turn_embedding(lights, &[0.0, 1.0, 0.0], "m")
                .unwrap()
        );
        assert!(
            store
                .set_turn_embedding(other, &[0.9, 0.0, 0.1], "m")
                .unwrap()
        );
        assert!(
            !store
                .set_turn_embedding(999, &[1.0, 0.0, 0.0], "m")
                .unwrap()
        );
        assert!(store.set_turn_embedding(lights, &[0.0, 0.0], "m").is_err());
        assert!(store.needing_turn_embedding("m", 10).unwrap().is_empty());
        assert_eq!(store.needing_turn_embedding("new", 10).unwrap().len(), 3);

        let food = Some(vec![1.0, 0.0, 0.0]);
        // By meaning, Anna's only: no shared word with "dinner".
        let hits = store
            .search_turns(
                &q(
                    "what about dinner",
                    Some("anna"),
                    SearchMode::Vector,
                    food.clone(),
                ),
                60.0,
            )
            .unwrap();
        assert_eq!(ids(&hits), vec![lasagne, lights]);
        assert!(hits[0].similarity.unwrap() > 0.99 && hits[1].similarity.unwrap() < 0.2);
        assert_eq!(hits[0].turn.utterance, "set a timer for the lasagne");
        // Hybrid: the word "porch" and the meaning "food" both count.
        let hits = store
            .search_turns(
                &q("porch", Some("anna"), SearchMode::Hybrid, food.clone()),
                60.0,
            )
            .unwrap();
        assert_eq!(hits.len(), 2);
        assert_eq!(hits[0].fts_rank.or(hits[1].fts_rank), Some(1));
        // Hybrid without a vector is full text; vector without one is refused, naming why.
        let hits = store
            .search_turns(&q("timer", None, SearchMode::Hybrid, None), 60.0)
            .unwrap();
        assert_eq!(ids(&hits).len(), 2);
        assert!(
            hits.iter()
                .all(|h| h.similarity.is_none() && h.vector_rank.is_none())
        );
        let err = store
            .search_turns(&q("timer", None, SearchMode::Vector, None), 60.0)
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("vector search needs the query embedded"),
            "{err}"
        );
        // A vector of the wrong length is refused.
        assert!(
            store
                .search_turns(&q("timer", None, SearchMode::Vector, Some(vec![1.0])), 60.0)
                .is_err()
        );
        // A turn appended later has no vector yet and is found by its words meanwhile.
        let late = turn(&store, "anna", "lasagne again tomorrow");
        let hits = store
            .search_turns(
                &q("lasagne", Some("anna"), SearchMode::Hybrid, food.clone()),
                60.0,
            )
            .unwrap();
        assert!(ids(&hits).contains(&late));
        drop(store);

        // Reopened: the vectors come back from the database.
        let store = open(&db, crate::migrations::all());
        let hits = store
            .search_turns(&q("x", Some("leo"), SearchMode::Vector, food), 60.0)
            .unwrap();
        assert_eq!(ids(&hits), vec![other]);
    }

    /// The step is additive: after a rollback, schema-1 code appends and searches turns on the
    /// schema-2 database, and the next schema-2 start embeds what it appended.
    #[test]
    fn schema_one_code_keeps_working_on_turns() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("m.db");
        let all = crate::migrations::all();
        let store = open(&db, all);
        let a = turn(&store, "anna", "water the plants");
        store.set_turn_embedding(a, &[1.0, 0.0, 0.0], "m").unwrap();
        drop(store);
        let old = open(&db, &all[..1]);
        assert_eq!(old.opened().to as usize, all.len());
        let b = turn(&old, "anna", "feed the cat");
        drop(old);
        let store = open(&db, all);
        let todo: Vec<i64> = store
            .needing_turn_embedding("m", 10)
            .unwrap()
            .iter()
            .map(|t| t.id)
            .collect();
        assert_eq!(todo, vec![b]);
        assert_eq!(store.stats().unwrap().turns_with_embedding, 1);
    }
}
