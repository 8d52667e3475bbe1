use std::process::ExitCode;

use anyhow::Context;
use barnabee_service::{Args, Runtime, config};
use barnabee_voice::Config;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("barnabee-voice: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let args = Args::parse_from_env();
    let cfg: Config = config::load(&args.config)?;
    if args.check_config {
        println!("{}: ok", args.config.display());
        return Ok(());
    }
    barnabee_service::logging::init("barnabee-voice", &cfg.service.log)
        .context("cannot start logging")?;
    let dir = args
        .config
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let rt = Runtime::new("voice", &cfg.service);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(barnabee_voice::run(cfg, dir, rt))
}
