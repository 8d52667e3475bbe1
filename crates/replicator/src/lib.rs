//! barnabee-replicator: Litestream 0.5-compatible replication.
pub mod ltx;
