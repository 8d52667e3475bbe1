//! `barnabee status`: a table of every daemon's `/health`.
//!
//! Which daemons: those `barnabee up` recorded in its data dir (`up.json`), else those with a
//! config in `/etc/barnabee/<role>.toml` (the appliance), else `--url role=URL` given here.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use crate::daemons::DAEMONS;
use crate::health;
use crate::up::{self, UpState};

#[derive(clap::Args)]
pub struct StatusArgs {
    /// The data dir of a `barnabee up` (default: $XDG_DATA_HOME/barnabee).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Where the appliance's configs are.
    #[arg(long, default_value = "/etc/barnabee")]
    config_dir: PathBuf,
    /// Ask this daemon at this base URL (repeatable), e.g. `--url memory=http://127.0.0.1:7701`.
    #[arg(long = "url", value_name = "ROLE=URL")]
    urls: Vec<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let targets = targets(&args)?;
    if targets.is_empty() {
        anyhow::bail!(
            "no daemons to ask: none recorded by `barnabee up` in {}, no configs in {}; pass --url ROLE=URL",
            up::data_dir(args.data_dir.as_deref())?.display(),
            args.config_dir.display()
        );
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = health::client()?;
    let outcomes = runtime.block_on(async {
        let mut out = Vec::new();
        for (role, url) in &targets {
            out.push((role.clone(), url.clone(), health::fetch(&client, url).await));
        }
        out
    });
    if args.json {
        let rows: Vec<_> = outcomes
            .iter()
            .map(|(role, url, o)| {
                serde_json::json!({"daemon": role, "url": url, "status": o.word().to_lowercase(), "detail": o.detail()})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        println!("{:<10} {:<28} {:<12} DETAIL", "DAEMON", "URL", "STATUS");
        for (role, url, outcome) in &outcomes {
            println!(
                "{role:<10} {url:<28} {:<12} {}",
                outcome.word(),
                outcome.detail()
            );
        }
    }
    let all_serving = outcomes.iter().all(|(_, _, o)| o.serving());
    Ok(if all_serving {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn targets(args: &StatusArgs) -> anyhow::Result<Vec<(String, String)>> {
    discover(&args.urls, args.data_dir.as_deref(), &args.config_dir)
}

/// The daemons to ask, as `(role, base URL)`: `--url ROLE=URL` if any were given, else those
/// a running `barnabee up` recorded, else the appliance's configs. Empty when none of these
/// says anything.
pub fn discover(
    urls: &[String],
    data_dir: Option<&Path>,
    config_dir: &Path,
) -> anyhow::Result<Vec<(String, String)>> {
    if !urls.is_empty() {
        return urls
            .iter()
            .map(|spec| {
                let (role, url) = spec
                    .split_once('=')
                    .with_context(|| format!("--url {spec:?}: expected ROLE=URL"))?;
                Ok((role.to_owned(), url.to_owned()))
            })
            .collect();
    }
    let data_dir = up::data_dir(data_dir)?;
    if let Some(state) = UpState::read(&data_dir)? {
        return Ok(state.daemons.into_iter().map(|d| (d.role, d.url)).collect());
    }
    appliance_targets(config_dir)
}

/// The appliance: each `/etc/barnabee/<role>.toml` names its listener in `[service] listen`.
fn appliance_targets(config_dir: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for daemon in DAEMONS {
        let path = config_dir.join(format!("{}.toml", daemon.role));
        if !path.exists() {
            continue;
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let table: toml::Table =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let listen = table
            .get("service")
            .and_then(|s| s.get("listen"))
            .and_then(|l| l.as_str())
            .map(str::to_owned)
            .unwrap_or_else(|| daemon.default_addr().to_string());
        out.push((daemon.role.to_owned(), format!("http://{listen}")));
    }
    Ok(out)
}
