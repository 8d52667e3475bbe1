//! Cost: today and this month against the budget (green, yellow, red), the monthly report
//! (by provider and model, by route, by family member, top cost drivers) for any month, and the
//! runtime switches ("local only", "reset today") that take effect without a redeploy.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::layout::{Frame, back_to, csrf_field, esc, flash, message, page, url_param};
use crate::config::Role;
use crate::web::{AppState, Params, change, html, refused, to_login};

pub async fn show(State(s): State<AppState>, headers: HeaderMap, Query(q): Params) -> Response {
    let Some(who) = s.logged_in(&headers) else {
        return to_login("/cost");
    };
    let mut body = String::new();
    body.push_str(&flash(&q));
    let month = q.get("month").cloned().unwrap_or_default();
    let Some(agents) = s.cfg.peer(Role::Agents) else {
        body.push_str(&message("No agents daemon is configured.", true));
        return done(&who.session.csrf, body);
    };
    let report_url = if month.is_empty() {
        format!("{}/v1/cost/report", agents.url)
    } else {
        format!("{}/v1/cost/report?month={}", agents.url, url_param(&month))
    };
    let mode_url = format!("{}/v1/cost/mode", agents.url);
    let (state, report) = tokio::join!(s.peers.get(&mode_url), s.peers.get(&report_url));
    match state {
        Err(e) => body.push_str(&message(&e, true)),
        Ok(v) => {
            let b = &v["budget"];
            let st = b["state"].as_str().unwrap_or("unknown");
            let local = v["local_only"].as_bool() == Some(true);
            body.push_str(&format!(
                "<p><span class=\"budget {}\" id=\"budget-state\">{}</span> today ${:.4}, this month ${:.4} ({:.0} % of the tighter limit)</p>",
                esc(st),
                esc(st),
                b["day_usd"].as_f64().unwrap_or(0.0),
                b["month_usd"].as_f64().unwrap_or(0.0),
                b["share"].as_f64().unwrap_or(0.0) * 100.0,
            ));
            body.push_str(&format!(
                "<form method=\"post\" action=\"/cost/mode\">{}<input type=\"hidden\" name=\"local_only\" value=\"{}\"><p>Local only is <strong id=\"local-only\">{}</strong>: {} <button>{}</button></p></form>",
                csrf_field(&who.session.csrf),
                !local,
                if local { "on" } else { "off" },
                if local { "no paid model is used, whatever the budget says." } else { "paid models are used while the budget allows." },
                if local { "Allow paid models" } else { "Use local models only" },
            ));
            body.push_str(&format!(
                "<form method=\"post\" action=\"/cost/mode\">{}<input type=\"hidden\" name=\"reset_today\" value=\"true\"><p><button>Reset today's spend</button> <span class=\"small\">(it stays in the month and the report)</span></p></form>",
                csrf_field(&who.session.csrf)
            ));
        }
    }
    body.push_str(&format!(
        "<form method=\"get\" action=\"/cost\"><label>Monthly report for <input name=\"month\" value=\"{}\" placeholder=\"YYYY-MM\" size=\"8\"></label> <button>Show</button></form>",
        esc(&month)
    ));
    match report {
        Err(e) => body.push_str(&message(&e, true)),
        Ok(r) => body.push_str(&report_html(&r)),
    }
    done(&who.session.csrf, body)
}

fn report_html(r: &Value) -> String {
    let mut out = format!(
        "<h2>{}</h2><p>{} requests, {} prompt and {} completion tokens, <strong>${:.4}</strong></p>",
        esc(r["month"].as_str().unwrap_or("?")),
        r["requests"].as_u64().unwrap_or(0),
        r["prompt_tokens"].as_u64().unwrap_or(0),
        r["completion_tokens"].as_u64().unwrap_or(0),
        r["cost_usd"].as_f64().unwrap_or(0.0)
    );
    for (key, title, cols) in [
        (
            "by_provider",
            "By provider and model",
            &["provider", "model", "tier"][..],
        ),
        ("by_route", "By route", &["route", "agent"][..]),
        ("by_speaker", "By family member", &["speaker"][..]),
        (
            "top_drivers",
            "Top cost drivers",
            &["route", "agent", "speaker", "model"][..],
        ),
    ] {
        let lines = r[key].as_array().cloned().unwrap_or_default();
        out.push_str(&format!("<h3>{title}</h3>"));
        if lines.is_empty() {
            out.push_str("<p class=\"small\">Nothing this month.</p>");
            continue;
        }
        let head: String = cols.iter().map(|c| format!("<th>{c}</th>")).collect();
        out.push_str(&format!(
            "<table><tr>{head}<th>Requests</th><th>Tokens</th><th>Cost</th></tr>"
        ));
        for l in &lines {
            let cells: String = cols
                .iter()
                .map(|c| format!("<td>{}</td>", esc(l[*c].as_str().unwrap_or("—"))))
                .collect();
            out.push_str(&format!(
                "<tr>{cells}<td>{}</td><td>{}</td><td>${:.4}</td></tr>",
                l["requests"].as_u64().unwrap_or(0),
                l["prompt_tokens"].as_u64().unwrap_or(0)
                    + l["completion_tokens"].as_u64().unwrap_or(0),
                l["cost_usd"].as_f64().unwrap_or(0.0)
            ));
        }
        out.push_str("</table>");
    }
    out
}

fn done(csrf: &str, body: String) -> Response {
    html(
        StatusCode::OK,
        page(
            &Frame {
                title: "Cost",
                active: "/cost",
                csrf: Some(csrf),
                refresh: None,
            },
            &body,
        ),
    )
}

pub async fn set_mode(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let (_, f) = match change(&s, &headers, &body) {
        Ok(x) => x,
        Err(r) => return r.into_response(),
    };
    let flag = |k: &str| match f.get(k).map(String::as_str) {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(other) => Err(format!("{k} must be true or false, not {other:?}")),
    };
    let (local_only, reset) = match (flag("local_only"), flag("reset_today")) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return refused(StatusCode::BAD_REQUEST, &e),
    };
    let mut req = serde_json::Map::new();
    if let Some(v) = local_only {
        req.insert("local_only".into(), json!(v));
    }
    if reset == Some(true) {
        req.insert("reset_today".into(), json!(true));
    }
    if req.is_empty() {
        return refused(
            StatusCode::BAD_REQUEST,
            "Nothing to change: the form set neither local only nor reset today.",
        );
    }
    let Some(agents) = s.cfg.peer(Role::Agents) else {
        return refused(
            StatusCode::SERVICE_UNAVAILABLE,
            "No agents daemon is configured.",
        );
    };
    match s
        .peers
        .post(&format!("{}/v1/cost/mode", agents.url), &Value::Object(req))
        .await
    {
        Ok(v) => {
            let what = match (local_only, reset) {
                (Some(true), _) => "Local only is on.".to_owned(),
                (Some(false), _) => "Local only is off.".to_owned(),
                _ => "Today's spend was reset.".to_owned(),
            };
            log::info!(event = "console_cost_mode", local_only = v["local_only"].as_bool().unwrap_or(false); "{what} (from the console)");
            back_to("/cost", Ok(what))
        }
        Err(e) => back_to("/cost", Err(e)),
    }
}
