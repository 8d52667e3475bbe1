//! The `barnabee-replicator` command line: one file per subcommand.
//! Litestream-style single-dash long flags (`-txid`, `-o`) are accepted as well.

pub mod ltx;
pub mod replicas;
pub mod replicate;
pub mod restore;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{Config, ReplicaConfig};

#[derive(Debug, Parser)]
#[command(
    name = "barnabee-replicator",
    version,
    about = "Litestream 0.5-compatible SQLite replication"
)]
pub struct Cli {
    /// litestream.yml-compatible configuration file.
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Replicate databases continuously (from the config, or DB_PATH REPLICA_URL).
    Replicate(replicate::Args),
    /// Restore a database from a replica.
    Restore(restore::Args),
    /// Inspect LTX files.
    #[command(subcommand)]
    Ltx(ltx::LtxCommand),
    /// What a replica holds: levels, TXID ranges, sizes, age.
    Replicas(replicas::Args),
    /// Same as `replicas`.
    Status(replicas::Args),
}

/// Turn `-txid` into `--txid` etc. (Litestream's Go flag syntax).
pub fn normalize_args(args: impl IntoIterator<Item = String>) -> Vec<String> {
    args.into_iter()
        .map(|a| {
            if a.len() > 2
                && a.starts_with('-')
                && !a.starts_with("--")
                && a.as_bytes()[1].is_ascii_alphabetic()
            {
                format!("-{a}")
            } else {
                a
            }
        })
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
}

/// Resolve `target` (a database path from the config, or a replica URL) to a replica and the
/// database path it belongs to (if from the config).
pub fn resolve_replica(
    config: Option<&Config>,
    target: &str,
) -> Result<(ReplicaConfig, Option<PathBuf>), Box<dyn std::error::Error + Send + Sync>> {
    if let Some(cfg) = config {
        for db in &cfg.dbs {
            if db.path == std::path::Path::new(target) {
                let r = cfg.replica_set_of(db)?;
                return Ok((r, Some(db.path.clone())));
            }
        }
    }
    if target.contains("://") || target.starts_with('/') {
        return Ok((ReplicaConfig::from_url(target), None));
    }
    Err(Box::new(CliError::Usage(format!(
        "{target}: not a database in the config and not a replica URL (file:///dir or s3://bucket/path)"
    ))))
}

pub fn load_config(path: Option<&PathBuf>) -> Result<Option<Config>, crate::config::ConfigError> {
    match path {
        Some(p) => Config::load(p).map(Some),
        None => Ok(None),
    }
}

/// Run a parsed command line; returns the process exit code.
pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    let config = load_config(cli.config.as_ref())?;
    match cli.command {
        Command::Replicate(a) => replicate::run(config, a).await,
        Command::Restore(a) => restore::run(config, a).await,
        Command::Ltx(c) => Ok(ltx::run(c)),
        Command::Replicas(a) | Command::Status(a) => replicas::run(config, a).await,
    }
}
