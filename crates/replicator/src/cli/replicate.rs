//! `replicate [DB_PATH REPLICA_URL]`: standalone replication of WAL databases owned by
//! other processes, until SIGTERM / SIGINT.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::{Config, ReplicaConfig};
use crate::replication::{Options, Replication};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Database to replicate (instead of the config's `dbs`).
    pub db: Option<PathBuf>,
    /// Replica URL for DB.
    pub url: Option<String>,
    /// Seconds allowed to ship what is committed at shutdown.
    #[arg(long, default_value_t = 10)]
    pub shutdown_timeout: u64,
    /// Seconds between uploads under load (default 1).
    #[arg(long)]
    pub sync_interval_ms: Option<u64>,
}

pub async fn run(config: Option<Config>, a: Args) -> anyhow::Result<i32> {
    let mut jobs: Vec<(PathBuf, ReplicaConfig, Options)> = Vec::new();
    match (&a.db, &a.url, &config) {
        (Some(db), Some(url), _) => {
            jobs.push((db.clone(), ReplicaConfig::from_url(url), Options::default()))
        }
        (None, None, Some(cfg)) => {
            for db in &cfg.dbs {
                let r = cfg.replica_set_of(db)?;
                let o = cfg.options_for(db, &r);
                jobs.push((db.path.clone(), r, o));
            }
        }
        _ => anyhow::bail!("give DB_PATH and REPLICA_URL, or --config with dbs"),
    }
    if jobs.is_empty() {
        anyhow::bail!("no databases configured");
    }
    let mut running = Vec::new();
    for (db, r, mut o) in jobs {
        if let Some(ms) = a.sync_interval_ms {
            o.sync_interval = Duration::from_millis(ms);
        }
        let repl = Replication::start(&db, &r, o)
            .await
            .map_err(|e| anyhow::anyhow!("{}: {e}", db.display()))?;
        running.push((db, repl));
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    let mut code = 0;
    for (db, repl) in running {
        match repl.shutdown(Duration::from_secs(a.shutdown_timeout)).await {
            Ok(txid) => log::info!(db = db.display().to_string().as_str(), txid = txid; "stopped"),
            Err(e) => {
                log::error!(db = db.display().to_string().as_str(), error = e.to_string().as_str(); "shutdown incomplete");
                code = 1;
            }
        }
    }
    Ok(code)
}
