//! What the embedder ([`crate::embedder`]) needs from the store: the memories and conversation
//! turns without a vector of the configured model, and writing one back (a memory's only if it
//! did not change meanwhile; turns are never edited).

use rusqlite::params;

use crate::error::{StoreError, sql};
use crate::model::blob_to_f32;
use crate::model::f32_to_blob;
use crate::store::{Store, vec_meta};
use crate::vector::VecMeta;

/// A memory waiting for its vector.
#[derive(Debug, Clone, PartialEq)]
pub struct ToEmbed {
    pub id: i64,
    /// What is embedded: the summary and the content.
    pub text: String,
    /// The version the vector is computed for (a later edit makes it stale).
    pub updated_at: i64,
}

/// A conversation turn waiting for its vector.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnToEmbed {
    pub id: i64,
    /// What is embedded: what the person said. The reply is left out on purpose: replies repeat
    /// themselves across turns ("I can't reach my memory right now") and would pull unrelated
    /// turns together; their words stay searchable by full text.
    pub text: String,
}

impl Store {
    /// Up to `limit` memories with no vector, or one from another model than `model`
    /// (a model change re-embeds everything), oldest first.
    pub fn needing_embedding(&self, model: &str, limit: usize) -> Result<Vec<ToEmbed>, StoreError> {
        let conn = self.reader();
        let mut st = conn
            .prepare(
                "SELECT id, summary, content, updated_at FROM memories
                 WHERE embedding IS NULL OR embedding_model IS NOT ?1 ORDER BY id LIMIT ?2",
            )
            .map_err(sql("select memories to embed"))?;
        let rows = st
            .query_map(params![model, limit as i64], |r| {
                let summary: String = r.get(1)?;
                let content: String = r.get(2)?;
                Ok(ToEmbed {
                    id: r.get(0)?,
                    text: if content.trim().is_empty() || content.trim() == summary.trim() {
                        summary
                    } else {
                        format!("{summary}\n{content}")
                    },
                    updated_at: r.get(3)?,
                })
            })
            .map_err(sql("select memories to embed"))?;
        rows.collect::<Result<_, _>>()
            .map_err(sql("select memories to embed"))
    }

    /// Store `vector` for memory `id` as computed for version `updated_at`; `false` when the
    /// memory was edited or deleted meanwhile (the next round embeds the new words). Does not
    /// touch `updated_at`: a vector is not an edit.
    pub fn set_embedding(
        &self,
        id: i64,
        updated_at: i64,
        vector: &[f32],
        model: &str,
    ) -> Result<bool, StoreError> {
        self.check_embedding("embedding", vector)?;
        let conn = self.writer();
        let changed = self.timed("set_embedding", || {
            conn.execute(
                "UPDATE memories SET embedding=?3, embedding_model=?4 WHERE id=?1 AND updated_at=?2",
                params![id, updated_at, f32_to_blob(vector), model],
            )
            .map_err(sql("store embedding"))
        })?;
        if changed == 0 {
            return Ok(false);
        }
        let meta = conn
            .query_row(
                "SELECT id, owner, visibility, memory_type, created_at, expires_at FROM memories WHERE id=?1",
                [id],
                vec_meta,
            )
            .map_err(sql("read memory for the vector index"))?;
        self.write_vectors().upsert(id, vector, &meta.1);
        Ok(true)
    }
}

impl Store {
    /// Load the turns' vectors into their index (at open; rows of other lengths are skipped).
    pub(crate) fn load_turn_vectors(&self) -> Result<(), StoreError> {
        let conn = self.reader();
        let mut stmt = conn
            .prepare(
                "SELECT t.id, c.speaker, t.created_at, t.embedding FROM turns t
                 JOIN conversations c ON c.id = t.conversation_id WHERE t.embedding IS NOT NULL",
            )
            .map_err(sql("load turn embeddings"))?;
        let mut rows = stmt.query([]).map_err(sql("load turn embeddings"))?;
        let mut idx = self.write_turn_vectors();
        let mut skipped = 0usize;
        while let Some(row) = rows.next().map_err(sql("load turn embeddings"))? {
            let id: i64 = row.get(0).map_err(sql("load turn embeddings"))?;
            let speaker: Option<String> = row.get(1).map_err(sql("load turn embeddings"))?;
            let created_at: i64 = row.get(2).map_err(sql("load turn embeddings"))?;
            let blob: Vec<u8> = row.get(3).map_err(sql("load turn embeddings"))?;
            let meta = VecMeta::turn(speaker.as_deref(), created_at);
            if !idx.upsert(id, &blob_to_f32(&blob), &meta) {
                skipped += 1;
            }
        }
        if skipped > 0 {
            log::warn!(
                "{skipped} stored turn embeddings have another length than {} or are zero; those turns are found by words only",
                idx.dims()
            );
        }
        Ok(())
    }

    /// Up to `limit` turns with no vector, or one from another model than `model`, oldest first.
    pub fn needing_turn_embedding(
        &self,
        model: &str,
        limit: usize,
    ) -> Result<Vec<TurnToEmbed>, StoreError> {
        let conn = self.reader();
        let mut st = conn
            .prepare(
                "SELECT id, utterance FROM turns
                 WHERE embedding IS NULL OR embedding_model IS NOT ?1 ORDER BY id LIMIT ?2",
            )
            .map_err(sql("select turns to embed"))?;
        let rows = st
            .query_map(params![model, limit as i64], |r| {
                Ok(TurnToEmbed {
                    id: r.get(0)?,
                    text: r.get(1)?,
                })
            })
            .map_err(sql("select turns to embed"))?;
        rows.collect::<Result<_, _>>()
            .map_err(sql("select turns to embed"))
    }

    /// Store `vector` for turn `id`; `false` when the turn does not exist.
    pub fn set_turn_embedding(
        &self,
        id: i64,
        vector: &[f32],
        model: &str,
    ) -> Result<bool, StoreError> {
        self.check_embedding("embedding", vector)?;
        let conn = self.writer();
        let changed = self.timed("set_turn_embedding", || {
            conn.execute(
                "UPDATE turns SET embedding=?2, embedding_model=?3 WHERE id=?1",
                params![id, f32_to_blob(vector), model],
            )
            .map_err(sql("store turn embedding"))
        })?;
        if changed == 0 {
            return Ok(false);
        }
        let (speaker, created_at): (Option<String>, i64) = conn
            .query_row(
                "SELECT c.speaker, t.created_at FROM turns t
                 JOIN conversations c ON c.id = t.conversation_id WHERE t.id=?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(sql("read turn for the vector index"))?;
        self.write_turn_vectors().upsert(
            id,
            vector,
            &VecMeta::turn(speaker.as_deref(), created_at),
        );
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::model::{MemoryPatch, MemoryType, NewMemory, Visibility};
    use crate::schema::OpenOptions;

    fn memory(store: &Store, text: &str, vector: Option<Vec<f32>>, model: &str) -> i64 {
        store
            .create_memory(NewMemory {
                summary: text.into(),
                content: String::new(),
                keywords: Vec::new(),
                memory_type: MemoryType::Fact,
                owner: "anna".into(),
                visibility: Visibility::Family,
                source: None,
                created_at: None,
                expires_at: None,
                embedding_model: vector.as_ref().map(|_| model.to_owned()),
                embedding: vector,
                external_id: None,
            })
            .unwrap()
            .id
    }

    /// A model change mid-run: every vector of the old model is embedded again (the old one
    /// serves until then); an edit clears its vector; a vector computed for an older version
    /// of the memory is not stored.
    #[test]
    fn model_change_edits_and_stale_vectors() {
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
        let a = memory(
            &store,
            "Leo is allergic to peanuts",
            Some(vec![1.0, 0.0, 0.0, 0.0]),
            "old",
        );
        let b = memory(&store, "The key is under the pot", None, "old");
        let todo = |m: &str| -> Vec<i64> {
            store
                .needing_embedding(m, 10)
                .unwrap()
                .iter()
                .map(|t| t.id)
                .collect()
        };
        assert_eq!(todo("old"), vec![b], "only the one without a vector");
        assert_eq!(todo("new"), vec![a, b], "a new model re-embeds everything");
        let t = store.needing_embedding("new", 10).unwrap();
        assert!(
            store
                .set_embedding(a, t[0].updated_at, &[0.0, 1.0, 0.0, 0.0], "new")
                .unwrap()
        );
        assert_eq!(todo("new"), vec![b]);
        // Edited while its vector was being computed: that vector is not stored.
        let stale = store.needing_embedding("new", 10).unwrap()[0].clone();
        std::thread::sleep(std::time::Duration::from_millis(2));
        store
            .update_memory(
                b,
                "anna",
                MemoryPatch {
                    summary: Some("The key is in the shed".into()),
                    ..MemoryPatch::default()
                },
            )
            .unwrap();
        assert!(
            !store
                .set_embedding(b, stale.updated_at, &[0.0, 0.0, 1.0, 0.0], "new")
                .unwrap()
        );
        assert_eq!(todo("new"), vec![b]);
        // An edit of an embedded memory's words clears its vector.
        store
            .update_memory(
                a,
                "anna",
                MemoryPatch {
                    summary: Some("Leo is allergic to sesame".into()),
                    ..MemoryPatch::default()
                },
            )
            .unwrap();
        assert_eq!(todo("new"), vec![a, b]);
        // A bad vector (wrong length) is refused, never stored.
        let t = store.needing_embedding("new", 10).unwrap();
        assert!(
            store
                .set_embedding(a, t[0].updated_at, &[1.0, 2.0], "new")
                .is_err()
        );
    }
}
