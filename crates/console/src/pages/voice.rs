//! Voice: the last requests the voice daemon timed (`GET /v1/latency`): a stacked bar per
//! request (endpointing, speech to text, the agents, text to speech until the first audio), the
//! p50 and p95 of each stage over the window, and each request's outcome, speaker, transcript,
//! reply and route. The chart is inline SVG drawn here: no script, no library.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::Value;

use super::layout::{Frame, esc, message, page};
use crate::config::Role;
use crate::web::{AppState, Params, html, to_login};

/// (key in a breakdown, label, colour)
const STAGES: [(&str, &str, &str); 4] = [
    ("endpoint_ms", "end of speech", "#9db4c0"),
    ("stt_ms", "speech to text", "#5c6b73"),
    ("agents_ms", "agents", "#f0c040"),
    ("tts_first_audio_ms", "first audio", "#2e7d32"),
];

/// The `q` quantile (nearest rank) of `v`, sorted in place.
pub fn quantile(v: &mut [f64], q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    Some(v[rank - 1])
}

fn ms(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.0} ms"))
        .unwrap_or_else(|| "—".into())
}

pub async fn show(State(s): State<AppState>, headers: HeaderMap, Query(q): Params) -> Response {
    let Some(who) = s.logged_in(&headers) else {
        return to_login("/voice");
    };
    let n: usize = q
        .get("n")
        .and_then(|x| x.parse().ok())
        .filter(|n| (1..=1000).contains(n))
        .unwrap_or(50);
    let mut body = String::new();
    let data = match s.cfg.peer(Role::Voice) {
        None => Err("No voice daemon is configured.".to_owned()),
        Some(v) => s
            .peers
            .get(&format!("{}/v1/latency?n={n}", v.url))
            .await
            .and_then(|v| match v["breakdowns"].as_array() {
                Some(a) => Ok(a.clone()),
                None => Err(format!(
                    "the voice daemon's latency answer has no breakdowns: {}",
                    v.to_string().chars().take(120).collect::<String>()
                )),
            }),
    };
    match data {
        Err(e) => body.push_str(&message(&e, true)),
        Ok(list) if list.is_empty() => {
            body.push_str("<p>No requests yet since the voice daemon started.</p>")
        }
        Ok(list) => {
            body.push_str(&format!(
                "<p class=\"small\">The last {} requests (newest first).</p>",
                list.len()
            ));
            body.push_str(&stage_table(&list));
            body.push_str(&chart(&list));
            body.push_str("<table id=\"requests\"><tr><th>#</th><th>Outcome</th><th>Speaker</th><th>Heard</th><th>Reply</th><th>Route</th><th>Total</th></tr>");
            for b in &list {
                let speaker = match (b["speaker"].as_str(), b["speaker_confidence"].as_f64()) {
                    (Some(sp), Some(c)) => format!("{} ({c:.2})", esc(sp)),
                    (Some(sp), None) => esc(sp),
                    _ => "—".into(),
                };
                let outcome = b["outcome"].as_str().unwrap_or("?");
                let class = if outcome == "answered" { "ok" } else { "warn" };
                body.push_str(&format!(
                    "<tr><td>{}</td><td class=\"{class}\">{}</td><td>{speaker}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    b["request_id"].as_u64().unwrap_or(0),
                    esc(outcome),
                    esc(b["transcript"].as_str().unwrap_or("")),
                    esc(b["reply"].as_str().unwrap_or(b["error"].as_str().unwrap_or(""))),
                    esc(b["route"].as_str().unwrap_or("")),
                    ms(b["total_ms"].as_f64()),
                ));
            }
            body.push_str("</table>");
        }
    }
    html(
        StatusCode::OK,
        page(
            &Frame {
                title: "Voice",
                active: "/voice",
                csrf: Some(&who.session.csrf),
                refresh: None,
            },
            &body,
        ),
    )
}

fn stage_table(list: &[Value]) -> String {
    let mut rows = String::new();
    let all = STAGES
        .iter()
        .map(|(k, l, _)| (*k, *l))
        .chain([("total_ms", "total (end of speech to first audio)")]);
    for (key, label) in all {
        let mut v: Vec<f64> = list.iter().filter_map(|b| b[key].as_f64()).collect();
        let n = v.len();
        let p50 = quantile(&mut v, 0.5);
        let p95 = quantile(&mut v, 0.95);
        rows.push_str(&format!(
            "<tr data-stage=\"{key}\"><td>{label}</td><td>{}</td><td>{}</td><td>{n}</td></tr>",
            ms(p50),
            ms(p95)
        ));
    }
    format!(
        "<table id=\"stages\"><tr><th>Stage</th><th>p50</th><th>p95</th><th>Requests</th></tr>{rows}</table>"
    )
}

/// One stacked bar per request (the newest 20), scaled to the slowest.
fn chart(list: &[Value]) -> String {
    let shown: Vec<&Value> = list.iter().take(20).collect();
    let total = |b: &Value| -> f64 { STAGES.iter().filter_map(|(k, _, _)| b[*k].as_f64()).sum() };
    let max = shown.iter().map(|b| total(b)).fold(1.0f64, f64::max);
    let (w, row) = (640.0, 18.0);
    let mut svg = format!(
        "<svg id=\"latency-chart\" role=\"img\" aria-label=\"per-stage latency of the last requests\" width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\" style=\"background:#fff\">",
        w + 160.0,
        row * shown.len() as f64 + 30.0,
        w + 160.0,
        row * shown.len() as f64 + 30.0
    );
    for (i, b) in shown.iter().enumerate() {
        let y = 4.0 + i as f64 * row;
        let mut x = 60.0;
        svg.push_str(&format!(
            "<text x=\"2\" y=\"{}\" font-size=\"11\">#{}</text>",
            y + 12.0,
            b["request_id"].as_u64().unwrap_or(0)
        ));
        for (k, label, colour) in STAGES {
            if let Some(v) = b[k].as_f64() {
                let width = v / max * w;
                svg.push_str(&format!(
                    "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{width:.1}\" height=\"{}\" fill=\"{colour}\"><title>{label}: {v:.0} ms</title></rect>",
                    row - 4.0
                ));
                x += width;
            }
        }
        svg.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{}\" font-size=\"11\">{}</text>",
            x + 4.0,
            y + 12.0,
            ms(b["total_ms"].as_f64())
        ));
    }
    let mut lx = 60.0;
    let ly = row * shown.len() as f64 + 20.0;
    for (_, label, colour) in STAGES {
        svg.push_str(&format!(
            "<rect x=\"{lx}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{colour}\"/><text x=\"{}\" y=\"{ly}\" font-size=\"11\">{label}</text>",
            ly - 9.0,
            lx + 14.0
        ));
        lx += 130.0;
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let mut v = vec![5.0, 1.0, 3.0, 2.0, 4.0];
        assert_eq!(quantile(&mut v, 0.5), Some(3.0));
        assert_eq!(quantile(&mut v, 0.95), Some(5.0));
        assert_eq!(quantile(&mut [], 0.5), None);
        let c = chart(&[
            serde_json::json!({"request_id": 7, "stt_ms": 300.0, "agents_ms": 100.0, "total_ms": 400.0}),
        ]);
        assert!(c.contains("speech to text: 300 ms") && c.contains("#7"));
    }
}
