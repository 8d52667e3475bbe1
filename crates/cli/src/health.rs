//! Reading a daemon's `/health`.

use std::time::Duration;

use barnabee_service::health::{Report, Status};

/// What `/health` said, or why it could not be asked.
pub enum Outcome {
    Answered { http_status: u16, report: Report },
    Unreachable(String),
}

impl Outcome {
    /// Healthy or degraded (HTTP 200).
    pub fn serving(&self) -> bool {
        matches!(self, Outcome::Answered { http_status: 200, report } if report.http_ok())
    }

    /// One word for a table.
    pub fn word(&self) -> &'static str {
        match self {
            Outcome::Answered { report, .. } => match report.status {
                Status::Healthy => "healthy",
                Status::Degraded => "degraded",
                Status::Unhealthy => "UNHEALTHY",
            },
            Outcome::Unreachable(_) => "UNREACHABLE",
        }
    }

    /// The failing checks, or the connection error.
    pub fn detail(&self) -> String {
        match self {
            Outcome::Answered { report, .. } => report
                .checks
                .iter()
                .filter(|(_, c)| !c.ok)
                .map(|(name, c)| format!("{name}: {}", c.detail))
                .collect::<Vec<_>>()
                .join("; "),
            Outcome::Unreachable(why) => why.clone(),
        }
    }
}

/// An HTTP client for loopback daemons (no proxy, short timeouts).
pub fn client() -> anyhow::Result<reqwest::Client> {
    Ok(barnabee_service::http_client::loopback(
        Duration::from_secs(5),
    )?)
}

pub async fn fetch(client: &reqwest::Client, base_url: &str) -> Outcome {
    let url = format!("{}/health", base_url.trim_end_matches('/'));
    let response = match client.get(&url).send().await {
        Ok(r) => r,
        Err(err) => return Outcome::Unreachable(format!("{url}: {}", root_cause(&err))),
    };
    let http_status = response.status().as_u16();
    match response.json::<Report>().await {
        Ok(report) => Outcome::Answered {
            http_status,
            report,
        },
        Err(err) => Outcome::Unreachable(format!(
            "{url}: HTTP {http_status} without a health report: {}",
            root_cause(&err)
        )),
    }
}

fn root_cause(err: &dyn std::error::Error) -> String {
    barnabee_service::error_chain(err)
}

/// A request error in a few words: "connection refused", "no answer in time (timed out)",
/// else the innermost cause (reqwest's outer layers repeat the URL and say "error sending
/// request").
pub fn brief(e: reqwest::Error) -> String {
    if e.is_timeout() {
        return "no answer in time (timed out)".into();
    }
    let e = e.without_url();
    let chain = barnabee_service::error_chain(&e);
    if chain.contains("Connection refused") {
        return "connection refused".into();
    }
    let mut inner: &dyn std::error::Error = &e;
    while let Some(s) = inner.source() {
        inner = s;
    }
    let text = inner.to_string();
    if text.is_empty() { chain } else { text }
}
