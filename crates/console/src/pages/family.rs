//! Family: the speaker profiles memory holds (samples, model, last update) with each member's
//! recent identification confidence from the voice daemon's last requests; enrol, re-enrol and
//! add samples from the browser's microphone; delete a profile.
//!
//! Recording needs a script (the one on any page): it captures a few seconds with
//! `getUserMedia`, encodes them as a 16-bit mono WAV at the microphone's rate (the voice daemon
//! resamples, as for `barnabee voice enroll`), and posts the samples to `/family/enroll` with
//! the session's CSRF token in `X-CSRF-Token`; the console forwards them to the voice daemon's
//! `POST /v1/speakers/{name}/enroll` (which embeds them on the beast and stores the profile in
//! memory). Browsers allow the microphone only on `localhost` or HTTPS: on the LAN, put the
//! console behind a TLS proxy, or enrol with `barnabee voice enroll NAME WAV...`.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::layout::{Frame, back_to, csrf_field, esc, flash, message, page, url_param};
use crate::auth;
use crate::config::Role;
use crate::web::{AppState, Params, change, html, refused, to_login};

/// Recordings posted at once may be this large (base64 WAVs): a dozen 5-second samples at
/// 48 kHz are about 8 MB.
pub const MAX_ENROLL_BYTES: usize = 8 * 1024 * 1024;

const RECORDER: &str = r#"
<script>
(() => {
  const $ = (s) => document.querySelector(s);
  const samples = [];
  const status = (t, bad) => { const p = $('#rec-status'); p.textContent = t; p.className = bad ? 'msg err' : 'msg info'; };
  const wav = (chunks, rate) => {
    const n = chunks.reduce((a, c) => a + c.length, 0);
    const b = new DataView(new ArrayBuffer(44 + n * 2));
    const str = (o, s) => { for (let i = 0; i < s.length; i++) b.setUint8(o + i, s.charCodeAt(i)); };
    str(0, 'RIFF'); b.setUint32(4, 36 + n * 2, true); str(8, 'WAVEfmt '); b.setUint32(16, 16, true);
    b.setUint16(20, 1, true); b.setUint16(22, 1, true); b.setUint32(24, rate, true);
    b.setUint32(28, rate * 2, true); b.setUint16(32, 2, true); b.setUint16(34, 16, true);
    str(36, 'data'); b.setUint32(40, n * 2, true);
    let o = 44;
    for (const c of chunks) for (const x of c) { b.setInt16(o, Math.max(-1, Math.min(1, x)) * 32767, true); o += 2; }
    let s = ''; const u = new Uint8Array(b.buffer);
    for (let i = 0; i < u.length; i += 32768) s += String.fromCharCode.apply(null, u.subarray(i, i + 32768));
    return btoa(s);
  };
  $('#rec-sample').addEventListener('click', async () => {
    const secs = Number($('#rec-seconds').value) || 4;
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({audio: {channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false}});
    } catch (e) { status('No microphone: ' + e.message + ' (the browser allows it only on localhost or HTTPS)', true); return; }
    const ctx = new AudioContext();
    const src = ctx.createMediaStreamSource(stream);
    const proc = ctx.createScriptProcessor(4096, 1, 1);
    const chunks = [];
    proc.onaudioprocess = (e) => chunks.push(new Float32Array(e.inputBuffer.getChannelData(0)));
    src.connect(proc); proc.connect(ctx.destination);
    status('Recording ' + secs + ' s: speak now.');
    await new Promise((r) => setTimeout(r, secs * 1000));
    proc.disconnect(); src.disconnect(); stream.getTracks().forEach((t) => t.stop());
    const rate = ctx.sampleRate; await ctx.close();
    let sq = 0, n = 0;
    for (const c of chunks) for (const x of c) { sq += x * x; n++; }
    const db = n ? 10 * Math.log10(sq / n + 1e-12) : -120;
    if (db < -60) { status('That sample was silent (' + db.toFixed(0) + ' dBFS): is the microphone muted? Not kept.', true); return; }
    samples.push({file: 'browser-' + (samples.length + 1) + '.wav', wav_base64: wav(chunks, rate)});
    $('#rec-count').textContent = samples.length;
    status('Sample ' + samples.length + ' recorded (' + secs + ' s at ' + rate + ' Hz, level ' + db.toFixed(0) + ' dBFS).');
  });
  $('#rec-save').addEventListener('click', async () => {
    const name = $('#rec-name').value.trim();
    if (!name) { status('Whose voice is it? Give a name.', true); return; }
    if (!samples.length) { status('Record at least one sample first.', true); return; }
    status('Saving ' + samples.length + ' samples for ' + name + '...');
    const r = await fetch('/family/enroll', {method: 'POST', headers: {'content-type': 'application/json', 'x-csrf-token': $('#rec-csrf').value},
      body: JSON.stringify({name, add: $('#rec-add').checked, utterances: samples})});
    let v = {}; try { v = await r.json(); } catch (e) { v = {error: 'the console answered HTTP ' + r.status}; }
    if (r.ok) { samples.length = 0; $('#rec-count').textContent = 0; status(v.message); setTimeout(() => location.reload(), 1500); }
    else status(v.error || ('HTTP ' + r.status), true);
  });
})();
</script>"#;

pub async fn show(
    State(s): State<AppState>,
    headers: HeaderMap,
    axum::extract::Query(q): Params,
) -> Response {
    let Some(who) = s.logged_in(&headers) else {
        return to_login("/family");
    };
    let csrf = &who.session.csrf;
    let mut body = String::new();
    body.push_str(&flash(&q));
    let profiles = match s.cfg.peer(Role::Memory) {
        None => Err("No memory daemon is configured.".to_owned()),
        Some(m) => s
            .peers
            .get(&format!("{}/v1/speakers", m.url))
            .await
            .and_then(|v| match v {
                Value::Array(a) => Ok(a),
                other => Err(format!(
                    "memory's speaker list is not a list: {}",
                    other.to_string().chars().take(120).collect::<String>()
                )),
            }),
    };
    // The latest confidence per speaker from the voice daemon's last requests (best effort).
    let mut confidence: HashMap<String, (f64, usize)> = HashMap::new();
    if let Some(v) = s.cfg.peer(Role::Voice)
        && let Ok(l) = s.peers.get(&format!("{}/v1/latency?n=200", v.url)).await
    {
        for b in l["breakdowns"].as_array().into_iter().flatten() {
            if let (Some(sp), Some(c)) = (b["speaker"].as_str(), b["speaker_confidence"].as_f64()) {
                let e = confidence.entry(sp.to_owned()).or_insert((c, 0));
                e.1 += 1; // newest first: the first seen is the latest
            }
        }
    }
    match profiles {
        Err(e) => body.push_str(&message(&e, true)),
        Ok(list) if list.is_empty() => body.push_str(
            "<p>No voice profiles yet: nobody is recognised by voice, so guarded actions (locks) are refused to everyone. Enrol a family member below.</p>",
        ),
        Ok(list) => {
            body.push_str("<table id=\"profiles\"><tr><th>Name</th><th>Samples</th><th>Model</th><th>Updated</th><th>Recent confidence</th><th></th></tr>");
            for p in &list {
                let name = p["name"].as_str().unwrap_or("");
                let conf = confidence
                    .get(name)
                    .map(|(c, n)| format!("{c:.2} <span class=\"small\">(last of {n})</span>"))
                    .unwrap_or_else(|| "<span class=\"small\">not heard recently</span>".into());
                body.push_str(&format!(
                    "<tr data-speaker=\"{}\"><td>{}</td><td class=\"samples\">{}</td><td>{}</td><td>{}</td><td>{conf}</td><td><form method=\"post\" action=\"/family/delete\">{}<input type=\"hidden\" name=\"name\" value=\"{}\"><button>Delete</button></form></td></tr>",
                    esc(name),
                    esc(name),
                    p["sample_count"].as_i64().unwrap_or(0),
                    esc(p["embedding_model_hash"].as_str().unwrap_or("")),
                    super::utc(p["updated_at"].as_i64().unwrap_or(0)),
                    csrf_field(csrf),
                    esc(name),
                ));
            }
            body.push_str("</table>");
        }
    }
    body.push_str(&format!(
        "<h2>Enrol from this browser's microphone</h2><p class=\"small\">Record a few samples of normal speech (a sentence each), then save. A new enrolment replaces the profile; “add” keeps it and adds the samples.</p>\
<p><label>Name <input id=\"rec-name\" size=\"12\"></label> <label><input type=\"checkbox\" id=\"rec-add\"> add to the existing profile</label> <label>Seconds <input id=\"rec-seconds\" type=\"number\" min=\"1\" max=\"15\" value=\"4\" size=\"3\"></label></p>\
<p><button id=\"rec-sample\" type=\"button\">Record a sample</button> <span><span id=\"rec-count\">0</span> recorded</span> <button id=\"rec-save\" type=\"button\">Save</button></p>\
<input type=\"hidden\" id=\"rec-csrf\" value=\"{}\"><p id=\"rec-status\" role=\"status\"></p>{RECORDER}",
        esc(csrf)
    ));
    html(
        StatusCode::OK,
        page(
            &Frame {
                title: "Family",
                active: "/family",
                csrf: Some(csrf),
                refresh: None,
            },
            &body,
        ),
    )
}

fn json_error(status: StatusCode, text: impl Into<String>) -> Response {
    (status, axum::Json(json!({"error": text.into()}))).into_response()
}

/// `POST /family/enroll` from the page's script: `{name, add, utterances: [{file, wav_base64}]}`.
pub async fn enroll(State(s): State<AppState>, request: axum::extract::Request) -> Response {
    let headers = request.headers().clone();
    let Some(who) = s.logged_in(&headers) else {
        return json_error(
            StatusCode::FORBIDDEN,
            "You are not logged in (or your session has ended): log in again; nothing was saved.",
        );
    };
    let token = headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !auth::same(token, &who.session.csrf) {
        return json_error(
            StatusCode::FORBIDDEN,
            "This page is out of date (its security token does not belong to your session): reload it and record again.",
        );
    }
    let too_large = |bytes: Option<usize>| {
        json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "The recordings are too large ({}at most {} MB): save fewer or shorter samples at a time.",
                bytes
                    .map(|b| format!("{:.1} MB; ", b as f64 / 1048576.0))
                    .unwrap_or_default(),
                MAX_ENROLL_BYTES / 1048576
            ),
        )
    };
    // Refused by its declared length before a byte of it is read (memory stays flat).
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_ENROLL_BYTES) {
        return too_large(declared);
    }
    let body: Bytes = match axum::body::to_bytes(request.into_body(), MAX_ENROLL_BYTES).await {
        Ok(b) => b,
        Err(_) => return too_large(None),
    };
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                format!("The recording could not be read: {e}"),
            );
        }
    };
    let name = v["name"].as_str().unwrap_or("").trim().to_owned();
    if name.is_empty() {
        return json_error(
            StatusCode::BAD_REQUEST,
            "Whose voice is it? The name is empty.",
        );
    }
    let Some(voice) = s.cfg.peer(Role::Voice) else {
        return json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "No voice daemon is configured.",
        );
    };
    let req = json!({"utterances": v["utterances"], "add": v["add"].as_bool().unwrap_or(false)});
    let url = format!("{}/v1/speakers/{}/enroll", voice.url, url_param(&name));
    match s.peers.post_slow(&url, &req).await {
        Ok(r) => {
            let msg = format!(
                "{} {} from {} sample{}: {} samples in the profile.",
                if req["add"] == true {
                    "Added to"
                } else {
                    "Enrolled"
                },
                r["name"].as_str().unwrap_or(&name),
                r["utterances"].as_u64().unwrap_or(0),
                if r["utterances"].as_u64() == Some(1) {
                    ""
                } else {
                    "s"
                },
                r["sample_count"].as_i64().unwrap_or(0)
            );
            log::info!(event = "console_speaker_enrolled", speaker = name.as_str(); "{msg}");
            axum::Json(json!({"message": msg, "profile": r})).into_response()
        }
        Err(e) => json_error(StatusCode::BAD_GATEWAY, e),
    }
}

pub async fn delete(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let (_, f) = match change(&s, &headers, &body) {
        Ok(x) => x,
        Err(r) => return r.into_response(),
    };
    let name = f.get("name").cloned().unwrap_or_default();
    if name.trim().is_empty() {
        return refused(
            StatusCode::BAD_REQUEST,
            "Whose profile? The form has no name.",
        );
    }
    let Some(mem) = s.cfg.peer(Role::Memory) else {
        return refused(
            StatusCode::SERVICE_UNAVAILABLE,
            "No memory daemon is configured.",
        );
    };
    match s
        .peers
        .delete(&format!("{}/v1/speakers/{}", mem.url, url_param(&name)))
        .await
    {
        Ok(_) => {
            log::info!(event = "console_speaker_deleted", speaker = name.as_str(); "voice profile {name} deleted from the console");
            back_to("/family", Ok(format!("{name}'s voice profile deleted.")))
        }
        Err(e) => back_to("/family", Err(e)),
    }
}
