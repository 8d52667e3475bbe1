//! barnabee-service: what every Barnabee daemon shares, and nothing daemon-specific.
//!
//! This is the bottom layer of the workspace: it depends on no other Barnabee crate.
//! A daemon's `main.rs` uses it like this:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use barnabee_service::{Args, Runtime, config};
//! #[derive(serde::Deserialize, Default)]
//! #[serde(deny_unknown_fields)]
//! struct Config { #[serde(default)] service: config::ServiceConfig }
//! let args = Args::parse_from_env();
//! let cfg: Config = config::load(&args.config)?;
//! barnabee_service::logging::init("barnabee-demo", &cfg.service.log)?;
//! let rt = Runtime::new("demo", &cfg.service);
//! rt.status("warming up");
//! let routes = axum::Router::new();
//! rt.serve(routes).await?; // READY=1 once bound, WATCHDOG=1 from the main loop, drain on SIGTERM
//! # Ok(()) }
//! ```

pub mod args;
pub mod catalog;
pub mod config;
pub mod health;
pub mod http;
pub mod http_client;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod runtime;
pub mod secret;
#[cfg(feature = "testing")]
pub mod testing;
pub mod time;

pub use args::Args;
pub use health::{Check, Health};
pub use runtime::{Heartbeat, Runtime, ServeError, Shutdown};

/// `err` and its sources, joined by ": " (reqwest and hyper hide the useful part in sources).
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
