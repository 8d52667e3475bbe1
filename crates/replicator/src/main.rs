//! `barnabee-replicator`: see the library crate for what each subcommand does.

use clap::Parser;

use barnabee_replicator::cli::{Cli, normalize_args, run};

#[tokio::main]
async fn main() {
    let cli = Cli::parse_from(normalize_args(std::env::args()));
    let mut log_cfg = barnabee_service::config::LogConfig::default();
    if let Ok(l) = std::env::var("BARNABEE_LOG") {
        log_cfg.level = l;
    }
    if let Err(e) = barnabee_service::logging::init("barnabee-replicator", &log_cfg) {
        eprintln!("barnabee-replicator: logging: {e}");
    }
    match run(cli).await {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("barnabee-replicator: {e:#}");
            std::process::exit(2);
        }
    }
}
