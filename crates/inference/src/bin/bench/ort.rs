//! The ONNX Runtime section: per-window Silero VAD cost, per-step openWakeWord cost and MiniLM
//! text-embedding throughput of barnabee-inference against Python onnxruntime
//! (tests/py/bench_ort.py) on the same models, one thread each, in alternating rounds.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, bail};
use barnabee_inference::engine::Engine;
use barnabee_inference::registry::Inner;

use crate::models::{self, hash_toml};

pub struct Args {
    pub vad_frames: usize,
    pub wake_steps: usize,
    pub text_rounds: usize,
    pub repeat: usize,
}

const SENTENCES: [&str; 10] = [
    "turn on the kitchen lights",
    "what is the weather like tomorrow morning",
    "set a timer for ten minutes",
    "play some jazz in the living room",
    "remind me to call mum when I get home",
    "how long will it take to drive to the office",
    "is the front door locked",
    "switch off everything downstairs",
    "what did I put on the shopping list yesterday",
    "This is an example sentence",
];

pub fn run(
    engine: &Engine,
    cache: &Path,
    python: &Path,
    work: &Path,
    cli: &Args,
) -> anyhow::Result<()> {
    let m = |p: &str| cache.join("models").join(p);
    let silero = cache.join(models::SILERO);
    let mel = m("openwakeword-0.5.1/melspectrogram.onnx");
    let emb = m("openwakeword-0.5.1/embedding_model.onnx");
    let head = m("openwakeword-0.5.1/hey_jarvis_v0.1.onnx");
    let minilm = m("all-minilm-l6-v2/model.onnx");
    let vocab = m("all-minilm-l6-v2/vocab.txt");
    let toml = [
        hash_toml("silero", "vad", "", &[("model", silero.clone())])?,
        hash_toml(
            "oww",
            "wake",
            "",
            &[
                ("melspectrogram", mel.clone()),
                ("embedding", emb.clone()),
                ("hey_jarvis", head.clone()),
            ],
        )?,
        hash_toml(
            "minilm",
            "text_embedding",
            "",
            &[("model", minilm.clone()), ("vocab", vocab)],
        )?,
    ]
    .concat();
    let load = |name: &str| models::load(engine, &toml, name);
    let (vad_m, wake_m, text_m) = (load("silero")?, load("oww")?, load("minilm")?);
    let (Inner::Vad(vad), Inner::Wake(wake), Inner::TextEmbedding(text)) =
        (&vad_m.inner, &wake_m.inner, &text_m.inner)
    else {
        bail!("unexpected model kinds");
    };

    let ids: Vec<Vec<i64>> = SENTENCES
        .iter()
        .map(|s| text.tokenizer().encode(s))
        .collect();
    let spec = serde_json::json!({
        "silero": silero, "mel": mel, "emb": emb, "head": head, "minilm": minilm,
        "token_ids": ids, "vad_frames": cli.vad_frames, "wake_steps": cli.wake_steps, "text_rounds": cli.text_rounds,
    });
    let spec_path = work.join("ort-spec.json");
    std::fs::write(&spec_path, spec.to_string())?;

    let mut rust = Figures::worst();
    let mut py = Figures::worst();
    let mut py_version = String::new();
    for _ in 0..cli.repeat.max(1) {
        rust.keep_best(&rust_round(cli, vad, wake, text)?);
        let (f, v) = python_round(python, &spec_path)?;
        py.keep_best(&f);
        py_version = v;
    }

    println!(
        "\n## ONNX Runtime: VAD, wake word, text embeddings (1 thread each; Rust: libonnxruntime {} via ort load-dynamic; Python: onnxruntime {py_version})",
        engine.version()
    );
    println!(
        "{:<44} {:>12} {:>12} {:>14}",
        "measure", "rust", "python", "python/rust"
    );
    println!(
        "{:<44} {:>12.4} {:>12.4} {:>14.2}",
        "Silero VAD ms per 32 ms window",
        rust.vad_ms,
        py.vad_ms,
        py.vad_ms / rust.vad_ms
    );
    println!(
        "{:<44} {:>12.4} {:>12.4} {:>14.2}",
        "openWakeWord ms per 80 ms step (1 head)",
        rust.wake_ms,
        py.wake_ms,
        py.wake_ms / rust.wake_ms
    );
    println!(
        "{:<44} {:>12.1} {:>12.1} {:>14.2}",
        "MiniLM-L6 sentences per second",
        rust.text_per_s,
        py.text_per_s,
        rust.text_per_s / py.text_per_s
    );
    println!(
        "(best of {} alternating runs; ratio > 1: Rust is faster; Rust text embedding includes WordPiece tokenisation, Python gets the ids)",
        cli.repeat.max(1)
    );
    Ok(())
}

struct Figures {
    vad_ms: f64,
    wake_ms: f64,
    text_per_s: f64,
}

impl Figures {
    fn worst() -> Figures {
        Figures {
            vad_ms: f64::INFINITY,
            wake_ms: f64::INFINITY,
            text_per_s: 0.0,
        }
    }

    fn keep_best(&mut self, o: &Figures) {
        self.vad_ms = self.vad_ms.min(o.vad_ms);
        self.wake_ms = self.wake_ms.min(o.wake_ms);
        self.text_per_s = self.text_per_s.max(o.text_per_s);
    }
}

fn rust_round(
    cli: &Args,
    vad: &barnabee_inference::vad::Vad,
    wake: &barnabee_inference::wake::Wake,
    text: &barnabee_inference::textembed::TextEmbedder,
) -> anyhow::Result<Figures> {
    // VAD: one 32 ms window per call, state carried
    let mut x: u64 = 88172645463325252;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % 2001) as f32 / 1000.0 - 1.0
    };
    let audio: Vec<f32> = (0..512 * cli.vad_frames).map(|_| rnd() * 0.05).collect();
    let mut st = vad.stream();
    let t = Instant::now();
    for w in audio.chunks_exact(512) {
        vad.window(&mut st, w).map_err(anyhow::Error::msg)?;
    }
    let vad_ms = t.elapsed().as_secs_f64() * 1e3 / cli.vad_frames as f64;

    // wake word: one 80 ms step (mel + embedding + one head) per call, after the buffers fill
    let pcm: Vec<i16> = (0..1280 * (cli.wake_steps + 30))
        .map(|_| (rnd() * 1000.0) as i16)
        .collect();
    let mut ws = wake.stream(Vec::new());
    wake.push(&mut ws, &pcm[..1280 * 30])
        .map_err(anyhow::Error::msg)?;
    let t = Instant::now();
    for step in pcm[1280 * 30..].chunks_exact(1280) {
        wake.push(&mut ws, step).map_err(anyhow::Error::msg)?;
    }
    let wake_ms = t.elapsed().as_secs_f64() * 1e3 / cli.wake_steps as f64;

    // text embedding: tokenise + model + mean-pool + normalise, one sentence per call
    let t = Instant::now();
    let mut n = 0;
    for _ in 0..cli.text_rounds {
        for s in SENTENCES {
            text.embed(s).map_err(anyhow::Error::msg)?;
            n += 1;
        }
    }
    let text_per_s = f64::from(n) / t.elapsed().as_secs_f64();
    Ok(Figures {
        vad_ms,
        wake_ms,
        text_per_s,
    })
}

/// Python onnxruntime on the same models (tests/py/bench_ort.py).
fn python_round(python: &Path, spec: &Path) -> anyhow::Result<(Figures, String)> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/bench_ort.py");
    let out = std::process::Command::new(python)
        .arg(&script)
        .arg(spec)
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    if !out.status.success() {
        bail!(
            "python bench failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let py: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let f = |k: &str| py[k].as_f64().unwrap_or(f64::NAN);
    Ok((
        Figures {
            vad_ms: f("vad_ms_per_frame"),
            wake_ms: f("wake_ms_per_step"),
            text_per_s: f("text_per_s"),
        },
        py["onnxruntime"].as_str().unwrap_or("?").to_owned(),
    ))
}
