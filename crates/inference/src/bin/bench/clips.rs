//! Test speech: the corpus's commands spoken by espeak-ng and flite (Debian packages, installed
//! by dev/setup), brought to 16 kHz mono with the daemon's own resampler
//! (`wav::to_mono_rate`, what it does to a 22,050 Hz WAV it is sent), with silence around
//! them as a microphone would give: [`LEAD_S`] before, [`TAIL_S`] after (enough for the VAD's
//! end-point hangover). No noise is added: the figures are for clean synthetic speech.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use barnabee_inference::wav;

pub const RATE: u32 = 16_000;
pub const LEAD_S: f64 = 0.3;
pub const TAIL_S: f64 = 1.0;

/// A voice that speaks the corpus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Voice {
    /// espeak-ng `-v NAME` (formant synthesis).
    Espeak(&'static str),
    /// flite `-voice NAME` (recorded CMU ARCTIC speakers; `kal16` is kal at 16 kHz).
    Flite(&'static str),
}

impl Voice {
    pub fn label(&self) -> String {
        match self {
            Voice::Espeak(v) => format!("espeak-ng {v}"),
            Voice::Flite(v) => format!("flite {v}"),
        }
    }
}

/// The voices of the WER section: four espeak-ng variants (American, British, a female
/// variant, Scottish) and flite's four recorded speakers.
pub const VOICES: [Voice; 8] = [
    Voice::Espeak("en-us"),
    Voice::Espeak("en-gb"),
    Voice::Espeak("en-us+f3"),
    Voice::Espeak("en-gb-scotland"),
    Voice::Flite("slt"),
    Voice::Flite("rms"),
    Voice::Flite("awb"),
    Voice::Flite("kal16"),
];

/// One synthesised command.
#[derive(Debug, Clone)]
pub struct Clip {
    pub text: String,
    pub voice: Voice,
    pub path: PathBuf,
    /// End of the voiced part, in ms from the clip's start (the last 10 ms frame above -40
    /// dBFS): the "end of speech" that end-point latency is counted from.
    pub speech_end_ms: f64,
    /// Voiced part's length in seconds (first to last frame above -40 dBFS).
    pub speech_s: f64,
}

/// The corpus: one command per line; `#` comments and blank lines skipped.
pub fn read_corpus(path: &Path) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the corpus {}", path.display()))?;
    let lines: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    if lines.is_empty() {
        bail!("{}: no commands in the corpus", path.display());
    }
    Ok(lines)
}

/// Speak `text` with `voice` into `dir` (16 kHz mono WAV with lead and tail silence).
pub fn synthesise(text: &str, voice: Voice, dir: &Path, n: usize) -> anyhow::Result<Clip> {
    let raw = dir.join(format!("raw-{n}.wav"));
    let mut cmd = match voice {
        Voice::Espeak(v) => {
            let mut c = Command::new("espeak-ng");
            c.args(["-v", v, "-w"]).arg(&raw).arg(text);
            c
        }
        Voice::Flite(v) => {
            let mut c = Command::new("flite");
            c.args(["-voice", v, "-t", text, "-o"]).arg(&raw);
            c
        }
    };
    let out = cmd.output().with_context(|| {
        format!(
            "cannot run {} (install espeak-ng and flite: dev/setup does)",
            voice.label()
        )
    })?;
    if !out.status.success() {
        bail!(
            "{} failed on {text:?}: {}",
            voice.label(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let bytes = std::fs::read(&raw).with_context(|| format!("reading {}", raw.display()))?;
    let pcm = wav::parse(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", voice.label()))?;
    let speech = wav::to_mono_rate(&pcm, RATE);
    let _ = std::fs::remove_file(&raw);
    let lead = vec![0i16; (f64::from(RATE) * LEAD_S) as usize];
    let tail = vec![0i16; (f64::from(RATE) * TAIL_S) as usize];
    let (first, last) = voiced_span(&speech)
        .with_context(|| format!("{} produced no audible speech for {text:?}", voice.label()))?;
    let lead_ms = LEAD_S * 1e3;
    let samples = [lead, speech, tail].concat();
    let path = dir.join(format!("clip-{n}.wav"));
    std::fs::write(&path, wav::write(&samples, RATE))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(Clip {
        text: text.to_owned(),
        voice,
        path,
        speech_end_ms: lead_ms + last * 1e3,
        speech_s: last - first,
    })
}

/// First and last second of `samples` (16 kHz) whose 10 ms frame is above -40 dBFS.
fn voiced_span(samples: &[i16]) -> Option<(f64, f64)> {
    const FRAME: usize = 160;
    let threshold = 32768.0 * 0.01;
    let loud: Vec<usize> = samples
        .chunks(FRAME)
        .enumerate()
        .filter(|(_, f)| {
            let e: f64 = f.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / f.len() as f64;
            e.sqrt() > threshold
        })
        .map(|(i, _)| i)
        .collect();
    let (first, last) = (loud.first()?, loud.last()?);
    let secs = |frames: usize| (frames * FRAME) as f64 / f64::from(RATE);
    Some((
        secs(*first),
        secs(last + 1).min(samples.len() as f64 / f64::from(RATE)),
    ))
}

/// Read a 16 kHz mono WAV the bench wrote.
pub fn read_16k(path: &Path) -> anyhow::Result<Vec<i16>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let pcm = wav::parse(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    if pcm.rate != RATE || pcm.channels != 1 {
        bail!("{}: expected 16 kHz mono", path.display());
    }
    Ok(pcm.samples)
}
