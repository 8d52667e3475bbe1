//! The Python peers (tests/py/bench_voice.py: faster-whisper for STT, piper-tts for TTS; and
//! tests/py/bench_ort.py for the ONNX Runtime section), run as a child process with a JSON spec;
//! their JSON answer is parsed here.

use std::path::Path;

use anyhow::{Context, bail};
use serde::Deserialize;

/// Run `script SPEC` with `python`, the spec written to `spec_path`; the stdout JSON.
pub fn run_json(
    python: &Path,
    script: &str,
    spec_path: &Path,
    spec: &serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    std::fs::write(spec_path, spec.to_string())
        .with_context(|| format!("writing {}", spec_path.display()))?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/py")
        .join(script);
    let out = std::process::Command::new(python)
        .arg(&script)
        .arg(spec_path)
        .output()
        .with_context(|| format!("running {} (dev/setup makes the venv)", python.display()))?;
    if !out.status.success() {
        bail!(
            "{} failed (are its packages in {}? dev/setup installs crates/inference/tests/requirements.txt): {}",
            script.display(),
            python.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    serde_json::from_slice(&out.stdout)
        .with_context(|| format!("{}: output is not JSON", script.display()))
}

#[derive(Deserialize, Debug, Clone)]
pub struct SttResult {
    pub ms: f64,
    pub text: String,
}

#[derive(Deserialize)]
pub struct SttOut {
    pub faster_whisper: String,
    pub ctranslate2: String,
    pub results: Vec<SttResult>,
}

#[derive(Deserialize, Debug, Clone)]
pub struct TtsResult {
    pub first_ms: f64,
    pub total_ms: f64,
    pub samples: usize,
}

#[derive(Deserialize)]
pub struct TtsOut {
    pub piper_tts: String,
    pub rate: u32,
    pub results: Vec<TtsResult>,
}

/// faster-whisper on `clips` (16 kHz WAVs), `threads` CPU threads.
pub fn stt(
    python: &Path,
    work: &Path,
    wheel: &Path,
    clips: &[&Path],
    threads: usize,
) -> anyhow::Result<SttOut> {
    let spec = serde_json::json!({
        "mode": "stt", "wheel": wheel, "workdir": work, "threads": threads, "clips": clips,
    });
    let v = run_json(python, "bench_voice.py", &work.join("peer-stt.json"), &spec)?;
    let out: SttOut = serde_json::from_value(v).context("faster-whisper peer answer")?;
    if out.results.len() != clips.len() {
        bail!(
            "faster-whisper peer answered {} of {} clips",
            out.results.len(),
            clips.len()
        );
    }
    Ok(out)
}

/// piper-tts on `sentences`, `threads` CPU threads.
pub fn tts(
    python: &Path,
    work: &Path,
    model: &Path,
    sentences: &[String],
    threads: usize,
) -> anyhow::Result<TtsOut> {
    let config = model.with_extension("onnx.json");
    let spec = serde_json::json!({
        "mode": "tts", "model": model, "config": config, "threads": threads, "sentences": sentences,
    });
    let v = run_json(python, "bench_voice.py", &work.join("peer-tts.json"), &spec)?;
    let out: TtsOut = serde_json::from_value(v).context("piper-tts peer answer")?;
    if out.results.len() != sentences.len() {
        bail!(
            "piper-tts peer answered {} of {} sentences",
            out.results.len(),
            sentences.len()
        );
    }
    Ok(out)
}
