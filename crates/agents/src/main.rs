//! barnabee-agents: parse arguments, load the config, run the daemon.

use std::process::ExitCode;

use anyhow::Context;
use barnabee_agents::config::Config;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("barnabee-agents: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let args = barnabee_service::Args::parse_from_env();
    let cfg: Config = barnabee_service::config::load(&args.config)?;
    cfg.validate()
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.config.display()))?;
    // The rules file is part of the configuration: check it too.
    barnabee_agents::route::Router::load(cfg.router.rules_file.as_deref())?;
    if args.check_config {
        return Ok(());
    }
    barnabee_service::logging::init("barnabee-agents", &cfg.service.log)?;
    let rt = barnabee_service::Runtime::new("agents", &cfg.service);
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    tokio.block_on(barnabee_agents::run(cfg, rt))?;
    Ok(())
}
