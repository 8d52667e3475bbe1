//! barnabee-memory: parse arguments, load the config, run the daemon or a subcommand.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use barnabee_memory::config::Config;
use barnabee_memory::{import, migrations, schema};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "barnabee-memory",
    version,
    about = "The family's long-term memory",
    subcommand_negates_reqs = true
)]
struct Cli {
    // The same two options as `barnabee_service::Args`, but optional here: with a subcommand
    // there is no daemon config, and clap's derive cannot build a flattened struct whose
    // required field a subcommand negated.
    /// The daemon's TOML configuration file (required without a subcommand).
    #[arg(long, value_name = "PATH", required = true)]
    config: Option<PathBuf>,
    /// Validate the configuration and exit.
    #[arg(long)]
    check_config: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Can this binary use the database? Exit 0 (yes, or no database yet) or 1. Never writes.
    CheckCompat {
        #[arg(long, value_name = "PATH")]
        db: PathBuf,
        /// Where pre-migration snapshots are (default: snapshots/ next to the database).
        #[arg(long, value_name = "DIR")]
        snapshot_dir: Option<PathBuf>,
    },
    /// Replace the database by a snapshot (stop the daemon first). The current files are kept
    /// as <db>.replaced-<unix ms>.
    RestoreSnapshot {
        #[arg(long, value_name = "PATH")]
        db: PathBuf,
        #[arg(long, value_name = "FILE")]
        snapshot: PathBuf,
    },
    /// Import the previous system's JSON exports (memories*.json, conversations*.json,
    /// chat_history*.json) from DIR; prints counts and every record not taken, with why.
    Import {
        dir: PathBuf,
        /// The database (default: the one --config names).
        #[arg(long, value_name = "PATH")]
        db: Option<PathBuf>,
        /// Daemon config to take the database path and settings from.
        #[arg(long, value_name = "PATH")]
        config: Option<PathBuf>,
        /// Owner of records that name none.
        #[arg(long, default_value = "family")]
        default_owner: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("barnabee-memory: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(path: &std::path::Path) -> anyhow::Result<Config> {
    let cfg: Config = barnabee_service::config::load(path)?;
    cfg.validate()
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(cfg)
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let code = migrations::code_version();
    match cli.command {
        Some(Command::CheckCompat { db, snapshot_dir }) => {
            let dir =
                snapshot_dir.unwrap_or_else(|| barnabee_memory::config::default_snapshot_dir(&db));
            match schema::check_compat(&db, code, &dir) {
                Ok(schema::Compat::Absent) => {
                    println!(
                        "ok: {} does not exist yet; this binary (schema {code}) will create it",
                        db.display()
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Ok(schema::Compat::Usable { meta, migrate }) => {
                    println!(
                        "ok: {} has schema {} (min reader {}); this binary knows schema {code}{}",
                        db.display(),
                        meta.schema_version,
                        meta.min_reader_version,
                        if migrate {
                            " and will migrate it (snapshot first)"
                        } else {
                            ""
                        }
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(err) => {
                    eprintln!("incompatible: {err}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Some(Command::RestoreSnapshot { db, snapshot }) => {
            let aside = schema::restore_snapshot(&db, &snapshot, code)?;
            println!(
                "restored {} from {}; the previous database is kept as {}",
                db.display(),
                snapshot.display(),
                aside.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Import {
            dir,
            db,
            config,
            default_owner,
        }) => {
            let mut cfg = match &config {
                Some(p) => load(p)?,
                None => Config::default(),
            };
            if let Some(db) = db {
                cfg.database.path = Some(db);
            }
            // The importer never starts replication; the daemon ships the rows later. A
            // configured [replication] still means "never checkpoint" (open_store sets
            // wal_autocheckpoint=0 and no checkpoint on close): the replicator owns that.
            let store = barnabee_memory::open_store(&cfg).context("opening the database")?;
            let report = import::import_dir(&store, &dir, &default_owner)
                .with_context(|| format!("importing {}", dir.display()))?;
            print!("{report}");
            Ok(if report.rejected.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            })
        }
        None => {
            let Some(path) = cli.config else {
                anyhow::bail!("--config PATH is required");
            };
            let cfg = load(&path)?;
            if cli.check_config {
                return Ok(ExitCode::SUCCESS);
            }
            barnabee_service::logging::init("barnabee-memory", &cfg.service.log)?;
            let rt = barnabee_service::Runtime::new("memory", &cfg.service);
            let tokio = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the tokio runtime")?;
            tokio.block_on(barnabee_memory::run(cfg, rt))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
