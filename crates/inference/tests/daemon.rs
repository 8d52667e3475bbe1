//! The real daemon binary: minimal config, model failures, HTTP API, CUDA fallback.

use serde_json::json;

use crate::common::*;
use crate::models::standin_toml;

#[test]
fn minimal_config_serves_healthy_or_degraded_without_a_gpu() {
    let d = Daemon::start("", None);
    let (st, h) = d.health();
    eprintln!("{h:#}");
    assert_eq!(st, 200, "{h}");
    assert_ne!(h["status"], "unhealthy");
    assert_eq!(h["checks"]["models"]["ok"], true);
    let gpu = &h["checks"]["gpu"];
    if gpu["ok"] == false {
        assert!(gpu["detail"].as_str().unwrap().contains("no GPU"), "{gpu}");
        assert_eq!(gpu["critical"], false);
        assert!(
            d.stderr().contains("no GPU"),
            "one clear log line: {}",
            d.stderr()
        );
    }
    let (st, body) = json(d.addr, "POST", "/v1/embed/text", &json!({"text": "hi"}));
    assert_eq!(st, 404, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("no text_embedding model")
    );
}

#[test]
fn a_bad_model_is_reported_and_the_others_keep_serving() {
    let good = model_toml("silero", "vad", &[("model", &silero())], "");
    let bad = format!(
        "[models.broken]\nkind = \"vad\"\nfiles.model = {{ path = \"{}\", sha256 = \"{}\" }}\n",
        silero().display(),
        "ab".repeat(32)
    );
    let missing = format!(
        "[models.gone]\nkind = \"speaker\"\nfiles.model = {{ path = \"/nonexistent/spk.onnx\", sha256 = \"{}\" }}\n",
        "cd".repeat(32)
    );
    let d = Daemon::start(&format!("{good}{bad}{missing}"), None);
    let (st, h) = d.health();
    assert_eq!(st, 200);
    assert_eq!(h["status"], "degraded", "{h}");
    let detail = h["checks"]["models"]["detail"].as_str().unwrap();
    assert!(
        detail.contains("broken")
            && detail.contains("silero_vad.onnx")
            && detail.contains("SHA-256"),
        "{detail}"
    );
    assert!(
        detail.contains("gone") && detail.contains("/nonexistent/spk.onnx"),
        "{detail}"
    );
    let audio = wav_bytes(&speak("turn on the light", "en-us", 160, 1.0));
    let (st, _, body) = http(d.addr, "POST", "/v1/vad", "audio/wav", &audio);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(st, 200, "{v}");
    assert!(v["events"][0]["started_ms"].as_u64().is_some(), "{v}");
}

pub fn wav_bytes(pcm: &[i16]) -> Vec<u8> {
    barnabee_inference::wav::write(pcm, 16_000)
}

#[test]
fn http_api_transcribe_synthesize_embed_with_timings() {
    let d = Daemon::start(&standin_toml(), None);
    let (st, h) = d.health();
    assert_eq!(st, 200, "{h}");
    assert_eq!(h["checks"]["models"]["ok"], true, "{h}");

    let audio = speak("turn on the kitchen lights", "en-us", 160, 0.2);
    let (st, _, body) = http(
        d.addr,
        "POST",
        "/v1/transcribe",
        "audio/wav",
        &wav_bytes(&audio),
    );
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["text"], "turn on the kitchen lights");
    for k in ["decode", "features", "encoder", "decoder", "total"] {
        assert!(v["timings_ms"][k].as_f64().is_some(), "{v}");
    }
    // raw PCM works too
    let raw = barnabee_inference::wav::to_s16le(&audio[..4800]);
    let (st, _, body) = http(d.addr, "POST", "/v1/transcribe", "audio/pcm", &raw);
    assert_eq!(st, 200);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&body).unwrap()["text"],
        "turn on"
    );
    // bad input: 400 naming the problem
    let (st, _, body) = http(
        d.addr,
        "POST",
        "/v1/transcribe",
        "audio/wav",
        b"RIFF....WAVEjunk",
    );
    assert_eq!(st, 400, "{}", String::from_utf8_lossy(&body));
    let (st, _, body) = http(d.addr, "POST", "/v1/transcribe", "audio/pcm", b"abc");
    assert_eq!(st, 400);
    assert!(String::from_utf8_lossy(&body).contains("16-bit"));

    let (st, head, body) = http(
        d.addr,
        "POST",
        "/v1/synthesize",
        "application/json",
        json!({"text": "Hello there. How are you?"})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    let w = barnabee_inference::wav::parse(&body).unwrap();
    assert_eq!(w.rate, 22050);
    assert!(w.samples.len() > 256 * 20);
    assert_eq!(w.samples.len() % 256, 0, "whole sentences only");
    // both sentences arrived through the stream, not just the first
    let (_, _, one) = http(
        d.addr,
        "POST",
        "/v1/synthesize",
        "application/json",
        json!({"text": "Hello there."}).to_string().as_bytes(),
    );
    let one = barnabee_inference::wav::parse(&one).unwrap().samples.len();
    assert!(
        w.samples.len() > one + 256 * 10,
        "{} vs {one}",
        w.samples.len()
    );
    assert!(head.to_lowercase().contains("x-barnabee-timings"), "{head}");
    let (st, v) = json(d.addr, "POST", "/v1/synthesize", &json!({"txt": "x"}));
    assert_eq!(st, 400);
    assert!(v["error"].as_str().unwrap().contains("txt"), "{v}");

    let (st, v) = json(
        d.addr,
        "POST",
        "/v1/embed/text",
        &json!({"texts": ["turn on the light", "what is the weather"]}),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["dim"], 32);
    assert_eq!(v["embeddings"].as_array().unwrap().len(), 2);

    let (st, _, body) = http(
        d.addr,
        "POST",
        "/v1/embed/speaker",
        "audio/wav",
        &wav_bytes(&audio),
    );
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["embedding"].as_array().unwrap().len(), 64);
    let (st, _, _) = http(
        d.addr,
        "POST",
        "/v1/embed/speaker",
        "audio/pcm",
        &[0u8; 200],
    );
    assert_eq!(st, 400);

    let (_, _, metrics) = http(d.addr, "GET", "/metrics", "text/plain", b"");
    let m = String::from_utf8_lossy(&metrics);
    assert!(
        m.contains("barnabee_inference_stt_latency_ms_count 2"),
        "{m}"
    );
    assert!(
        m.contains("barnabee_inference_tts_latency_ms_count 2"),
        "{m}"
    );
    assert!(
        m.contains("barnabee_inference_model_load_ms{model=\"parakeet\""),
        "{m}"
    );
}

#[test]
fn cuda_provider_without_cuda_falls_back_to_cpu_and_degrades() {
    // provider lives in [runtime], which Daemon::start writes; write a full config here
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = format!(
        "[service]\nlisten = \"127.0.0.1:{port}\"\n[service.log]\ntarget = \"stderr\"\n[runtime]\nlibrary = \"{}\"\nprovider = \"cuda\"\n[wyoming]\nenabled = false\n{}",
        ort_lib().display(),
        model_toml("silero", "vad", &[("model", &silero())], "")
    );
    let path = dir.path().join("c.toml");
    std::fs::write(&path, cfg).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_barnabee-inference"))
        .arg("--config")
        .arg(&path)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let t = std::time::Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(t.elapsed().as_secs() < 60, "not up");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let (st, h) = json(addr, "GET", "/health", &serde_json::Value::Null);
    let _ = std::process::Command::new("kill")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
    eprintln!("{h:#}");
    assert_eq!(st, 200);
    let p = &h["checks"]["provider"];
    if p["ok"] == true {
        eprintln!("CUDA provider works here (GPU machine)");
        return;
    }
    assert_eq!(h["status"], "degraded");
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("CUDA unusable, serving on CPU"),
        "{p}"
    );
    assert_eq!(
        h["checks"]["models"]["ok"], true,
        "the model still loaded, on CPU: {h}"
    );
}

#[test]
fn example_config_is_valid() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("inference.example.toml");
    let cfg = barnabee_inference::config::Config::load(&path).unwrap();
    assert_eq!(cfg.models.len(), 7);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_barnabee-inference"))
        .arg("--config")
        .arg(&path)
        .arg("--check-config")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[runtime]\nprovider = \"tpu\"\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_barnabee-inference"))
        .arg("--config")
        .arg(&bad)
        .arg("--check-config")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("bad.toml:2") && e.contains("provider"), "{e}");
}

#[test]
fn a_busy_wyoming_port_degrades_instead_of_failing() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let d = Daemon::start("", Some(port));
    let (st, h) = d.health();
    assert_eq!(st, 200);
    let w = &h["checks"]["wyoming"];
    assert_eq!(w["ok"], false, "{h}");
    assert!(
        w["detail"].as_str().unwrap().contains(&port.to_string()),
        "{w}"
    );
}

#[test]
fn http_wake_endpoint_with_the_real_openwakeword_models() {
    let toml = model_toml(
        "oww",
        "wake",
        &[
            ("melspectrogram", &oww("melspectrogram")),
            ("embedding", &oww("embedding_model")),
            ("hey_jarvis", &oww("hey_jarvis_v0.1")),
        ],
        "",
    );
    let d = Daemon::start(&toml, None);
    let wav = wav_bytes(&speak("hey jarvis", "en-us", 150, 1.0));
    let (st, _, body) = http(d.addr, "POST", "/v1/wake", "audio/wav", &wav);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["detections"][0]["name"], "hey_jarvis", "{v}");
    let wav = wav_bytes(&speak("turn on the kitchen light", "en-us", 150, 1.0));
    let (_, _, body) = http(d.addr, "POST", "/v1/wake", "audio/wav", &wav);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(v["detections"].as_array().unwrap().is_empty(), "{v}");
    assert!(v["best"]["hey_jarvis"].as_f64().unwrap() < 0.5);
    let (st, _, body) = http(d.addr, "POST", "/v1/wake?names=alexa", "audio/wav", &wav);
    assert_eq!(st, 400);
    assert!(String::from_utf8_lossy(&body).contains("alexa"));
}

#[test]
fn bench_runs_and_prints_rust_python_ratios() {
    // the ONNX Runtime section only: the voice and WER sections take minutes (run by hand,
    // crates/inference/README.md "Benchmarks")
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bench"))
        .args([
            "--sections",
            "ort",
            "--vad-frames",
            "20",
            "--wake-steps",
            "5",
            "--text-rounds",
            "1",
            "--repeat",
            "1",
        ])
        .env("BARNABEE_INFERENCE_CACHE", cache())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    for row in ["Silero VAD", "openWakeWord", "MiniLM-L6"] {
        let line = text
            .lines()
            .find(|l| l.starts_with(row))
            .unwrap_or_else(|| panic!("{row} missing: {text}"));
        let ratio: f64 = line.split_whitespace().last().unwrap().parse().unwrap();
        assert!(ratio.is_finite() && ratio > 0.0, "{line}");
    }
}
