//! What the embedder ([`crate::embedder`]) needs from the store: the memories without a vector
//! of the configured model, and writing one back only if the memory did not change meanwhile.

use rusqlite::params;

use crate::error::{StoreError, sql};
use crate::model::f32_to_blob;
use crate::store::{Store, vec_meta};

/// A memory waiting for its vector.
#[derive(Debug, Clone, PartialEq)]
pub struct ToEmbed {
    pub id: i64,
    /// What is embedded: the summary and the content.
    pub text: String,
    /// The version the vector is computed for (a later edit makes it stale).
    pub updated_at: i64,
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
