//! Barnabee's side of the voice sections, in a child process of `bench` (`--worker SPEC`): ONNX
//! Runtime's thread count is fixed per process (`[runtime] intra_threads`), so each thread
//! count gets its own process, as a daemon configured with it would.
//!
//! For each clip, what the daemon does with a request:
//! - **VAD end-point**: the clip is fed to Silero in 512-sample windows (`Vad::push`, as the
//!   Wyoming server does); a start→stop shorter than `min_utterance_ms` (300, the voice
//!   daemon's default) is ignored as the voice pipeline does; the stop event (10 windows of
//!   hangover; `end_silence_ms` = 0, the default) is the end-point. `endpoint_ms` is audio time
//!   from the clip's end of speech to the end of that window, plus the VAD's compute time for
//!   the windows after the end of speech (real time would wait for the audio, the compute
//!   comes on top).
//! - **STT**: the audio up to the end-point (what the voice daemon streams before
//!   `audio-stop`) goes through `Stt::transcribe`, the daemon's Whisper path (log-mel,
//!   encoder, greedy decoder). `stt_ms` is audio-stop → transcript. The cut audio is written
//!   out so the peer transcribes exactly the same samples.
//!
//! For each sentence: `Tts::sentence` per sentence of the text (`tts::sentences`), as the
//! daemon streams a reply; `first_ms` is the first sentence's audio, `total_ms` the last.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::bail;
use barnabee_inference::registry::Inner;
use barnabee_inference::vad::{self, VadEvent};
use barnabee_inference::{tts, wav};
use serde::{Deserialize, Serialize};

use crate::clips::{self, RATE};
use crate::models;

/// The voice daemon's `min_utterance_ms` default.
const MIN_UTTERANCE_MS: u64 = 300;
const WINDOW: usize = 512;

#[derive(Serialize, Deserialize)]
pub struct Spec {
    pub cache: PathBuf,
    pub clips: Vec<ClipIn>,
    /// Where the cut utterances go (`cut-N.wav`, N the clip's index).
    pub cut_dir: PathBuf,
    pub sentences: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone)]
pub struct ClipIn {
    pub path: PathBuf,
    pub speech_end_ms: f64,
}

impl From<&clips::Clip> for ClipIn {
    fn from(c: &clips::Clip) -> ClipIn {
        ClipIn {
            path: c.path.clone(),
            speech_end_ms: c.speech_end_ms,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct ClipOut {
    /// The audio Whisper was given; `None` when the VAD heard no speech (no request: the
    /// daemon would not transcribe, the transcript counts as empty).
    pub cut: Option<PathBuf>,
    pub endpoint_ms: f64,
    pub stt_ms: f64,
    /// Of `stt_ms`: log-mel, encoder and greedy decoder (`Transcript`'s own timings).
    pub features_ms: f64,
    pub encoder_ms: f64,
    pub decoder_ms: f64,
    /// Length of the cut audio, seconds.
    pub audio_s: f64,
    pub text: String,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct TtsOut {
    pub first_ms: f64,
    pub total_ms: f64,
    pub samples: usize,
}

#[derive(Serialize, Deserialize)]
pub struct Output {
    pub onnxruntime: String,
    pub clips: Vec<ClipOut>,
    pub tts: Vec<TtsOut>,
    pub tts_rate: u32,
}

pub fn run(spec: &Spec, threads: usize) -> anyhow::Result<Output> {
    let engine = models::engine(&spec.cache, threads)?;
    let vad_m = models::load(&engine, &models::silero_toml(&spec.cache)?, "silero")?;
    let Inner::Vad(vad) = &vad_m.inner else {
        bail!("silero is not a VAD model");
    };
    let mut clips_out = Vec::new();
    if !spec.clips.is_empty() {
        let stt_m = models::load(&engine, &models::whisper_toml(&spec.cache)?, "whisper")?;
        let Inner::Stt(stt) = &stt_m.inner else {
            bail!("whisper is not an STT model");
        };
        stt.warm().map_err(anyhow::Error::msg)?;
        for (i, c) in spec.clips.iter().enumerate() {
            clips_out.push(one_clip(
                vad,
                stt,
                c,
                &spec.cut_dir.join(format!("cut-{i}.wav")),
            )?);
        }
    }
    let mut tts_out = Vec::new();
    let mut tts_rate = 0;
    if !spec.sentences.is_empty() {
        let tts_m = models::load(&engine, &models::piper_toml(&spec.cache)?, "piper")?;
        let Inner::Tts(t) = &tts_m.inner else {
            bail!("piper is not a TTS model");
        };
        t.warm().map_err(anyhow::Error::msg)?;
        tts_rate = t.rate;
        for s in &spec.sentences {
            tts_out.push(one_reply(t, s)?);
        }
    }
    Ok(Output {
        onnxruntime: engine.version(),
        clips: clips_out,
        tts: tts_out,
        tts_rate,
    })
}

fn one_clip(
    vad: &vad::Vad,
    stt: &barnabee_inference::stt::Stt,
    c: &ClipIn,
    cut_path: &std::path::Path,
) -> anyhow::Result<ClipOut> {
    let pcm = clips::read_16k(&c.path)?;
    let samples = vad::pcm_to_f32(&pcm);
    let mut st = vad.stream();
    let (mut start, mut endpoint) = (None::<u64>, None::<usize>);
    let mut after_speech = std::time::Duration::ZERO;
    let window_ms = WINDOW as f64 * 1e3 / f64::from(RATE);
    for (k, w) in samples.chunks(WINDOW).enumerate() {
        let t = Instant::now();
        let (_, events) = vad.push(&mut st, w).map_err(anyhow::Error::msg)?;
        if (k + 1) as f64 * window_ms > c.speech_end_ms {
            after_speech += t.elapsed();
        }
        for ev in events {
            match ev {
                VadEvent::Started { ms } => start = start.or(Some(ms)),
                VadEvent::Stopped { ms } => match start {
                    Some(s) if ms.saturating_sub(s) < MIN_UTTERANCE_MS => start = None,
                    Some(_) => endpoint = Some((k + 1) * WINDOW),
                    None => {}
                },
            }
        }
        if endpoint.is_some() {
            break;
        }
    }
    if start.is_none() {
        return Ok(ClipOut {
            cut: None,
            endpoint_ms: f64::NAN,
            stt_ms: f64::NAN,
            features_ms: f64::NAN,
            encoder_ms: f64::NAN,
            decoder_ms: f64::NAN,
            audio_s: 0.0,
            text: String::new(),
        });
    }
    let end = endpoint.unwrap_or(samples.len()).min(samples.len());
    let endpoint_ms =
        end as f64 * 1e3 / f64::from(RATE) - c.speech_end_ms + after_speech.as_secs_f64() * 1e3;
    std::fs::write(cut_path, wav::write(&pcm[..end], RATE))?;
    let t = Instant::now();
    let tr = stt
        .transcribe(&samples[..end])
        .map_err(anyhow::Error::msg)?;
    Ok(ClipOut {
        cut: Some(cut_path.to_owned()),
        endpoint_ms,
        stt_ms: t.elapsed().as_secs_f64() * 1e3,
        features_ms: tr.features_ms,
        encoder_ms: tr.encoder_ms,
        decoder_ms: tr.decoder_ms,
        audio_s: end as f64 / f64::from(RATE),
        text: tr.text,
    })
}

fn one_reply(t: &tts::Tts, text: &str) -> anyhow::Result<TtsOut> {
    let t0 = Instant::now();
    let mut first = None;
    let mut samples = 0;
    for s in tts::sentences(text) {
        let a = t.sentence(&s, None).map_err(anyhow::Error::msg)?;
        samples += a.pcm.len();
        first = first.or(Some(t0.elapsed()));
    }
    let total = t0.elapsed();
    Ok(TtsOut {
        first_ms: first.unwrap_or(total).as_secs_f64() * 1e3,
        total_ms: total.as_secs_f64() * 1e3,
        samples,
    })
}
