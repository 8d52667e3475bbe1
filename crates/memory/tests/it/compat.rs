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
    let next = barnabee_memory::migrations::code_version() + 1;
    pretend_future(&db, next, 1);
    let db_arg = db.to_str().unwrap();
    let (code, out, err) = run_cli(&["check-compat", "--db", db_arg]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("schema {next} (min reader 1)")),
        "{out}"
    );

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
        meta.schema_version, next,
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
    let code_version = barnabee_memory::migrations::code_version();
    let next = code_version + 1;
    let snapshot = snaps.join(format!(
        "memory-v{code_version}-to-v{next}-1700000000000.db"
    ));
    std::fs::copy(&db, &snapshot).unwrap();
    pretend_future(&db, next, next);
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
        err.contains(&format!("schema version {next}")) && err.contains(&format!(">= {next}")),
        "{err}"
    );
    assert!(
        err.contains(&format!("knows schema {code_version}")),
        "{err}"
    );
    assert!(
        err.contains(&format!("barnabee-memory 9.9.9 (schema {next})")),
        "{err}"
    );
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
fn replication_section_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    // A relative file replica path is refused by --check-config, naming the key.
    let config = write_config(
        dir.path(),
        "[replication]\ntype = \"file\"\npath = \"relative/replica\"\n",
    );
    let (code, _, err) = run_cli(&["--config", config.to_str().unwrap(), "--check-config"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("replication.path") && err.contains("absolute"),
        "{err}"
    );
    let config = write_config(dir.path(), "[replication]\ntype = \"s3\"\n");
    let (code, _, err) = run_cli(&["--config", config.to_str().unwrap(), "--check-config"]);
    assert_ne!(code, 0);
    assert!(err.contains("replication.bucket"), "{err}");
    // A secret file the replicator cannot read passes the shape check but stops the daemon
    // at start, naming the file: it never runs without the backup it was asked for.
    let config = write_config(
        dir.path(),
        "[replication]\ntype = \"s3\"\nbucket = \"b\"\npath = \"memory\"\nendpoint = \"http://127.0.0.1:9\"\naccess_key_id = \"GK1\"\nsecret_access_key_file = \"/nonexistent/s3-secret\"\n",
    );
    let (code, _, err) = run_cli(&["--config", config.to_str().unwrap(), "--check-config"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run_cli(&["--config", config.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(err.contains("/nonexistent/s3-secret"), "{err}");
}

/// Build B (this binary, built with `--features test-schema-next`, schema N+1) on a database
/// written by build A (schema N, every migration but the test-only last one): migrates,
/// snapshot first, data kept; then build A's code still opens it (the step is additive).
/// Run: `cargo nextest run -p barnabee-memory --features test-schema-next`.
#[cfg(feature = "test-schema-next")]
#[tokio::test]
async fn build_b_migrates_build_a_database_with_snapshot() {
    use barnabee_memory::{migrations, schema};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("memory.db");
    let opts = schema::OpenOptions::for_db(&db);
    let all = migrations::all();
    let build_a = &all[..all.len() - 1];
    let (a, b) = (build_a.len(), all.len());
    let (conn, _) = schema::open(&db, build_a, &opts).unwrap();
    conn.execute(
        "INSERT INTO memories (summary, memory_type, owner, visibility, created_at, updated_at) VALUES ('written by build A', 'fact', 'a', 'family', 1, 1)",
        [],
    )
    .unwrap();
    drop(conn);
    let (code, out, err) = run_cli(&["check-compat", "--db", db.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("will migrate it"), "{out}");

    let mut d = Daemon::start(dir.path(), &small_dims());
    let v: serde_json::Value = client()
        .get(d.url("/v1/memories/1?requester=a"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["summary"], "written by build A");
    d.stop();
    let snaps: Vec<_> = std::fs::read_dir(dir.path().join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        snaps.len() == 1 && snaps[0].starts_with(&format!("memory-v{a}-to-v{b}-")),
        "{snaps:?}"
    );
    assert_eq!(
        schema::peek(&db).unwrap().unwrap().schema_version as usize,
        b
    );
    let (_, opened) = schema::open(&db, build_a, &opts).unwrap();
    assert_eq!((opened.to as usize, opened.min_reader), (b, 1));
}
