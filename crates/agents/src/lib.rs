//! barnabee-agents: routes every utterance (instant answers, Home Assistant actions, memory,
//! the LLM inside a cost budget). A daemon on top of barnabee-service; talks to its peers
//! (Home Assistant, barnabee-memory, OpenAI-compatible LLM servers) over HTTP/WebSocket only.
//!
//! Layout: `route/` decides (rules, one file per route), `agent/` acts (one file per agent),
//! `ha/` is the Home Assistant client and entity index, `llm` the chat-completions client,
//! `governor` the cost ledger and policy, `app` one utterance end to end, `api` the HTTP API,
//! `wyoming` the same for Home Assistant's Assist (a Wyoming conversation service).

pub mod agent;
pub mod api;
pub mod app;
pub mod breaker;
pub mod clock;
pub mod config;
pub mod cost_report;
pub mod governor;
pub mod guard;
pub mod ha;
pub mod llm;
pub mod metrics;
pub mod route;
pub mod session;
pub mod wyoming;

use std::sync::Arc;
use std::time::Duration;

use barnabee_replicator::embed;
use barnabee_service::{Check, Runtime};

use crate::agent::action::ActionAgent;
use crate::agent::instant::InstantAgent;
use crate::agent::interaction::InteractionAgent;
use crate::agent::memory::MemoryAgent;
use crate::app::App;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::governor::{Governor, Ledger};
use crate::llm::{LlmClient, Provider};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Router(#[from] route::RouterError),
    #[error(transparent)]
    Ledger(#[from] governor::LedgerError),
    #[error("llm.providers[{index}].api_key_file: {source}")]
    ApiKey {
        index: usize,
        #[source]
        source: barnabee_service::secret::SecretError,
    },
    #[error(transparent)]
    Serve(#[from] barnabee_service::ServeError),
    #[error("cannot build an HTTP client: {0}")]
    HttpClient(#[from] reqwest::Error),
    #[error(transparent)]
    Replication(#[from] embed::ReplicationError),
    #[error("the guard's audit log ({path}): {source}")]
    Audit {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
}

/// The unit the operator restarts or stops, as `/health` and the journal name it.
pub const UNIT: &str = "barnabee-agents";

/// Build the agents from the config: everything but the HTTP server and the WebSocket worker.
/// Peers that are missing or unreachable make the daemon degraded, never fail start-up.
pub fn build(
    cfg: &Config,
    rt: &Runtime,
    clock: Arc<dyn Clock>,
) -> Result<(Arc<App>, Option<ha::HaClient>), RunError> {
    let router = route::Router::load(cfg.router.rules_file.as_deref())?;
    let metrics = metrics::AgentMetrics::new();
    metrics.register(rt.metrics());
    metrics.set_budget(cfg.budget.daily_limit_usd, cfg.budget.monthly_limit_usd);
    let health = rt.health();

    // Home Assistant (optional).
    let ha_health = health.component(
        "home_assistant",
        Check::fail("not configured ([home_assistant] url, token_file)").non_critical(),
    );
    let (ha_client, confirm) = match &cfg.home_assistant {
        None => (
            Err("Home Assistant is not configured".to_owned()),
            Duration::from_secs(3),
        ),
        Some(h) => match barnabee_service::secret::read("home_assistant.token_file", &h.token_file)
        {
            Ok(token) => {
                ha_health.fail(format!("connecting to {}", h.url));
                (
                    Ok(ha::HaClient::new(&h.url, token, h.timeout)?),
                    h.confirm_timeout,
                )
            }
            // Empty: not provisioned yet (first boot, before sops-nix can decrypt). Degraded
            // with a reason that says so, not an incident; a restart picks the token up.
            Err(e) if e.is_not_provisioned() => {
                ha_health.fail(e.to_string());
                log::warn!(event = "home_assistant_not_provisioned", key = "home_assistant.token_file"; "Home Assistant actions are unavailable: {e}");
                (
                    Err(
                        "my Home Assistant token is not set up yet (see the daemon's log)"
                            .to_owned(),
                    ),
                    h.confirm_timeout,
                )
            }
            Err(e) => {
                ha_health.fail(format!("token unreadable: {e}"));
                log::error!(event = "incident"; "home_assistant.token_file: {e}");
                (
                    Err("my Home Assistant token cannot be read (see the daemon's log)".to_owned()),
                    h.confirm_timeout,
                )
            }
        },
    };
    let ha_for_worker = ha_client.as_ref().ok().cloned();
    let fallback = cfg
        .home_assistant
        .as_ref()
        .is_some_and(|h| h.conversation_fallback);
    let guard = guard::Guard::new(cfg.guard.clone(), audit_log(cfg)?);
    let action = ActionAgent::new(ha_client, confirm, Some(ha_health), guard)
        .with_conversation_fallback(fallback);

    // LLM providers and the cost governor. A provider whose key is not provisioned yet (empty
    // credential) is left out, and `llm` is degraded naming it; any other key problem (missing
    // file, too open) is a broken config and stops the start.
    let mut providers = Vec::new();
    let mut not_provisioned = Vec::new();
    for (index, p) in cfg.llm.all_providers().iter().enumerate() {
        let api_key = match &p.api_key_file {
            None => None,
            Some(path) => {
                let key = format!("llm.providers[{index}].api_key_file");
                match barnabee_service::secret::read(&key, path) {
                    Ok(secret) => Some(secret),
                    Err(e) if e.is_not_provisioned() => {
                        log::warn!(event = "llm_provider_not_provisioned", provider = p.name.as_str(), key = key.as_str(); "LLM provider {} is unavailable: {e}", p.name);
                        not_provisioned.push(format!("{} unavailable: {e}", p.name));
                        continue;
                    }
                    Err(source) => return Err(RunError::ApiKey { index, source }),
                }
            }
        };
        providers.push(Provider {
            cfg: p.clone(),
            api_key,
        });
    }
    let names = providers
        .iter()
        .map(|p| p.cfg.name.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let llm_check = if !not_provisioned.is_empty() {
        let usable = if providers.is_empty() {
            "no usable provider; interaction answers are unavailable".to_owned()
        } else {
            format!("{} provider(s): {names}", providers.len())
        };
        Check::fail(format!("{usable}; {}", not_provisioned.join("; ")))
    } else if providers.is_empty() {
        Check::fail("no [[llm.providers]] configured; interaction answers are unavailable")
    } else {
        Check::ok(format!("{} provider(s): {names}", providers.len()))
    };
    health.component("llm", llm_check.non_critical());
    let breakers = breaker::Breakers::new(
        cfg.llm.breaker_failures,
        cfg.llm.breaker_cooldown,
        metrics.llm_breaker_open.clone(),
    );
    let probe = breakers.clone();
    health.probe("llm_providers", move || {
        let report = probe.report();
        async move {
            match report {
                Ok(detail) => Check::ok(detail),
                Err(detail) => Check::fail(detail),
            }
            .non_critical()
        }
    });
    let state_dir = cfg.resolved_state_dir();
    if state_dir.is_none() {
        log::warn!(
            "no state_dir and no $STATE_DIRECTORY: the cost ledger lives in memory and resets on restart"
        );
    }
    let ledger = Arc::new(Ledger::open(state_dir.as_deref())?);
    let governor = Governor::new(ledger, cfg.budget.clone(), clock.clone());
    let interaction = InteractionAgent::new(
        LlmClient::new(providers, cfg.llm.prices.clone(), breakers)?,
        governor,
        metrics.clone(),
        cfg.llm.system_prompt.clone(),
        cfg.llm.stream,
    );
    let state = interaction.budget_state_at_start();
    let gov = interaction.governor.clone();
    let cost_gauges = metrics.clone();
    // Also refreshes the spend gauges: /metrics evaluates /health first, so a scrape after
    // midnight sees today's spend (0), not yesterday's until the next conversation.
    health.probe("budget", move || {
        let gov = gov.clone();
        let gauges = cost_gauges.clone();
        async move {
            let spend = tokio::task::spawn_blocking(move || gov.spend())
                .await
                .map_err(|join| join.to_string());
            match spend.and_then(|s| s.map_err(|e| e.to_string())) {
                Ok(s) => {
                    gauges.daily_cost.set(s.day_usd);
                    gauges.monthly_cost.set(s.month_usd);
                    let detail = format!(
                        "{:?}: ${:.4} today, ${:.4} this month ({:.0}% of a limit)",
                        s.state,
                        s.day_usd,
                        s.month_usd,
                        s.share * 100.0
                    )
                    .to_lowercase();
                    if s.state == governor::BudgetState::Red {
                        Check::fail(detail).non_critical()
                    } else {
                        Check::ok(detail).non_critical()
                    }
                }
                Err(e) => Check::fail(format!("ledger unreadable: {e}")).non_critical(),
            }
        }
    });
    log::info!(budget = format!("{state:?}"); "cost governor ready");

    // barnabee-memory.
    let memory = MemoryAgent::new(
        &cfg.memory.url,
        cfg.memory.timeout,
        &cfg.memory.default_speaker,
        clock.clone(),
    )?;
    let mem_url = memory.base().to_owned();
    let probe_http = barnabee_service::http_client::loopback(Duration::from_secs(1))?;
    health.probe("memory", move || {
        let (http, url) = (probe_http.clone(), mem_url.clone());
        async move {
            match http.get(format!("{url}/health")).send().await {
                Ok(r) if r.status().is_success() => {
                    Check::ok(format!("{url} healthy")).non_critical()
                }
                Ok(r) => {
                    Check::fail(format!("{url}/health answered {}", r.status())).non_critical()
                }
                Err(e) => Check::fail(format!("cannot reach {url}: {e}")).non_critical(),
            }
        }
    });

    let app = Arc::new(App {
        router,
        sessions: session::Sessions::new(cfg.session.ttl, cfg.session.max_turns),
        metrics,
        instant: InstantAgent::new(clock, timers(cfg)?),
        action,
        memory,
        interaction,
        store_turns: cfg.memory.store_turns,
        llm_classifier: cfg.router.llm_classifier,
    });
    Ok((app, ha_for_worker))
}

/// Start-up, then serve until SIGTERM. With `[replication]` the cost ledger is restored
/// before it is opened (a replacement beelink keeps the month's spend) and replicated while
/// serving; after the drain what is committed ships.
pub async fn run(cfg: Config, rt: Runtime) -> Result<(), RunError> {
    // validate() refuses [replication] without a state directory.
    let ledger = cfg.resolved_state_dir().map(|d| governor::ledger_path(&d));
    let section = cfg.replication.as_ref().filter(|_| ledger.is_some());
    if let Some(db) = &ledger {
        embed::restore_in_daemon(&rt, section, db, Duration::from_secs(300)).await?;
    }
    let (app, ha) = build(&cfg, &rt, Arc::new(SystemClock))?;
    // Timers saved before a restart run on (or ring now, if they ended meanwhile).
    app.instant.timers.resume();
    let replication = match &ledger {
        Some(db) => embed::start_in_daemon(&rt, section, db, UNIT).await?,
        None => embed::Replication::not_configured(),
    };
    if let (Some(client), Some(health)) = (ha, app.action.health()) {
        tokio::spawn(ha::ws::run(client, health, rt.shutdown()));
    }
    if let Some(w) = &cfg.wyoming {
        serve_wyoming(&rt, w, app.clone(), cfg.http.max_text_chars).await;
    }
    let routes = api::router(
        api::ApiState {
            app,
            max_text_chars: cfg.http.max_text_chars,
        },
        cfg.http.max_body_bytes,
    );
    rt.status("routing utterances");
    let served = rt.serve(routes).await;
    replication.shutdown().await;
    served?;
    Ok(())
}

/// Listen for Home Assistant's Assist. A busy port degrades (HTTP keeps serving, `/health` says
/// why) rather than failing the daemon into a restart loop, as inference's Wyoming server does.
async fn serve_wyoming(
    rt: &Runtime,
    w: &config::WyomingConfig,
    app: Arc<App>,
    max_text_chars: usize,
) {
    match tokio::net::TcpListener::bind(w.listen).await {
        Ok(listener) => {
            let addr = listener
                .local_addr()
                .map_or_else(|_| w.listen.to_string(), |a| a.to_string());
            log::info!(wyoming = addr.as_str(); "Wyoming conversation service on tcp://{addr}");
            rt.health()
                .component("wyoming", Check::ok(format!("tcp://{addr}")).non_critical());
            let svc = Arc::new(wyoming::Service {
                app,
                languages: w.languages.clone(),
                max_text_chars,
            });
            tokio::spawn(wyoming::serve(listener, svc, rt.shutdown()));
        }
        Err(e) => {
            let msg = format!("cannot listen for Wyoming on {}: {e}", w.listen);
            log::error!(event = "incident"; "{msg}");
            rt.health()
                .component("wyoming", Check::fail(msg).non_critical());
        }
    }
}

/// Kitchen timers: kept in the state directory (none: in memory) and rung by `[voice]`.
fn timers(cfg: &Config) -> Result<agent::timers::Timers, RunError> {
    let file = cfg.resolved_state_dir().map(|d| d.join("timers.json"));
    let ringer = match &cfg.voice {
        Some(v) => Some(agent::timers::Ringer {
            voice_url: v.url.clone(),
            http: barnabee_service::http_client::build(|b| {
                b.no_proxy().timeout(Duration::from_secs(10))
            })?,
            retry: Duration::from_secs(5),
        }),
        None => None,
    };
    Ok(agent::timers::Timers::open(file, ringer))
}

/// The guarded actions' audit log, in the ledger's database file (in memory without a state
/// directory, like the ledger).
fn audit_log(cfg: &Config) -> Result<guard::Audit, RunError> {
    let db = cfg.resolved_state_dir().map(|d| {
        let _ = std::fs::create_dir_all(&d);
        governor::ledger_path(&d)
    });
    let audit = guard::Audit::open(db.as_deref()).map_err(|source| RunError::Audit {
        path: db.map_or_else(|| ":memory:".to_owned(), |p| p.display().to_string()),
        source,
    })?;
    let http =
        barnabee_service::http_client::build(|b| b.no_proxy().timeout(Duration::from_secs(5)))?;
    Ok(audit.forwarding_to(&cfg.memory.url, http))
}
