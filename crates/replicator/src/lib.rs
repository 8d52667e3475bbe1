//! barnabee-replicator: Litestream 0.5-compatible replication.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod client;
pub mod ltx;
pub mod restore;
pub mod time;
pub mod wal;
