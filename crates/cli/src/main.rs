//! `barnabee`: the operator's command. One file per subcommand.

mod alerts;
mod ask;
mod backup;
mod daemons;
mod health;
mod incident;
mod metrics;
mod models;
mod say;
mod status;
mod up;
mod utc;
mod voice;

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
    /// Incident tools: `collect` writes one tar.zst bundle for the post-mortem.
    Incident(incident::IncidentArgs),
    /// Voice tools: `enroll NAME WAV...` stores a family member's voice profile.
    Voice(voice::VoiceArgs),
    /// Ask out loud without a sound card: REQUEST.wav ("hey jarvis, ...") is the microphone;
    /// prints what was heard, the reply and the stage timings, writes the spoken reply.
    /// Exit 1: the daemon refused or could not answer (its message is printed); 2: a file
    /// could not be read or written, or the daemon not reached.
    Say(say::SayArgs),
    /// Ask in text ("turn on the kitchen lights"): prints the agents' reply, route, what was
    /// done and the timings. Exit 1: the agents refused it; 2: not reached.
    Ask(ask::AskArgs),
    /// The metric contract: every metric the daemons export (`--json`, `--markdown`).
    Metrics(metrics::MetricsArgs),
    /// Backups: `verify` restores memory's replica into a temporary file and compares it
    /// with the live database; `status` shows replica, lag, restore points, last verification.
    Backup(backup::BackupArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Up(args) => up::run(args),
        Command::Status(args) => status::run(args),
        Command::Incident(args) => incident::run(args),
        Command::Voice(args) => voice::run(args),
        Command::Say(args) => say::run(args),
        Command::Ask(args) => ask::run(args),
        Command::Metrics(args) => metrics::run(args),
        Command::Backup(args) => backup::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("barnabee: {err:#}");
            std::process::ExitCode::from(2)
        }
    }
}
