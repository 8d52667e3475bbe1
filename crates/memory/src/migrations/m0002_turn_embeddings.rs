//! Schema 2: conversation turns get a text embedding, like memories, so the family's past
//! conversations can be searched by meaning (`GET /v1/turns/search?mode=hybrid`).
//!
//! Additive (two nullable columns): a schema-1 binary after a rollback keeps reading and
//! appending turns; the turns it appends have no vector and the embedder of the next schema-2
//! start embeds them. Vectors are little-endian f32 blobs as in `memories.embedding`.

use super::Migration;

pub const MIGRATION: Migration = Migration {
    version: 2,
    min_reader: 1,
    name: "turn_embeddings",
    sql: r#"
ALTER TABLE turns ADD COLUMN embedding BLOB;
ALTER TABLE turns ADD COLUMN embedding_model TEXT;
"#,
};
