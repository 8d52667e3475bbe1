//! Overview: every configured daemon on both hosts with its health checks, what the agents say
//! about Home Assistant and the language models, open incidents from the watchdog and firing
//! alerts from Alertmanager. Reloads itself every `refresh_seconds`.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::layout::{Frame, back_to, csrf_field, esc, flash, message, page};
use crate::config::Role;
use crate::web::{AppState, Params, change, html, refused, to_login};

pub async fn show(State(s): State<AppState>, headers: HeaderMap, Query(q): Params) -> Response {
    let Some(who) = s.logged_in(&headers) else {
        return to_login("/");
    };
    let message_box = flash(&q);
    let mut tasks = tokio::task::JoinSet::new();
    for (i, d) in s.cfg.daemons.iter().enumerate() {
        let peers = s.peers.clone();
        let url = d.url.clone();
        tasks.spawn(async move { (i, peers.health(&url).await) });
    }
    let incidents = async {
        match s.cfg.peer(Role::Watchdog) {
            Some(w) => Some(
                s.peers
                    .get(&format!("{}/v1/incidents?limit=10", w.url))
                    .await,
            ),
            None => None,
        }
    };
    let alerts = async {
        match &s.cfg.pages.alertmanager_url {
            Some(u) => Some(
                s.peers
                    .get(&format!(
                        "{}/api/v2/alerts?active=true&silenced=false&inhibited=false",
                        u.trim_end_matches('/')
                    ))
                    .await,
            ),
            None => None,
        }
    };
    let (incidents, alerts, hosts) = tokio::join!(incidents, alerts, super::hosts::section(&s));
    let mut readings = vec![None; s.cfg.daemons.len()];
    while let Some(Ok((i, r))) = tasks.join_next().await {
        readings[i] = Some(r);
    }

    let mut body = message_box;
    if s.cfg.daemons.is_empty() {
        body.push_str(&message(
            "No daemons are configured ([[daemon]] in console.toml).",
            true,
        ));
    }
    body.push_str("<h2>Daemons</h2><table><tr><th>Daemon</th><th>Host</th><th>Status</th><th>Checks</th></tr>");
    let mut agents_checks = None;
    for (d, r) in s.cfg.daemons.iter().zip(readings) {
        let (status, checks) = match r.map(|r| (r.took, r.result)) {
            Some((took, Ok(v))) => {
                let st = v["status"].as_str().unwrap_or("?").to_owned();
                let class = match st.as_str() {
                    "healthy" => "ok",
                    "degraded" => "warn",
                    _ => "bad",
                };
                if d.role == Role::Agents && agents_checks.is_none() {
                    agents_checks = Some(v["checks"].clone());
                }
                (
                    format!(
                        "<span class=\"{class}\">{}</span> <span class=\"small\">{:.0} ms</span>",
                        esc(&st),
                        took.as_secs_f64() * 1e3
                    ),
                    checks_html(&v["checks"]),
                )
            }
            Some((_, Err(e))) => ("<span class=\"bad\">down</span>".into(), esc(&e)),
            None => ("<span class=\"bad\">down</span>".into(), "no answer".into()),
        };
        body.push_str(&format!(
            "<tr data-role=\"{}\" data-host=\"{}\"><td>{}</td><td>{}</td><td>{status}</td><td>{checks}</td></tr>",
            d.role.as_str(),
            esc(&d.host),
            d.role.as_str(),
            esc(&d.host),
        ));
    }
    body.push_str("</table>");

    body.push_str(&hosts);
    body.push_str("<h2>Home Assistant and language models</h2>");
    match agents_checks {
        Some(Value::Object(m)) => {
            let rows: String = m
                .iter()
                .filter(|(k, _)| {
                    k.contains("home_assistant") || k.contains("llm") || k.contains("budget")
                })
                .map(|(k, c)| check_row(k, c))
                .collect();
            if rows.is_empty() {
                body.push_str("<p class=\"small\">The agents daemon reports no Home Assistant or LLM checks (none configured).</p>");
            } else {
                body.push_str(&format!("<table>{rows}</table>"));
            }
        }
        _ => body.push_str(&message("The agents daemon did not answer: nothing is known about Home Assistant or the language models.", true)),
    }

    body.push_str("<h2>Alerts</h2>");
    match alerts {
        None => body.push_str("<p class=\"small\">No Alertmanager configured (<code>[pages] alertmanager_url</code>).</p>"),
        Some(Err(e)) => body.push_str(&message(&e, true)),
        Some(Ok(Value::Array(a))) if a.is_empty() => body.push_str("<p class=\"ok\">No alert is firing.</p>"),
        Some(Ok(Value::Array(a))) => {
            body.push_str("<table><tr><th>Alert</th><th>Severity</th><th>Summary</th><th>Since</th></tr>");
            for al in &a {
                body.push_str(&format!(
                    "<tr><td class=\"bad\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(al["labels"]["alertname"].as_str().unwrap_or("?")),
                    esc(al["labels"]["severity"].as_str().unwrap_or("")),
                    esc(al["annotations"]["summary"].as_str().unwrap_or("")),
                    esc(al["startsAt"].as_str().unwrap_or("")),
                ));
            }
            body.push_str("</table>");
        }
        Some(Ok(other)) => body.push_str(&message(&format!("Alertmanager answered something unexpected: {}", other.to_string().chars().take(120).collect::<String>()), true)),
    }

    body.push_str("<h2>Recent incidents</h2>");
    match incidents {
        None => body.push_str("<p class=\"small\">No watchdog configured.</p>"),
        Some(Err(e)) => body.push_str(&message(&e, true)),
        Some(Ok(v)) => match v["incidents"].as_array() {
            Some(list) if list.is_empty() => body.push_str("<p class=\"ok\">No incidents.</p>"),
            Some(list) => {
                let open = list
                    .iter()
                    .filter(|i| i["acknowledged_at_ms"].is_null())
                    .count();
                body.push_str(&format!(
                    "<p>{open} open (not acknowledged) of the last {}.</p><table id=\"incidents\"><tr><th>When</th><th>Severity</th><th>Unit</th><th>What happened</th><th>Action</th><th>Acknowledged</th></tr>",
                    list.len()
                ));
                for i in list {
                    let id = i["id"].as_i64().unwrap_or(0);
                    let ack = match (
                        i["acknowledged_at_ms"].as_i64(),
                        i["acknowledged_by"].as_str(),
                    ) {
                        (Some(at), by) => {
                            format!("{} by {}", super::utc(at), esc(by.unwrap_or("?")))
                        }
                        (None, _) => format!(
                            "<form method=\"post\" action=\"/incidents/ack\">{}<input type=\"hidden\" name=\"id\" value=\"{id}\"><button>Acknowledge</button></form>",
                            csrf_field(&who.session.csrf)
                        ),
                    };
                    body.push_str(&format!(
                        "<tr data-incident=\"{id}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{ack}</td></tr>",
                        super::utc(i["ts_ms"].as_i64().unwrap_or(0)),
                        esc(&i["severity"].to_string().replace('"', "")),
                        esc(i["unit"].as_str().unwrap_or("")),
                        esc(i["detail"].as_str().unwrap_or("")),
                        esc(i["action"].as_str().unwrap_or("")),
                    ));
                }
                body.push_str("</table>");
            }
            None => body.push_str(&message(
                "The watchdog's incident list is not in the expected shape.",
                true,
            )),
        },
    }
    html(
        StatusCode::OK,
        page(
            &Frame {
                title: "Overview",
                active: "/",
                csrf: Some(&who.session.csrf),
                refresh: Some(s.cfg.pages.refresh_seconds),
            },
            &body,
        ),
    )
}

/// `POST /incidents/ack`: acknowledge an incident at the watchdog (as "console").
pub async fn acknowledge(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let (_, f) = match change(&s, &headers, &body) {
        Ok(x) => x,
        Err(r) => return r.into_response(),
    };
    let Some(id) = f.get("id").and_then(|x| x.parse::<i64>().ok()) else {
        return refused(
            StatusCode::BAD_REQUEST,
            "Which incident? The form has no valid id.",
        );
    };
    let Some(w) = s.cfg.peer(Role::Watchdog) else {
        return refused(
            StatusCode::SERVICE_UNAVAILABLE,
            "No watchdog is configured.",
        );
    };
    match s
        .peers
        .post(
            &format!("{}/v1/incidents/{id}/ack", w.url),
            &serde_json::json!({"by": "console"}),
        )
        .await
    {
        Ok(_) => back_to("/", Ok(format!("Incident {id} acknowledged."))),
        Err(e) => back_to("/", Err(e)),
    }
}

fn check_row(name: &str, c: &Value) -> String {
    let ok = c["ok"].as_bool() == Some(true);
    let class = if ok {
        "ok"
    } else if c["critical"].as_bool() == Some(false) {
        "warn"
    } else {
        "bad"
    };
    format!(
        "<tr><td>{}</td><td class=\"{class}\">{}</td><td>{}</td></tr>",
        esc(name),
        if ok { "ok" } else { "failing" },
        esc(c["detail"].as_str().unwrap_or(""))
    )
}

/// Failing checks in full; passing ones folded away.
fn checks_html(checks: &Value) -> String {
    let Some(m) = checks.as_object() else {
        return String::new();
    };
    let failing: String = m
        .iter()
        .filter(|(_, c)| c["ok"].as_bool() != Some(true))
        .map(|(k, c)| check_row(k, c))
        .collect();
    let passing: String = m
        .iter()
        .filter(|(_, c)| c["ok"].as_bool() == Some(true))
        .map(|(k, c)| check_row(k, c))
        .collect();
    let n_ok = m
        .values()
        .filter(|c| c["ok"].as_bool() == Some(true))
        .count();
    let mut out = String::new();
    if !failing.is_empty() {
        out.push_str(&format!("<table>{failing}</table>"));
    }
    if !passing.is_empty() {
        out.push_str(&format!(
            "<details><summary>{n_ok} checks pass</summary><table>{passing}</table></details>"
        ));
    }
    out
}
