//! `replicas` / `status`: what a replica holds, per level.

use crate::client::{LEVELS, ReplicaClient};
use crate::config::Config;
use crate::time::{format_rfc3339, now_ms};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Database path from the config, or a replica URL; all configured databases if omitted.
    pub target: Option<String>,
}

pub async fn run(config: Option<Config>, a: Args) -> anyhow::Result<i32> {
    let mut targets: Vec<String> = Vec::new();
    match (&a.target, &config) {
        (Some(t), _) => targets.push(t.clone()),
        (None, Some(c)) => targets.extend(c.dbs.iter().map(|d| d.path.display().to_string())),
        (None, None) => anyhow::bail!("give a replica URL or --config"),
    }
    for t in targets {
        let (rc, db) =
            super::resolve_replica(config.as_ref(), &t).map_err(|e| anyhow::anyhow!("{e}"))?;
        let client = rc.client()?;
        println!(
            "{} -> {}",
            db.map(|d| d.display().to_string())
                .unwrap_or_else(|| "-".into()),
            client.describe()
        );
        println!(
            "  {:<5} {:>6} {:<16} {:<16} {:>12} {:<24} AGE",
            "LEVEL", "FILES", "MIN", "MAX", "BYTES", "NEWEST"
        );
        let now = now_ms();
        for level in LEVELS {
            let files = client.list(level, false).await?;
            if files.is_empty() {
                continue;
            }
            let min = files.iter().map(|f| f.min_txid).min().unwrap_or(0);
            let max = files.iter().map(|f| f.max_txid).max().unwrap_or(0);
            let bytes: u64 = files.iter().map(|f| f.size).sum();
            let newest = files.iter().map(|f| f.created_ms).max().unwrap_or(0);
            println!(
                "  {:<5} {:>6} {:016x} {:016x} {:>12} {:<24} {}s",
                level,
                files.len(),
                min,
                max,
                bytes,
                format_rfc3339(newest),
                (now - newest) / 1000
            );
        }
    }
    Ok(0)
}
