//! Command-line arguments every daemon accepts. Daemons with subcommands flatten
//! [`Args`] into their own clap parser.

use std::path::PathBuf;

/// `--config PATH` (required: a daemon never falls back silently to defaults) and
/// `--check-config` (parse, validate, print nothing on success, exit; the NixOS module runs
/// it at build time so a bad key fails the rebuild, not the boot).
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The daemon's TOML configuration file.
    #[arg(long, value_name = "PATH")]
    pub config: PathBuf,
    /// Validate the configuration (and the secret files it names) and exit.
    #[arg(long)]
    pub check_config: bool,
}

#[derive(clap::Parser)]
struct Standalone {
    #[command(flatten)]
    args: Args,
}

impl Args {
    /// Parse the process arguments for a daemon that has no subcommands.
    pub fn parse_from_env() -> Self {
        <Standalone as clap::Parser>::parse().args
    }
}
