//! The notifier: tells the family when something is wrong, even on a box without Prometheus.
//!
//! Sources: Alertmanager's webhook (`POST /v1/notify/alertmanager`, [`alertmanager`]), the
//! watchdog's own P1/P2 incidents and the health gate's rollback ([`Notifier::incident`]), and
//! `POST /v1/notify/test`. Each message becomes one row per channel in the durable queue
//! ([`queue`], `notify.db` in the state directory); one worker per channel delivers with
//! exponential backoff, so a failing channel never holds up another, pending rows survive a
//! restart, and a row older than `max_age` is dropped (`EVENT=notify_dropped`).
//! Journal events: `notify_sent`, `notify_failed`, `notify_dropped` with `CHANNEL=`,
//! `NOTIFY_ID=`, `SOURCE=`, `NOTIFY_SEVERITY=`, `ATTEMPTS=`.

pub mod alertmanager;
pub mod api;
pub mod channel;
pub mod config;
pub mod queue;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use barnabee_service::health::Component;
use barnabee_service::{Check, Runtime, Shutdown, catalog};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use serde::{Deserialize, Serialize};

use crate::incident::{Incident, Severity};
pub use channel::{Channel, DeliveryError};
pub use config::{Level, NotifyConfig};
pub use queue::{Queue, QueueError, Row, now_ms};

/// How often an idle worker looks at the queue (rows the gate process added, credentials
/// provisioned since).
pub const POLL: Duration = Duration::from_secs(2);

/// One notification, as queued.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub severity: Level,
    pub title: String,
    pub body: String,
    /// What the message is about (an alert fingerprint, `incident_<unit>_<reason>`): Home
    /// Assistant's `notification_id` and the companion app's `tag`, so the resolved notice
    /// replaces the firing one.
    pub key: String,
    /// `alertmanager`, `watchdog` or `test`.
    pub source: String,
    #[serde(default)]
    pub resolved: bool,
}

impl Message {
    pub fn new(severity: Level, title: &str, body: &str, key: &str, source: &str) -> Self {
        Self {
            severity,
            title: title.to_owned(),
            body: body.to_owned(),
            key: key.to_owned(),
            source: source.to_owned(),
            resolved: false,
        }
    }

    /// The "resolved" message for the same subject.
    pub fn resolved(&self) -> Self {
        Self {
            title: format!("Resolved: {}", self.title),
            resolved: true,
            ..self.clone()
        }
    }

    /// Home Assistant's `notification_id`: `barnabee_` and the key, in `[a-z0-9_]`.
    pub fn notification_id(&self) -> String {
        let key: String = self
            .key
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect();
        format!("barnabee_{key}")
    }

    /// P1 → critical, P2 → warning; P3/P4 are not sent (Alertmanager covers thresholds).
    /// The gate's P1 with `action = rollback` is the rollback notice.
    pub fn from_incident(incident: &Incident) -> Option<Self> {
        let severity = match incident.severity {
            Severity::P1 => Level::Critical,
            Severity::P2 => Level::Warning,
            Severity::P3 | Severity::P4 => return None,
        };
        let title = if incident.action == "rollback" {
            "Barnabee rolled the system back to the previous generation".to_owned()
        } else {
            format!(
                "{} {}: {}",
                incident.severity.as_str(),
                incident.unit,
                incident.reason.replace('_', " ")
            )
        };
        let key = format!("incident_{}_{}", incident.unit, incident.reason);
        Some(Self::new(
            severity,
            &title,
            &incident.detail,
            &key,
            "watchdog",
        ))
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChannelLabel {
    channel: String,
}

#[derive(Clone, Default)]
struct NotifyMetrics {
    sent: Family<ChannelLabel, Counter>,
    failures: Family<ChannelLabel, Counter>,
    dropped: Family<ChannelLabel, Counter>,
    depth: Family<ChannelLabel, Gauge>,
}

fn label(channel: &str) -> ChannelLabel {
    ChannelLabel {
        channel: channel.to_owned(),
    }
}

/// One channel in `GET /v1/notify`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ChannelReport {
    pub name: String,
    pub min_severity: Level,
    pub queue_depth: i64,
    /// The last attempt failed (or the credentials cannot be read).
    pub failing: bool,
    pub last_error: Option<String>,
    /// Milliseconds since the epoch.
    pub last_error_ms: Option<i64>,
    pub last_success_ms: Option<i64>,
    /// Since the daemon started.
    pub sent: u64,
    pub failures: u64,
    pub dropped: u64,
}

/// `GET /v1/notify`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NotifyReport {
    pub enabled: bool,
    pub channels: Vec<ChannelReport>,
}

struct Inner {
    cfg: NotifyConfig,
    queue: Queue,
    channels: Vec<Channel>,
    wake: Vec<tokio::sync::Notify>,
    status: Mutex<BTreeMap<&'static str, ChannelReport>>,
    metrics: NotifyMetrics,
    health: Mutex<Option<Component>>,
}

/// The notifier; cheap to clone.
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

enum Step {
    Again,
    Wait(Duration),
}

impl Notifier {
    /// Open the queue in `state_dir`; nothing is delivered until [`Notifier::start`] (the gate
    /// process only enqueues).
    pub fn open(cfg: &NotifyConfig, state_dir: &Path) -> Result<Self, QueueError> {
        let queue = Queue::open(state_dir)?;
        let channels = Channel::from_config(cfg);
        let status = channels
            .iter()
            .map(|c| {
                (
                    c.name(),
                    ChannelReport {
                        name: c.name().to_owned(),
                        min_severity: c.min_severity(),
                        ..ChannelReport::default()
                    },
                )
            })
            .collect();
        Ok(Self {
            inner: Arc::new(Inner {
                cfg: cfg.clone(),
                queue,
                wake: channels
                    .iter()
                    .map(|_| tokio::sync::Notify::new())
                    .collect(),
                channels,
                status: Mutex::new(status),
                metrics: NotifyMetrics::default(),
                health: Mutex::new(None),
            }),
        })
    }

    pub fn config(&self) -> &NotifyConfig {
        &self.inner.cfg
    }

    pub fn queue(&self) -> &Queue {
        &self.inner.queue
    }

    /// Queue `msg` for every channel whose `min_severity` it reaches (every channel when
    /// `all`); returns how many channels got it.
    pub fn send(&self, msg: &Message, all: bool) -> Result<usize, QueueError> {
        let (names, idx): (Vec<&str>, Vec<usize>) = self
            .inner
            .channels
            .iter()
            .enumerate()
            .filter(|(_, c)| all || msg.severity >= c.min_severity())
            .map(|(i, c)| (c.name(), i))
            .unzip();
        if names.is_empty() {
            return Ok(0);
        }
        self.inner.queue.push(&names, msg)?;
        for i in idx {
            self.inner.wake[i].notify_one();
        }
        Ok(names.len())
    }

    /// Without `[notify]` (or with a queue that cannot be opened) the metric families are
    /// still registered, without series, so the alert rules and dashboards that name them
    /// stay valid against every watchdog (checks/monitoring's contract).
    pub fn register_idle_metrics(rt: &Runtime) {
        let m = NotifyMetrics::default();
        let reg = rt.metrics();
        reg.register_def(&catalog::NOTIFY_SENT, m.sent);
        reg.register_def(&catalog::NOTIFY_FAILURES, m.failures);
        reg.register_def(&catalog::NOTIFY_DROPPED, m.dropped);
        reg.register_def(&catalog::NOTIFY_QUEUE_DEPTH, m.depth);
    }

    /// The watchdog's own incidents (P1, P2); a queue error is logged, never raised.
    pub fn incident(&self, incident: &Incident) {
        if let Some(msg) = Message::from_incident(incident)
            && let Err(err) = self.send(&msg, false)
        {
            log::error!(event = "notify_queue_error"; "cannot queue the notification for an incident: {err}");
        }
    }

    /// Register the metrics and `/health` component `notify`, make every pending row due,
    /// and start one worker per channel.
    pub fn start(&self, rt: &Runtime, http: reqwest::Client) {
        let m = &self.inner.metrics;
        for c in &self.inner.channels {
            let l = label(c.name());
            let _ = m.sent.get_or_create(&l);
            let _ = m.failures.get_or_create(&l);
            let _ = m.dropped.get_or_create(&l);
            let _ = m.depth.get_or_create(&l);
        }
        let reg = rt.metrics();
        reg.register_def(&catalog::NOTIFY_SENT, m.sent.clone());
        reg.register_def(&catalog::NOTIFY_FAILURES, m.failures.clone());
        reg.register_def(&catalog::NOTIFY_DROPPED, m.dropped.clone());
        reg.register_def(&catalog::NOTIFY_QUEUE_DEPTH, m.depth.clone());
        let component = rt
            .health()
            .component("notify", Check::ok("starting").non_critical());
        *self.inner.health.lock().unwrap_or_else(|e| e.into_inner()) = Some(component);
        match self.inner.queue.all_due_now() {
            Ok(0) => {}
            Ok(n) => log::info!("{n} notifications pending from before the restart; retrying now"),
            Err(err) => log::error!("{err}"),
        }
        let silence = self.inner.cfg.timeout * 2 + POLL * 4 + Duration::from_secs(30);
        for i in 0..self.inner.channels.len() {
            let hb = rt.heartbeat(
                &format!("notify:{}", self.inner.channels[i].name()),
                silence,
            );
            let this = self.clone();
            let http = http.clone();
            let stop = rt.shutdown();
            tokio::spawn(async move { this.work(i, http, hb, stop).await });
        }
        self.update_health();
    }

    async fn work(
        self,
        i: usize,
        http: reqwest::Client,
        hb: barnabee_service::Heartbeat,
        stop: Shutdown,
    ) {
        self.check_credentials(i);
        loop {
            hb.beat();
            if stop.is_triggered() {
                return;
            }
            let wait = match self.step(i, &http).await {
                Step::Again => continue,
                Step::Wait(d) => d.min(POLL),
            };
            tokio::select! {
                _ = stop.wait() => return,
                _ = self.inner.wake[i].notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Deliver (or drop) the channel's next due row.
    async fn step(&self, i: usize, http: &reqwest::Client) -> Step {
        let channel = &self.inner.channels[i];
        let name = channel.name();
        let row = match self.inner.queue.head(name) {
            Ok(Some(row)) => row,
            Ok(None) => {
                self.set_depth(name);
                if self.with_status(name, |s| s.failing && s.queue_depth == 0) {
                    self.check_credentials(i);
                }
                return Step::Wait(POLL);
            }
            Err(QueueError::Corrupt { id, .. }) => {
                log::error!(event = "notify_dropped", channel = name, notify_id = id; "dropping an unreadable queue row");
                let _ = self.inner.queue.remove(id);
                return Step::Again;
            }
            Err(err) => {
                log::error!("{err}");
                self.fail(name, &err.to_string());
                return Step::Wait(POLL);
            }
        };
        let now = now_ms();
        let age_ms = now.saturating_sub(row.created_ms);
        if age_ms > i64::try_from(self.inner.cfg.max_age.as_millis()).unwrap_or(i64::MAX) {
            let _ = self.inner.queue.remove(row.id);
            log::error!(
                event = "notify_dropped", channel = name, notify_id = row.id,
                source = row.message.source.as_str(), notify_severity = row.message.severity.as_str(),
                attempts = row.attempts, age_s = age_ms / 1000;
                "dropped after {}s undelivered ({} attempts, last error: {}): {}",
                age_ms / 1000, row.attempts, row.last_error.as_deref().unwrap_or("none"), row.message.title
            );
            self.inner.metrics.dropped.get_or_create(&label(name)).inc();
            self.with_status(name, |s| s.dropped += 1);
            self.set_depth(name);
            return Step::Again;
        }
        if row.next_ms > now {
            return Step::Wait(Duration::from_millis(
                u64::try_from(row.next_ms - now).unwrap_or(0),
            ));
        }
        match channel
            .deliver(http, &row.message, self.inner.cfg.timeout)
            .await
        {
            Ok(()) => {
                if let Err(err) = self.inner.queue.remove(row.id) {
                    log::error!("{err}");
                }
                log::info!(
                    event = "notify_sent", channel = name, notify_id = row.id,
                    source = row.message.source.as_str(), notify_severity = row.message.severity.as_str(),
                    attempts = row.attempts + 1;
                    "sent to {name}: {}", row.message.title
                );
                self.inner.metrics.sent.get_or_create(&label(name)).inc();
                self.with_status(name, |s| {
                    s.failing = false;
                    s.sent += 1;
                    s.last_success_ms = Some(now_ms());
                });
                self.set_depth(name);
                Step::Again
            }
            Err(err) => {
                let error = err.chain();
                let delay = backoff(
                    self.inner.cfg.backoff_initial,
                    self.inner.cfg.backoff_max,
                    row.attempts + 1,
                );
                if let Err(e) = self.inner.queue.failed(row.id, delay, &error) {
                    log::error!("{e}");
                }
                log::warn!(
                    event = "notify_failed", channel = name, notify_id = row.id,
                    source = row.message.source.as_str(), notify_severity = row.message.severity.as_str(),
                    attempts = row.attempts + 1, retry_in_ms = delay.as_millis() as u64;
                    "cannot deliver to {name} (attempt {}, retrying in {delay:?}): {error}", row.attempts + 1
                );
                self.inner
                    .metrics
                    .failures
                    .get_or_create(&label(name))
                    .inc();
                self.with_status(name, |s| s.failures += 1);
                self.fail(name, &error);
                self.set_depth(name);
                Step::Wait(delay)
            }
        }
    }

    /// A channel whose credentials cannot be read is reported failing (not provisioned yet:
    /// degraded, never a crash); once readable again, it is cleared.
    fn check_credentials(&self, i: usize) {
        let channel = &self.inner.channels[i];
        match channel.credentials() {
            Ok(_) => {
                let was = self.with_status(channel.name(), |s| {
                    let was = s.failing && s.queue_depth == 0;
                    if was {
                        s.failing = false;
                    }
                    was
                });
                if was {
                    self.update_health();
                }
            }
            Err(err) => {
                if !self.with_status(channel.name(), |s| s.failing) {
                    log::warn!(event = "notify_credentials", channel = channel.name(); "{err}");
                }
                self.fail(channel.name(), &err.to_string());
            }
        }
    }

    fn fail(&self, name: &str, error: &str) {
        self.with_status(name, |s| {
            s.failing = true;
            s.last_error = Some(error.to_owned());
            s.last_error_ms = Some(now_ms());
        });
        self.update_health();
    }

    fn set_depth(&self, name: &str) {
        if let Ok(n) = self.inner.queue.depth(name) {
            self.inner.metrics.depth.get_or_create(&label(name)).set(n);
            self.with_status(name, |s| s.queue_depth = n);
        }
        self.update_health();
    }

    fn with_status<T>(&self, name: &str, f: impl FnOnce(&mut ChannelReport) -> T) -> T {
        let mut status = self.inner.status.lock().unwrap_or_else(|e| e.into_inner());
        f(status
            .entry(leak_name(&self.inner.channels, name))
            .or_default())
    }

    fn update_health(&self) {
        let Some(component) = self
            .inner
            .health
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        else {
            return;
        };
        let status = self.inner.status.lock().unwrap_or_else(|e| e.into_inner());
        let failing: Vec<String> = status
            .values()
            .filter(|s| s.failing)
            .map(|s| {
                format!(
                    "{}: {} ({} queued)",
                    s.name,
                    s.last_error.as_deref().unwrap_or("failing"),
                    s.queue_depth
                )
            })
            .collect();
        if failing.is_empty() {
            let names: Vec<&str> = status.keys().copied().collect();
            component.ok(format!("delivering to {}", names.join(", ")));
        } else {
            component.fail(failing.join("; "));
        }
    }

    /// `GET /v1/notify`.
    pub fn report(&self) -> NotifyReport {
        for c in &self.inner.channels {
            if let Ok(n) = self.inner.queue.depth(c.name()) {
                self.with_status(c.name(), |s| s.queue_depth = n);
            }
        }
        let status = self.inner.status.lock().unwrap_or_else(|e| e.into_inner());
        NotifyReport {
            enabled: true,
            channels: self
                .inner
                .channels
                .iter()
                .filter_map(|c| status.get(c.name()).cloned())
                .collect(),
        }
    }
}

/// The `&'static str` name of a configured channel (the status map's key).
fn leak_name(channels: &[Channel], name: &str) -> &'static str {
    channels
        .iter()
        .map(Channel::name)
        .find(|n| *n == name)
        .unwrap_or("unknown")
}

/// `initial * 2^(attempt-1)`, at most `max`.
pub fn backoff(initial: Duration, max: Duration, attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(20));
    initial.saturating_mul(factor).min(max)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    #![allow(clippy::disallowed_methods)] // tests build their own HTTP clients (clippy.toml)
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let (i, m) = (Duration::from_secs(5), Duration::from_secs(600));
        assert_eq!(backoff(i, m, 1), Duration::from_secs(5));
        assert_eq!(backoff(i, m, 2), Duration::from_secs(10));
        assert_eq!(backoff(i, m, 4), Duration::from_secs(40));
        assert_eq!(backoff(i, m, 8), Duration::from_secs(600));
        assert_eq!(backoff(i, m, 500), Duration::from_secs(600));
    }

    #[test]
    fn severities_are_ordered() {
        assert!(Level::Info < Level::Warning && Level::Warning < Level::Critical);
    }

    #[test]
    fn incidents_map_to_levels() {
        let p1 = Incident::new(
            Severity::P1,
            "barnabee-memory.service",
            "circuit_breaker",
            "none",
            "gave up",
        );
        let m = Message::from_incident(&p1).unwrap();
        assert_eq!(m.severity, Level::Critical);
        assert_eq!(m.title, "P1 barnabee-memory.service: circuit breaker");
        assert_eq!(m.body, "gave up");
        assert_eq!(
            m.notification_id(),
            "barnabee_incident_barnabee_memory_service_circuit_breaker"
        );
        let p2 = Incident::new(Severity::P2, "a.service", "unhealthy", "restart", "x");
        assert_eq!(
            Message::from_incident(&p2).unwrap().severity,
            Level::Warning
        );
        let p3 = Incident::new(Severity::P3, "host", "disk_low", "none", "x");
        assert!(Message::from_incident(&p3).is_none());
        let gate = Incident::new(
            Severity::P1,
            "system",
            "gate_timeout",
            "rollback",
            "units not healthy",
        );
        let m = Message::from_incident(&gate).unwrap();
        assert_eq!(m.severity, Level::Critical);
        assert!(m.title.contains("rolled the system back"), "{}", m.title);
    }

    fn notifier(dir: &Path, toml: &str) -> Notifier {
        let cfg: NotifyConfig = toml::from_str(toml).unwrap();
        cfg.check().unwrap();
        Notifier::open(&cfg, dir).unwrap()
    }

    #[test]
    fn min_severity_routes_messages() {
        let dir = tempfile::tempdir().unwrap();
        let n = notifier(
            dir.path(),
            "[webhook]\nurl = \"http://127.0.0.1:1/\"\nmin_severity = \"critical\"\n\
             [email]\nhost = \"localhost\"\nfrom = \"b@example.org\"\nto = [\"a@example.org\"]\n",
        );
        let warn = Message::new(Level::Warning, "t", "b", "k", "test");
        assert_eq!(n.send(&warn, false).unwrap(), 1);
        assert_eq!(n.queue().depth("webhook").unwrap(), 0);
        assert_eq!(n.queue().depth("email").unwrap(), 1);
        assert_eq!(n.send(&warn, true).unwrap(), 2);
        let crit = Message {
            severity: Level::Critical,
            ..warn
        };
        assert_eq!(n.send(&crit, false).unwrap(), 2);
        assert_eq!(n.queue().depth("webhook").unwrap(), 2);
    }

    #[tokio::test]
    async fn old_rows_are_dropped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let n = notifier(
            dir.path(),
            "max_age = 0.001\n[webhook]\nurl = \"http://127.0.0.1:1/\"\n",
        );
        n.send(&Message::new(Level::Critical, "t", "b", "k", "test"), false)
            .unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        let http = reqwest::Client::new();
        assert!(matches!(n.step(0, &http).await, Step::Again));
        assert_eq!(n.queue().depth("webhook").unwrap(), 0);
        let r = n.report();
        assert_eq!(r.channels[0].dropped, 1);
        assert_eq!(
            n.inner
                .metrics
                .dropped
                .get_or_create(&label("webhook"))
                .get(),
            1
        );
    }

    #[tokio::test]
    async fn a_refused_delivery_is_retried_later_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        // A port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let n = notifier(
            dir.path(),
            &format!("backoff_initial = 60\n[webhook]\nurl = \"http://127.0.0.1:{port}/\"\n"),
        );
        n.send(&Message::new(Level::Critical, "t", "b", "k", "test"), false)
            .unwrap();
        let http = reqwest::Client::new();
        match n.step(0, &http).await {
            Step::Wait(d) => assert_eq!(d, Duration::from_secs(60)),
            Step::Again => panic!("delivered to a closed port"),
        }
        let head = n.queue().head("webhook").unwrap().unwrap();
        assert_eq!(head.attempts, 1);
        let r = n.report();
        assert!(r.channels[0].failing);
        assert_eq!(r.channels[0].queue_depth, 1);
        assert!(
            r.channels[0]
                .last_error
                .as_ref()
                .unwrap()
                .contains(&port.to_string())
        );
    }
}
