//! Opening the database under the compatibility contract.
//!
//! `barnabee_meta` stores `schema_version` (the last migration applied) and
//! `min_reader_version` (the oldest code version that may read and write the database). A
//! binary whose code version `C` is lower than `min_reader_version` refuses to start and never
//! opens the file for writing; one with `C >= min_reader_version` but `C < schema_version` (a
//! rollback onto an additive upgrade) works without touching the schema. Before migrating an
//! existing database forward, a consistent snapshot is taken with SQLite's backup API into the
//! snapshot directory as `memory-v<from>-to-v<to>-<unix ms>.db`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};

use crate::config::Synchronous;
use crate::migrations::Migration;
use crate::time::now_ms;

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error(
        "database {db} has schema version {schema} and needs a reader of version >= {min_reader}; this barnabee-memory {pkg} knows schema {code} only, so it refuses to start and has not written to the database. {remedy}"
    )]
    TooNew {
        db: PathBuf,
        schema: u32,
        min_reader: u32,
        code: u32,
        pkg: &'static str,
        written_by: String,
        remedy: String,
    },
    #[error("{db} is an SQLite database but not a barnabee-memory one (no barnabee_meta table)")]
    Foreign { db: PathBuf },
    #[error("{db}: barnabee_meta: {key} is missing or not a number")]
    BadMeta { db: PathBuf, key: &'static str },
    #[error("{db}: {op}: {source}")]
    Sqlite {
        db: PathBuf,
        op: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{path}: {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("snapshot {snapshot} cannot be restored: {reason}")]
    BadSnapshot { snapshot: PathBuf, reason: String },
}

fn sq(db: &Path, op: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> SchemaError {
    let db = db.to_owned();
    let op = op.into();
    move |source| SchemaError::Sqlite { db, op, source }
}

/// What `barnabee_meta` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub schema_version: u32,
    pub min_reader_version: u32,
    pub written_by: String,
}

/// How the connection is set up.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    pub snapshot_dir: PathBuf,
    pub busy_timeout: Duration,
    pub synchronous: Synchronous,
    /// The replicator owns checkpoints: set `wal_autocheckpoint=0` and
    /// `SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE` (this daemon never checkpoints).
    pub replication_owns_checkpoints: bool,
}

impl OpenOptions {
    pub fn for_db(db: &Path) -> Self {
        Self {
            snapshot_dir: crate::config::default_snapshot_dir(db),
            busy_timeout: Duration::from_secs(5),
            synchronous: Synchronous::Full,
            replication_owns_checkpoints: false,
        }
    }
}

/// What opening did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// Schema before (0: new database).
    pub from: u32,
    /// Schema now (may be above the code version after a rollback).
    pub to: u32,
    pub min_reader: u32,
    pub snapshot: Option<PathBuf>,
}

/// Read `barnabee_meta` from an open connection; `None` for an empty database.
pub fn read_meta(conn: &Connection, db: &Path) -> Result<Option<Meta>, SchemaError> {
    let has_meta: bool = conn
        .query_row(
            "SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE type='table' AND name='barnabee_meta')",
            [],
            |r| r.get(0),
        )
        .map_err(sq(db, "read schema"))?;
    if !has_meta {
        let tables: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .map_err(sq(db, "read schema"))?;
        return if tables == 0 {
            Ok(None)
        } else {
            Err(SchemaError::Foreign { db: db.to_owned() })
        };
    }
    let get = |key: &'static str| -> Result<Option<String>, SchemaError> {
        conn.query_row(
            "SELECT value FROM barnabee_meta WHERE key = ?1",
            [key],
            |r| r.get(0),
        )
        .optional()
        .map_err(sq(db, "read barnabee_meta"))
    };
    let num = |key: &'static str| -> Result<u32, SchemaError> {
        get(key)?
            .and_then(|v| v.parse().ok())
            .ok_or(SchemaError::BadMeta {
                db: db.to_owned(),
                key,
            })
    };
    Ok(Some(Meta {
        schema_version: num("schema_version")?,
        min_reader_version: num("min_reader_version")?,
        written_by: get("written_by")?.unwrap_or_default(),
    }))
}

/// Read the meta of the file at `db` without writing to it (read-only connection).
/// `None` when the file does not exist or is empty.
pub fn peek(db: &Path) -> Result<Option<Meta>, SchemaError> {
    if !db.exists() {
        return Ok(None);
    }
    let conn = open_read_only(db)?;
    read_meta(&conn, db)
}

/// A read-only connection that leaves no trace: without a `-wal` file beside it the main file
/// holds every commit, so it is opened `immutable` (no locks, no `-shm` created); with one, an
/// ordinary read-only connection reads the WAL too.
pub fn open_read_only(db: &Path) -> Result<Connection, SchemaError> {
    let wal = PathBuf::from(format!("{}-wal", db.display()));
    let has_wal = std::fs::metadata(&wal)
        .map(|m| m.len() > 0)
        .unwrap_or(false);
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if has_wal {
        Connection::open_with_flags(db, flags).map_err(sq(db, "open read-only"))
    } else {
        let uri = format!("file:{}?immutable=1", uri_escape(db));
        Connection::open_with_flags(uri, flags | OpenFlags::SQLITE_OPEN_URI)
            .map_err(sq(db, "open read-only"))
    }
}

fn uri_escape(path: &Path) -> String {
    let mut out = String::new();
    for b in path.as_os_str().as_encoded_bytes() {
        match b {
            b'?' | b'#' | b'%' => out.push_str(&format!("%{b:02X}")),
            b if b.is_ascii() && !b.is_ascii_control() => out.push(*b as char),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Refuse when `meta` needs a newer reader than `code`.
pub fn check(
    db: &Path,
    meta: Option<&Meta>,
    code: u32,
    snapshot_dir: &Path,
) -> Result<(), SchemaError> {
    let Some(meta) = meta else { return Ok(()) };
    if meta.min_reader_version <= code {
        return Ok(());
    }
    let remedy = match find_snapshot(snapshot_dir, code) {
        Some(snap) => format!(
            "It was written by {}. The snapshot taken before it was migrated past schema {code} is {}; to go back to it (changes made since are lost), stop barnabee-memory and run: barnabee-memory restore-snapshot --db {} --snapshot {}. Or switch back to the newer generation.",
            written_by_or_unknown(&meta.written_by),
            snap.display(),
            db.display(),
            snap.display()
        ),
        None => format!(
            "It was written by {}. No snapshot for schema <= {code} was found in {}; switch back to the newer generation, or restore a backup with barnabee-memory restore-snapshot --db {} --snapshot FILE.",
            written_by_or_unknown(&meta.written_by),
            snapshot_dir.display(),
            db.display()
        ),
    };
    Err(SchemaError::TooNew {
        db: db.to_owned(),
        schema: meta.schema_version,
        min_reader: meta.min_reader_version,
        code,
        pkg: env!("CARGO_PKG_VERSION"),
        written_by: meta.written_by.clone(),
        remedy,
    })
}

fn written_by_or_unknown(s: &str) -> &str {
    if s.is_empty() {
        "an unknown version"
    } else {
        s
    }
}

/// A snapshot file name's (from, to, taken-at) numbers.
fn parse_snapshot_name(name: &str) -> Option<(u32, u32, u64)> {
    let rest = name.strip_prefix("memory-v")?.strip_suffix(".db")?;
    let (from, rest) = rest.split_once("-to-v")?;
    let (to, at) = rest.split_once('-')?;
    Some((from.parse().ok()?, to.parse().ok()?, at.parse().ok()?))
}

/// The best snapshot a binary of code version `code` can use: the highest `from <= code`,
/// newest first.
pub fn find_snapshot(dir: &Path, code: u32) -> Option<PathBuf> {
    let entries = std::fs::read_dir(dir).ok()?;
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_owned();
            let (from, _, at) = parse_snapshot_name(&name)?;
            (from >= 1 && from <= code).then_some(((from, at), e.path()))
        })
        .max_by_key(|(key, _)| *key)
        .map(|(_, p)| p)
}

/// Connection settings every connection gets.
pub fn configure(conn: &Connection, db: &Path, opts: &OpenOptions) -> Result<(), SchemaError> {
    conn.busy_timeout(opts.busy_timeout)
        .map_err(sq(db, "set busy_timeout"))?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(sq(db, "enable foreign keys"))?;
    conn.pragma_update(None, "synchronous", opts.synchronous.pragma())
        .map_err(sq(db, "set synchronous"))?;
    if opts.replication_owns_checkpoints {
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(sq(db, "disable wal_autocheckpoint"))?;
        // Nor on close: the last connection closing would otherwise checkpoint (and delete)
        // the WAL behind the replicator's back, forcing a full snapshot on the next start.
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        )
        .map_err(sq(db, "disable checkpoint on close"))?;
    }
    Ok(())
}

/// Open `db` for writing: refuse if too new, create or migrate with `migrations`, snapshot
/// first when an existing database is migrated.
pub fn open(
    db: &Path,
    migrations: &[Migration],
    opts: &OpenOptions,
) -> Result<(Connection, Opened), SchemaError> {
    let code = migrations.last().map_or(0, |m| m.version);
    // Decide with a read-only connection first: a refused database is never opened for writing.
    let before = peek(db)?;
    check(db, before.as_ref(), code, &opts.snapshot_dir)?;

    if let Some(parent) = db.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| SchemaError::Io {
            path: parent.to_owned(),
            op: "create database directory",
            source,
        })?;
    }
    let mut conn = Connection::open(db).map_err(sq(db, "open"))?;
    if before.is_none() {
        // Must precede the first table for incremental vacuum to be possible.
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")
            .map_err(sq(db, "set auto_vacuum"))?;
    }
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .map_err(sq(db, "enable WAL"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(SchemaError::Sqlite {
            db: db.to_owned(),
            op: format!("enable WAL (got journal_mode={mode})"),
            source: rusqlite::Error::InvalidQuery,
        });
    }
    configure(&conn, db, opts)?;

    // Re-read under the write connection (another process may have migrated meanwhile).
    let meta = read_meta(&conn, db)?;
    check(db, meta.as_ref(), code, &opts.snapshot_dir)?;
    let from = meta.as_ref().map_or(0, |m| m.schema_version);
    let mut min_reader = meta.as_ref().map_or(0, |m| m.min_reader_version);
    let pending: Vec<&Migration> = migrations.iter().filter(|m| m.version > from).collect();
    let mut snapshot = None;
    if from > 0 && !pending.is_empty() {
        let path = take_snapshot(&conn, db, &opts.snapshot_dir, from, code)?;
        log::info!(event = "snapshot", path = path.display().to_string(); "snapshot before migrating {} from schema {from} to {code}: {}", db.display(), path.display());
        snapshot = Some(path);
    }
    if meta.is_none() {
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS barnabee_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        )
        .map_err(sq(db, "create barnabee_meta"))?;
    }
    for m in pending {
        min_reader = min_reader.max(m.min_reader);
        apply(&mut conn, db, m, min_reader)?;
        log::info!(event = "migrated", schema_version = m.version; "{}: applied migration {} ({})", db.display(), m.version, m.name);
    }
    let to = from.max(code);
    if from > code {
        log::warn!(event = "schema_newer", schema_version = from; "{} has schema {from} (min reader {min_reader}); this binary knows {code} and uses it unchanged", db.display());
    }
    Ok((
        conn,
        Opened {
            from,
            to,
            min_reader,
            snapshot,
        },
    ))
}

fn apply(
    conn: &mut Connection,
    db: &Path,
    m: &Migration,
    min_reader: u32,
) -> Result<(), SchemaError> {
    let op = format!("migration {} ({})", m.version, m.name);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sq(db, op.clone()))?;
    tx.execute_batch(m.sql).map_err(sq(db, op.clone()))?;
    let written_by = format!(
        "barnabee-memory {} (schema {})",
        env!("CARGO_PKG_VERSION"),
        m.version
    );
    for (key, value) in [
        ("schema_version", m.version.to_string()),
        ("min_reader_version", min_reader.to_string()),
        ("written_by", written_by),
        ("migrated_at", now_ms().to_string()),
    ] {
        tx.execute(
            "INSERT INTO barnabee_meta(key, value) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )
        .map_err(sq(db, op.clone()))?;
    }
    tx.commit().map_err(sq(db, op))
}

/// Copy the live database consistently (backup API) to `dir/memory-v<from>-to-v<to>-<ms>.db`.
pub fn take_snapshot(
    conn: &Connection,
    db: &Path,
    dir: &Path,
    from: u32,
    to: u32,
) -> Result<PathBuf, SchemaError> {
    std::fs::create_dir_all(dir).map_err(|source| SchemaError::Io {
        path: dir.to_owned(),
        op: "create snapshot directory",
        source,
    })?;
    let name = format!("memory-v{from}-to-v{to}-{}.db", now_ms());
    let path = dir.join(&name);
    let partial = dir.join(format!("{name}.partial"));
    let _ = std::fs::remove_file(&partial);
    conn.backup(
        rusqlite::MAIN_DB,
        &partial,
        None::<fn(rusqlite::backup::Progress)>,
    )
    .map_err(sq(db, format!("snapshot to {}", partial.display())))?;
    // The backup copy is in rollback-journal mode with its own header; make it durable
    // before giving it its final name.
    let file = std::fs::File::open(&partial).map_err(|source| SchemaError::Io {
        path: partial.clone(),
        op: "open snapshot",
        source,
    })?;
    file.sync_all().map_err(|source| SchemaError::Io {
        path: partial.clone(),
        op: "fsync snapshot",
        source,
    })?;
    std::fs::rename(&partial, &path).map_err(|source| SchemaError::Io {
        path: path.clone(),
        op: "rename snapshot",
        source,
    })?;
    Ok(path)
}

/// What `check-compat` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compat {
    /// No database yet: the daemon will create it.
    Absent,
    /// Usable; `migrate` when this binary will migrate it forward.
    Usable { meta: Meta, migrate: bool },
}

/// The NixOS pre-switch check: can a binary of code version `code` use `db`? Never writes.
pub fn check_compat(db: &Path, code: u32, snapshot_dir: &Path) -> Result<Compat, SchemaError> {
    match peek(db)? {
        None => Ok(Compat::Absent),
        Some(meta) => {
            check(db, Some(&meta), code, snapshot_dir)?;
            let migrate = meta.schema_version < code;
            Ok(Compat::Usable { meta, migrate })
        }
    }
}

/// Replace `db` by `snapshot`. The current files are kept as `<db>.replaced-<ms>` (plus its
/// `-wal`/`-shm`). The daemon must be stopped. Refuses a snapshot this binary cannot use or
/// that fails `integrity_check`. Returns where the old database went.
pub fn restore_snapshot(db: &Path, snapshot: &Path, code: u32) -> Result<PathBuf, SchemaError> {
    let bad = |reason: String| SchemaError::BadSnapshot {
        snapshot: snapshot.to_owned(),
        reason,
    };
    if !snapshot.is_file() {
        return Err(bad("no such file".into()));
    }
    {
        let conn = open_read_only(snapshot).map_err(|e| bad(e.to_string()))?;
        let meta = read_meta(&conn, snapshot)
            .map_err(|e| bad(e.to_string()))?
            .ok_or_else(|| bad("empty database".into()))?;
        if meta.min_reader_version > code {
            return Err(bad(format!(
                "it needs a reader of version >= {}, this binary knows schema {code}",
                meta.min_reader_version
            )));
        }
        let integrity: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(|e| bad(e.to_string()))?;
        if integrity != "ok" {
            return Err(bad(format!("integrity_check: {integrity}")));
        }
    }
    let io = |path: &Path, op: &'static str| {
        let path = path.to_owned();
        move |source| SchemaError::Io { path, op, source }
    };
    let stamp = now_ms();
    let aside = PathBuf::from(format!("{}.replaced-{stamp}", db.display()));
    let tmp = PathBuf::from(format!("{}.restoring", db.display()));
    std::fs::copy(snapshot, &tmp).map_err(io(&tmp, "copy snapshot"))?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(io(&tmp, "fsync restored copy"))?;
    if db.exists() {
        std::fs::rename(db, &aside).map_err(io(db, "move current database aside"))?;
    }
    for suffix in ["-wal", "-shm"] {
        let side = PathBuf::from(format!("{}{suffix}", db.display()));
        if side.exists() {
            let to = PathBuf::from(format!("{}{suffix}", aside.display()));
            std::fs::rename(&side, &to).map_err(io(&side, "move aside"))?;
        }
    }
    std::fs::rename(&tmp, db).map_err(io(db, "move restored copy into place"))?;
    Ok(aside)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::migrations;

    const M1: Migration = Migration {
        version: 1,
        min_reader: 1,
        name: "one",
        sql: "CREATE TABLE a (x INTEGER);",
    };
    const M2_ADDITIVE: Migration = Migration {
        version: 2,
        min_reader: 1,
        name: "two",
        sql: "CREATE TABLE b (y INTEGER);",
    };
    const M2_BREAKING: Migration = Migration {
        version: 2,
        min_reader: 2,
        name: "two-breaking",
        sql: "ALTER TABLE a RENAME COLUMN x TO z;",
    };

    fn opts(dir: &Path) -> OpenOptions {
        OpenOptions {
            snapshot_dir: dir.join("snapshots"),
            ..OpenOptions::for_db(&dir.join("m.db"))
        }
    }

    /// Checkpoint and close so the main file holds everything (bytes comparable).
    fn close(conn: Connection) {
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
            .unwrap();
        drop(conn);
    }

    #[test]
    fn fresh_database_gets_every_migration_and_meta() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("m.db");
        let (conn, opened) = open(&db, migrations::all(), &opts(dir.path())).unwrap();
        assert_eq!(opened.from, 0);
        assert_eq!(opened.to, migrations::code_version());
        assert!(opened.snapshot.is_none());
        let meta = read_meta(&conn, &db).unwrap().unwrap();
        assert_eq!(meta.schema_version, migrations::code_version());
        assert_eq!(meta.min_reader_version, 1);
        assert!(meta.written_by.starts_with("barnabee-memory "));
        let fk: i64 = conn
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap();
        assert_eq!(fk, 1);
        let av: i64 = conn
            .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
            .unwrap();
        assert_eq!(av, 2, "incremental");
        let ac: i64 = conn
            .query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ac, 1000, "SQLite's default without replication");
    }

    #[test]
    fn replication_disables_autocheckpoint() {
        let dir = tempfile::tempdir().unwrap();
        let o = OpenOptions {
            replication_owns_checkpoints: true,
            ..opts(dir.path())
        };
        let (conn, _) = open(&dir.path().join("m.db"), &[M1], &o).unwrap();
        let ac: i64 = conn
            .query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ac, 0);
        // Closing does not checkpoint either: the WAL (the replicator's input) survives.
        drop(conn);
        let wal = std::fs::metadata(dir.path().join("m.db-wal")).unwrap();
        assert!(wal.len() > 0, "the last close checkpointed the WAL");
    }

    #[test]
    fn upgrade_takes_snapshot_then_previous_code_still_works_when_additive() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("m.db");
        let o = opts(dir.path());
        let (conn, _) = open(&db, &[M1], &o).unwrap();
        conn.execute("INSERT INTO a VALUES (42)", []).unwrap();
        close(conn);

        let (conn, opened) = open(&db, &[M1, M2_ADDITIVE], &o).unwrap();
        assert_eq!((opened.from, opened.to, opened.min_reader), (1, 2, 1));
        let snap = opened.snapshot.unwrap();
        assert!(
            snap.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("memory-v1-to-v2-")
        );
        let snap_conn = Connection::open(&snap).unwrap();
        let x: i64 = snap_conn
            .query_row("SELECT x FROM a", [], |r| r.get(0))
            .unwrap();
        assert_eq!(x, 42, "snapshot holds the pre-migration data");
        assert_eq!(
            read_meta(&snap_conn, &snap)
                .unwrap()
                .unwrap()
                .schema_version,
            1
        );
        close(conn);

        // Rollback: schema-1 code on the schema-2 database works and leaves meta alone.
        let (conn, opened) = open(&db, &[M1], &o).unwrap();
        assert_eq!((opened.from, opened.to), (2, 2));
        conn.execute("INSERT INTO a VALUES (43)", []).unwrap();
        assert_eq!(read_meta(&conn, &db).unwrap().unwrap().schema_version, 2);
        close(conn);
        // Opening again with schema-2 code: nothing to migrate, no new snapshot.
        let (_, opened) = open(&db, &[M1, M2_ADDITIVE], &o).unwrap();
        assert!(opened.snapshot.is_none());
    }

    #[test]
    fn too_new_database_is_refused_and_left_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("m.db");
        let o = opts(dir.path());
        close(open(&db, &[M1], &o).unwrap().0);
        close(open(&db, &[M1, M2_BREAKING], &o).unwrap().0);
        let before = std::fs::read(&db).unwrap();
        let listing = |d: &Path| {
            let mut v: Vec<_> = std::fs::read_dir(d)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            v.sort();
            v
        };
        let files_before = listing(dir.path());

        let err = open(&db, &[M1], &o).unwrap_err();
        let shown = err.to_string();
        assert!(
            matches!(
                err,
                SchemaError::TooNew {
                    schema: 2,
                    min_reader: 2,
                    code: 1,
                    ..
                }
            ),
            "{shown}"
        );
        assert!(
            shown.contains("barnabee-memory restore-snapshot --db"),
            "{shown}"
        );
        assert!(shown.contains("memory-v1-to-v2-"), "{shown}");
        assert!(
            shown.contains("schema version 2") && shown.contains(">= 2"),
            "{shown}"
        );
        assert_eq!(
            std::fs::read(&db).unwrap(),
            before,
            "database bytes untouched"
        );
        assert_eq!(
            listing(dir.path()),
            files_before,
            "no -wal/-shm created either"
        );

        assert!(check_compat(&db, 1, &o.snapshot_dir).is_err());
        assert_eq!(std::fs::read(&db).unwrap(), before);
        assert!(matches!(
            check_compat(&db, 2, &o.snapshot_dir).unwrap(),
            Compat::Usable { migrate: false, .. }
        ));
        assert_eq!(
            check_compat(&dir.path().join("none.db"), 1, &o.snapshot_dir).unwrap(),
            Compat::Absent
        );

        // The remedy works: restore the snapshot, then schema-1 code opens it.
        let snap = find_snapshot(&o.snapshot_dir, 1).unwrap();
        let aside = restore_snapshot(&db, &snap, 1).unwrap();
        assert_eq!(
            std::fs::read(&aside).unwrap(),
            before,
            "old database kept aside"
        );
        let (_, opened) = open(&db, &[M1], &o).unwrap();
        assert_eq!(opened.to, 1);
    }

    #[test]
    fn restore_refuses_snapshot_too_new_for_this_binary() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("m.db");
        let o = opts(dir.path());
        close(open(&db, &[M1, M2_BREAKING], &o).unwrap().0);
        let err = restore_snapshot(&dir.path().join("other.db"), &db, 1).unwrap_err();
        assert!(err.to_string().contains(">= 2"), "{err}");
    }

    #[test]
    fn foreign_sqlite_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("m.db");
        Connection::open(&db)
            .unwrap()
            .execute_batch("CREATE TABLE t(x)")
            .unwrap();
        assert!(matches!(
            open(&db, &[M1], &opts(dir.path())),
            Err(SchemaError::Foreign { .. })
        ));
    }

    #[test]
    fn failed_migration_rolls_back_whole_step() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("m.db");
        let o = opts(dir.path());
        close(open(&db, &[M1], &o).unwrap().0);
        let bad = Migration {
            version: 2,
            min_reader: 2,
            name: "bad",
            sql: "CREATE TABLE c (x); INSERT INTO nope VALUES (1);",
        };
        assert!(open(&db, &[M1, bad], &o).is_err());
        let meta = peek(&db).unwrap().unwrap();
        assert_eq!((meta.schema_version, meta.min_reader_version), (1, 1));
        let conn = Connection::open(&db).unwrap();
        let c: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name='c'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(c, 0);
    }

    /// With the real migrations: build A (every step but the test-only last one) writes, build
    /// B (the `test-schema-next` feature) migrates with a snapshot, build A still works
    /// afterwards (additive step).
    #[cfg(feature = "test-schema-next")]
    #[test]
    fn real_migrations_upgrade_and_roll_back() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("m.db");
        let o = opts(dir.path());
        let all = migrations::all();
        let build_a = &all[..all.len() - 1];
        let (a, b) = (build_a.len() as u32, all.len() as u32);
        let (conn, _) = open(&db, build_a, &o).unwrap();
        conn.execute(
            "INSERT INTO memories (summary, memory_type, owner, visibility, created_at, updated_at) VALUES ('kept', 'fact', 'a', 'family', 1, 1)",
            [],
        )
        .unwrap();
        close(conn);
        let (conn, opened) = open(&db, all, &o).unwrap();
        assert_eq!((opened.from, opened.to, opened.min_reader), (a, b, 1));
        assert!(opened.snapshot.is_some());
        conn.execute(
            "INSERT INTO test_next_notes (memory_id, note) VALUES (1, 'n')",
            [],
        )
        .unwrap();
        close(conn);
        let (conn, opened) = open(&db, build_a, &o).unwrap();
        assert_eq!(opened.to, b);
        let hits: i64 = conn
            .query_row(
                "SELECT count(*) FROM memories_fts WHERE memories_fts MATCH 'kept'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(hits, 1);
    }

    #[test]
    fn snapshot_names_parse() {
        assert_eq!(
            parse_snapshot_name("memory-v1-to-v2-1700.db"),
            Some((1, 2, 1700))
        );
        assert_eq!(parse_snapshot_name("memory-v1-to-v2-1700.db.partial"), None);
    }
}
