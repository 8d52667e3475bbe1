//! Audio I/O behind two traits, so the pipeline never knows whether it talks to a sound card
//! or to a WAV file on a test clock.
//!
//! - [`AudioSource`]: 16 kHz mono i16 frames of [`FRAME_SAMPLES`] (80 ms, openWakeWord's step).
//!   Backends: [`cpal::CpalSource`] (ALSA; resamples and downmixes when the device cannot do
//!   16 kHz mono) and [`wav::WavSource`] (a WAV file, paced by a [`Clock`]).
//! - [`AudioSink`]: plays PCM at the TTS rate. Backends: [`cpal::CpalSink`] and
//!   [`wav::WavFileSink`] (writes a WAV file).

pub mod cpal;
pub mod wav;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// The pipeline's sample rate (wake word, VAD and STT all want 16 kHz mono 16-bit).
pub const RATE: u32 = 16_000;
/// Samples per frame: 80 ms at 16 kHz.
pub const FRAME_SAMPLES: usize = 1280;
/// One frame's duration.
pub const FRAME: Duration = Duration::from_millis(80);

#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// The configured device is not there (or cannot be opened): names it and what exists.
    #[error(
        "no audio device: cannot open {direction} device {device:?}: {reason} (available {direction} devices: {available})"
    )]
    NoDevice {
        direction: &'static str,
        device: String,
        reason: String,
        available: String,
    },
    #[error("audio stream on {device:?} failed: {reason}")]
    Stream { device: String, reason: String },
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
}

/// A source of 16 kHz mono i16 frames.
pub trait AudioSource: Send {
    /// The next frame of exactly [`FRAME_SAMPLES`] samples; `Ok(None)` at the end of the input
    /// (files only; a microphone never ends).
    fn read_frame(&mut self) -> impl Future<Output = Result<Option<Vec<i16>>, AudioError>> + Send;
    /// Drop whatever was captured but not read yet (after a long stage, stale audio is useless).
    fn discard_pending(&mut self) {}
}

/// A sink that plays mono i16 PCM at a given rate.
pub trait AudioSink: Send {
    /// Start a new utterance at `rate` Hz.
    fn start(&mut self, rate: u32) -> Result<(), AudioError>;
    /// Queue samples for playback.
    fn write(&mut self, pcm: &[i16]) -> Result<(), AudioError>;
    /// The utterance is complete (let it play out).
    fn finish(&mut self) -> Result<(), AudioError>;
    /// Stop playback now and drop what is queued (barge-in).
    fn stop(&mut self);
}

/// Time as the audio path sees it. [`Clock::System`] for devices; [`ManualClock`] for tests.
#[derive(Clone, Debug)]
pub enum Clock {
    /// Real time: a file source delivers one frame per frame duration.
    System,
    /// Test-controlled time.
    Manual(ManualClock),
}

/// A clock the test controls. In `free-running` mode every frame read advances it by one
/// frame (faster than real time, but simulated time stays consistent); otherwise a source
/// waits until the test calls [`ManualClock::advance`].
#[derive(Clone, Debug, Default)]
pub struct ManualClock {
    inner: Arc<ClockInner>,
}

#[derive(Debug, Default)]
struct ClockInner {
    micros: AtomicU64,
    free: AtomicBool,
    notify: tokio::sync::Notify,
}

impl ManualClock {
    /// A clock at zero that only moves when the test advances it.
    pub fn new() -> ManualClock {
        ManualClock::default()
    }
    /// A clock at zero that advances by one frame per frame read.
    pub fn free_running() -> ManualClock {
        let c = ManualClock::default();
        c.inner.free.store(true, Ordering::SeqCst);
        c
    }
    pub fn now(&self) -> Duration {
        Duration::from_micros(self.inner.micros.load(Ordering::SeqCst))
    }
    pub fn advance(&self, by: Duration) {
        self.inner
            .micros
            .fetch_add(by.as_micros() as u64, Ordering::SeqCst);
        self.inner.notify.notify_waiters();
    }
    pub fn is_free_running(&self) -> bool {
        self.inner.free.load(Ordering::SeqCst)
    }
    /// Wait until the clock reaches `t` (or advance it there when free-running).
    pub async fn until(&self, t: Duration) {
        loop {
            let n = self.inner.notify.notified();
            if self.now() >= t {
                return;
            }
            if self.is_free_running() {
                let d = t.saturating_sub(self.now());
                self.advance(d);
                return;
            }
            n.await;
        }
    }
}

/// Downmix interleaved samples to mono (average of the channels).
pub fn downmix(interleaved: &[f32], channels: usize) -> Vec<f32> {
    if channels <= 1 {
        return interleaved.to_vec();
    }
    interleaved
        .chunks(channels)
        .map(|c| c.iter().sum::<f32>() / c.len() as f32)
        .collect()
}

/// A streaming linear resampler (keeps its phase and last sample across calls).
#[derive(Debug, Clone)]
pub struct Resampler {
    from: u32,
    to: u32,
    pos: f64,
    last: f32,
}

impl Resampler {
    pub fn new(from: u32, to: u32) -> Resampler {
        Resampler {
            from,
            to,
            pos: 0.0,
            last: 0.0,
        }
    }
    /// Resample mono f32 samples in [-1, 1] (or any scale).
    pub fn push(&mut self, input: &[f32]) -> Vec<f32> {
        if self.from == self.to {
            return input.to_vec();
        }
        let step = self.from as f64 / self.to as f64;
        let mut out = Vec::with_capacity((input.len() as f64 / step) as usize + 2);
        // position is relative to `last` at -1 … input[0] at 0
        while self.pos < input.len() as f64 - 1.0 + 1e-9 {
            let i = self.pos.floor();
            let frac = (self.pos - i) as f32;
            let a = if i < 0.0 {
                self.last
            } else {
                input[i as usize]
            };
            let b_idx = (i + 1.0) as isize;
            let b = if b_idx < 0 {
                self.last
            } else {
                input[(b_idx as usize).min(input.len() - 1)]
            };
            out.push(a + (b - a) * frac);
            self.pos += step;
        }
        self.pos -= input.len() as f64;
        if let Some(l) = input.last() {
            self.last = *l;
        }
        out
    }
}

pub fn f32_to_i16(x: f32) -> i16 {
    (x.clamp(-1.0, 1.0) * 32767.0).round() as i16
}

/// Cuts a stream of arbitrary-length chunks into fixed frames.
#[derive(Debug, Default)]
pub struct Framer {
    buf: Vec<i16>,
}

impl Framer {
    pub fn push(&mut self, pcm: &[i16]) -> Vec<Vec<i16>> {
        self.buf.extend_from_slice(pcm);
        let mut out = Vec::new();
        while self.buf.len() >= FRAME_SAMPLES {
            out.push(self.buf.drain(..FRAME_SAMPLES).collect());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn resampler_48k_to_16k_keeps_a_tone_and_the_length() {
        let tone: Vec<f32> = (0..48_000)
            .map(|i| (i as f32 * 440.0 * std::f32::consts::TAU / 48_000.0).sin())
            .collect();
        let mut r = Resampler::new(48_000, 16_000);
        let mut out = Vec::new();
        for c in tone.chunks(1000) {
            out.extend(r.push(c));
        }
        assert!((out.len() as i64 - 16_000).abs() <= 2, "{}", out.len());
        // compare with the ideal 16 kHz tone
        let err: f32 = out
            .iter()
            .enumerate()
            .map(|(i, x)| (x - (i as f32 * 440.0 * std::f32::consts::TAU / 16_000.0).sin()).abs())
            .fold(0.0, f32::max);
        assert!(err < 0.05, "max error {err}");
    }

    #[test]
    fn resampler_44k1_streaming_equals_one_shot() {
        let x: Vec<f32> = (0..4410).map(|i| (i as f32 * 0.01).sin()).collect();
        let mut a = Resampler::new(44_100, 16_000);
        let one = a.push(&x);
        let mut b = Resampler::new(44_100, 16_000);
        let mut many = Vec::new();
        for c in x.chunks(37) {
            many.extend(b.push(c));
        }
        assert_eq!(one.len(), many.len());
        for (p, q) in one.iter().zip(&many) {
            assert!((p - q).abs() < 1e-4);
        }
    }

    #[test]
    fn downmix_and_framer() {
        assert_eq!(downmix(&[1.0, 0.0, 0.5, 0.5], 2), vec![0.5, 0.5]);
        let mut f = Framer::default();
        assert!(f.push(&[0; 1000]).is_empty());
        let out = f.push(&[1; 2000]);
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|x| x.len() == FRAME_SAMPLES));
    }

    #[tokio::test]
    async fn manual_clock_gates_until_advanced() {
        let c = ManualClock::new();
        let c2 = c.clone();
        let t = tokio::spawn(async move { c2.until(Duration::from_millis(160)).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!t.is_finished());
        c.advance(Duration::from_millis(80));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!t.is_finished());
        c.advance(Duration::from_millis(80));
        tokio::time::timeout(Duration::from_secs(1), t)
            .await
            .unwrap()
            .unwrap();
    }
}
