//! Reading the daemons' HTTP APIs. Every failure becomes a sentence for the page (which daemon,
//! which URL, what went wrong): a daemon that is down or answers garbage never blanks a page.

use std::time::{Duration, Instant};

use serde_json::Value;

#[derive(Clone)]
pub struct Peers {
    http: reqwest::Client,
    /// Slow operations (a backup verification) get their own, longer timeout.
    slow: reqwest::Client,
}

/// What a daemon's `/health` said, or why it said nothing.
#[derive(Debug, Clone)]
pub struct HealthReading {
    pub took: Duration,
    pub result: Result<Value, String>,
}

impl Peers {
    pub fn new(timeout: Duration) -> Result<Peers, reqwest::Error> {
        Ok(Peers {
            http: barnabee_service::http_client::build(|b| {
                b.timeout(timeout)
                    .no_proxy()
                    .redirect(reqwest::redirect::Policy::none())
            })?,
            slow: barnabee_service::http_client::build(|b| {
                b.timeout(Duration::from_secs(1800)).no_proxy()
            })?,
        })
    }

    async fn read(
        resp: Result<reqwest::Response, reqwest::Error>,
        url: &str,
        any_status: bool,
    ) -> Result<Value, String> {
        let resp =
            resp.map_err(|e| format!("{url}: unreachable: {}", barnabee_service::error_chain(&e)))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| format!("{url}: the answer broke off: {e}"))?;
        let value: Result<Value, _> = serde_json::from_str(&text);
        match value {
            Ok(v) if status.is_success() || any_status => Ok(v),
            Ok(v) => Err(format!(
                "{url}: HTTP {}: {}",
                status.as_u16(),
                v["error"].as_str().unwrap_or("(no error message)")
            )),
            Err(_) if status == reqwest::StatusCode::NO_CONTENT => Ok(Value::Null),
            Err(_) => Err(format!(
                "{url}: HTTP {}, not JSON: {}",
                status.as_u16(),
                text.chars().take(120).collect::<String>()
            )),
        }
    }

    pub async fn get(&self, url: &str) -> Result<Value, String> {
        Self::read(self.http.get(url).send().await, url, false).await
    }

    pub async fn post(&self, url: &str, body: &Value) -> Result<Value, String> {
        Self::read(self.http.post(url).json(body).send().await, url, false).await
    }

    pub async fn post_slow(&self, url: &str, body: &Value) -> Result<Value, String> {
        Self::read(self.slow.post(url).json(body).send().await, url, false).await
    }

    pub async fn delete(&self, url: &str) -> Result<Value, String> {
        Self::read(self.http.delete(url).send().await, url, false).await
    }

    /// A daemon's `/metrics` (Prometheus text).
    pub async fn metrics(&self, base: &str) -> Result<String, String> {
        let url = format!("{base}/metrics");
        let r =
            self.http.get(&url).send().await.map_err(|e| {
                format!("{url}: unreachable: {}", barnabee_service::error_chain(&e))
            })?;
        if !r.status().is_success() {
            return Err(format!("{url}: HTTP {}", r.status().as_u16()));
        }
        r.text()
            .await
            .map_err(|e| format!("{url}: the answer broke off: {e}"))
    }

    /// `/health` (a 503 with a report is an answer: the daemon is up but unhealthy).
    pub async fn health(&self, base: &str) -> HealthReading {
        let url = format!("{base}/health");
        let t = Instant::now();
        let result = Self::read(self.http.get(&url).send().await, &url, true).await;
        let result = result.and_then(|v| {
            if v["status"].is_string() && v["checks"].is_object() {
                Ok(v)
            } else {
                Err(format!(
                    "{url}: not a health report: {}",
                    v.to_string().chars().take(120).collect::<String>()
                ))
            }
        });
        HealthReading {
            took: t.elapsed(),
            result,
        }
    }
}
