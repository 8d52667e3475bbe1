use anyhow::Context;
use barnabee_service::{Args, Runtime, config};
use barnabee_voice::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse_from_env();
    let cfg: Config = config::load(&args.config)?;
    if args.check_config {
        println!("{}: ok", args.config.display());
        return Ok(());
    }
    barnabee_service::logging::init("barnabee-voice", &cfg.service.log)
        .context("cannot start logging")?;
    let rt = Runtime::new("voice", &cfg.service);
    let dir = args
        .config
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    barnabee_voice::run(cfg, dir, rt).await
}
