//! Speaker embeddings, one L2-normalised vector per utterance, in one of two families
//! (`family` in the model's config, [`SpeakerFamily`]):
//!
//! - `wespeaker` (the default; WeSpeaker / 3D-Speaker style): 80-bin Kaldi fbank with mean
//!   normalisation of the whole utterance → model `[1, T, 80]` → `[1, D]`.
//! - `ge2e` (Resemblyzer's GE2E d-vector, converted by `tests/py/ge2e_to_onnx.py`): Resemblyzer's
//!   `embed_utterance`. The volume is raised to -30 dBFS (never lowered), the 40-channel mel
//!   power spectrogram ([`Ge2eMel`]) is cut into partials of 160 frames (1.6 s) at 1.3 per
//!   second ([`ge2e_partials`], `compute_partial_slices`). The partials go through the model as
//!   one batch `[partials, 160, 40]` → `[partials, 256]`, and their mean is re-normalised.
//!   Resemblyzer's webrtcvad silence trimming is left out: the voice daemon sends utterances
//!   its VAD has already cut.
//!
//! Cosine similarity against enrolled centroids is the caller's (the voice daemon's) job; the
//! model's `threshold` is the decision point it is told in `/v1/models`.

use std::sync::Mutex;

use ort::session::Session;
use ort::value::Tensor;

use crate::config::SpeakerFamily;
use crate::engine::{self, lock, output_f32};
use crate::features::{self, GE2E_MELS, Ge2eMel};

/// WeSpeaker's threshold: the value the voice daemon has always been given.
const WESPEAKER_THRESHOLD: f32 = 0.6;
/// GE2E's threshold. GE2E cosines run high between any two voices. Measured on flite's
/// recorded CMU ARCTIC speakers (tests/real_voices.rs, `speaker_id_on_real_ge2e_embeddings`,
/// three sentences each):
/// - Same speaker, utterance to utterance: 0.86 to 0.95.
/// - A third utterance against its speaker's two-utterance centroid: 0.91 (slt), 0.96 (rms).
/// - Different speakers: 0.46 to 0.71. rms and awb, two male voices, are the closest pair.
///
/// 0.8 sits in that gap with about 0.08 to spare either side. WeSpeaker's 0.6 would let rms
/// answer for awb.
const GE2E_THRESHOLD: f32 = 0.8;

/// GE2E partials: frames per partial, hop in samples, partial rate and the coverage the last
/// partial needs (Resemblyzer's `partials_n_frames`, `mel_window_step`, `embed_utterance`
/// defaults).
const GE2E_PARTIAL_FRAMES: usize = 160;
const GE2E_HOP: usize = 160;
const GE2E_RATE: f64 = 1.3;
const GE2E_MIN_COVERAGE: f64 = 0.75;
const GE2E_TARGET_DBFS: f64 = -30.0;

enum Front {
    Fbank { n_mels: usize },
    Ge2e(Ge2eMel),
}

pub struct Speaker {
    session: Mutex<Session>,
    input: String,
    output: String,
    family: SpeakerFamily,
    front: Front,
    pub threshold: f32,
}

impl Speaker {
    pub fn new(
        session: Session,
        family: SpeakerFamily,
        threshold: Option<f32>,
    ) -> Result<Speaker, String> {
        let input = session
            .inputs()
            .first()
            .map(|i| i.name().to_owned())
            .ok_or("no input")?;
        let output = engine::output_names(&session)
            .into_iter()
            .next()
            .ok_or("no output")?;
        let shape = engine::input_shape(&session, 0).unwrap_or_default();
        let n_mels = match shape.as_slice() {
            [_, _, m] if *m > 0 => *m as usize,
            _ => {
                let want = match family {
                    SpeakerFamily::Wespeaker => "[1, T, n_mels]".to_owned(),
                    SpeakerFamily::Ge2e => format!("[batch, frames, {GE2E_MELS}]"),
                };
                return Err(format!(
                    "{} speaker model input `{input}` must be {want}, found {shape:?}",
                    family.as_str()
                ));
            }
        };
        let front = match family {
            SpeakerFamily::Wespeaker => Front::Fbank { n_mels },
            SpeakerFamily::Ge2e if n_mels == GE2E_MELS => Front::Ge2e(Ge2eMel::new()),
            SpeakerFamily::Ge2e => {
                return Err(format!(
                    "ge2e speaker model input `{input}` must have {GE2E_MELS} mel channels \
                     ([batch, frames, {GE2E_MELS}]), found {shape:?}"
                ));
            }
        };
        Ok(Speaker {
            session: Mutex::new(session),
            input,
            output,
            family,
            front,
            threshold: threshold.unwrap_or(match family {
                SpeakerFamily::Wespeaker => WESPEAKER_THRESHOLD,
                SpeakerFamily::Ge2e => GE2E_THRESHOLD,
            }),
        })
    }

    pub fn family(&self) -> SpeakerFamily {
        self.family
    }

    /// Embed 16 kHz samples in [-1, 1]; needs at least 0.5 s.
    pub fn embed(&self, samples: &[f32]) -> Result<Vec<f32>, String> {
        if samples.len() < 8000 {
            return Err(format!(
                "speaker embedding needs at least 0.5 s of audio, got {} samples",
                samples.len()
            ));
        }
        match &self.front {
            Front::Fbank { n_mels } => {
                let scaled: Vec<f32> = samples.iter().map(|s| s * 32768.0).collect();
                let (fb, frames) = features::fbank(&scaled, *n_mels);
                let mut v = self.run(fb, [1, frames, *n_mels])?;
                l2_normalise(&mut v);
                Ok(v)
            }
            Front::Ge2e(mel) => {
                let batch = ge2e_partials(mel, samples)?;
                let n = batch.len() / (GE2E_PARTIAL_FRAMES * GE2E_MELS);
                let out = self.run(batch, [n, GE2E_PARTIAL_FRAMES, GE2E_MELS])?;
                if n == 0 || out.is_empty() || !out.len().is_multiple_of(n) {
                    return Err(format!(
                        "ge2e speaker model gave {} values for {n} partials",
                        out.len()
                    ));
                }
                let dim = out.len() / n;
                let mut mean = vec![0.0f32; dim];
                for row in out.chunks_exact(dim) {
                    for (m, x) in mean.iter_mut().zip(row) {
                        *m += x / n as f32;
                    }
                }
                l2_normalise(&mut mean);
                Ok(mean)
            }
        }
    }

    fn run(&self, x: Vec<f32>, shape: [usize; 3]) -> Result<Vec<f32>, String> {
        let x = Tensor::from_array((shape, x)).map_err(engine::ort_err)?;
        let mut s = lock(&self.session);
        let out = s
            .run(ort::inputs![self.input.as_str() => x])
            .map_err(|e| format!("speaker model: {e}"))?;
        let (_, v) = output_f32(&out, &self.output)?;
        Ok(v)
    }

    pub fn warm(&self) -> Result<(), String> {
        let noise: Vec<f32> = (0..16_000)
            .map(|i| ((i * 7919) % 200) as f32 / 2000.0 - 0.05)
            .collect();
        self.embed(&noise).map(|_| ())
    }
}

/// The start frames of Resemblyzer's partials for `n_samples` (`compute_partial_slices`): one
/// every `round(16000 / 1.3 / 160)` = 77 frames while a partial can start, the last dropped
/// when it covers less than 75 % real audio (unless it is the only one).
pub fn ge2e_partial_starts(n_samples: usize) -> Vec<usize> {
    let n_frames = (n_samples + 1).div_ceil(GE2E_HOP);
    let step = ((features::RATE as f64 / GE2E_RATE) / GE2E_HOP as f64).round() as usize;
    let steps = (n_frames + step + 1)
        .saturating_sub(GE2E_PARTIAL_FRAMES)
        .max(1);
    let mut starts: Vec<usize> = (0..steps).step_by(step).collect();
    if let [.., last] = starts[..] {
        let coverage =
            (n_samples as f64 - (last * GE2E_HOP) as f64) / (GE2E_PARTIAL_FRAMES * GE2E_HOP) as f64;
        if coverage < GE2E_MIN_COVERAGE && starts.len() > 1 {
            starts.pop();
        }
    }
    starts
}

/// Resemblyzer's volume normalisation with `increase_only`: quieter than -30 dBFS is raised to
/// it, louder is left alone (silence too: it has no level to raise).
pub fn ge2e_normalise_volume(samples: &[f32]) -> Vec<f32> {
    let n = samples.len().max(1) as f64;
    let rms = (samples.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / n).sqrt();
    if rms <= 0.0 {
        return samples.to_vec();
    }
    let change = GE2E_TARGET_DBFS - 20.0 * rms.log10();
    if change <= 0.0 {
        return samples.to_vec();
    }
    let gain = 10f64.powf(change / 20.0) as f32;
    samples.iter().map(|x| x * gain).collect()
}

/// The model input for one utterance: the partials' mels, `[partials][160][40]` flattened.
pub fn ge2e_partials(mel: &Ge2eMel, samples: &[f32]) -> Result<Vec<f32>, String> {
    let mut wav = ge2e_normalise_volume(samples);
    let starts = ge2e_partial_starts(wav.len());
    let last = starts.last().copied().unwrap_or(0);
    // the last partial may reach past the audio: zero-padded, as Resemblyzer pads the waveform
    let need = (last + GE2E_PARTIAL_FRAMES) * GE2E_HOP;
    if need >= wav.len() {
        wav.resize(need, 0.0);
    }
    let (m, frames) = mel.compute(&wav);
    let mut batch = Vec::with_capacity(starts.len() * GE2E_PARTIAL_FRAMES * GE2E_MELS);
    for s in starts {
        let part = m
            .get(s * GE2E_MELS..(s + GE2E_PARTIAL_FRAMES) * GE2E_MELS)
            .ok_or_else(|| {
                format!("GE2E partial at frame {s} runs past the {frames} frames of the utterance")
            })?;
        batch.extend_from_slice(part);
    }
    Ok(batch)
}

pub fn l2_normalise(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Resemblyzer's `compute_partial_slices` by hand: 77-frame steps, the last partial kept
    /// when it covers at least 75 % real audio.
    #[test]
    fn ge2e_partials_follow_resemblyzer() {
        // 1 s: one partial, padded (the only one is always kept)
        assert_eq!(ge2e_partial_starts(16_000), vec![0]);
        // 2 s = 200 frames: starts 0, 77; the second covers (32000 - 12320) / 25600 = 0.77
        assert_eq!(ge2e_partial_starts(32_000), vec![0, 77]);
        // 1.9 s: the second would cover 0.70 < 0.75, dropped
        assert_eq!(ge2e_partial_starts(30_400), vec![0]);
        // 4 s = 401 frames: 0, 77, 154, 231, 308; 308 covers (64000 - 49280) / 25600 = 0.58, dropped
        assert_eq!(ge2e_partial_starts(64_000), vec![0, 77, 154, 231]);
    }

    #[test]
    fn ge2e_volume_is_raised_to_minus_30_dbfs_never_lowered() {
        let quiet: Vec<f32> = (0..1600)
            .map(|i| if i % 2 == 0 { 0.001 } else { -0.001 })
            .collect();
        let raised = ge2e_normalise_volume(&quiet);
        let rms = (raised.iter().map(|x| x * x).sum::<f32>() / raised.len() as f32).sqrt();
        assert!((20.0 * rms.log10() + 30.0).abs() < 0.01, "{rms}");
        let loud: Vec<f32> = quiet.iter().map(|x| x * 300.0).collect();
        assert_eq!(ge2e_normalise_volume(&loud), loud);
        assert_eq!(ge2e_normalise_volume(&[0.0; 10]), vec![0.0; 10]);
    }
}
