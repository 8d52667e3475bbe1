//! `barnabee-console --config PATH [--check-config]` (the daemon) and
//! `barnabee-console hash-password` (reads a password on stdin, prints its argon2 hash for
//! `[auth] password_hash_file`).

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use barnabee_console::config::Config;
use barnabee_service::Runtime;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// The TOML configuration file.
    #[arg(long, value_name = "PATH", global = true)]
    config: Option<PathBuf>,
    /// Validate the configuration (and the password hash file) and exit.
    #[arg(long, global = true)]
    check_config: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Read a password from stdin (one line) and print its argon2id hash.
    HashPassword,
}

fn main() -> ExitCode {
    match real_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("barnabee-console: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::HashPassword) = cli.command {
        let mut input = String::new();
        std::io::stdin()
            .read_to_string(&mut input)
            .context("cannot read the password from stdin")?;
        let password = input.lines().next().unwrap_or("").to_owned();
        if password.chars().count() < 8 {
            anyhow::bail!("the password must have at least 8 characters");
        }
        println!("{}", barnabee_console::auth::hash_password(&password)?);
        return Ok(());
    }
    let path = cli.config.context("--config PATH is required")?;
    let cfg = Config::load(&path)?;
    if cli.check_config {
        // A relative path is a systemd credential, which only exists when the unit runs (the
        // NixOS build runs --check-config without it): checked at start instead.
        let p = &cfg.auth.password_hash_file;
        if p.is_absolute() && (!cfg.auth.generate_if_missing || p.exists()) {
            match barnabee_console::auth::load_hash(&cfg.auth) {
                Ok(_) | Err(barnabee_console::auth::AuthError::NotProvisioned { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        return Ok(());
    }
    barnabee_service::logging::init("barnabee-console", &cfg.service.log)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let rt = Runtime::new("console", &cfg.service);
        barnabee_console::run(cfg, rt).await
    })?;
    Ok(())
}
