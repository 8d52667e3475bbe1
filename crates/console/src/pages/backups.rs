//! Backups: memory's replication and verification state as `GET /v1/backup/status` reports it
//! (each replica's lag, last shipped TXID, restore points, last verification), and "verify now",
//! which starts memory's restore verification and comes back at once (it can take minutes; the
//! result appears here and in the journal).

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::layout::{Frame, csrf_field, flash, json_html, message, page, url_param};
use crate::config::Role;
use crate::web::{AppState, Params, change, html, redirect, refused, to_login};

pub async fn show(State(s): State<AppState>, headers: HeaderMap, Query(q): Params) -> Response {
    let Some(who) = s.logged_in(&headers) else {
        return to_login("/backups");
    };
    let mut body = String::new();
    body.push_str(&flash(&q));
    match s.cfg.peer(Role::Memory) {
        None => body.push_str(&message("No memory daemon is configured.", true)),
        Some(mem) => match s.peers.get(&format!("{}/v1/backup/status", mem.url)).await {
            Err(e) => body.push_str(&message(&e, true)),
            Ok(v) => {
                if v["configured"].as_bool() == Some(false) {
                    body.push_str(&message("Memory has no replica configured: nothing of the family's memory exists off this box.", true));
                }
                body.push_str(&format!(
                    "<form method=\"post\" action=\"/backups/verify\">{}<button>Verify now</button> <span class=\"small\">restores the newest state into a temporary file and checks it; the live database is not touched</span></form>",
                    csrf_field(&who.session.csrf)
                ));
                body.push_str(&format!(
                    "<div id=\"backup-status\">{}</div>",
                    json_html(&v)
                ));
            }
        },
    }
    html(
        StatusCode::OK,
        page(
            &Frame {
                title: "Backups",
                active: "/backups",
                csrf: Some(&who.session.csrf),
                refresh: None,
            },
            &body,
        ),
    )
}

pub async fn verify(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = change(&s, &headers, &body) {
        return r.into_response();
    }
    let Some(mem) = s.cfg.peer(Role::Memory) else {
        return refused(
            StatusCode::SERVICE_UNAVAILABLE,
            "No memory daemon is configured.",
        );
    };
    let url = format!("{}/v1/backup/verify", mem.url);
    let peers = s.peers.clone();
    tokio::spawn(async move {
        match peers.post_slow(&url, &serde_json::json!({})).await {
            Ok(v) => {
                log::info!(event = "console_backup_verify"; "verification from the console: {v}")
            }
            Err(e) => {
                log::warn!(event = "console_backup_verify_failed"; "verification from the console: {e}")
            }
        }
    });
    redirect(&format!(
        "/backups?done={}",
        url_param("Verification started; its result appears below when it is done.")
    ))
}
