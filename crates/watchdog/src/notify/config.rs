//! `[notify]` in watchdog.toml: the channels and the delivery policy. Without the section the
//! notifier is off. Every key is documented in `watchdog.example.toml`.

use std::path::PathBuf;
use std::time::Duration;

use barnabee_service::config::seconds;
use serde::{Deserialize, Serialize};

/// How urgent a notification is; a channel gets those at or above its `min_severity`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    #[default]
    Info,
    Warning,
    Critical,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Critical => "critical",
        }
    }
}

/// `[notify]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// First retry delay after a failed delivery; doubles per attempt up to `backoff_max`.
    #[serde(default = "backoff_initial", with = "seconds")]
    pub backoff_initial: Duration,
    #[serde(default = "backoff_max", with = "seconds")]
    pub backoff_max: Duration,
    /// A notification not delivered within this is dropped (`EVENT=notify_dropped`).
    #[serde(default = "max_age", with = "seconds")]
    pub max_age: Duration,
    /// An Alertmanager alert (fingerprint, status, startsAt) seen again within this window is
    /// not delivered again. Shorter than Alertmanager's `repeat_interval` (1 h for critical in
    /// nixos-modules/monitoring/alertmanager.yml), so reminders still go out, but longer than
    /// `group_interval`, when a group is resent because another alert in it changed.
    #[serde(default = "dedup_window", with = "seconds")]
    pub dedup_window: Duration,
    /// How long one delivery attempt may take.
    #[serde(default = "timeout", with = "seconds")]
    pub timeout: Duration,
    #[serde(default)]
    pub home_assistant: Option<HomeAssistantConfig>,
    #[serde(default)]
    pub email: Option<EmailConfig>,
    #[serde(default)]
    pub webhook: Option<WebhookConfig>,
}

fn backoff_initial() -> Duration {
    Duration::from_secs(5)
}
fn backoff_max() -> Duration {
    Duration::from_secs(600)
}
fn max_age() -> Duration {
    Duration::from_secs(86_400)
}
fn dedup_window() -> Duration {
    Duration::from_secs(1800)
}
fn timeout() -> Duration {
    Duration::from_secs(15)
}
fn yes() -> bool {
    true
}

/// `[notify.home_assistant]`: the companion app (`notify.<service>`) and persistent
/// notifications, through Home Assistant's REST API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HomeAssistantConfig {
    /// Base URL, e.g. `http://127.0.0.1:8123`.
    pub url: String,
    /// A long-lived access token (a `*_file`: relative to `$CREDENTIALS_DIRECTORY`).
    pub token_file: PathBuf,
    /// `notify` services to call, e.g. `["mobile_app_anna_phone"]`.
    #[serde(default)]
    pub services: Vec<String>,
    /// Also create (and, when resolved, dismiss) a persistent notification.
    #[serde(default = "yes")]
    pub persistent: bool,
    #[serde(default)]
    pub min_severity: Level,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// Plain connection upgraded with STARTTLS (required; port 587 by default).
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS, port 465 by default).
    Tls,
    /// No TLS at all (port 25 by default); only for a relay on this machine or the LAN.
    None,
}

/// `[notify.email]`: SMTP.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    pub host: String,
    /// Default: 587 (starttls), 465 (tls), 25 (none).
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub security: Security,
    /// PEM file of CA certificates trusted in addition to the system's (a relay with a
    /// private CA); only with `starttls` or `tls`.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// SMTP AUTH user; with `password_file`, or neither.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// `Barnabee <barnabee@example.org>` or a bare address.
    pub from: String,
    pub to: Vec<String>,
    #[serde(default)]
    pub min_severity: Level,
}

impl EmailConfig {
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.security {
            Security::Starttls => 587,
            Security::Tls => 465,
            Security::None => 25,
        })
    }
}

/// `[notify.webhook]`: a JSON POST in ntfy/Gotify style.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    /// Optional bearer token (`Authorization: Bearer ...`).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    #[serde(default)]
    pub min_severity: Level,
}

impl NotifyConfig {
    /// The first problem, as (dotted key, message).
    pub fn check(&self) -> Result<(), (String, String)> {
        let bad = |k: &str, m: String| Err((format!("notify.{k}"), m));
        if self.home_assistant.is_none() && self.email.is_none() && self.webhook.is_none() {
            return Err((
                "notify".into(),
                "no channel: add [notify.home_assistant], [notify.email] or [notify.webhook], or remove [notify]".into(),
            ));
        }
        if self.backoff_initial.is_zero() {
            return bad("backoff_initial", "must be more than 0 seconds".into());
        }
        if self.backoff_max < self.backoff_initial {
            return bad("backoff_max", "must be at least backoff_initial".into());
        }
        if self.max_age.is_zero() {
            return bad("max_age", "must be more than 0 seconds".into());
        }
        if self.timeout.is_zero() {
            return bad("timeout", "must be more than 0 seconds".into());
        }
        if let Some(ha) = &self.home_assistant {
            if reqwest::Url::parse(&ha.url).is_err() {
                return bad("home_assistant.url", format!("{:?} is not a URL", ha.url));
            }
            if ha.services.is_empty() && !ha.persistent {
                return bad(
                    "home_assistant.services",
                    "empty while persistent = false: nothing would be sent".into(),
                );
            }
            for (i, s) in ha.services.iter().enumerate() {
                if s.is_empty() || !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return bad(
                        &format!("home_assistant.services[{i}]"),
                        format!(
                            "{s:?} is not a notify service name such as \"mobile_app_anna_phone\""
                        ),
                    );
                }
            }
        }
        if let Some(mail) = &self.email {
            if mail.host.is_empty() {
                return bad("email.host", "must not be empty".into());
            }
            if mail.from.parse::<lettre::message::Mailbox>().is_err() {
                return bad(
                    "email.from",
                    format!("{:?} is not an e-mail address", mail.from),
                );
            }
            if mail.to.is_empty() {
                return bad("email.to", "must list at least one address".into());
            }
            for (i, to) in mail.to.iter().enumerate() {
                if to.parse::<lettre::message::Mailbox>().is_err() {
                    return bad(
                        &format!("email.to[{i}]"),
                        format!("{to:?} is not an e-mail address"),
                    );
                }
            }
            if mail.ca_file.is_some() && mail.security == Security::None {
                return bad(
                    "email.ca_file",
                    "set with security = \"none\": there is no TLS to trust it for".into(),
                );
            }
            if mail.username.is_some() != mail.password_file.is_some() {
                return bad(
                    "email.password_file",
                    "username and password_file go together (set both or neither)".into(),
                );
            }
        }
        if let Some(hook) = &self.webhook
            && reqwest::Url::parse(&hook.url).is_err()
        {
            return bad("webhook.url", format!("{:?} is not a URL", hook.url));
        }
        Ok(())
    }
}
