//! Voice activity detection with Silero VAD (v5/v6: `input`, `state`, `sr`; v4: `input`, `h`,
//! `c`, `sr`), 16 kHz, 512-sample windows.
//!
//! v5/v6 expect each window to be preceded by the last 64 samples of the previous one (576
//! samples in all) and carry `stateN` → `state`; v4 takes the bare 512 samples and carries
//! `hn`/`cn`. This is what Silero's own Python wrapper does.

use std::sync::Mutex;

use ort::session::Session;
use ort::value::Tensor;

use crate::engine::{self, lock, output_f32};

pub const RATE: u32 = 16_000;
pub const WINDOW: usize = 512;
const CONTEXT: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V4,
    V5,
}

pub struct Vad {
    session: Mutex<Session>,
    version: Version,
    pub threshold: f32,
}

/// Per-stream state (one per connection / utterance).
pub struct VadStream {
    state: Vec<f32>,
    c: Vec<f32>,
    context: Vec<f32>,
    pending: Vec<f32>,
    /// Windows processed so far.
    pub windows: u64,
    speaking: bool,
    silence_windows: u32,
    /// End of the last window heard as speech (ms from the stream's start).
    last_speech_end_ms: u64,
}

/// A speech boundary, in milliseconds from the start of the stream. `Started` is the start
/// of the first speech window; `Stopped` is the *end of speech* (the end of the last speech
/// window), reported once [`HANGOVER_WINDOWS`] of silence have confirmed it, i.e. ~320 ms
/// later in audio time. (Reporting the confirming window instead made every "end of speech ->
/// first audio" figure downstream leave out the hangover.)
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum VadEvent {
    Started { ms: u64 },
    Stopped { ms: u64 },
}

/// Silence needed after speech before "stopped" (in 32 ms windows): ~320 ms.
const HANGOVER_WINDOWS: u32 = 10;

impl Vad {
    pub fn new(session: Session, threshold: Option<f32>) -> Result<Vad, String> {
        let names: Vec<String> = session
            .inputs()
            .iter()
            .map(|i| i.name().to_owned())
            .collect();
        let version = if names.iter().any(|n| n == "state") {
            engine::expect_inputs(&session, &["input", "state", "sr"])?;
            Version::V5
        } else if names.iter().any(|n| n == "h") {
            engine::expect_inputs(&session, &["input", "h", "c", "sr"])?;
            Version::V4
        } else {
            return Err(format!(
                "not a Silero VAD model: expected inputs input/state/sr (v5, v6) or input/h/c/sr (v4), found {names:?}"
            ));
        };
        Ok(Vad {
            session: Mutex::new(session),
            version,
            threshold: threshold.unwrap_or(0.5),
        })
    }

    pub fn stream(&self) -> VadStream {
        let state_len = match self.version {
            Version::V5 => 2 * 128,
            Version::V4 => 2 * 64,
        };
        VadStream {
            state: vec![0.0; state_len],
            c: vec![0.0; state_len],
            context: vec![0.0; CONTEXT],
            pending: Vec::with_capacity(WINDOW * 2),
            windows: 0,
            speaking: false,
            silence_windows: 0,
            last_speech_end_ms: 0,
        }
    }

    /// Speech probability of one 512-sample window (samples in [-1, 1]).
    pub fn window(&self, st: &mut VadStream, window: &[f32]) -> Result<f32, String> {
        if window.len() != WINDOW {
            return Err(format!(
                "VAD window must be {WINDOW} samples, got {}",
                window.len()
            ));
        }
        let sr = Tensor::from_array(((), vec![i64::from(RATE)])).map_err(engine::ort_err)?;
        let mut s = lock(&self.session);
        let p = match self.version {
            Version::V5 => {
                let mut audio = Vec::with_capacity(CONTEXT + WINDOW);
                audio.extend_from_slice(&st.context);
                audio.extend_from_slice(window);
                let input = Tensor::from_array(([1usize, CONTEXT + WINDOW], audio))
                    .map_err(engine::ort_err)?;
                let state = Tensor::from_array(([2usize, 1, 128], st.state.clone()))
                    .map_err(engine::ort_err)?;
                let out = s
                    .run(ort::inputs!["input" => input, "state" => state, "sr" => sr])
                    .map_err(engine::ort_err)?;
                let (_, p) = output_f32(&out, "output")?;
                let (_, ns) = output_f32(&out, "stateN")?;
                st.state.copy_from_slice(&ns);
                st.context.copy_from_slice(&window[WINDOW - CONTEXT..]);
                p.first().copied().unwrap_or(0.0)
            }
            Version::V4 => {
                let input = Tensor::from_array(([1usize, WINDOW], window.to_vec()))
                    .map_err(engine::ort_err)?;
                let h = Tensor::from_array(([2usize, 1, 64], st.state.clone()))
                    .map_err(engine::ort_err)?;
                let c =
                    Tensor::from_array(([2usize, 1, 64], st.c.clone())).map_err(engine::ort_err)?;
                let out = s
                    .run(ort::inputs!["input" => input, "sr" => sr, "h" => h, "c" => c])
                    .map_err(engine::ort_err)?;
                let (_, p) = output_f32(&out, "output")?;
                let (_, hn) = output_f32(&out, "hn")?;
                let (_, cn) = output_f32(&out, "cn")?;
                st.state.copy_from_slice(&hn);
                st.c.copy_from_slice(&cn);
                p.first().copied().unwrap_or(0.0)
            }
        };
        st.windows += 1;
        Ok(p)
    }

    /// Feed any number of samples; returns the probabilities of the windows completed and the
    /// speech boundaries crossed.
    pub fn push(
        &self,
        st: &mut VadStream,
        samples: &[f32],
    ) -> Result<(Vec<f32>, Vec<VadEvent>), String> {
        st.pending.extend_from_slice(samples);
        let mut probs = Vec::new();
        let mut events = Vec::new();
        let mut offset = 0;
        while st.pending.len() - offset >= WINDOW {
            let w: Vec<f32> = st.pending[offset..offset + WINDOW].to_vec();
            offset += WINDOW;
            let p = self.window(st, &w)?;
            probs.push(p);
            let ms = (st.windows - 1) * WINDOW as u64 * 1000 / u64::from(RATE);
            if p >= self.threshold {
                st.silence_windows = 0;
                st.last_speech_end_ms = st.windows * WINDOW as u64 * 1000 / u64::from(RATE);
                if !st.speaking {
                    st.speaking = true;
                    events.push(VadEvent::Started { ms });
                }
            } else if st.speaking && p < self.threshold - 0.15 {
                st.silence_windows += 1;
                if st.silence_windows >= HANGOVER_WINDOWS {
                    st.speaking = false;
                    st.silence_windows = 0;
                    events.push(VadEvent::Stopped {
                        ms: st.last_speech_end_ms,
                    });
                }
            }
        }
        st.pending.drain(..offset);
        Ok((probs, events))
    }

    /// Warm-up: one window of silence.
    pub fn warm(&self) -> Result<(), String> {
        let mut st = self.stream();
        self.window(&mut st, &[0.0; WINDOW]).map(|_| ())
    }
}

/// i16 PCM → f32 in [-1, 1].
pub fn pcm_to_f32(pcm: &[i16]) -> Vec<f32> {
    pcm.iter().map(|&s| f32::from(s) / 32768.0).collect()
}
