//! The alerts firing in Alertmanager (API v2), for `barnabee status`.

use serde::{Deserialize, Serialize};

/// One active, neither silenced nor inhibited alert.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Firing {
    pub alertname: String,
    pub severity: String,
    pub host: String,
    pub summary: String,
    pub starts_at: String,
}

#[derive(Deserialize)]
struct ApiAlert {
    #[serde(default)]
    labels: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
    #[serde(rename = "startsAt", default)]
    starts_at: String,
}

/// `GET /api/v2/alerts?active=true&silenced=false&inhibited=false`, critical first.
pub async fn firing(client: &reqwest::Client, base_url: &str) -> Result<Vec<Firing>, String> {
    let url = format!(
        "{}/api/v2/alerts?active=true&silenced=false&inhibited=false",
        base_url.trim_end_matches('/')
    );
    let response = client.get(&url).send().await.map_err(|e| {
        format!(
            "Alertmanager at {base_url} not reachable: {}",
            crate::health::brief(e)
        )
    })?;
    if !response.status().is_success() {
        return Err(format!(
            "Alertmanager at {url} answered HTTP {}",
            response.status()
        ));
    }
    let alerts: Vec<ApiAlert> = response
        .json()
        .await
        .map_err(|e| format!("Alertmanager at {url}: not an alert list: {e}"))?;
    let mut out: Vec<Firing> = alerts
        .into_iter()
        .map(|a| Firing {
            alertname: a.labels.get("alertname").cloned().unwrap_or_default(),
            severity: a.labels.get("severity").cloned().unwrap_or_default(),
            host: a
                .labels
                .get("host")
                .or_else(|| a.labels.get("instance"))
                .cloned()
                .unwrap_or_default(),
            summary: a.annotations.get("summary").cloned().unwrap_or_default(),
            starts_at: a.starts_at,
        })
        .collect();
    out.sort_by(|a, b| {
        (a.severity != "critical", &a.alertname, &a.host).cmp(&(
            b.severity != "critical",
            &b.alertname,
            &b.host,
        ))
    });
    Ok(out)
}

pub fn print(base_url: &str, alerts: &[Firing]) {
    if alerts.is_empty() {
        println!("\nalerts: none firing ({base_url})");
        return;
    }
    println!(
        "\n{:<9} {:<34} {:<9} {:<21} SUMMARY",
        "SEVERITY", "ALERT", "HOST", "SINCE"
    );
    for a in alerts {
        let since: String = a.starts_at.chars().take(19).collect();
        println!(
            "{:<9} {:<34} {:<9} {:<21} {}",
            a.severity, a.alertname, a.host, since, a.summary
        );
    }
}
