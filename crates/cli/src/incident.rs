//! `barnabee incident collect`: the incident runbook's "collect logs into a folder" as one
//! command writing one `tar.zst` bundle:
//!
//! ```text
//! barnabee-incident-<host>-<UTC>/
//!   journal.json        journalctl -u 'barnabee-*' --since=-<window> -o json (raw lines)
//!   health/<role>.json  each daemon's /health: {url, http_status, body} or {url, error}
//!   incidents.json      the watchdog's GET /v1/incidents?since_ms=<now - window>&limit=1000
//!   units.json          the watchdog's GET /v1/units
//!   versions.txt        barnabee and each daemon's --version, uname -a, /etc/os-release
//!   generations.txt     running, booted and profile NixOS generations, every system-N-link
//!   host.txt            disk (statvfs), memory, load, uptime
//!   MANIFEST.json       per section: status (ok / error / skipped), error, note, bytes, duration
//! ```
//!
//! A failing source never stops the bundle: it is recorded in the manifest and the printed
//! summary. The exit status is 0 once the bundle is written (even with failed sections) and
//! non-zero only when the bundle itself cannot be written. The bundle is mode 0600: it holds
//! logs.

mod bundle;
mod generations;
mod host;
mod journal;
mod versions;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use serde_json::{Value, json};

use crate::daemons::DAEMONS;
use crate::{health, status, utc};

use bundle::{Content, Entry};

#[derive(clap::Args)]
pub struct IncidentArgs {
    #[command(subcommand)]
    command: IncidentCommand,
}

#[derive(clap::Subcommand)]
enum IncidentCommand {
    /// Write one tar.zst bundle: journal of the barnabee units, each daemon's /health, the
    /// watchdog's incidents and units, versions, NixOS generations, disk/memory/load.
    Collect(CollectArgs),
}

#[derive(clap::Args)]
pub struct CollectArgs {
    /// The bundle's path, or a directory for the default name
    /// (default: ./barnabee-incident-<host>-<UTC timestamp>.tar.zst).
    #[arg(long, value_name = "PATH")]
    out: Option<PathBuf>,
    /// How far back: journal and incidents since this long ago (e.g. 90s, 30m, 1h, 2h30m, 1d).
    #[arg(long, default_value = "1h", value_parser = parse_window)]
    since: Duration,
    /// Ask this daemon at this base URL (repeatable), e.g. `--url memory=http://127.0.0.1:7701`.
    /// Default: the daemons of a running `barnabee up`, else those configured in
    /// --config-dir, else every daemon at its default port.
    #[arg(long = "url", value_name = "ROLE=URL")]
    urls: Vec<String>,
    /// Leave the journal out (e.g. when journalctl hangs).
    #[arg(long)]
    no_journal: bool,
    /// The data dir of a `barnabee up` (default: $XDG_DATA_HOME/barnabee).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Where the appliance's configs are.
    #[arg(long, default_value = "/etc/barnabee")]
    config_dir: PathBuf,
}

pub fn run(args: IncidentArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        IncidentCommand::Collect(a) => collect(a),
    }
}

/// `90s`, `30m`, `1h`, `2h30m`, `1d`; a bare number is seconds.
pub fn parse_window(s: &str) -> Result<Duration, String> {
    let d = barnabee_service::time::parse_duration(s)?;
    if d.is_zero() {
        return Err(format!("{s:?}: the window must be longer than 0 s"));
    }
    Ok(d)
}

/// One row of MANIFEST.json.
#[derive(Serialize)]
struct Section {
    name: String,
    file: String,
    /// "ok", "error" or "skipped".
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// Something worth knowing that is not a failure (HTTP 503, journalctl's warnings).
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
    /// A short description of what was collected, for the printed summary.
    summary: String,
    bytes: u64,
    duration_ms: u64,
}

/// What a collector hands back.
struct Collected {
    name: String,
    file: String,
    content: Content,
    /// Err: the source failed (the content still goes in: it says what happened).
    result: Result<String, String>,
    note: Option<String>,
    skipped: bool,
    took: Duration,
}

fn collect(args: CollectArgs) -> anyhow::Result<ExitCode> {
    let now = SystemTime::now();
    let now_secs = utc::epoch_secs(now);
    let host = hostname();
    let top = format!("barnabee-incident-{host}-{}", utc::compact(now_secs));
    let out = match &args.out {
        Some(p) if p.is_dir() => p.join(format!("{top}.tar.zst")),
        Some(p) => p.clone(),
        None => PathBuf::from(format!("{top}.tar.zst")),
    };
    let (targets, target_note) = targets(&args)?;
    let since_ms = now
        .checked_sub(args.since)
        .map(|t| utc::epoch_secs(t).saturating_mul(1000))
        .unwrap_or(0);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut collected = runtime.block_on(gather(&args, &targets, since_ms))?;
    if let Some(note) = target_note {
        for c in collected
            .iter_mut()
            .filter(|c| c.name.starts_with("health/"))
        {
            c.note.get_or_insert_with(|| note.clone());
        }
    }

    let mut sections = Vec::new();
    let mut entries = Vec::new();
    for c in collected {
        let bytes = match &c.content {
            Content::Bytes(b) => b.len() as u64,
            Content::File(f) => f.metadata().map(|m| m.len()).unwrap_or(0),
        };
        let (status, summary, error) = match c.result {
            _ if c.skipped => ("skipped", String::new(), None),
            Ok(summary) => ("ok", summary, None),
            Err(e) => ("error", String::new(), Some(e)),
        };
        sections.push(Section {
            name: c.name,
            file: c.file.clone(),
            status,
            error,
            note: c.note,
            summary,
            bytes,
            duration_ms: c.took.as_millis() as u64,
        });
        if !c.skipped {
            entries.push(Entry {
                path: c.file,
                content: c.content,
            });
        }
    }
    let manifest = json!({
        "format": 1,
        "host": host,
        "created": utc::readable(now_secs),
        "created_ms": now_secs.saturating_mul(1000),
        "window_s": args.since.as_secs(),
        "since_ms": since_ms,
        "barnabee_version": env!("CARGO_PKG_VERSION"),
        "daemons": targets.iter().map(|(r, u)| json!({"role": r, "url": u})).collect::<Vec<_>>(),
        "sections": sections,
    });
    entries.push(Entry {
        path: "MANIFEST.json".into(),
        content: Content::Bytes(serde_json::to_vec_pretty(&manifest)?),
    });

    let size = bundle::write(&out, &top, now_secs.max(0) as u64, entries)?;
    let shown = std::path::absolute(&out).unwrap_or(out);
    for s in &sections {
        println!("{}", summary_line(s));
    }
    let failed = sections.iter().filter(|s| s.status == "error").count();
    println!(
        "wrote {} ({}, {} sections{})",
        shown.display(),
        host::bytes(size),
        sections.len(),
        if failed > 0 {
            format!(", {failed} failed: see MANIFEST.json")
        } else {
            String::new()
        }
    );
    Ok(ExitCode::SUCCESS)
}

fn summary_line(s: &Section) -> String {
    let detail = match (s.status, &s.error) {
        ("error", Some(e)) => e.clone(),
        _ => {
            let mut d = s.summary.clone();
            if let Some(n) = &s.note {
                let first = n.lines().next().unwrap_or_default();
                d = if d.is_empty() {
                    first.to_owned()
                } else {
                    format!("{d}; {first}")
                };
            }
            d
        }
    };
    let status = match s.status {
        "ok" => "ok",
        "skipped" => "skipped",
        _ => "FAILED",
    };
    format!(
        "  {:<24} {status:<8} {detail} [{}, {} ms]",
        s.file,
        host::bytes(s.bytes),
        s.duration_ms
    )
}

/// `(role, base URL)` of each daemon to ask.
type Targets = Vec<(String, String)>;

/// The daemons to ask; a note when the list is a fallback.
fn targets(args: &CollectArgs) -> anyhow::Result<(Targets, Option<String>)> {
    let defaults = || {
        DAEMONS
            .iter()
            .map(|d| (d.role.to_owned(), format!("http://{}", d.default_addr())))
            .collect::<Vec<_>>()
    };
    match status::discover(&args.urls, args.data_dir.as_deref(), &args.config_dir) {
        Ok(t) if !t.is_empty() => Ok((t, None)),
        Ok(_) => Ok((
            defaults(),
            Some(format!(
                "no `barnabee up` running and no configs in {}: asked the default port",
                args.config_dir.display()
            )),
        )),
        // A malformed --url is the operator's typo: say so before collecting anything.
        Err(e) if !args.urls.is_empty() => Err(e),
        Err(e) => Ok((defaults(), Some(format!("{e:#}; asked the default port")))),
    }
}

/// A section written by journalctl (`journal.json`, `kernel.txt`); skipped with `--no-journal`.
async fn journal_section(
    name: &str,
    file: &str,
    skip: bool,
    collect: impl std::future::Future<Output = journal::Journal>,
) -> Collected {
    if skip {
        return Collected {
            name: name.into(),
            file: file.into(),
            content: Content::Bytes(Vec::new()),
            result: Ok(String::new()),
            note: Some("--no-journal".into()),
            skipped: true,
            took: Duration::ZERO,
        };
    }
    let start = Instant::now();
    let j = collect.await;
    Collected {
        name: name.into(),
        file: file.into(),
        content: j
            .file
            .map(Content::File)
            .unwrap_or(Content::Bytes(Vec::new())),
        result: match j.error {
            Some(e) => Err(e),
            None => Ok(format!("{} lines", j.lines)),
        },
        note: j.note,
        skipped: false,
        took: start.elapsed(),
    }
}

async fn gather(
    args: &CollectArgs,
    targets: &[(String, String)],
    since_ms: i64,
) -> anyhow::Result<Vec<Collected>> {
    let client = health::client()?;
    let journal = journal_section("journal", "journal.json", args.no_journal, async {
        journal::collect(args.since).await
    });
    let http = async {
        let mut set = tokio::task::JoinSet::new();
        for (i, (role, url)) in targets.iter().enumerate() {
            let (client, role, url) = (client.clone(), role.clone(), url.clone());
            set.spawn(async move { (i, health_section(&client, &role, &url).await) });
        }
        let watchdog = targets
            .iter()
            .find(|(r, _)| r == "watchdog")
            .map(|(_, u)| u.clone());
        let base = targets.len();
        for (k, (name, path)) in [
            (
                "incidents",
                format!("/v1/incidents?since_ms={since_ms}&limit=1000"),
            ),
            ("units", "/v1/units".to_owned()),
        ]
        .into_iter()
        .enumerate()
        {
            let (client, watchdog) = (client.clone(), watchdog.clone());
            set.spawn(async move {
                (
                    base + k,
                    watchdog_section(&client, name, watchdog.as_deref(), &path).await,
                )
            });
        }
        let mut out: Vec<(usize, Collected)> = set.join_all().await;
        out.sort_by_key(|(i, _)| *i);
        out.into_iter().map(|(_, c)| c).collect::<Vec<_>>()
    };
    let local = async {
        let start = Instant::now();
        let v = versions::report().await;
        let versions = Collected {
            name: "versions".into(),
            file: "versions.txt".into(),
            content: Content::Bytes(v.text.into_bytes()),
            result: Ok(format!(
                "{} of {} daemon versions",
                v.answered,
                DAEMONS.len()
            )),
            note: (!v.problems.is_empty()).then(|| v.problems.join("; ")),
            skipped: false,
            took: start.elapsed(),
        };
        let start = Instant::now();
        let g = generations::report(Path::new("/"));
        let generations = Collected {
            name: "generations".into(),
            file: "generations.txt".into(),
            content: Content::Bytes(g.text.clone().into_bytes()),
            result: Ok(if g.nixos {
                format!("{} generations", g.generations)
            } else {
                String::new()
            }),
            note: (!g.nixos).then(|| g.text.trim().to_owned()),
            skipped: false,
            took: start.elapsed(),
        };
        let start = Instant::now();
        let h = host::report();
        let host = Collected {
            name: "host".into(),
            file: "host.txt".into(),
            content: Content::Bytes(h.text.into_bytes()),
            result: if h.problems.is_empty() {
                Ok("disk, memory, load, uptime".into())
            } else {
                Err(h.problems.join("; "))
            },
            note: None,
            skipped: false,
            took: start.elapsed(),
        };
        [versions, generations, host]
    };
    let kernel = journal_section("kernel", "kernel.txt", args.no_journal, async {
        journal::collect_kernel(args.since).await
    });
    let (journal, kernel, http, local) = tokio::join!(journal, kernel, http, local);
    let mut all = vec![journal, kernel];
    all.extend(http);
    all.extend(local);
    Ok(all)
}

/// GET `url`: (HTTP status, body as JSON, or as a string when it is not JSON).
async fn get(client: &reqwest::Client, url: &str) -> Result<(u16, Value), String> {
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("{url}: {}", health::brief(e)))?;
    let status = response.status().as_u16();
    let body = response.bytes().await.map_err(|e| {
        format!(
            "{url}: HTTP {status}, body unreadable: {}",
            health::brief(e)
        )
    })?;
    let value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    Ok((status, value))
}

async fn health_section(client: &reqwest::Client, role: &str, base: &str) -> Collected {
    let start = Instant::now();
    let url = format!("{}/health", base.trim_end_matches('/'));
    let (doc, result, note) = match get(client, &url).await {
        Ok((status, body)) => {
            let word = body["status"]
                .as_str()
                .unwrap_or("no status field")
                .to_owned();
            let note = (status != 200).then(|| format!("HTTP {status}: {word}"));
            let failing: Vec<String> = body["checks"]
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(_, c)| c["ok"] == Value::Bool(false))
                .map(|(name, c)| format!("{name}: {}", c["detail"].as_str().unwrap_or("")))
                .collect();
            let summary = if failing.is_empty() {
                format!("HTTP {status} {word}")
            } else {
                format!("HTTP {status} {word} ({})", failing.join("; "))
            };
            (
                json!({"role": role, "url": url, "http_status": status, "body": body}),
                Ok(summary),
                note,
            )
        }
        Err(e) => (json!({"role": role, "url": url, "error": e}), Err(e), None),
    };
    Collected {
        name: format!("health/{role}"),
        file: format!("health/{role}.json"),
        content: Content::Bytes(pretty(&doc)),
        result,
        note,
        skipped: false,
        took: start.elapsed(),
    }
}

async fn watchdog_section(
    client: &reqwest::Client,
    name: &str,
    base: Option<&str>,
    path: &str,
) -> Collected {
    let start = Instant::now();
    let (doc, result) = match base {
        None => {
            let e = "no watchdog to ask (pass --url watchdog=URL)".to_owned();
            (json!({"error": e}), Err(e))
        }
        Some(base) => {
            let url = format!("{}{path}", base.trim_end_matches('/'));
            match get(client, &url).await {
                Ok((200, body)) => {
                    let n = body[name].as_array().map(Vec::len);
                    match n {
                        Some(n) => {
                            let noun = if n == 1 {
                                name.trim_end_matches('s')
                            } else {
                                name
                            };
                            (body, Ok(format!("{n} {noun}")))
                        }
                        None => {
                            let e = format!("{url}: HTTP 200 without a {name:?} list");
                            (json!({"url": url, "error": e, "body": body}), Err(e))
                        }
                    }
                }
                Ok((status, body)) => {
                    let e = format!("{url}: HTTP {status}: {}", short(&body));
                    (
                        json!({"url": url, "http_status": status, "error": e, "body": body}),
                        Err(e),
                    )
                }
                Err(e) => (json!({"url": url, "error": e}), Err(e)),
            }
        }
    };
    Collected {
        name: name.to_owned(),
        file: format!("{name}.json"),
        content: Content::Bytes(pretty(&doc)),
        result,
        note: None,
        skipped: false,
        took: start.elapsed(),
    }
}

fn short(v: &Value) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    s.chars().take(200).collect()
}

fn pretty(v: &Value) -> Vec<u8> {
    let mut b = serde_json::to_vec_pretty(v).unwrap_or_default();
    b.push(b'\n');
    b
}

/// This machine's name, safe for a file name.
fn hostname() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    let clean: String = raw
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.is_empty() {
        "unknown-host".into()
    } else {
        clean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_parse_and_bad_ones_say_why() {
        assert_eq!(parse_window("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_window("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_window("2h30m"), Ok(Duration::from_secs(9000)));
        assert_eq!(parse_window("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_window("600"), Ok(Duration::from_secs(600)));
        assert!(
            parse_window("1w")
                .unwrap_err()
                .contains("unknown unit \"w\"")
        );
        assert!(
            parse_window("h")
                .unwrap_err()
                .contains("a number must come before")
        );
        assert!(parse_window("1h30").unwrap_err().contains("has no unit"));
        assert!(parse_window("0m").unwrap_err().contains("longer than 0"));
    }

    #[test]
    fn hostname_is_file_name_safe() {
        let h = hostname();
        assert!(!h.is_empty());
        assert!(!h.contains('/') && !h.contains(' '), "{h}");
    }
}
