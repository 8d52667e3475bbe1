//! The daemon's life: serve, keep systemd informed, stop cleanly.
//!
//! [`Runtime::serve`] binds the listener, sends `READY=1` (the caller has finished its own
//! start-up by then, so ready means "can serve"), and runs the main loop. The main loop sends
//! `WATCHDOG=1` at half of `WATCHDOG_USEC`, and only while every registered [`Heartbeat`] is
//! fresh: a worker that wedges stops beating, the pings stop, and systemd restarts the unit.
//! Because the loop runs on the daemon's own runtime, a runtime blocked by a stuck task stops
//! the pings too (unlike a detached timer thread, which would ping through the hang).
//! On SIGTERM or SIGINT it sends `STOPPING=1`, stops accepting, and drains in-flight work for
//! at most `drain_timeout`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::ServiceConfig;
use crate::health::Health;
use crate::http;
use crate::metrics::Metrics;
use crate::notify::Notifier;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot install the {signal} handler: {source}")]
    Signal {
        signal: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("HTTP server failed: {0}")]
    Server(#[source] std::io::Error),
}

/// A shutdown signal shared by the main loop, the HTTP server and the daemon's workers.
#[derive(Clone)]
pub struct Shutdown {
    tx: Arc<watch::Sender<bool>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self {
            tx: Arc::new(watch::channel(false).0),
        }
    }
}

impl Shutdown {
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    pub fn is_triggered(&self) -> bool {
        *self.tx.borrow()
    }

    /// Resolves once shutdown has been triggered.
    pub async fn wait(&self) {
        let mut rx = self.tx.subscribe();
        // The sender lives in self, so wait_for cannot fail.
        let _ = rx.wait_for(|stop| *stop).await;
    }
}

struct HeartbeatState {
    name: String,
    max_silence: Duration,
    last: Mutex<Instant>,
}

/// A worker's proof of life; call [`Heartbeat::beat`] from the worker's loop.
#[derive(Clone)]
pub struct Heartbeat {
    state: Arc<HeartbeatState>,
}

impl Heartbeat {
    pub fn beat(&self) {
        *self.state.last.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    fn silent_for(&self, now: Instant) -> Option<Duration> {
        let last = *self.state.last.lock().unwrap_or_else(|e| e.into_inner());
        let silence = now.saturating_duration_since(last);
        (silence > self.state.max_silence).then_some(silence)
    }
}

/// Shared services of one daemon process.
pub struct Runtime {
    name: String,
    config: ServiceConfig,
    notifier: Notifier,
    health: Health,
    metrics: Metrics,
    heartbeats: Mutex<Vec<Heartbeat>>,
    shutdown: Shutdown,
}

/// How often the main loop runs when systemd set no watchdog.
const IDLE_TICK: Duration = Duration::from_secs(1);

impl Runtime {
    /// `name` is the daemon's role (`memory`); the unit is `barnabee-<name>`.
    pub fn new(name: &str, config: &ServiceConfig) -> Self {
        let metrics = Metrics::new();
        metrics.register_build_info(name, env!("CARGO_PKG_VERSION"));
        Self {
            name: name.to_owned(),
            config: config.clone(),
            notifier: Notifier::from_env(),
            health: Health::new(),
            metrics,
            heartbeats: Mutex::new(Vec::new()),
            shutdown: Shutdown::default(),
        }
    }

    /// Replace the notifier taken from the environment (tests, embedded supervisors).
    pub fn with_notifier(mut self, notifier: Notifier) -> Self {
        self.notifier = notifier;
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn config(&self) -> &ServiceConfig {
        &self.config
    }

    pub fn health(&self) -> &Health {
        &self.health
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn notifier(&self) -> &Notifier {
        &self.notifier
    }

    pub fn shutdown(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// A human line for `systemctl status` (`STATUS=`).
    pub fn status(&self, line: &str) {
        if let Err(err) = self.notifier.status(line) {
            log::warn!("cannot send STATUS to systemd: {err}");
        }
    }

    /// Ask systemd for more start-up time before a long step (loading models, restoring).
    pub fn extend_timeout(&self, by: Duration) {
        if let Err(err) = self.notifier.extend_timeout(by) {
            log::warn!("cannot send EXTEND_TIMEOUT_USEC to systemd: {err}");
        }
    }

    /// Register a worker that must beat at least every `max_silence`; while it is silent the
    /// watchdog pings stop.
    pub fn heartbeat(&self, name: &str, max_silence: Duration) -> Heartbeat {
        let hb = Heartbeat {
            state: Arc::new(HeartbeatState {
                name: name.to_owned(),
                max_silence,
                last: Mutex::new(Instant::now()),
            }),
        };
        self.heartbeats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(hb.clone());
        hb
    }

    /// Bind the configured listen address.
    pub async fn bind(&self) -> Result<TcpListener, ServeError> {
        let addr = self.config.listen;
        TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })
    }

    /// Bind, then [`Runtime::serve_on`].
    pub async fn serve(self, routes: Router) -> Result<(), ServeError> {
        let listener = self.bind().await?;
        self.serve_on(listener, routes).await
    }

    /// Serve `routes` (plus `/health` and `/metrics`) on `listener` until SIGTERM/SIGINT or
    /// [`Shutdown::trigger`], then drain.
    pub async fn serve_on(self, listener: TcpListener, routes: Router) -> Result<(), ServeError> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut sigterm = signal(SignalKind::terminate()).map_err(|source| ServeError::Signal {
            signal: "SIGTERM",
            source,
        })?;
        let mut sigint = signal(SignalKind::interrupt()).map_err(|source| ServeError::Signal {
            signal: "SIGINT",
            source,
        })?;

        let addr = listener.local_addr().map_err(ServeError::Server)?;
        let app = http::router(routes, self.health.clone(), self.metrics.clone());
        let stop = self.shutdown.clone();
        let mut server = tokio::spawn(async move {
            // With the peer's address, for handlers that need it (the console's login limit).
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .with_graceful_shutdown(async move { stop.wait().await })
            .await
        });

        let serving = format!("serving on http://{addr}");
        log::info!(listen = addr.to_string(), event = "ready"; "barnabee-{} {serving}", self.name);
        if let Err(err) = self.notifier.ready(&serving) {
            log::warn!("cannot send READY to systemd: {err}");
        }

        let period = self
            .notifier
            .watchdog_timeout()
            .map_or(IDLE_TICK, |t| (t / 2).max(Duration::from_millis(10)));
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut reported_stale: Option<String> = None;
        // The server's graceful shutdown waits on the same signal as this loop, so after a
        // trigger both can be ready and the server's end may be seen first: that end is the
        // requested stop, not a failure, and its result is kept rather than polled again.
        let mut server_result = None;
        let reason = loop {
            tokio::select! {
                biased;
                _ = sigterm.recv() => break "SIGTERM",
                _ = sigint.recv() => break "SIGINT",
                _ = self.shutdown.wait() => break "shutdown requested",
                result = &mut server => {
                    if self.shutdown.is_triggered() {
                        server_result = Some(result);
                        break "shutdown requested";
                    }
                    // Otherwise the server only ends by itself on an I/O failure.
                    return Err(ServeError::Server(match result {
                        Ok(Err(err)) => err,
                        Ok(Ok(())) => std::io::Error::other("server stopped unexpectedly"),
                        Err(join) => std::io::Error::other(join.to_string()),
                    }));
                }
                _ = ticker.tick() => self.main_loop_tick(&mut reported_stale, &serving),
            }
        };

        log::info!(event = "stopping"; "{reason}: draining for at most {:?}", self.config.drain_timeout);
        if let Err(err) = self.notifier.stopping(&format!("{reason}: draining")) {
            log::warn!("cannot send STOPPING to systemd: {err}");
        }
        self.shutdown.trigger();
        let drained = match server_result {
            Some(result) => Ok(result),
            None => tokio::time::timeout(self.config.drain_timeout, &mut server).await,
        };
        match drained {
            Ok(Ok(Ok(()))) => log::info!(event = "stopped"; "stopped cleanly"),
            Ok(Ok(Err(err))) => return Err(ServeError::Server(err)),
            Ok(Err(join)) => {
                return Err(ServeError::Server(std::io::Error::other(join.to_string())));
            }
            Err(_) => {
                server.abort();
                log::warn!(event = "drain_timeout"; "in-flight requests did not finish within {:?}; closing them", self.config.drain_timeout);
            }
        }
        Ok(())
    }

    /// One main-loop iteration: ping the watchdog while every worker is alive.
    fn main_loop_tick(&self, reported_stale: &mut Option<String>, serving: &str) {
        let now = Instant::now();
        let stale = self
            .heartbeats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find_map(|hb| hb.silent_for(now).map(|s| (hb.state.name.clone(), s)));
        match stale {
            None => {
                if let Some(name) = reported_stale.take() {
                    log::info!(event = "worker_recovered", worker = name.as_str(); "worker {name} is beating again");
                    self.status(serving);
                }
                if let Err(err) = self.notifier.watchdog() {
                    log::warn!("cannot send WATCHDOG to systemd: {err}");
                }
            }
            Some((name, silence)) => {
                if reported_stale.as_deref() != Some(name.as_str()) {
                    log::error!(event = "worker_stalled", worker = name.as_str(); "worker {name} silent for {silence:?}; withholding watchdog pings");
                    self.status(&format!("worker {name} stalled"));
                    *reported_stale = Some(name);
                }
            }
        }
    }
}
