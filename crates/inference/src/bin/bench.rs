//! `bench`: barnabee-inference against the peers people would otherwise run, on the same models,
//! inputs and thread counts, in one run, each printed as a table with the ratio:
//!
//! - `ort`: per-window Silero VAD, per-step openWakeWord, MiniLM sentences/s vs Python
//!   onnxruntime (`bench/ort.rs`);
//! - `voice`: STT (Whisper tiny.en vs faster-whisper on the same CTranslate2 weights), TTS
//!   (Piper en_US-joe-medium vs piper-tts) and the voice pipeline per stage, for each
//!   `--threads` (`bench/voice.rs`, Barnabee's side in `bench/worker.rs`);
//! - `wer`: word error rate over the corpus spoken by espeak-ng and flite voices, through the
//!   VAD + Whisper path, and faster-whisper on the same audio (`bench/accuracy.rs`).
//!
//! The modules live in `bench/` (one job each).
//!
//! `cargo run --release -p barnabee-inference --bin bench -- [--sections ort,voice,wer]
//! [--threads 1,2] [--repeat 3] [--cache DIR] [--python PATH]` (defaults: the cache dev/setup
//! fills, `~/.cache/barnabee/inference`, and the project `.venv`).

#[path = "bench/accuracy.rs"]
mod accuracy;
#[path = "bench/clips.rs"]
mod clips;
#[path = "bench/models.rs"]
mod models;
#[path = "bench/ort.rs"]
mod ort;
#[path = "bench/peer.rs"]
mod peer;
#[path = "bench/report.rs"]
mod report;
#[path = "bench/voice.rs"]
mod voice;
#[path = "bench/wer.rs"]
mod wer;
#[path = "bench/worker.rs"]
mod worker;

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Parser;

#[derive(Parser)]
struct Cli {
    /// Where dev/setup put libonnxruntime.so, the models and the wheels.
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Python with onnxruntime, numpy, faster-whisper and piper-tts (default: the workspace .venv).
    #[arg(long)]
    python: Option<PathBuf>,
    /// Sections to run: ort, voice (STT, TTS, pipeline), wer.
    #[arg(long, value_delimiter = ',', default_value = "ort,voice,wer")]
    sections: Vec<String>,
    /// ONNX Runtime / CTranslate2 threads for the voice sections, each count in turn
    /// (the wer section uses the smallest: accuracy does not depend on it).
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    threads: Vec<usize>,
    /// How many 2-5 s commands the STT timing uses.
    #[arg(long, default_value_t = 8)]
    stt_clips: usize,
    /// The WER corpus (one command a line).
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// Write every WER transcript (voice, reference, Barnabee, faster-whisper) here as TSV.
    #[arg(long)]
    wer_log: Option<PathBuf>,
    #[arg(long, default_value_t = 2000)]
    vad_frames: usize,
    #[arg(long, default_value_t = 300)]
    wake_steps: usize,
    #[arg(long, default_value_t = 20)]
    text_rounds: usize,
    /// Alternate Barnabee and the peer this many times and keep each side's best figure (the
    /// machine may be shared; the best run is the least disturbed one).
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Internal: run Barnabee's side of the voice sections from this spec, print JSON.
    #[arg(long, hide = true)]
    worker: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let cache = models::cache_dir(cli.cache.as_deref());
    if cli.threads.is_empty() || cli.threads.contains(&0) {
        bail!("--threads: give thread counts of at least 1, e.g. 1,2");
    }
    if cli.stt_clips == 0 || cli.repeat == 0 {
        bail!("--stt-clips and --repeat must be at least 1");
    }
    if let Some(spec) = &cli.worker {
        let text = std::fs::read(spec).with_context(|| format!("reading {}", spec.display()))?;
        let spec: worker::Spec = serde_json::from_slice(&text)?;
        let out = worker::run(&spec, cli.threads[0])?;
        println!("{}", serde_json::to_string(&out)?);
        return Ok(());
    }
    for s in &cli.sections {
        if !["ort", "voice", "wer"].contains(&s.as_str()) {
            bail!("--sections: unknown section {s:?} (ort, voice, wer)");
        }
    }
    let want = |s: &str| cli.sections.iter().any(|x| x == s);
    let python = cli
        .python
        .clone()
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python"));
    let work = std::env::temp_dir().join(format!("barnabee-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let result = run(&cli, &cache, &python, &work, &want);
    let _ = std::fs::remove_dir_all(&work);
    result
}

fn run(
    cli: &Cli,
    cache: &Path,
    python: &Path,
    work: &Path,
    want: &dyn Fn(&str) -> bool,
) -> anyhow::Result<()> {
    println!(
        "barnabee-inference bench, {} CPU(s) seen, sections {}, {}",
        std::thread::available_parallelism().map_or(0, usize::from),
        cli.sections.join(","),
        report::load()
    );
    if want("ort") {
        let engine = models::engine(cache, 1)?;
        let args = ort::Args {
            vad_frames: cli.vad_frames,
            wake_steps: cli.wake_steps,
            text_rounds: cli.text_rounds,
            repeat: cli.repeat,
        };
        ort::run(&engine, cache, python, work, &args)?;
    }
    if !want("voice") && !want("wer") {
        return Ok(());
    }
    let corpus_path = cli.corpus.clone().unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/corpus/commands.txt")
    });
    let corpus = clips::read_corpus(&corpus_path)?;
    let timing_voices = [clips::Voice::Espeak("en-us"), clips::Voice::Flite("slt")];
    let voices: Vec<clips::Voice> = if want("wer") {
        clips::VOICES.to_vec()
    } else {
        timing_voices.to_vec()
    };
    let clip_dir = work.join("clips");
    std::fs::create_dir_all(&clip_dir)?;
    eprintln!(
        "synthesising {} commands x {} voices",
        corpus.len(),
        voices.len()
    );
    let mut all = Vec::new();
    for v in &voices {
        for text in &corpus {
            all.push(clips::synthesise(text, *v, &clip_dir, all.len())?);
        }
    }
    let ctx = voice::Ctx {
        cache,
        python,
        work,
        repeat: cli.repeat,
    };
    if want("voice") {
        let timing = timing_clips(&all, &timing_voices, cli.stt_clips);
        if timing.is_empty() {
            bail!("no command of the corpus is 2-5 s long when spoken");
        }
        voice::run(&ctx, &timing, &cli.threads)?;
    }
    if want("wer") {
        let threads = cli.threads.iter().copied().min().unwrap_or(1);
        accuracy::run(&ctx, &all, threads, cli.wer_log.as_deref())?;
    }
    Ok(())
}

/// Up to `n` clips of 2-5 s of speech by the timing voices, spread evenly over that range
/// (sorted by length, every k-th).
fn timing_clips(all: &[clips::Clip], voices: &[clips::Voice], n: usize) -> Vec<clips::Clip> {
    let mut eligible: Vec<&clips::Clip> = all
        .iter()
        .filter(|c| voices.contains(&c.voice) && (2.0..=5.0).contains(&c.speech_s))
        .collect();
    eligible.sort_by(|a, b| a.speech_s.total_cmp(&b.speech_s));
    eprintln!(
        "timing: {} of {} clips by {} voices have 2-5 s of speech; {} used",
        eligible.len(),
        all.iter().filter(|c| voices.contains(&c.voice)).count(),
        voices.len(),
        eligible.len().min(n)
    );
    if eligible.len() <= n {
        return eligible.into_iter().cloned().collect();
    }
    (0..n)
        .map(|i| eligible[i * (eligible.len() - 1) / (n - 1).max(1)].clone())
        .collect()
}
