//! Audio features shared by STT and speaker embedding.
//!
//! - [`nemo_mel`]: NeMo's `AudioToMelSpectrogramPreprocessor` as Parakeet uses it: pre-emphasis
//!   0.97, 25 ms Hann window (400 samples) in a 512-point FFT, 10 ms hop, centred frames (zero
//!   padding), power spectrum, Slaney-normalised mel filters (librosa's default),
//!   `ln(mel + 2^-24)`, per-feature normalisation (mean/std over the `len / 160` valid frames per
//!   mel bin), frames past the valid length zeroed.
//! - [`fbank`]: Kaldi `compute-fbank-feats` as WeSpeaker runs it (torchaudio `kaldi.fbank`,
//!   Hamming window, snip edges, DC removal, pre-emphasis 0.97, Kaldi mel banks from 20 Hz,
//!   no energy, no dither) plus cepstral mean normalisation.
//!
//! - [`WhisperMel`]: Whisper's log-mel (openai/whisper `log_mel_spectrogram`, the Hugging Face
//!   `WhisperFeatureExtractor`): audio zero-padded or cut to 30 s, 400-sample periodic Hann
//!   window, n_fft 400, hop 160, centred with reflect padding, power spectrum, the last frame
//!   dropped (3000 frames), Slaney mel filters, `log10(max(mel, 1e-10))`, clamped to max - 8,
//!   `(x + 4) / 4`.
//!
//! - [`Ge2eMel`]: Resemblyzer's (GE2E speaker encoder) mel *power* spectrogram, librosa's
//!   `melspectrogram(sr=16000, n_fft=400, hop_length=160, n_mels=40)`: 400-sample periodic Hann
//!   window, centred with zero padding (librosa 0.10's `pad_mode`), power spectrum, Slaney
//!   mel filters, no log.
//!
//! The first two are checked against onnx-asr's reference feature graphs in the tests, the
//! Whisper one against a numpy implementation (`tests/py/whisper_mel.py`), the GE2E one against
//! the numpy front end of `tests/py/ge2e_to_onnx.py`.

use std::sync::Arc;

use rustfft::num_complex::Complex32;
use rustfft::{Fft, FftPlanner};

pub const RATE: usize = 16_000;
const N_FFT: usize = 512;
const WIN: usize = 400;
const HOP: usize = 160;

fn hz_to_mel_slaney(f: f64) -> f64 {
    let (f_sp, min_log_hz) = (200.0 / 3.0, 1000.0);
    let min_log_mel = min_log_hz / f_sp;
    let logstep = (6.4f64).ln() / 27.0;
    if f >= min_log_hz {
        min_log_mel + (f / min_log_hz).ln() / logstep
    } else {
        f / f_sp
    }
}

fn mel_to_hz_slaney(m: f64) -> f64 {
    let (f_sp, min_log_hz) = (200.0 / 3.0, 1000.0);
    let min_log_mel = min_log_hz / f_sp;
    let logstep = (6.4f64).ln() / 27.0;
    if m >= min_log_mel {
        min_log_hz * (logstep * (m - min_log_mel)).exp()
    } else {
        m * f_sp
    }
}

fn hz_to_mel_htk(f: f64) -> f64 {
    1127.0 * (1.0 + f / 700.0).ln()
}

/// Triangular mel filters `[n_mels][N_FFT/2 + 1]`: Slaney (librosa) or Kaldi.
fn filters(n_mels: usize, slaney: bool) -> Vec<Vec<f32>> {
    if slaney {
        slaney_filters(n_mels, N_FFT)
    } else {
        kaldi_filters(n_mels)
    }
}

/// librosa's default mel filters (Slaney scale and area normalisation, 0 Hz .. Nyquist)
/// `[n_mels][n_fft/2 + 1]`.
fn slaney_filters(n_mels: usize, n_fft: usize) -> Vec<Vec<f32>> {
    let bins = n_fft / 2 + 1;
    let (lo, hi) = (hz_to_mel_slaney(0.0), hz_to_mel_slaney(RATE as f64 / 2.0));
    let pts: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz_slaney(lo + (hi - lo) * i as f64 / (n_mels + 1) as f64))
        .collect();
    (0..n_mels)
        .map(|m| {
            let (l, c, r) = (pts[m], pts[m + 1], pts[m + 2]);
            (0..bins)
                .map(|k| {
                    let f = k as f64 * RATE as f64 / n_fft as f64;
                    let w = ((f - l) / (c - l)).min((r - f) / (r - c)).max(0.0);
                    (w * 2.0 / (r - l)) as f32
                })
                .collect()
        })
        .collect()
}

/// Kaldi's mel banks: triangles in the mel domain, 20 Hz .. Nyquist, the Nyquist bin unused.
fn kaldi_filters(n_mels: usize) -> Vec<Vec<f32>> {
    let bins = N_FFT / 2 + 1;
    let (lo, hi) = (hz_to_mel_htk(20.0), hz_to_mel_htk(RATE as f64 / 2.0));
    let delta = (hi - lo) / (n_mels + 1) as f64;
    (0..n_mels)
        .map(|m| {
            let left = lo + m as f64 * delta;
            let (center, right) = (left + delta, left + 2.0 * delta);
            (0..bins)
                .map(|k| {
                    if k == bins - 1 {
                        return 0.0;
                    }
                    let mel = hz_to_mel_htk(k as f64 * RATE as f64 / N_FFT as f64);
                    if mel <= left || mel >= right {
                        0.0
                    } else if mel <= center {
                        ((mel - left) / (center - left)) as f32
                    } else {
                        ((right - mel) / (right - center)) as f32
                    }
                })
                .collect()
        })
        .collect()
}

#[derive(Clone, Copy, PartialEq)]
enum Window {
    Hann,
    Hamming,
}

struct Stft {
    fft: Arc<dyn Fft<f32>>,
    window: Vec<f32>,
}

impl Stft {
    fn new(kind: Window) -> Stft {
        let window = (0..WIN)
            .map(|n| {
                let c = (2.0 * std::f64::consts::PI * n as f64 / (WIN - 1) as f64).cos();
                (match kind {
                    Window::Hann => 0.5 - 0.5 * c,
                    Window::Hamming => 0.54 - 0.46 * c,
                }) as f32
            })
            .collect();
        Stft {
            fft: FftPlanner::new().plan_fft_forward(N_FFT),
            window,
        }
    }

    /// Power spectrum of one frame (`WIN` samples), zero-padded to `N_FFT` (window centred).
    fn power(&self, frame: &[f32], out: &mut Vec<f32>) {
        let mut buf = vec![Complex32::new(0.0, 0.0); N_FFT];
        let off = (N_FFT - WIN) / 2;
        for (i, (&x, &w)) in frame.iter().zip(&self.window).enumerate() {
            buf[off + i] = Complex32::new(x * w, 0.0);
        }
        self.fft.process(&mut buf);
        out.clear();
        out.extend(buf[..N_FFT / 2 + 1].iter().map(|c| c.norm_sqr()));
    }
}

/// NeMo log-mel features, `[n_mels][frames]` (row-major, mel-major like NeMo's `[B, n_mels, T]`).
/// `samples` are floats in [-1, 1] at 16 kHz. Returns (features, frames).
/// The frames NeMo counts as valid (the encoder's `length`): `len / 160`.
pub fn nemo_valid_frames(samples: usize) -> usize {
    samples / HOP
}

pub fn nemo_mel(samples: &[f32], n_mels: usize) -> (Vec<f32>, usize) {
    nemo_mel_inner(samples, n_mels, true)
}

fn nemo_mel_inner(samples: &[f32], n_mels: usize, normalise: bool) -> (Vec<f32>, usize) {
    let mut x = Vec::with_capacity(samples.len());
    let mut prev = 0.0;
    for (i, &s) in samples.iter().enumerate() {
        x.push(if i == 0 { s } else { s - 0.97 * prev });
        prev = s;
    }
    // centre: zero-pad N_FFT/2 on each side; frames = len / HOP + 1
    let pad = N_FFT / 2;
    let n = x.len();
    let get = |i: isize| -> f32 {
        usize::try_from(i)
            .ok()
            .and_then(|j| x.get(j))
            .copied()
            .unwrap_or(0.0)
    };
    let frames = n / HOP + 1;
    let fb = filters(n_mels, true);
    let stft = Stft::new(Window::Hann);
    let mut feats = vec![0.0f32; n_mels * frames];
    let mut frame = vec![0.0f32; WIN];
    let mut power = Vec::new();
    for t in 0..frames {
        let start = (t * HOP) as isize - pad as isize + ((N_FFT - WIN) / 2) as isize;
        for (k, v) in frame.iter_mut().enumerate() {
            *v = get(start + k as isize);
        }
        stft.power(&frame, &mut power);
        for (m, f) in fb.iter().enumerate() {
            let e: f32 = f.iter().zip(&power).map(|(a, b)| a * b).sum();
            feats[m * frames + t] = (e + 2f32.powi(-24)).ln();
        }
    }
    if !normalise {
        return (feats, frames);
    }
    // per-feature normalisation over the valid frames; the rest is zeroed
    let valid = nemo_valid_frames(n).max(1).min(frames);
    for m in 0..n_mels {
        let row = &mut feats[m * frames..(m + 1) * frames];
        let mean = row[..valid].iter().sum::<f32>() / valid as f32;
        let var = row[..valid].iter().map(|v| (v - mean).powi(2)).sum::<f32>()
            / (valid.max(2) - 1) as f32;
        let std = var.sqrt() + 1e-5;
        for (t, v) in row.iter_mut().enumerate() {
            *v = if t < valid { (*v - mean) / std } else { 0.0 };
        }
    }
    (feats, frames)
}

/// Kaldi-style log-mel fbank `[frames][n_mels]` (frame-major) with mean normalisation.
/// `samples` should be in int16 scale, as Kaldi and WeSpeaker take them (the mean
/// normalisation removes a constant gain anyway, except in the log floor).
pub fn fbank(samples: &[f32], n_mels: usize) -> (Vec<f32>, usize) {
    if samples.len() < WIN {
        return (Vec::new(), 0);
    }
    let frames = (samples.len() - WIN) / HOP + 1;
    let fb = filters(n_mels, false);
    let stft = Stft::new(Window::Hamming);
    let mut out = vec![0.0f32; frames * n_mels];
    let mut frame = vec![0.0f32; WIN];
    let mut power = Vec::new();
    for t in 0..frames {
        let src = &samples[t * HOP..t * HOP + WIN];
        let mean = src.iter().sum::<f32>() / WIN as f32;
        let mut prev = src[0] - mean;
        for (k, v) in frame.iter_mut().enumerate() {
            let s = src[k] - mean;
            *v = s - 0.97 * prev;
            prev = s;
        }
        stft.power(&frame, &mut power);
        for (m, f) in fb.iter().enumerate() {
            let e: f32 = f.iter().zip(&power).map(|(a, b)| a * b).sum();
            out[t * n_mels + m] = e.max(f32::EPSILON).ln();
        }
    }
    for m in 0..n_mels {
        let mean = (0..frames).map(|t| out[t * n_mels + m]).sum::<f32>() / frames as f32;
        for t in 0..frames {
            out[t * n_mels + m] -= mean;
        }
    }
    (out, frames)
}

/// Whisper's 30-second window: 480,000 samples, 3000 feature frames.
pub const WHISPER_SAMPLES: usize = 30 * RATE;
pub const WHISPER_FRAMES: usize = 3000;
const WHISPER_FFT: usize = 400;

/// Whisper's log-mel front end, with its FFT plan, window and filters made once per model.
pub struct WhisperMel {
    n_mels: usize,
    fft: Arc<dyn Fft<f32>>,
    window: Vec<f32>,
    /// Per mel bin: the first non-zero FFT bin and the weights from there.
    filters: Vec<(usize, Vec<f32>)>,
}

impl WhisperMel {
    pub fn new(n_mels: usize) -> WhisperMel {
        let filters = trimmed(slaney_filters(n_mels, WHISPER_FFT));
        WhisperMel {
            n_mels,
            fft: FftPlanner::new().plan_fft_forward(WHISPER_FFT),
            // periodic Hann (torch.hann_window's default)
            window: (0..WHISPER_FFT)
                .map(|n| {
                    (0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / WHISPER_FFT as f64).cos())
                        as f32
                })
                .collect(),
            filters,
        }
    }

    pub fn n_mels(&self) -> usize {
        self.n_mels
    }

    /// `[n_mels][3000]` (mel-major, the encoder's `[1, n_mels, 3000]`) of 16 kHz samples in
    /// [-1, 1]; past 30 s is cut off (the caller says so).
    pub fn compute(&self, samples: &[f32]) -> Vec<f32> {
        let n = WHISPER_SAMPLES;
        let len = samples.len().min(n);
        let half = (WHISPER_FFT / 2) as isize;
        // the zero-padded 30 s, reflect-padded by n_fft/2 on each side
        let at = |j: isize| -> f32 {
            let j = if j < 0 {
                -j
            } else if j >= n as isize {
                2 * (n as isize - 1) - j
            } else {
                j
            } as usize;
            if j < len { samples[j] } else { 0.0 }
        };
        let mut mel = vec![0.0f32; self.n_mels * WHISPER_FRAMES];
        let mut buf = vec![Complex32::new(0.0, 0.0); WHISPER_FFT];
        let mut power = vec![0.0f32; WHISPER_FFT / 2 + 1];
        for t in 0..WHISPER_FRAMES {
            let start = (t * HOP) as isize - half;
            let mut silent = true;
            for (k, (b, w)) in buf.iter_mut().zip(&self.window).enumerate() {
                let x = at(start + k as isize);
                silent &= x == 0.0;
                *b = Complex32::new(x * w, 0.0);
            }
            if silent {
                continue; // power 0: the mel stays 0 and is floored below
            }
            self.fft.process(&mut buf);
            for (p, c) in power.iter_mut().zip(&buf) {
                *p = c.norm_sqr();
            }
            for (m, (first, w)) in self.filters.iter().enumerate() {
                mel[m * WHISPER_FRAMES + t] =
                    w.iter().zip(&power[*first..]).map(|(a, b)| a * b).sum();
            }
        }
        let mut max = f32::NEG_INFINITY;
        for v in mel.iter_mut() {
            *v = v.max(1e-10).log10();
            max = max.max(*v);
        }
        for v in mel.iter_mut() {
            *v = (v.max(max - 8.0) + 4.0) / 4.0;
        }
        mel
    }
}

/// The GE2E front end's FFT size and window (25 ms at 16 kHz).
pub const GE2E_FFT: usize = 400;
/// The GE2E front end's mel channels.
pub const GE2E_MELS: usize = 40;

/// Resemblyzer's mel power spectrogram, with its FFT plan, window and filters made once per
/// model.
pub struct Ge2eMel {
    fft: Arc<dyn Fft<f32>>,
    window: Vec<f32>,
    /// Per mel channel: the first non-zero FFT bin and the weights from there.
    filters: Vec<(usize, Vec<f32>)>,
}

impl Default for Ge2eMel {
    fn default() -> Self {
        Self::new()
    }
}

impl Ge2eMel {
    pub fn new() -> Ge2eMel {
        Ge2eMel {
            fft: FftPlanner::new().plan_fft_forward(GE2E_FFT),
            // periodic Hann (scipy's `get_window("hann", fftbins=True)`, what librosa uses)
            window: (0..GE2E_FFT)
                .map(|n| {
                    (0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / GE2E_FFT as f64).cos())
                        as f32
                })
                .collect(),
            filters: trimmed(slaney_filters(GE2E_MELS, GE2E_FFT)),
        }
    }

    /// `[frames][40]` (frame-major, the model's `[batch, frames, 40]`) of 16 kHz samples in
    /// [-1, 1]; `frames = 1 + len / 160`. Returns (mels, frames).
    pub fn compute(&self, samples: &[f32]) -> (Vec<f32>, usize) {
        let frames = 1 + samples.len() / HOP;
        let half = (GE2E_FFT / 2) as isize;
        // centred: the frame t covers samples t*hop - n_fft/2 .., zeros outside the signal
        let at = |j: isize| -> f32 {
            usize::try_from(j)
                .ok()
                .and_then(|j| samples.get(j))
                .copied()
                .unwrap_or(0.0)
        };
        let mut mel = vec![0.0f32; frames * GE2E_MELS];
        let mut buf = vec![Complex32::new(0.0, 0.0); GE2E_FFT];
        let mut power = vec![0.0f32; GE2E_FFT / 2 + 1];
        for t in 0..frames {
            let start = (t * HOP) as isize - half;
            for (k, (b, w)) in buf.iter_mut().zip(&self.window).enumerate() {
                *b = Complex32::new(at(start + k as isize) * w, 0.0);
            }
            self.fft.process(&mut buf);
            for (p, c) in power.iter_mut().zip(&buf) {
                *p = c.norm_sqr();
            }
            for (m, (first, w)) in self.filters.iter().enumerate() {
                mel[t * GE2E_MELS + m] = w.iter().zip(&power[*first..]).map(|(a, b)| a * b).sum();
            }
        }
        (mel, frames)
    }
}

/// Mel filters as (first non-zero bin, weights from there), to skip the zeros.
fn trimmed(filters: Vec<Vec<f32>>) -> Vec<(usize, Vec<f32>)> {
    filters
        .into_iter()
        .map(|f| {
            let start = f.iter().position(|&w| w > 0.0).unwrap_or(0);
            let end = f.iter().rposition(|&w| w > 0.0).map_or(start, |e| e + 1);
            (start, f[start..end].to_vec())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mel_filters_cover_the_spectrum_and_tone_lands_in_the_right_bin() {
        let fb = filters(128, true);
        assert_eq!(fb.len(), 128);
        assert!(fb.iter().all(|f| f.iter().any(|&w| w > 0.0)));
        // a 1 kHz tone: the loudest mel bin's centre is near 1 kHz
        let tone: Vec<f32> = (0..16_000)
            .map(|i| (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 16_000.0).sin() * 0.5)
            .collect();
        let (f, frames) = nemo_mel_inner(&tone, 128, false);
        assert_eq!(frames, 101);
        let t = 50;
        let best = (0..128)
            .max_by(|&a, &b| f[a * frames + t].total_cmp(&f[b * frames + t]))
            .unwrap_or(0);
        let centre = mel_to_hz_slaney(hz_to_mel_slaney(8000.0) * (best + 1) as f64 / 129.0);
        assert!(
            (centre - 1000.0).abs() < 80.0,
            "bin {best} centre {centre} Hz"
        );
        let (fb80, n) = fbank(&tone, 80);
        assert_eq!(n, 98);
        assert_eq!(fb80.len(), 98 * 80);
    }
}
