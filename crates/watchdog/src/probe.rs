//! HTTP health probes: `GET <health_url>`; a 2xx answer within the timeout is healthy
//! (barnabee daemons answer 200 when healthy or degraded, 503 when unhealthy).

use std::time::Duration;

/// One probe; `Err` carries the reason for the incident.
pub async fn probe(client: &reqwest::Client, url: &str, timeout: Duration) -> Result<(), String> {
    match client.get(url).timeout(timeout).send().await {
        Ok(resp) if resp.status().is_success() => Ok(()),
        Ok(resp) => Err(format!("{url} answered HTTP {}", resp.status().as_u16())),
        Err(err) if err.is_timeout() => Err(format!("{url} gave no answer within {timeout:?}")),
        Err(err) if err.is_connect() => Err(format!("{url} refused the connection")),
        Err(err) => Err(format!("{url}: {err}")),
    }
}

/// A client for probes: no proxies (probes are local), no redirects. Built without needing
/// the system's CA certificates (probes are plain HTTP on loopback).
pub fn client() -> Result<reqwest::Client, reqwest::Error> {
    barnabee_service::http_client::build(|b| {
        b.no_proxy().redirect(reqwest::redirect::Policy::none())
    })
}
