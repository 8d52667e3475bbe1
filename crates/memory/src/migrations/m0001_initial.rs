//! Schema 1: memories, conversations, turns, speaker profiles, the audit log, and FTS5 indexes
//! over memories and turns kept in sync by triggers.
//!
//! Times are Unix milliseconds (UTC). `keywords` and `topic_tags` are JSON arrays of strings;
//! FTS5's tokenizer ignores the JSON punctuation. Embeddings are little-endian f32 blobs.

use super::Migration;

pub const MIGRATION: Migration = Migration {
    version: 1,
    min_reader: 1,
    name: "initial",
    sql: r#"
CREATE TABLE memories (
    id INTEGER PRIMARY KEY,
    summary TEXT NOT NULL,
    content TEXT NOT NULL DEFAULT '',
    keywords TEXT NOT NULL DEFAULT '[]',
    memory_type TEXT NOT NULL CHECK (memory_type IN
        ('fact','preference','decision','event','person','project','meeting','journal')),
    owner TEXT NOT NULL,
    visibility TEXT NOT NULL CHECK (visibility IN ('private','family')),
    source TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    expires_at INTEGER,
    embedding BLOB,
    embedding_model TEXT,
    external_id TEXT UNIQUE
);
CREATE INDEX memories_owner ON memories(owner, visibility);
CREATE INDEX memories_type ON memories(memory_type);
CREATE INDEX memories_created ON memories(created_at);
CREATE INDEX memories_expires ON memories(expires_at) WHERE expires_at IS NOT NULL;

CREATE VIRTUAL TABLE memories_fts USING fts5(
    summary, content, keywords,
    content='memories', content_rowid='id', tokenize='porter unicode61'
);
CREATE TRIGGER memories_fts_insert AFTER INSERT ON memories BEGIN
    INSERT INTO memories_fts(rowid, summary, content, keywords)
    VALUES (new.id, new.summary, new.content, new.keywords);
END;
CREATE TRIGGER memories_fts_delete AFTER DELETE ON memories BEGIN
    INSERT INTO memories_fts(memories_fts, rowid, summary, content, keywords)
    VALUES ('delete', old.id, old.summary, old.content, old.keywords);
END;
CREATE TRIGGER memories_fts_update AFTER UPDATE OF summary, content, keywords ON memories BEGIN
    INSERT INTO memories_fts(memories_fts, rowid, summary, content, keywords)
    VALUES ('delete', old.id, old.summary, old.content, old.keywords);
    INSERT INTO memories_fts(rowid, summary, content, keywords)
    VALUES (new.id, new.summary, new.content, new.keywords);
END;

CREATE TABLE conversations (
    id INTEGER PRIMARY KEY,
    started_at INTEGER NOT NULL,
    ended_at INTEGER,
    speaker TEXT,
    mode TEXT,
    summary TEXT,
    topic_tags TEXT NOT NULL DEFAULT '[]',
    external_id TEXT UNIQUE
);
CREATE INDEX conversations_speaker ON conversations(speaker, started_at);
CREATE INDEX conversations_started ON conversations(started_at);

CREATE TABLE turns (
    id INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    number INTEGER NOT NULL,
    role TEXT NOT NULL DEFAULT 'user',
    utterance TEXT NOT NULL,
    response TEXT,
    route TEXT,
    latency_ms INTEGER,
    created_at INTEGER NOT NULL,
    UNIQUE (conversation_id, number)
);

CREATE VIRTUAL TABLE turns_fts USING fts5(
    utterance, response,
    content='turns', content_rowid='id', tokenize='porter unicode61'
);
CREATE TRIGGER turns_fts_insert AFTER INSERT ON turns BEGIN
    INSERT INTO turns_fts(rowid, utterance, response) VALUES (new.id, new.utterance, new.response);
END;
CREATE TRIGGER turns_fts_delete AFTER DELETE ON turns BEGIN
    INSERT INTO turns_fts(turns_fts, rowid, utterance, response)
    VALUES ('delete', old.id, old.utterance, old.response);
END;
CREATE TRIGGER turns_fts_update AFTER UPDATE OF utterance, response ON turns BEGIN
    INSERT INTO turns_fts(turns_fts, rowid, utterance, response)
    VALUES ('delete', old.id, old.utterance, old.response);
    INSERT INTO turns_fts(rowid, utterance, response) VALUES (new.id, new.utterance, new.response);
END;

CREATE TABLE speaker_profiles (
    name TEXT PRIMARY KEY,
    embedding_model_hash TEXT NOT NULL,
    centroid BLOB NOT NULL,
    sample_count INTEGER NOT NULL CHECK (sample_count >= 0),
    updated_at INTEGER NOT NULL
);

CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    actor TEXT,
    action TEXT NOT NULL,
    target_kind TEXT NOT NULL,
    target_id TEXT,
    detail TEXT
);
CREATE INDEX audit_log_at ON audit_log(at);
"#,
};
