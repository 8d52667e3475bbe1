//! barnabee-console: the operator console, a web page on the beelink for the family's
//! appliance (daemon layer; depends on barnabee-service only).
//!
//! It reads the daemons' HTTP APIs on both hosts and keeps no state beyond login sessions:
//! Overview (health of every daemon, Home Assistant and the language models, alerts,
//! incidents), Memories (search, browse, delete), Cost (budget, monthly report, local-only and
//! reset switches), Backups (replication, restore points, verification). Server-rendered HTML,
//! no script, no CDN: see README.md for why.

pub mod auth;
pub mod config;
pub mod pages;
pub mod peers;
pub mod web;

use std::sync::Arc;
use std::time::Duration;

use barnabee_service::Runtime;

use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
    #[error("cannot build the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    #[error(transparent)]
    Serve(#[from] barnabee_service::ServeError),
}

/// Serve the console until SIGTERM.
pub async fn run(cfg: Config, rt: Runtime) -> Result<(), RunError> {
    // Not provisioned yet: serve anyway (the health gate tells "not provisioned" from "broken"),
    // refusing every login, and say so in /health.
    let hash = match auth::load_hash(&cfg.auth) {
        Ok(h) => {
            rt.health().component(
                "password",
                barnabee_service::Check::ok("provisioned").non_critical(),
            );
            h
        }
        Err(e @ auth::AuthError::NotProvisioned { .. }) => {
            log::warn!(event = "console_password_not_provisioned"; "{e}");
            rt.health().component(
                "password",
                barnabee_service::Check::fail(e.to_string()).non_critical(),
            );
            String::new()
        }
        Err(e) => return Err(e.into()),
    };
    let sessions = Arc::new(auth::Sessions::new(
        Duration::from_secs(cfg.auth.session_hours * 3600),
        cfg.auth.max_failures_per_minute,
    ));
    let peers = peers::Peers::new(cfg.pages.timeout())?;
    let n = cfg.daemons.len();
    rt.health().component(
        "daemons",
        barnabee_service::Check::ok(format!("{n} daemons configured")).non_critical(),
    );
    let state = web::AppState {
        cfg: Arc::new(cfg),
        peers,
        sessions,
        verifier: Arc::new(auth::Verifier::start(hash)?),
    };
    rt.status("serving the console");
    rt.serve(web::router(state)).await?;
    Ok(())
}
