//! Memories: search (the same modes as memory's API) or browse, as one family member sees them
//! (memory's privacy rule: family memories and the member's own private ones), and delete.
//! The console is the operator's tool, so a delete is made as the memory's owner.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::layout::{Frame, back_to, csrf_field, esc, flash, message, page, url_param};
use crate::config::Role;
use crate::web::{AppState, Params, change, html, refused, to_login};

const MODES: [&str; 3] = ["hybrid", "fts", "vector"];

pub async fn show(State(s): State<AppState>, headers: HeaderMap, Query(q): Params) -> Response {
    let Some(who) = s.logged_in(&headers) else {
        return to_login("/memories");
    };
    let query = q.get("q").map(|x| x.trim().to_owned()).unwrap_or_default();
    let member = q
        .get("member")
        .map(|x| x.trim().to_owned())
        .filter(|x| !x.is_empty())
        .unwrap_or_else(|| "family".into());
    let mode = q.get("mode").map(String::as_str).unwrap_or("hybrid");
    let mut body = String::new();
    body.push_str(&flash(&q));
    let mode_ok = MODES.contains(&mode);
    if !mode_ok {
        body.push_str(&message(
            &format!("Unknown search mode {mode:?}: choose hybrid, fts or vector."),
            true,
        ));
    }
    let options: String = MODES
        .iter()
        .map(|m| {
            let sel = if *m == mode { " selected" } else { "" };
            format!("<option{sel}>{m}</option>")
        })
        .collect();
    body.push_str(&format!(
        "<form method=\"get\" action=\"/memories\"><label>Search <input name=\"q\" value=\"{}\" size=\"40\"></label> <label>as <input name=\"member\" value=\"{}\" size=\"10\"></label> <label>mode <select name=\"mode\">{options}</select></label> <button>Search</button></form>",
        esc(&query),
        esc(&member)
    ));
    let Some(mem) = s.cfg.peer(Role::Memory) else {
        body.push_str(&message("No memory daemon is configured.", true));
        return done(&s, &who.session.csrf, body);
    };
    let answer = if !mode_ok {
        None
    } else if query.is_empty() {
        Some(
            s.peers
                .get(&format!(
                    "{}/v1/memories?requester={}&limit=50",
                    mem.url,
                    url_param(&member)
                ))
                .await
                .and_then(|v| match v {
                    Value::Array(a) => Ok(a),
                    other => Err(format!(
                        "memory listed something that is not a list: {}",
                        short(&other)
                    )),
                }),
        )
    } else {
        Some(
            s.peers
                .post(
                    &format!("{}/v1/search", mem.url),
                    &json!({"requester": member, "query": query, "mode": mode, "limit": 25}),
                )
                .await
                .and_then(|v| match v["results"].as_array() {
                    Some(r) => Ok(r.iter().map(|h| h["memory"].clone()).collect()),
                    None => Err(format!(
                        "memory's search answer has no results: {}",
                        short(&v)
                    )),
                }),
        )
    };
    match answer {
        None => {}
        Some(Err(e)) => body.push_str(&message(&e, true)),
        Some(Ok(list)) if list.is_empty() => body.push_str("<p>No memories found.</p>"),
        Some(Ok(list)) => {
            body.push_str(&format!(
                "<p class=\"small\">{} {}</p><table><tr><th>Memory</th><th>Type</th><th>Owner</th><th>Visibility</th><th>Written</th><th></th></tr>",
                list.len(),
                if query.is_empty() { "newest memories" } else { "matches" }
            ));
            for m in &list {
                let id = m["id"].as_i64().unwrap_or(0);
                let owner = m["owner"].as_str().unwrap_or("");
                body.push_str(&format!(
                    "<tr data-memory-id=\"{id}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><form method=\"post\" action=\"/memories/delete\">{}<input type=\"hidden\" name=\"id\" value=\"{id}\"><input type=\"hidden\" name=\"owner\" value=\"{}\"><button>Delete</button></form></td></tr>",
                    esc(m["summary"].as_str().unwrap_or("")),
                    esc(m["memory_type"].as_str().unwrap_or("")),
                    esc(owner),
                    esc(m["visibility"].as_str().unwrap_or("")),
                    super::utc(m["created_at"].as_i64().unwrap_or(0)),
                    csrf_field(&who.session.csrf),
                    esc(owner),
                ));
            }
            body.push_str("</table>");
        }
    }
    done(&s, &who.session.csrf, body)
}

fn short(v: &Value) -> String {
    v.to_string().chars().take(120).collect()
}

fn done(s: &AppState, csrf: &str, body: String) -> Response {
    let _ = s;
    html(
        StatusCode::OK,
        page(
            &Frame {
                title: "Memories",
                active: "/memories",
                csrf: Some(csrf),
                refresh: None,
            },
            &body,
        ),
    )
}

pub async fn delete(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let (_, f) = match change(&s, &headers, &body) {
        Ok(x) => x,
        Err(r) => return r.into_response(),
    };
    let Some(id) = f.get("id").and_then(|x| x.parse::<i64>().ok()) else {
        return refused(
            StatusCode::BAD_REQUEST,
            "Which memory? The form has no valid id.",
        );
    };
    let owner = f.get("owner").cloned().unwrap_or_default();
    let Some(mem) = s.cfg.peer(Role::Memory) else {
        return refused(
            StatusCode::SERVICE_UNAVAILABLE,
            "No memory daemon is configured.",
        );
    };
    match s
        .peers
        .delete(&format!(
            "{}/v1/memories/{id}?requester={}",
            mem.url,
            url_param(&owner)
        ))
        .await
    {
        Ok(_) => {
            log::info!(event = "console_memory_deleted", memory = id; "memory {id} deleted from the console");
            back_to("/memories", Ok(format!("Memory {id} deleted.")))
        }
        Err(e) => back_to("/memories", Err(e)),
    }
}
