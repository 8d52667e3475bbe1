//! `barnabee`: the operator's command. One file per subcommand.

mod daemons;
mod health;
mod status;
mod up;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "barnabee", version, about = "Operate the Barnabee appliance")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the local appliance: every daemon built in this workspace, supervised, with
    /// embedded default configs. Ctrl-C stops them all.
    Up(up::UpArgs),
    /// Show every daemon's /health; exit 1 if any is unhealthy or unreachable.
    Status(status::StatusArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Up(args) => up::run(args),
        Command::Status(args) => status::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("barnabee: {err:#}");
            std::process::ExitCode::from(2)
        }
    }
}
