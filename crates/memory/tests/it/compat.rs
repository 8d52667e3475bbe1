//! The compatibility contract through the real binary: a database written by a newer schema
//! is used when `min_reader_version` allows it and refused, untouched, when it does not.
//! (Migrating N -> N+1 with a snapshot is unit-tested in `schema.rs` with injected migrations;
//! the `test-schema-next` feature builds a binary with schema N+1 for the VM harness.)

use std::path::Path;

use reqwest::StatusCode;
use rusqlite::Connection;
use serde_json::json;

use crate::common::{BIN, Daemon, client, run_cli, small_dims, write_config};

/// Make the database look like a future generation wrote it.
fn pretend_future(db: &Path, schema: u32, min_reader: u32) {
    let conn = Connection::open(db).unwrap();
    conn.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS future_things (x INTEGER);
         UPDATE barnabee_meta SET value = '{schema}' WHERE key = 'schema_version';
         UPDATE barnabee_meta SET value = '{min_reader}' WHERE key = 'min_reader_version';
         UPDATE barnabee_meta SET value = 'barnabee-memory 9.9.9 (schema {schema})' WHERE key = 'written_by';
         PRAGMA wal_checkpoint(TRUNCATE);"
    ))
    .unwrap();
}

async fn seed(dir: &Path) -> i64 {
    let mut d = Daemon::start(dir, &small_dims());
    let r = client()
        .post(d.url("/v1/memories"))
        .json(&json!({"summary": "The wifi password is on the fridge", "memory_type": "fact", "owner": "a", "visibility": "family"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    d.stop();
    id
}

#[tokio::test]
async fn older_binary_uses_newer_additive_schema() {
    let dir = tempfile::tempdir().unwrap();
    let id = seed(dir.path()).await;
    let db = dir.path().join("memory.db");
    pretend_future(&db, 2, 1);
    let db_arg = db.to_str().unwrap();
    let (code, out, err) = run_cli(&["check-compat", "--db", db_arg]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("schema 2 (min reader 1)"), "{out}");

    let d = Daemon::start(dir.path(), &small_dims());
    let r = client()
        .get(d.url(&format!("/v1/memories/{id}?requester=a")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = client()
        .post(d.url("/v1/memories"))
        .json(&json!({"summary": "written after rollback", "memory_type": "fact", "owner": "a"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    drop(d);
    let meta = barnabee_memory::schema::peek(&db).unwrap().unwrap();
    assert_eq!(
        meta.schema_version, 2,
        "the older binary left the schema number alone"
    );
}

#[tokio::test]
async fn older_binary_refuses_newer_schema_and_never_writes() {
    let dir = tempfile::tempdir().unwrap();
    let id = seed(dir.path()).await;
    let db = dir.path().join("memory.db");
    // The newer generation's pre-migration snapshot (a copy of the schema-1 database).
    let snaps = dir.path().join("snapshots");
    std::fs::create_dir_all(&snaps).unwrap();
    let snapshot = snaps.join("memory-v1-to-v2-1700000000000.db");
    std::fs::copy(&db, &snapshot).unwrap();
    pretend_future(&db, 2, 2);
    let before = std::fs::read(&db).unwrap();
    let db_arg = db.to_str().unwrap();

    let (code, out, err) = run_cli(&["check-compat", "--db", db_arg]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("incompatible"), "{err}");

    let config = write_config(dir.path(), &small_dims());
    let out = std::process::Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .env_remove("NOTIFY_SOCKET")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("schema version 2") && err.contains(">= 2"),
        "{err}"
    );
    assert!(err.contains("knows schema 1"), "{err}");
    assert!(err.contains("barnabee-memory 9.9.9 (schema 2)"), "{err}");
    assert!(
        err.contains(&format!(
            "barnabee-memory restore-snapshot --db {db_arg} --snapshot {}",
            snapshot.display()
        )),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&db).unwrap(),
        before,
        "database bytes untouched"
    );
    assert!(!Path::new(&format!("{db_arg}-wal")).exists());

    // Following the message gets the older generation running on the snapshot.
    let (code, out, err) = run_cli(&[
        "restore-snapshot",
        "--db",
        db_arg,
        "--snapshot",
        snapshot.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let d = Daemon::start(dir.path(), &small_dims());
    let r = client()
        .get(d.url(&format!("/v1/memories/{id}?requester=a")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[test]
fn check_compat_on_missing_database_is_ok_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("memory.db");
    let (code, out, _) = run_cli(&["check-compat", "--db", db.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(out.contains("does not exist yet"), "{out}");
    assert!(!db.exists());
}

#[test]
fn replication_section_is_refused_until_built() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "[replication]\ntype = \"file\"\npath = \"/tmp/replica\"\n",
    );
    let (code, _, err) = run_cli(&["--config", config.to_str().unwrap(), "--check-config"]);
    assert_eq!(code, 0, "the section's shape is valid: {err}");
    let (code, _, err) = run_cli(&["--config", config.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(err.contains("replication support not built yet"), "{err}");
    let config = write_config(dir.path(), "[replication]\ntype = \"s3\"\n");
    let (code, _, err) = run_cli(&["--config", config.to_str().unwrap(), "--check-config"]);
    assert_ne!(code, 0);
    assert!(err.contains("replication.bucket"), "{err}");
}
