//! barnabee-replicator: Litestream 0.5-compatible SQLite replication (WAL -> LTX -> file or
//! S3 replica) and restore. What it writes, the stock `litestream restore` (0.5.x) restores;
//! what Litestream wrote, it restores.
//!
//! # Embedding
//!
//! A daemon that replicates its own database uses [`embed`] (its `[replication]` section,
//! restore before open, the not-provisioned secret, `/health`, shutdown): barnabee-memory,
//! barnabee-agents (the cost ledger) and barnabee-watchdog (the incident log). Underneath:
//!
//! ```no_run
//! # async fn demo(metrics: barnabee_service::metrics::Metrics) -> Result<(), Box<dyn std::error::Error>> {
//! use barnabee_replicator::{Options, ReplicaConfig, Replication, restore_if_missing};
//! let db = std::path::Path::new("/var/lib/barnabee-memory/memory.db");
//! let replica = ReplicaConfig::from_url("s3://bucket/memory.db?endpoint=http://127.0.0.1:3900&region=garage");
//! restore_if_missing(db, &replica).await?;          // first boot on a new machine
//! // The application opens the database with
//! //   PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;
//! // the replicator owns checkpoints and checkpoints only frames already shipped.
//! let repl = Replication::start(db, &replica, Options::default()).await?; // on the caller's tokio runtime
//! repl.register_metrics(&metrics);                 // barnabee_replication_* on /metrics
//! let st = repl.status();                          // last_shipped_txid, lag_seconds, consecutive_errors, last_error
//! repl.sync_now().await?;                          // e.g. before a risky operation
//! repl.shutdown(std::time::Duration::from_secs(5)).await?; // ships what is committed, bounded
//! # let _ = st; Ok(()) }
//! ```
//!
//! No tables are added to the application's database. The replicator holds a read
//! transaction on its own connection (so nobody else can restart the WAL unseen), checkpoints
//! (PASSIVE) only after everything committed is shipped, and restarts the WAL under its own
//! write lock by rewriting `PRAGMA user_version` with its current value. Any WAL restart it
//! cannot prove gap-free makes the next level-0 file a full snapshot, so TXIDs never have gaps.
//! The position of the last shipped file is kept in `.<db name>-barnabee-replicator.pos`
//! next to the database; on start, if it matches the replica's highest TXID and the WAL still
//! holds those frames, replication resumes incrementally, otherwise it continues after the
//! replica's highest TXID with a full snapshot.
//!
//! Sync policy: the WAL is probed every `monitor_interval` (25 ms); a commit in a quiet
//! period ships as soon as the writers pause (two probes without a new commit; a burst ships
//! as one file at its end, or after `sync_interval` at the latest), and under load one
//! level-0 upload happens per `sync_interval` (1 s) on average, batching everything committed
//! meanwhile ([`upload_budget`]: two may follow each other at once after a quiet spell, so
//! commits about an interval apart never wait for one). A due checkpoint is that
//! interval's upload: under the write lock it takes to restart the WAL, it ships what was
//! committed since the last upload (one PUT), then restarts; so checkpoints add no PUTs.
//! (The application's writers wait for that one PUT: give them a `busy_timeout` well above
//! an upload's duration; barnabee-memory uses 5 s.) A backlog of more than
//! `max_sync_wal_bytes` (64 MiB, Litestream's `max-sync-wal-bytes`) ships as several files of
//! whole transactions, one per interval. Litestream's `truncate-page-n` (a TRUNCATE emergency
//! checkpoint) is not supported and refused in `litestream.yml`.
//!
//! Restore streams: each object is read in place (file replica) or downloaded to a spool file
//! (S3) and decoded page by page into the temp file as it arrives (the download and the
//! decoding overlap), so memory stays small whatever the database size. Uploads stream too:
//! an LTX file over 4 MiB (a snapshot, a compaction) is encoded to a spool file and uploaded
//! from it ([`payload`]); objects above `part-size` (64 MiB by default) go to S3 in parts read
//! from that file.
//!
//! Modules: [`ltx`] (format), [`wal`] (WAL reader), [`db`] (watched database), [`client`]
//! (file / S3 / memory replicas), [`compactor`], [`restore`], [`config`] (litestream.yml),
//! [`metrics`], [`cli`], [`embed`] (a daemon's replication), [`payload`] (an object's bytes,
//! in memory or spooled), [`growing_file`] (reading a download as it arrives),
//! [`upload_budget`] (how often level 0 uploads).
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod cli;
pub mod client;
pub mod compactor;
pub mod config;
pub mod db;
pub mod embed;
pub mod growing_file;
pub mod ltx;
pub mod metrics;
pub mod payload;
pub mod replication;
pub mod restore;
pub mod time;
pub mod upload_budget;
pub mod wal;

pub use config::ReplicaConfig;
pub use replication::{Options, Replication, ReplicationError, Status, restore_if_missing};
