//! The real barnabee-voice binary: a minimal config (`[service] listen` only) starts it
//! degraded ("no audio device" on this machine without a sound card; inference and agents not
//! configured), it serves /v1/latency, /v1/state and wake arbitration, and rejects bad input
//! with 400 naming the field.

#![allow(clippy::unwrap_used)]
#![allow(clippy::disallowed_methods)] // tests build their own HTTP clients (clippy.toml)

mod common;

use std::process::Command;
use std::time::Duration;

use common::Proc;

use serde_json::{Value, json};

async fn start(extra: &str) -> Proc {
    common::voice(extra)
}

async fn get(v: &Proc, path: &str) -> (u16, Value) {
    let r = reqwest::get(format!("{}{path}", v.base())).await.unwrap();
    let st = r.status().as_u16();
    (st, r.json().await.unwrap_or(Value::Null))
}

async fn post(v: &Proc, path: &str, body: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}{path}", v.base()))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let st = r.status().as_u16();
    (st, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn minimal_config_serves_degraded_with_no_audio_device_on_this_machine_without_sound_card() {
    let v = start("").await;
    // the audio worker's first attempt runs right after start
    let mut h = Value::Null;
    for _ in 0..100 {
        h = get(&v, "/health").await.1;
        if h["checks"]["audio"]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("available input devices"))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (st, _) = get(&v, "/health").await;
    assert_eq!(st, 200, "{h}");
    assert_eq!(h["status"], "degraded", "{h}");
    let audio = h["checks"]["audio"]["detail"].as_str().unwrap();
    assert!(audio.starts_with("no audio device"), "{h}");
    assert!(audio.contains("\"default\""), "{h}");
    assert!(audio.contains("null"), "lists the available devices: {h}");
    assert_eq!(h["checks"]["inference"]["ok"], false, "{h}");
    assert!(
        h["checks"]["inference"]["detail"]
            .as_str()
            .unwrap()
            .contains("not configured")
    );
    assert_eq!(get(&v, "/v1/state").await.1["state"], "idle");
    assert_eq!(get(&v, "/v1/latency").await.1, json!({"breakdowns": []}));
    let m = reqwest::get(format!("{}/metrics", v.base()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "barnabee_voice_stt_latency_ms",
        "barnabee_voice_tts_latency_ms",
        "barnabee_voice_total_latency_ms",
        "barnabee_voice_stt_requests_total",
    ] {
        assert!(m.contains(name), "{name} missing:\n{m}");
    }
}

#[tokio::test]
async fn wake_arbitration_over_http_and_bad_input_names_the_field() {
    let v = start("[audio]\nenabled = false\n[arbitration]\nwindow_ms = 200\n").await;
    let (a, b) = tokio::join!(
        post(
            &v,
            "/v1/wake",
            r#"{"device_id":"kitchen","confidence":0.8}"#
        ),
        post(&v, "/v1/wake", r#"{"device_id":"hall","confidence":0.95}"#),
    );
    assert_eq!(a.0, 200, "{a:?}");
    assert_eq!(a.1["winner"], false, "{a:?}");
    assert_eq!(b.1["winner"], true, "{b:?}");
    assert_eq!(a.1["winner_device_id"], "hall");
    assert_eq!(a.1["contenders"], 2);
    for (body, field) in [
        (r#"{"confidence":0.5}"#, "device_id"),
        (r#"{"device_id":"k","confidence":"high"}"#, "confidence"),
        (r#"{"device_id":"k","confidence":1.5}"#, "confidence"),
        (r#"{"device_id":" ","confidence":0.5}"#, "device_id"),
        ("not json", "body"),
    ] {
        let (st, e) = post(&v, "/v1/wake", body).await;
        assert_eq!(st, 400, "{body}: {e}");
        assert_eq!(e["field"], field, "{body}: {e}");
    }
    let (st, e) = get(&v, "/v1/latency?n=0").await;
    assert_eq!(st, 400);
    assert_eq!(e["field"], "n");
    let h = get(&v, "/health").await.1;
    assert_eq!(h["checks"]["audio"]["ok"], true, "{h}");
}

#[test]
fn bad_config_exits_1_naming_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("voice.toml");
    std::fs::write(&cfg, "[pipeline]\nmax_utterance = 3\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_barnabee-voice"))
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("voice.toml:2:1"), "{err}");
    assert!(err.contains("pipeline.max_utterance"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
