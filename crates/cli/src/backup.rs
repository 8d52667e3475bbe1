//! `barnabee backup verify|status`: the memory daemon's backup verification, by hand.
//!
//! `verify` asks memory to restore its replica into a temporary file and compare it with the
//! live database (`POST /v1/backup/verify`; the daemon does the work: it holds the database
//! and the replicator). `status` shows the replica, the lag, the restore points and the last
//! verification (`GET /v1/backup/status`). The memory daemon is found as `barnabee status`
//! finds it: `--url memory=URL`, else a running `barnabee up`, else `/etc/barnabee/memory.toml`.
//! Exit codes: 0 good, 1 verification failed (or, for `status`, the last one failed or is too
//! old), 2 memory unreachable or another error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use serde_json::Value;

use crate::health::brief;
use crate::status::discover;

#[derive(clap::Args)]
pub struct BackupArgs {
    #[command(subcommand)]
    command: BackupCommand,
}

#[derive(clap::Subcommand)]
enum BackupCommand {
    /// Restore the replica into a temporary file now, check it (LTX checksums, integrity
    /// check) and compare it with the live database; exit 1 when it fails.
    Verify(Target),
    /// Replica, lag, restore points and the last verification.
    Status(Target),
}

#[derive(clap::Args)]
struct Target {
    /// The data dir of a `barnabee up` (default: $XDG_DATA_HOME/barnabee).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Where the appliance's configs are.
    #[arg(long, default_value = "/etc/barnabee")]
    config_dir: PathBuf,
    /// The memory daemon's base URL, as `memory=http://127.0.0.1:7701`.
    #[arg(long = "url", value_name = "memory=URL")]
    urls: Vec<String>,
    /// Print the daemon's JSON.
    #[arg(long)]
    json: bool,
}

impl Target {
    fn memory_url(&self) -> anyhow::Result<String> {
        let found = discover(&self.urls, self.data_dir.as_deref(), &self.config_dir)?;
        found
            .into_iter()
            .find(|(role, _)| role == "memory")
            .map(|(_, url)| url.trim_end_matches('/').to_owned())
            .with_context(|| {
                format!(
                    "no memory daemon: none recorded by `barnabee up`, no memory.toml in {}; pass --url memory=URL",
                    self.config_dir.display()
                )
            })
    }
}

pub fn run(args: BackupArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match args.command {
        BackupCommand::Verify(t) => runtime.block_on(verify(t)),
        BackupCommand::Status(t) => runtime.block_on(status(t)),
    }
}

async fn request(
    method: reqwest::Method,
    url: &str,
    timeout: Duration,
) -> anyhow::Result<(u16, Value)> {
    let client = barnabee_service::http_client::loopback(timeout)?;
    let r = client
        .request(method, url)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{url}: {}", brief(e)))?;
    let code = r.status().as_u16();
    let text = r.text().await.map_err(|e| anyhow::anyhow!("{url}: {e}"))?;
    let body: Value = serde_json::from_str(&text)
        .with_context(|| format!("{url}: HTTP {code}, not JSON: {text}"))?;
    Ok((code, body))
}

async fn verify(t: Target) -> anyhow::Result<ExitCode> {
    let url = format!("{}/v1/backup/verify", t.memory_url()?);
    // A restore downloads the whole database: allow it time.
    let (code, v) = request(reqwest::Method::POST, &url, Duration::from_secs(1800)).await?;
    if code == 409 || (v.get("ok").is_none() && v.get("error").is_some()) {
        anyhow::bail!("{url}: HTTP {code}: {}", v["error"].as_str().unwrap_or("?"));
    }
    if t.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print_verification(&v);
    }
    Ok(if v["ok"] == true {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_verification(v: &Value) {
    let s = |k: &str| v[k].as_str().unwrap_or("-").to_owned();
    let n = |k: &str| v[k].as_u64().map_or("-".into(), |n| n.to_string());
    if v["ok"] == true {
        println!(
            "backup verified: {} restores TXID {} ({} pages, {} bytes read), integrity {}, in {:.1} s",
            s("replica"),
            n("txid"),
            n("pages"),
            n("bytes_downloaded"),
            s("integrity_check"),
            v["duration_seconds"].as_f64().unwrap_or(0.0)
        );
    } else {
        println!("backup verification FAILED: {}", s("replica"));
        println!("  error: {}", s("error"));
        if let Some(o) = v["object"].as_str() {
            println!("  object: {o}");
        }
    }
    // a replica set: one line per replica (the lines above are the first failing one's)
    if let Some(all) = v["replicas"].as_array().filter(|a| a.len() > 1) {
        for r in all {
            let name = r["replica"].as_str().unwrap_or("?");
            if r["ok"] == true {
                println!("  {name}: good, TXID {}", r["txid"]);
            } else {
                println!("  {name}: FAILED: {}", r["error"].as_str().unwrap_or("?"));
            }
        }
    }
    if let Some(tables) = v["tables"].as_array().filter(|t| !t.is_empty()) {
        println!("  {:<18} {:>10} {:>10}", "TABLE", "LIVE", "REPLICA");
        for t in tables {
            println!(
                "  {:<18} {:>10} {:>10}",
                t["table"].as_str().unwrap_or("?"),
                t["live"].as_i64().unwrap_or(-1),
                t["replica"].as_i64().unwrap_or(-1)
            );
        }
    }
}

async fn status(t: Target) -> anyhow::Result<ExitCode> {
    let url = format!("{}/v1/backup/status", t.memory_url()?);
    let (code, v) = request(reqwest::Method::GET, &url, Duration::from_secs(30)).await?;
    if code != 200 {
        anyhow::bail!("{url}: HTTP {code}: {v}");
    }
    if t.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if v["configured"] != true {
        println!("replication: not configured (no [replication] in memory.toml)");
    } else {
        print_status(&v);
    }
    let healthy = v["configured"] != true || v["verification"]["healthy"] == true;
    Ok(if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_status(v: &Value) {
    let str_of = |x: &Value| x.as_str().map_or("-".to_owned(), str::to_owned);
    let r = &v["replication"];
    println!(
        "replica:       {} ({})",
        str_of(&v["replica"]["location"]),
        str_of(&v["replica"]["type"])
    );
    if r["running"] == true {
        println!(
            "replication:   running, last shipped TXID {} at {}, lag {:.1} s{}",
            r["last_shipped_txid"],
            str_of(&r["last_shipped_at"]),
            r["lag_seconds"].as_f64().unwrap_or(0.0),
            match r["consecutive_errors"].as_u64() {
                Some(n) if n > 0 => format!(", {n} errors (last: {})", str_of(&r["last_error"])),
                _ => String::new(),
            }
        );
    } else {
        println!("replication:   NOT running (see `barnabee status`)");
    }
    let p = &v["restore_points"];
    if let Some(e) = p["error"].as_str() {
        println!("restore points: cannot list the replica: {e}");
    } else {
        println!(
            "restore points: {} .. {} (up to TXID {}; {} snapshots; {} objects, {} bytes)",
            str_of(&p["from"]),
            str_of(&p["to"]),
            p["max_txid"],
            p["snapshots"].as_array().map_or(0, Vec::len),
            p["objects"],
            p["bytes"]
        );
    }
    let days = |x: &Value| x.as_f64().unwrap_or(0.0) / 86400.0;
    println!(
        "retention:     snapshots every {:.1} days, kept {:.1} days",
        days(&v["retention"]["snapshot_interval_seconds"]),
        days(&v["retention"]["snapshot_retention_seconds"])
    );
    // a replica set: each replica's own state and last verification
    for m in v["replicas"].as_array().into_iter().flatten() {
        let last = &m["last_verification"];
        let errors = m["consecutive_errors"].as_u64().unwrap_or(0);
        println!(
            "  {}: {}{}; verification {}",
            str_of(&m["location"]),
            if m["resync_pending"] == true {
                "catching up from another replica".to_owned()
            } else {
                format!("{} write(s) queued", m["queued"].as_u64().unwrap_or(0))
            },
            if errors > 0 {
                format!(", {errors} errors (last: {})", str_of(&m["last_error"]))
            } else {
                String::new()
            },
            match last["ok"].as_bool() {
                None => "never run".to_owned(),
                Some(true) => format!("good at {}", str_of(&last["started_at"])),
                Some(false) => format!(
                    "FAILED at {}: {}",
                    str_of(&last["started_at"]),
                    str_of(&last["error"])
                ),
            }
        );
    }
    let ver = &v["verification"];
    match ver["last"].as_object() {
        None => println!(
            "verification:  never run here yet (next at {})",
            str_of(&ver["next_at"])
        ),
        Some(last) => {
            let ok = last.get("ok") == Some(&Value::Bool(true));
            println!(
                "verification:  last run {} at {} ({:.1} s){}; last good at {}; next at {}",
                if ok { "good" } else { "FAILED" },
                str_of(&last["started_at"]),
                last["duration_seconds"].as_f64().unwrap_or(0.0),
                if ok {
                    String::new()
                } else {
                    format!(": {}", str_of(&last["error"]))
                },
                str_of(&ver["last_good"]["started_at"]),
                str_of(&ver["next_at"])
            );
        }
    }
}
