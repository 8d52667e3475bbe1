//! `barnabee-watchdog --config PATH` (the daemon), `--check-config`, and
//! `barnabee-watchdog gate --config PATH --timeout 5m [--dry-run]` (the health gate oneshot).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use barnabee_service::Runtime;
use barnabee_watchdog::config::Config;
use barnabee_watchdog::gate;
use clap::{Parser, Subcommand};

/// `--config` and `--check-config` (the same meaning as barnabee-service's `Args`) are global
/// here, so both `--config X gate` (the unit files) and `gate --config X` work.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// The TOML configuration file.
    #[arg(long, value_name = "PATH", global = true)]
    config: Option<PathBuf>,
    /// Validate the configuration and exit.
    #[arg(long, global = true)]
    check_config: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Wait until every configured unit is active and healthy; on timeout record a P1
    /// incident and run the rollback command. Exit 0 healthy, 1 rolled back, 2 rollback failed.
    Gate {
        /// How long to wait (300s, 5m, 1h); default from [gate] timeout.
        #[arg(long, value_parser = gate::parse_duration)]
        timeout: Option<Duration>,
        /// Print what would be done on failure instead of rolling back.
        #[arg(long)]
        dry_run: bool,
    },
}

fn main() -> ExitCode {
    match real_main() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("barnabee-watchdog: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let path = cli.config.context("--config PATH is required")?;
    let cfg = Config::load(&path)?;
    if cli.check_config {
        return Ok(ExitCode::SUCCESS);
    }
    barnabee_service::logging::init("barnabee-watchdog", &cfg.service.log)?;
    match cli.command {
        Some(Command::Gate { timeout, dry_run }) => {
            let timeout = timeout.unwrap_or(cfg.gate.timeout);
            runtime.block_on(async {
                // With [notify], the rollback notice is queued in notify.db; the daemon (of
                // whichever generation runs next) delivers it.
                let incidents = match barnabee_watchdog::open_incidents(&cfg) {
                    Ok((i, _)) => Some(i),
                    Err(err) => {
                        log::warn!("incidents go to the journal only: {err}");
                        None
                    }
                };
                let systemd = barnabee_watchdog::systemd_client(&cfg);
                let outcome =
                    gate::run_gate(&systemd, &cfg, incidents.as_ref(), timeout, dry_run).await;
                Ok(ExitCode::from(outcome.exit_code()))
            })
        }
        None => {
            runtime.block_on(async {
                let rt = Runtime::new("watchdog", &cfg.service);
                barnabee_watchdog::run(cfg, rt).await
            })?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
