//! Continuous replication: the daemon embeds `barnabee-replicator` through
//! [`barnabee_replicator::embed`], the same glue barnabee-agents (the cost ledger) and
//! barnabee-watchdog (the incident log) use: restore before open, start with retry, the
//! not-provisioned secret and the never-restored marker, `/health`, shutdown. What is
//! memory's own is the restore verification (`crate::verify`, `[replication.verify]`).
//!
//! Order in [`crate::run`]:
//! 1. [`restore_if_missing`] before the database is opened;
//! 2. the database is opened and migrated with `wal_autocheckpoint=0` and
//!    `SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE` (`OpenOptions::replication_owns_checkpoints`): the
//!    daemon's own connections never checkpoint, the replicator checkpoints (PASSIVE) only
//!    frames it has shipped;
//! 3. [`Replication::start`] (with [`UNIT`]); `/health` reads [`Replication::check`],
//!    `/metrics` gets `barnabee_replication_*`;
//! 4. [`Replication::shutdown`] after the HTTP server drained.

pub use barnabee_replicator::embed::{
    Handle, Replication, ReplicationError, Restore, SECRET_KEY, describe, not_provisioned,
    not_restored_marker, options, replica_config, restore_if_missing, restore_in_daemon,
    start_in_daemon, status_check,
};

/// The unit the operator restarts or stops, as `/health` and the journal name it.
pub const UNIT: &str = "barnabee-memory";
