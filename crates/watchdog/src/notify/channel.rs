//! The three channels: Home Assistant (REST), e-mail (SMTP through lettre, rustls) and a JSON
//! webhook (ntfy/Gotify style). Secrets are read at every attempt, so a credential provisioned
//! after start (sops on first boot) is picked up without a restart.

use std::path::{Path, PathBuf};
use std::time::Duration;

use barnabee_service::secret::{self, Secret, SecretError};
use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde_json::json;

use super::Message;
use super::config::{
    EmailConfig, HomeAssistantConfig, Level, NotifyConfig, Security, WebhookConfig,
};

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("POST {url}: {source}")]
    Request {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("POST {url}: HTTP {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("SMTP {host}:{port}: {source}")]
    Smtp {
        host: String,
        port: u16,
        #[source]
        source: lettre::transport::smtp::Error,
    },
    #[error("cannot build the e-mail: {0}")]
    Mail(String),
    #[error("notify.email.ca_file {path}: {message}")]
    CaFile { path: PathBuf, message: String },
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

impl DeliveryError {
    /// The full chain, for the journal, `/health` and `GET /v1/notify`.
    pub fn chain(&self) -> String {
        barnabee_service::error_chain(self)
    }
}

/// One configured channel.
pub enum Channel {
    HomeAssistant(HomeAssistantConfig),
    Email(EmailConfig),
    Webhook(WebhookConfig),
}

impl Channel {
    /// The configured channels, in a fixed order.
    pub fn from_config(cfg: &NotifyConfig) -> Vec<Channel> {
        let mut out = Vec::new();
        if let Some(c) = &cfg.home_assistant {
            out.push(Channel::HomeAssistant(c.clone()));
        }
        if let Some(c) = &cfg.email {
            out.push(Channel::Email(c.clone()));
        }
        if let Some(c) = &cfg.webhook {
            out.push(Channel::Webhook(c.clone()));
        }
        out
    }

    /// `home_assistant`, `email` or `webhook`: the metric label and the queue's channel column.
    pub fn name(&self) -> &'static str {
        match self {
            Channel::HomeAssistant(_) => "home_assistant",
            Channel::Email(_) => "email",
            Channel::Webhook(_) => "webhook",
        }
    }

    pub fn min_severity(&self) -> Level {
        match self {
            Channel::HomeAssistant(c) => c.min_severity,
            Channel::Email(c) => c.min_severity,
            Channel::Webhook(c) => c.min_severity,
        }
    }

    /// Read the channel's credentials (an error means the channel cannot deliver yet).
    pub fn credentials(&self) -> Result<Option<Secret>, SecretError> {
        let read = |key: &str, path: &Path| secret::read(key, path).map(Some);
        match self {
            Channel::HomeAssistant(c) => read("notify.home_assistant.token_file", &c.token_file),
            Channel::Email(c) => match &c.password_file {
                Some(p) => read("notify.email.password_file", p),
                None => Ok(None),
            },
            Channel::Webhook(c) => match &c.token_file {
                Some(p) => read("notify.webhook.token_file", p),
                None => Ok(None),
            },
        }
    }

    /// Deliver one message, bounded by `timeout`.
    pub async fn deliver(
        &self,
        http: &reqwest::Client,
        msg: &Message,
        timeout: Duration,
    ) -> Result<(), DeliveryError> {
        let secret = self.credentials()?;
        let work = async {
            match self {
                Channel::HomeAssistant(c) => home_assistant(http, c, secret, msg).await,
                Channel::Email(c) => email(c, secret, msg, timeout).await,
                Channel::Webhook(c) => webhook(http, c, secret, msg).await,
            }
        };
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| DeliveryError::Timeout(timeout))?
    }
}

async fn post(
    http: &reqwest::Client,
    url: String,
    token: Option<&Secret>,
    body: serde_json::Value,
) -> Result<(), DeliveryError> {
    let mut req = http.post(&url).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t.expose());
    }
    let resp = req.send().await.map_err(|source| DeliveryError::Request {
        url: url.clone(),
        source,
    })?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let mut body = resp.text().await.unwrap_or_default();
    body.truncate(200);
    Err(DeliveryError::Status {
        url,
        status: status.as_u16(),
        body,
    })
}

/// `POST /api/services/notify/<service>` for each service (the companion app; `tag` makes a
/// resolved notice replace the firing one), then `persistent_notification/create` (or
/// `dismiss` once resolved) with `notification_id` derived from the message key.
async fn home_assistant(
    http: &reqwest::Client,
    c: &HomeAssistantConfig,
    token: Option<Secret>,
    msg: &Message,
) -> Result<(), DeliveryError> {
    let base = c.url.trim_end_matches('/');
    let token = token.as_ref();
    for service in &c.services {
        let mut data = json!({ "tag": msg.key, "group": "barnabee" });
        if msg.severity == Level::Critical && !msg.resolved {
            // iOS critical alert; Android high priority, delivered at once.
            data["push"] = json!({ "sound": { "name": "default", "critical": 1, "volume": 1.0 } });
            data["ttl"] = json!(0);
            data["priority"] = json!("high");
        }
        post(
            http,
            format!("{base}/api/services/notify/{service}"),
            token,
            json!({ "title": msg.title, "message": msg.body, "data": data }),
        )
        .await?;
    }
    if c.persistent {
        let id = msg.notification_id();
        if msg.resolved {
            post(
                http,
                format!("{base}/api/services/persistent_notification/dismiss"),
                token,
                json!({ "notification_id": id }),
            )
            .await?;
        } else {
            post(
                http,
                format!("{base}/api/services/persistent_notification/create"),
                token,
                json!({ "title": msg.title, "message": msg.body, "notification_id": id }),
            )
            .await?;
        }
    }
    Ok(())
}

/// The webhook body: `{"title", "message", "priority", "tags"}`; priority 5 critical, 4
/// warning, 3 info or resolved (ntfy's scale; Gotify reads the same field).
pub fn webhook_body(msg: &Message) -> serde_json::Value {
    let priority = match (msg.resolved, msg.severity) {
        (true, _) | (false, Level::Info) => 3,
        (false, Level::Warning) => 4,
        (false, Level::Critical) => 5,
    };
    let mut tags = vec![
        "barnabee".to_owned(),
        msg.severity.as_str().to_owned(),
        if msg.resolved { "resolved" } else { "firing" }.to_owned(),
        msg.source.clone(),
    ];
    tags.dedup();
    json!({ "title": msg.title, "message": msg.body, "priority": priority, "tags": tags })
}

async fn webhook(
    http: &reqwest::Client,
    c: &WebhookConfig,
    token: Option<Secret>,
    msg: &Message,
) -> Result<(), DeliveryError> {
    post(http, c.url.clone(), token.as_ref(), webhook_body(msg)).await
}

/// The e-mail subject: `[Barnabee CRITICAL] ...`, `[Barnabee RESOLVED] ...`.
pub fn subject(msg: &Message) -> String {
    let tag = if msg.resolved {
        "RESOLVED".to_owned()
    } else {
        msg.severity.as_str().to_uppercase()
    };
    format!("[Barnabee {tag}] {}", msg.title)
}

/// The system's roots (rustls-platform-verifier), plus `ca_file` when set.
fn tls_parameters(c: &EmailConfig) -> Result<TlsParameters, DeliveryError> {
    let smtp = |source| DeliveryError::Smtp {
        host: c.host.clone(),
        port: c.port(),
        source,
    };
    let mut params = TlsParameters::builder(c.host.clone());
    if let Some(path) = &c.ca_file {
        let ca = |message: String| DeliveryError::CaFile {
            path: path.clone(),
            message,
        };
        let pem = std::fs::read(path).map_err(|e| ca(e.to_string()))?;
        let cert = Certificate::from_pem(&pem).map_err(|e| ca(e.to_string()))?;
        params = params.add_root_certificate(cert);
    }
    params.build().map_err(smtp)
}

async fn email(
    c: &EmailConfig,
    password: Option<Secret>,
    msg: &Message,
    timeout: Duration,
) -> Result<(), DeliveryError> {
    let port = c.port();
    let smtp = |source| DeliveryError::Smtp {
        host: c.host.clone(),
        port,
        source,
    };
    let parse = |a: &str| {
        a.parse::<Mailbox>()
            .map_err(|e| DeliveryError::Mail(format!("{a:?}: {e}")))
    };
    let mut mail = lettre::Message::builder()
        .from(parse(&c.from)?)
        .subject(subject(msg))
        .header(ContentType::TEXT_PLAIN);
    for to in &c.to {
        mail = mail.to(parse(to)?);
    }
    let mail = mail
        .body(format!(
            "{}\n\nseverity: {}\nsource: {}\n",
            msg.body,
            msg.severity.as_str(),
            msg.source
        ))
        .map_err(|e| DeliveryError::Mail(e.to_string()))?;
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&c.host).port(port);
    builder = match c.security {
        Security::None => builder.tls(Tls::None),
        Security::Starttls => builder.tls(Tls::Required(tls_parameters(c)?)),
        Security::Tls => builder.tls(Tls::Wrapper(tls_parameters(c)?)),
    };
    if let (Some(user), Some(pass)) = (&c.username, password) {
        builder = builder.credentials(Credentials::new(user.clone(), pass.expose().to_owned()));
    }
    let transport = builder.timeout(Some(timeout)).build();
    transport.send(mail).await.map_err(smtp)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn webhook_body_is_ntfy_style() {
        let m = Message::new(
            Level::Critical,
            "Disk full",
            "/ has 2% free",
            "fp1",
            "alertmanager",
        );
        let v = webhook_body(&m);
        assert_eq!(v["title"], "Disk full");
        assert_eq!(v["message"], "/ has 2% free");
        assert_eq!(v["priority"], 5);
        assert_eq!(
            v["tags"],
            json!(["barnabee", "critical", "firing", "alertmanager"])
        );
        let r = m.resolved();
        assert_eq!(webhook_body(&r)["priority"], 3);
        assert_eq!(subject(&r), "[Barnabee RESOLVED] Resolved: Disk full");
        assert_eq!(subject(&m), "[Barnabee CRITICAL] Disk full");
    }
}
