//! `barnabee status`: a table of every daemon's `/health` (failing checks in DETAIL), then the
//! alerts firing in the local Alertmanager. Exit 1 when a daemon is unhealthy or unreachable,
//! or a critical alert fires.
//!
//! Under `barnabee up --demo-home` a `hass` row says whether the demo home answers with the
//! agents daemon's token and whether the agents daemon is connected to it.
//!
//! Which daemons: those `barnabee up` recorded in its data dir (`up.json`), else those with a
//! config in `/etc/barnabee/<role>.toml` (the appliance), else `--url role=URL` given here.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use crate::alerts;
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
    /// The Alertmanager whose firing alerts to show (the beelink runs one here); `none` skips.
    #[arg(long, default_value = "http://127.0.0.1:9093", value_name = "URL")]
    alertmanager: String,
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
    let home = demo_home(&args)?;
    let (outcomes, firing, home_row) = runtime.block_on(async {
        let mut out = Vec::new();
        for (role, url) in &targets {
            out.push((role.clone(), url.clone(), health::fetch(&client, url).await));
        }
        let home_row = match &home {
            Some(h) => Some(home_status(&client, h, &out).await),
            None => None,
        };
        let firing = if args.alertmanager == "none" {
            None
        } else {
            Some(alerts::firing(&client, &args.alertmanager).await)
        };
        (out, firing, home_row)
    });
    if args.json {
        let rows: Vec<_> = outcomes
            .iter()
            .map(|(role, url, o)| {
                serde_json::json!({"daemon": role, "url": url, "status": o.word().to_lowercase(), "detail": o.detail()})
            })
            .collect();
        let alerts = match &firing {
            Some(Ok(list)) => serde_json::to_value(list)?,
            Some(Err(why)) => serde_json::json!({ "error": why }),
            None => serde_json::Value::Null,
        };
        let mut doc = serde_json::json!({"daemons": rows, "alerts": alerts});
        if let (Some(h), Some((ok, detail))) = (&home, &home_row) {
            doc["home_assistant"] = serde_json::json!({
                "url": h.url,
                "status": if *ok { "connected" } else { "unhealthy" },
                "detail": detail,
            });
        }
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        println!("{:<10} {:<28} {:<12} DETAIL", "DAEMON", "URL", "STATUS");
        for (role, url, outcome) in &outcomes {
            println!(
                "{role:<10} {url:<28} {:<12} {}",
                outcome.word(),
                outcome.detail()
            );
        }
        if let (Some(h), Some((ok, detail))) = (&home, &home_row) {
            let word = if *ok { "connected" } else { "UNHEALTHY" };
            println!(
                "{:<10} {:<28} {word:<12} {detail}",
                up::DEMO_HOME_ROLE,
                h.url
            );
        }
    }
    if !args.json {
        match &firing {
            Some(Ok(list)) => alerts::print(&args.alertmanager, list),
            // No Alertmanager is normal for `barnabee up`; on the beelink it is a finding.
            Some(Err(why)) => println!("\nalerts: {why}"),
            None => {}
        }
    }
    let all_serving =
        outcomes.iter().all(|(_, _, o)| o.serving()) && home_row.as_ref().is_none_or(|(ok, _)| *ok);
    let critical_firing =
        matches!(&firing, Some(Ok(list)) if list.iter().any(|a| a.severity == "critical"));
    Ok(if all_serving && !critical_firing {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The demo home a running `barnabee up --demo-home` recorded (none when `--url` is given).
fn demo_home(args: &StatusArgs) -> anyhow::Result<Option<up::UpHomeAssistant>> {
    if !args.urls.is_empty() {
        return Ok(None);
    }
    let data_dir = up::data_dir(args.data_dir.as_deref())?;
    Ok(UpState::read(&data_dir)?.and_then(|s| s.home_assistant))
}

/// Whether the demo home answers with the agents' token, and whether agents is connected to
/// it (its `home_assistant` check).
async fn home_status(
    client: &reqwest::Client,
    home: &up::UpHomeAssistant,
    daemons: &[(String, String, health::Outcome)],
) -> (bool, String) {
    let ha = up::probe_demo_home(client, &home.url, &home.token_file).await;
    let agents = daemons
        .iter()
        .find(|(role, _, _)| role == "agents")
        .map(|(_, _, outcome)| match outcome {
            health::Outcome::Answered { report, .. } => match report.checks.get("home_assistant") {
                Some(c) if c.ok => Ok(format!("agents connected ({})", c.detail)),
                Some(c) => Err(format!("agents NOT connected: {}", c.detail)),
                None => Err("agents reports no home_assistant check".to_owned()),
            },
            health::Outcome::Unreachable(_) => Err("agents unreachable".to_owned()),
        });
    match (ha, agents) {
        (Ok(ha), None) => (true, ha),
        (Ok(ha), Some(Ok(agents))) => (true, format!("{ha}; {agents}")),
        (Ok(ha), Some(Err(agents))) => (false, format!("{ha}; {agents}")),
        (Err(why), _) => (false, why),
    }
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
    // The beelink has no inference daemon of its own: ask the beast's, where voice's speaker
    // identification finds it, so one `barnabee status` covers both hosts.
    if !out.iter().any(|(role, _)| role == "inference")
        && let Some(url) = beast_inference_url(&config_dir.join("voice.toml"))
    {
        out.push(("inference".to_owned(), url));
    }
    Ok(out)
}

/// `[speaker] inference_url` of voice.toml, when set.
fn beast_inference_url(voice_toml: &Path) -> Option<String> {
    let text = std::fs::read_to_string(voice_toml).ok()?;
    let table: toml::Table = toml::from_str(&text).ok()?;
    let url = table.get("speaker")?.get("inference_url")?.as_str()?;
    (!url.is_empty()).then(|| url.trim_end_matches('/').to_owned())
}
