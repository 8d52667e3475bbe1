//! `POST /v1/speakers/{name}/enroll` over HTTP on the real barnabee-voice binary, against the
//! real barnabee-inference (the speaker stand-in model) and the real barnabee-memory: a 16 kHz
//! WAV and a 44.1 kHz stereo one (converted, and said so) store a profile in memory; an 8 kHz
//! WAV, a non-WAV, a bad name or a bad body are refused with 400 naming what was wrong (and
//! nothing is stored); no [speaker] URLs → 503; inference down → 502 naming it.

#![allow(clippy::unwrap_used)]
#![allow(clippy::disallowed_methods)] // tests build their own HTTP clients (clippy.toml)

mod common;

use std::io::Cursor;

use base64::Engine as _;
use common::{Proc, free_port, inference_with, memory, speak};
use serde_json::{Value, json};

/// barnabee-voice with audio off (an API-only node) and `speaker` as its [speaker] section.
async fn voice(speaker: &str) -> Proc {
    common::voice(&format!("[audio]\nenabled = false\n[speaker]\n{speaker}"))
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn good_wav(text: &str) -> String {
    b64(&barnabee_voice::speaker::wav_bytes(&speak(text, 0.2)))
}

/// One second of a sawtooth at `rate` with `channels` (44.1 kHz stereo: what a phone records).
fn other_wav(rate: u32, channels: u16) -> String {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut buf = Cursor::new(Vec::new());
    let mut w = hound::WavWriter::new(&mut buf, spec).unwrap();
    for i in 0..rate * channels as u32 {
        w.write_sample(((i % 200) as i16 - 100) * 50).unwrap();
    }
    w.finalize().unwrap();
    b64(&buf.into_inner())
}

async fn post(v: &Proc, name: &str, body: &Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/v1/speakers/{name}/enroll", v.base()))
        .json(body)
        .send()
        .await
        .unwrap();
    let st = r.status().as_u16();
    (st, r.json().await.unwrap_or(Value::Null))
}

async fn stored(memory_base: &str, name: &str) -> (u16, Value) {
    let r = reqwest::get(format!("{memory_base}/v1/speakers/{name}"))
        .await
        .unwrap();
    let st = r.status().as_u16();
    (st, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enroll_over_http_stores_a_profile_in_real_memory_and_refuses_bad_wavs_with_400() {
    let inf = inference_with(free_port(), false);
    let mem = memory();
    let mem_base = format!("http://{}", mem.addr);
    let v = voice(&format!(
        "inference_url = \"http://{}\"\nmemory_url = \"{mem_base}\"\n",
        inf.http.unwrap()
    ))
    .await;

    let (st, body) = post(
        &v,
        "alice",
        &json!({"utterances": [
            {"file": "one.wav", "wav_base64": good_wav("hello, this is alice")},
            {"file": "phone.wav", "wav_base64": other_wav(44_100, 2)},
        ]}),
    )
    .await;
    assert_eq!(st, 200, "{body}\ninference: {}", inf.stderr());
    assert_eq!(body["name"], "alice");
    assert_eq!(body["utterances"], 2);
    assert_eq!(body["sample_count"], 2);
    let dim = body["embedding_dim"].as_u64().unwrap();
    assert!(dim > 0, "{body}");
    let model = body["embedding_model"].as_str().unwrap();
    assert!(!model.is_empty(), "{body}");
    assert_eq!(
        body["converted"],
        json!([
            "utterance 2 (phone.wav): 44100 Hz, 2 channels, 16-bit integer → 16000 Hz mono 16-bit"
        ])
    );

    // the profile is in memory: what identification reads
    let (st, profile) = stored(&mem_base, "alice").await;
    assert_eq!(st, 200, "{profile}");
    assert_eq!(profile["sample_count"], 2);
    assert_eq!(profile["embedding_model_hash"], model);
    assert_eq!(profile["centroid"].as_array().unwrap().len() as u64, dim);

    // a telephone-rate recording as the second file: 400 naming it, its rate and channels
    let (st, body) = post(
        &v,
        "bob",
        &json!({"utterances": [
            {"file": "ok.wav", "wav_base64": good_wav("hello, this is bob")},
            {"file": "call.wav", "wav_base64": other_wav(8_000, 1)},
        ]}),
    )
    .await;
    assert_eq!(st, 400, "{body}");
    assert_eq!(body["field"], "utterances[2]");
    let e = body["error"].as_str().unwrap();
    assert!(
        e.starts_with("utterance 2 (call.wav): 8000 Hz, 1 channel, 16-bit integer; at least 16000 Hz is needed"),
        "{e}"
    );
    // garbage
    let (st, body) = post(
        &v,
        "bob",
        &json!({"utterances": [{"file": "notes.txt", "wav_base64": b64(b"not audio at all")}]}),
    )
    .await;
    assert_eq!(st, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("utterance 1 (notes.txt): not a WAV file"),
        "{body}"
    );
    assert_eq!(
        stored(&mem_base, "bob").await.0,
        404,
        "nothing stored for bob"
    );

    // bad names and bodies
    let ok = json!({"utterances": [{"file": "a.wav", "wav_base64": good_wav("hi")}]});
    let (st, body) = post(&v, "guest", &ok).await;
    assert_eq!((st, body["field"].as_str()), (400, Some("name")), "{body}");
    let (st, body) = post(&v, "a%20b", &ok).await;
    assert_eq!((st, body["field"].as_str()), (400, Some("name")), "{body}");
    let (st, body) = post(&v, "bob", &json!({"wavs": []})).await;
    assert_eq!((st, body["field"].as_str()), (400, Some("body")), "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("unknown field `wavs`"),
        "{body}"
    );
    let (st, body) = post(&v, "bob", &json!({"utterances": []})).await;
    assert_eq!(
        (st, body["field"].as_str()),
        (400, Some("utterances")),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enroll_without_speaker_urls_is_503_and_with_inference_down_is_502_naming_it() {
    let body = json!({"utterances": [{"file": "a.wav", "wav_base64": b64(&barnabee_voice::speaker::wav_bytes(&common::noise(1.0, 3000.0)))}]});
    let v = voice("").await;
    let (st, r) = post(&v, "alice", &body).await;
    assert_eq!(st, 503, "{r}");
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("[speaker] inference_url is not set"),
        "{r}"
    );
    drop(v);

    let closed = free_port();
    let v = voice(&format!(
        "inference_url = \"http://127.0.0.1:{closed}\"\nmemory_url = \"http://127.0.0.1:{closed}\"\n"
    ))
    .await;
    let (st, r) = post(&v, "alice", &body).await;
    assert_eq!(st, 502, "{r}");
    let e = r["error"].as_str().unwrap();
    assert!(
        e.starts_with("enrolment failed: utterance 1: ")
            && e.contains(&format!("127.0.0.1:{closed}/v1/embed/speaker")),
        "{e}"
    );
}
