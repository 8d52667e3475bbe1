//! `barnabee-inference --config PATH [--check-config]`: the model server.

use std::process::ExitCode;

use anyhow::Context;
use barnabee_inference::config::Config;
use barnabee_service::{Args, Runtime};

fn main() -> ExitCode {
    match real_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("barnabee-inference: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main() -> anyhow::Result<()> {
    let args = Args::parse_from_env();
    let cfg = Config::load(&args.config)?;
    if args.check_config {
        return Ok(());
    }
    barnabee_service::logging::init("barnabee-inference", &cfg.service.log)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let rt = Runtime::new("inference", &cfg.service);
        barnabee_inference::run(cfg, &args.config, rt).await
    })
}
