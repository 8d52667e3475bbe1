//! Schema 3, TEST ONLY (cargo feature `test-schema-next`): an additive step so upgrade and
//! rollback tests (and the VM harness) have a "build B" with schema N+1. It keeps
//! `min_reader = 1`, so a schema-1 binary still works on the migrated database.

use super::Migration;

pub const MIGRATION: Migration = Migration {
    version: 3,
    min_reader: 1,
    name: "test_next_additive",
    sql: r#"
CREATE TABLE test_next_notes (
    id INTEGER PRIMARY KEY,
    memory_id INTEGER REFERENCES memories(id) ON DELETE CASCADE,
    note TEXT NOT NULL
);
ALTER TABLE memories ADD COLUMN test_next_flag INTEGER;
"#,
};
