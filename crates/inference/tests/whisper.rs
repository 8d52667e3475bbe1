//! Whisper: the log-mel front end against numpy, and the real Whisper tiny.en (converted by
//! `tests/py/whisper_to_onnx.py` in dev/setup, checked there against CTranslate2) hearing
//! espeak-ng speech through the daemon, over HTTP and Wyoming; a corrupt file refused by hash,
//! wrong ONNX input names refused naming the input.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use barnabee_inference::config::{Config, RuntimeConfig};
use barnabee_inference::engine::Engine;
use barnabee_inference::features::{WHISPER_FRAMES, WhisperMel};
use barnabee_inference::registry;
use barnabee_inference::vad::pcm_to_f32;

use crate::common::*;

/// The converted model's folder, dev/setup's `whisper-tiny.en-0.1.0`.
pub const WHISPER_DIR: &str = "models/whisper-tiny.en-0.1.0";

/// The converted model (`$BARNABEE_WHISPER_MODEL`, another conversion such as the
/// multilingual base, else dev/setup's tiny.en), or a loud SKIPPED (a failure under `CI=true`).
pub fn whisper_dir(test: &str) -> Option<PathBuf> {
    let d = std::env::var_os("BARNABEE_WHISPER_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache().join(WHISPER_DIR));
    model_dir_or_skip(
        test,
        d,
        "decoder_model.onnx",
        "the converted Whisper tiny.en",
    )
}

pub fn whisper_toml(name: &str, d: &Path, extra: &str) -> String {
    model_toml(
        name,
        "stt",
        &[
            ("encoder", &d.join("encoder_model.onnx")),
            ("decoder", &d.join("decoder_model.onnx")),
            ("tokenizer", &d.join("tokenizer.json")),
            ("generation_config", &d.join("generation_config.json")),
        ],
        &format!("family = \"whisper\"\n{extra}"),
    )
}

/// Load the first model of `toml` as the daemon would; the error as text.
pub fn load(toml: &str) -> Result<registry::Model, String> {
    let engine = Engine::init(&RuntimeConfig {
        library: Some(ort_lib()),
        ..RuntimeConfig::default()
    })
    .unwrap();
    let cfg = Config::parse(Path::new("test.toml"), toml).map_err(|e| e.to_string())?;
    registry::load(&engine, &cfg.models[0], Path::new("/")).map_err(|e| e.to_string())
}

/// Lower case, no punctuation, numbers as words ("10" → "ten").
pub fn normalise(text: &str) -> String {
    const NUMBERS: [&str; 21] = [
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
        "twenty",
    ];
    text.to_lowercase()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '\'' {
                c
            } else {
                ' '
            }
        })
        .collect::<String>()
        .split_whitespace()
        .map(|w| {
            w.parse::<usize>()
                .ok()
                .and_then(|n| NUMBERS.get(n))
                .map_or(w.to_owned(), |s| (*s).to_owned())
        })
        .collect::<Vec<_>>()
        .join(" ")
}

const COMMANDS: [&str; 3] = [
    "turn on the kitchen lights",
    "what is the weather like tomorrow",
    "set a timer for ten minutes",
];

#[test]
fn whisper_log_mel_matches_the_numpy_reference() {
    let dir = tempfile::tempdir().unwrap();
    let mel = WhisperMel::new(80);
    let clips = [
        pcm_to_f32(&speak("turn on the kitchen lights", "en-us", 150, 0.5)),
        // longer than 30 s: cut at 480,000 samples by both
        pcm_to_f32(&noise(16_000 * 31, 3000.0)),
        vec![0.0; 100],
    ];
    for (i, samples) in clips.iter().enumerate() {
        let input = dir.path().join(format!("{i}.f32"));
        let output = dir.path().join(format!("{i}.mel"));
        let raw: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        std::fs::write(&input, raw).unwrap();
        let out = Command::new(python())
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/whisper_mel.py"))
            .args([&input, &output])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "whisper_mel.py: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let reference: Vec<f32> = std::fs::read(&output)
            .unwrap()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let t = Instant::now();
        let ours = mel.compute(samples);
        let ms = t.elapsed().as_secs_f64() * 1e3;
        assert_eq!(ours.len(), 80 * WHISPER_FRAMES);
        assert_eq!(reference.len(), ours.len());
        let max = ours
            .iter()
            .zip(&reference)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        eprintln!(
            "clip {i} ({} samples): max |Δ| vs numpy {max:.2e}, {ms:.1} ms",
            samples.len()
        );
        assert!(max < 1e-4, "clip {i}: max |Δ| {max}");
    }
}

/// One Wyoming transcription: `transcribe` + audio → the `transcript` text.
fn wyoming_transcribe(port: u16, pcm: &[i16]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut frame = |kind: &str, data: serde_json::Value, payload: &[u8]| {
        let data = data.to_string();
        let mut head = serde_json::json!({"type": kind, "data_length": data.len()});
        if !payload.is_empty() {
            head["payload_length"] = payload.len().into();
        }
        s.write_all(format!("{head}\n{data}").as_bytes()).unwrap();
        s.write_all(payload).unwrap();
    };
    frame(
        "transcribe",
        serde_json::json!({"name": "whisper", "language": "en"}),
        &[],
    );
    let fmt = serde_json::json!({"rate": 16000, "width": 2, "channels": 1});
    frame("audio-start", fmt.clone(), &[]);
    for chunk in pcm.chunks(1024) {
        let bytes: Vec<u8> = chunk.iter().flat_map(|x| x.to_le_bytes()).collect();
        frame("audio-chunk", fmt.clone(), &bytes);
    }
    frame("audio-stop", serde_json::json!({}), &[]);
    let mut r = BufReader::new(s);
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let h: serde_json::Value = serde_json::from_str(&line).unwrap();
        let mut data = vec![0u8; h["data_length"].as_u64().unwrap_or(0) as usize];
        r.read_exact(&mut data).unwrap();
        let mut payload = vec![0u8; h["payload_length"].as_u64().unwrap_or(0) as usize];
        r.read_exact(&mut payload).unwrap();
        let data: serde_json::Value = serde_json::from_slice(&data).unwrap_or_default();
        match h["type"].as_str() {
            Some("transcript") => return data["text"].as_str().unwrap().to_owned(),
            Some("error") => panic!("Wyoming error: {data}"),
            _ => {}
        }
    }
}

#[test]
fn whisper_hears_spoken_commands_over_http_and_wyoming() {
    let Some(d) = whisper_dir("whisper_hears_spoken_commands_over_http_and_wyoming") else {
        return;
    };
    let port = free_port();
    let t = Instant::now();
    let daemon = Daemon::start(&whisper_toml("whisper-tiny.en", &d, ""), Some(port));
    eprintln!(
        "daemon up with Whisper in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let (st, models) = json(daemon.addr, "GET", "/v1/models", &serde_json::Value::Null);
    assert_eq!(st, 200);
    let m = &models["models"][0];
    assert_eq!(m["kind"], "stt", "{models}");
    assert_eq!(m["details"]["family"], "whisper", "{models}");
    let generation: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("generation_config.json")).unwrap()).unwrap();
    assert_eq!(
        m["details"]["multilingual"], generation["is_multilingual"],
        "{models}"
    );
    for text in COMMANDS {
        let pcm = speak(text, "en-us", 150, 0.5);
        let secs = pcm.len() as f64 / 16_000.0;
        let wav = barnabee_inference::wav::write(&pcm, 16_000);
        let t = Instant::now();
        let (st, _, body) = http(daemon.addr, "POST", "/v1/transcribe", "audio/wav", &wav);
        let http_s = t.elapsed().as_secs_f64();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(st, 200, "{body}");
        assert_eq!(body["family"], "whisper");
        let heard = body["text"].as_str().unwrap();
        eprintln!(
            "HTTP    {text:?} ({secs:.2} s of audio) → {heard:?} in {http_s:.2} s (features {:.0} ms, encoder {:.0} ms, decoder {:.0} ms)",
            body["timings_ms"]["features"].as_f64().unwrap_or(0.0),
            body["timings_ms"]["encoder"].as_f64().unwrap_or(0.0),
            body["timings_ms"]["decoder"].as_f64().unwrap_or(0.0),
        );
        assert_eq!(normalise(heard), text, "HTTP heard {heard:?}");
        let t = Instant::now();
        let heard = wyoming_transcribe(port, &pcm);
        eprintln!(
            "Wyoming {text:?} → {heard:?} in {:.2} s",
            t.elapsed().as_secs_f64()
        );
        assert_eq!(normalise(&heard), text, "Wyoming heard {heard:?}");
    }
    // a language the model has no token for: 400 for a multilingual model; an English-only
    // one has a single prompt and ignores it
    let wav = barnabee_inference::wav::write(&speak(COMMANDS[0], "en-us", 150, 0.5), 16_000);
    let (st, _, body) = http(
        daemon.addr,
        "POST",
        "/v1/transcribe?language=zz",
        "audio/wav",
        &wav,
    );
    let body = String::from_utf8_lossy(&body);
    if generation["is_multilingual"] == true {
        assert_eq!(st, 400, "{body}");
        assert!(body.contains("zz") && body.contains("languages"), "{body}");
    } else {
        assert_eq!(st, 200, "{body}");
    }
    // the describe Home Assistant reads lists the model
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"{\"type\":\"describe\"}\n").unwrap();
    let mut header = String::new();
    let mut r = BufReader::new(s);
    r.read_line(&mut header).unwrap();
    let h: serde_json::Value = serde_json::from_str(&header).unwrap();
    let mut data = vec![0u8; h["data_length"].as_u64().unwrap() as usize];
    r.read_exact(&mut data).unwrap();
    assert!(
        String::from_utf8_lossy(&data).contains("whisper-tiny.en"),
        "{}",
        String::from_utf8_lossy(&data)
    );
    let (st, health) = daemon.health();
    assert_eq!(st, 200, "{health}");
}

#[test]
fn whisper_with_a_truncated_file_is_refused_by_hash() {
    let Some(d) = whisper_dir("whisper_with_a_truncated_file_is_refused_by_hash") else {
        return;
    };
    let toml = whisper_toml("whisper", &d, "");
    // the same config, the decoder swapped for a truncated copy
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("decoder_model.onnx");
    let bytes = std::fs::read(d.join("decoder_model.onnx")).unwrap();
    std::fs::write(&bad, &bytes[..bytes.len() / 2]).unwrap();
    let toml = toml.replace(
        &d.join("decoder_model.onnx").display().to_string(),
        &bad.display().to_string(),
    );
    let e = load(&toml).err().unwrap();
    eprintln!("{e}");
    assert!(e.contains("SHA-256"), "{e}");
    assert!(e.contains("`decoder`"), "{e}");
    assert!(e.contains(&bad.display().to_string()), "{e}");
}

/// Whisper's roles given Parakeet-shaped ONNX files (the stand-ins): refused naming the input.
#[test]
fn whisper_with_wrong_input_names_is_refused_naming_the_input() {
    let s = standins();
    let toml = model_toml(
        "whisper",
        "stt",
        &[
            ("encoder", &s.join("stt/encoder.onnx")),
            ("decoder", &s.join("stt/decoder_joint.onnx")),
            ("tokenizer", &s.join("stt/vocab.txt")),
            ("generation_config", &s.join("stt/vocab.txt")),
        ],
        "family = \"whisper\"",
    );
    let e = load(&toml).err().unwrap();
    eprintln!("{e}");
    assert!(e.contains("input_features"), "{e}");
    assert!(e.contains("encoder"), "{e}");
}

/// A decoder with past key values (optimum's merged or with-past file) where the plain
/// `decoder_model.onnx` belongs: refused naming the extra input.
#[test]
fn whisper_decoder_with_past_inputs_is_refused_naming_the_input() {
    let dir = tempfile::tempdir().unwrap();
    let script = r#"
import sys, onnx
from onnx import helper as h, TensorProto as T
def save(name, inputs, outputs, nodes):
    g = h.make_graph(nodes, name, inputs, outputs)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)]); m.ir_version = 8
    onnx.save(m, sys.argv[1] + "/" + name + ".onnx")
f = lambda n, s: h.make_tensor_value_info(n, T.FLOAT, s)
save("encoder", [f("input_features", [1, 80, 3000])], [f("last_hidden_state", [1, 80, 3000])],
     [h.make_node("Identity", ["input_features"], ["last_hidden_state"])])
save("decoder", [h.make_tensor_value_info("input_ids", T.INT64, [1, "t"]), f("encoder_hidden_states", [1, 80, 3000]),
                 f("past_key_values.0.decoder.key", [1, 6, "p", 64])],
     [f("logits", [1, 80, 3000])], [h.make_node("Identity", ["encoder_hidden_states"], ["logits"])])
"#;
    let out = Command::new(python())
        .args(["-c", script])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = dir.path().join("x.json");
    std::fs::write(&json, "{}").unwrap();
    let toml = model_toml(
        "whisper",
        "stt",
        &[
            ("encoder", &dir.path().join("encoder.onnx")),
            ("decoder", &dir.path().join("decoder.onnx")),
            ("tokenizer", &json),
            ("generation_config", &json),
        ],
        "family = \"whisper\"",
    );
    let e = load(&toml).err().unwrap();
    eprintln!("{e}");
    assert!(e.contains("past_key_values.0.decoder.key"), "{e}");
    assert!(e.contains("decoder_model.onnx"), "{e}");
}

#[test]
fn normalising_transcripts() {
    assert_eq!(
        normalise("Set a timer for 10 minutes."),
        "set a timer for ten minutes"
    );
    assert_eq!(
        normalise(" What is the weather like tomorrow?"),
        "what is the weather like tomorrow"
    );
}
