//! `restore -o OUT [-txid HEX] [-timestamp RFC3339] [-if-db-not-exists] [-if-replica-exists] TARGET`

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use crate::client::{LEVELS, ReplicaClient};
use crate::config::Config;
use crate::restore::{self, Target};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output database path (default: the database path from the config).
    #[arg(short = 'o', long = "o")]
    pub output: Option<PathBuf>,
    /// Restore up to this TXID (16 hex digits, as Litestream prints them).
    #[arg(long)]
    pub txid: Option<String>,
    /// Restore to the newest state created strictly before this RFC 3339 time.
    #[arg(long)]
    pub timestamp: Option<String>,
    /// Do nothing (exit 0) if the output database already exists.
    #[arg(long)]
    pub if_db_not_exists: bool,
    /// Do nothing (exit 0) if the replica holds no files.
    #[arg(long)]
    pub if_replica_exists: bool,
    /// Print the plan only.
    #[arg(long)]
    pub dry_run: bool,
    /// Database path from the config, or a replica URL.
    pub target: String,
}

pub async fn run(config: Option<Config>, a: Args) -> anyhow::Result<i32> {
    let (rc, db) =
        super::resolve_replica(config.as_ref(), &a.target).map_err(|e| anyhow::anyhow!("{e}"))?;
    let output = a
        .output
        .or(db)
        .ok_or_else(|| anyhow::anyhow!("-o OUTPUT is required with a replica URL"))?;
    let target = match (&a.txid, &a.timestamp) {
        (Some(_), Some(_)) => anyhow::bail!("-txid and -timestamp are mutually exclusive"),
        (Some(t), None) => Target::Txid(
            u64::from_str_radix(t.trim_start_matches("0x"), 16)
                .map_err(|_| anyhow::anyhow!("-txid {t:?}: not a hex TXID"))?,
        ),
        (None, Some(ts)) => Target::Timestamp(
            crate::time::parse_rfc3339(ts)
                .ok_or_else(|| anyhow::anyhow!("-timestamp {ts:?}: not an RFC 3339 time"))?,
        ),
        (None, None) => Target::Latest,
    };
    if output.exists() {
        if a.if_db_not_exists {
            println!(
                "{}: database already exists, skipping restore",
                output.display()
            );
            return Ok(0);
        }
        anyhow::bail!("{}: output already exists", output.display());
    }
    let client = rc.client()?;
    if a.if_replica_exists {
        let mut any = false;
        for level in LEVELS {
            if !client.list(level, false).await?.is_empty() {
                any = true;
                break;
            }
        }
        if !any {
            println!("{}: replica is empty, skipping restore", client.describe());
            return Ok(0);
        }
    }
    let plan = restore::plan(&client, target).await?;
    for f in &plan {
        println!("plan: level {} {}", f.level, f.name());
    }
    if a.dry_run {
        return Ok(0);
    }
    let tty = std::io::stdout().is_terminal();
    let r = restore::apply(&client, &plan, &output, |done, total| {
        if tty {
            let w = 30 * done / total.max(1);
            print!(
                "\r[{}{}] {done}/{total} files",
                "#".repeat(w),
                " ".repeat(30 - w)
            );
            let _ = std::io::stdout().flush();
            if done == total {
                println!();
            }
        }
    })
    .await?;
    println!(
        "restored {} to TXID {:016x} ({} pages of {} bytes, {} bytes downloaded)",
        output.display(),
        r.txid,
        r.pages,
        r.page_size,
        r.bytes_downloaded
    );
    Ok(0)
}
