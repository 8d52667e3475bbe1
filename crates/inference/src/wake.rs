//! Wake words with the openWakeWord pipeline: melspectrogram → embedding → wake heads.
//!
//! - `melspectrogram.onnx` takes 16 kHz audio in **int16 scale** (not normalised), `[1, n]`,
//!   and gives `[1, 1, frames, 32]`, one frame per 160 samples; we apply `x / 10 + 2` as
//!   openWakeWord does.
//! - Audio is processed in 1280-sample (80 ms) steps; each step runs the mel model over the step
//!   plus the previous 480 samples (the STFT overlap), which yields 8 new frames.
//! - `embedding_model.onnx` takes the last 76 mel frames `[1, 76, 32, 1]` → 96 features.
//! - Each wake head takes the last N embeddings `[1, N, 96]` (N from its input shape, 16 for
//!   most) → score in [0, 1].
//!
//! A detection fires when a score reaches the threshold, at most once per `refractory` per word.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use ort::session::Session;
use ort::value::Tensor;

use crate::engine::{self, lock, output_f32, output_names};

pub const STEP: usize = 1280;
const OVERLAP: usize = 480;
const MEL_BINS: usize = 32;
const EMB_WINDOW: usize = 76;
const EMB_DIM: usize = 96;

pub struct Head {
    pub name: String,
    session: Mutex<Session>,
    input: String,
    output: String,
    window: usize,
}

pub struct Wake {
    mel: Mutex<Session>,
    mel_out: String,
    emb: Mutex<Session>,
    emb_in: String,
    emb_out: String,
    pub heads: Vec<Head>,
    pub threshold: f32,
    pub refractory_ms: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub name: String,
    pub score: f32,
    /// Milliseconds from the start of the stream to the end of the step that fired.
    pub ms: u64,
}

pub struct WakeStream {
    /// The last OVERLAP samples before the pending ones (int16 scale).
    tail: Vec<f32>,
    pending: Vec<f32>,
    mel: VecDeque<[f32; MEL_BINS]>,
    emb: VecDeque<[f32; EMB_DIM]>,
    samples: u64,
    last_fire: BTreeMap<String, u64>,
    /// Best score seen per word (for `not-detected` diagnostics and tests).
    pub best: BTreeMap<String, f32>,
    /// Only these words (empty: all).
    pub names: Vec<String>,
}

impl Wake {
    pub fn new(
        mel: Session,
        emb: Session,
        heads: Vec<(String, Session)>,
        threshold: Option<f32>,
        refractory_s: Option<f64>,
    ) -> Result<Wake, String> {
        engine::expect_inputs(&mel, &["input"]).map_err(|e| format!("melspectrogram: {e}"))?;
        let mel_out = output_names(&mel)
            .into_iter()
            .next()
            .ok_or("melspectrogram: no output")?;
        let emb_in = emb
            .inputs()
            .first()
            .map(|i| i.name().to_owned())
            .ok_or("embedding: no input")?;
        let emb_out = output_names(&emb)
            .into_iter()
            .next()
            .ok_or("embedding: no output")?;
        match engine::input_shape(&emb, 0) {
            Some(s) if s.len() == 4 && (s[1] == EMB_WINDOW as i64 || s[1] < 0) => {}
            other => {
                return Err(format!(
                    "embedding: expected input shape [n, 76, 32, 1], found {other:?}"
                ));
            }
        }
        let mut out = Vec::new();
        for (name, s) in heads {
            let input = s
                .inputs()
                .first()
                .map(|i| i.name().to_owned())
                .ok_or(format!("{name}: no input"))?;
            let output = output_names(&s)
                .into_iter()
                .next()
                .ok_or(format!("{name}: no output"))?;
            let window = match engine::input_shape(&s, 0) {
                Some(sh) if sh.len() == 3 && sh[2] == EMB_DIM as i64 => {
                    usize::try_from(sh[1]).ok().filter(|w| *w > 0).unwrap_or(16)
                }
                other => {
                    return Err(format!(
                        "wake head {name}: expected input shape [1, N, 96], found {other:?}"
                    ));
                }
            };
            out.push(Head {
                name,
                session: Mutex::new(s),
                input,
                output,
                window,
            });
        }
        Ok(Wake {
            mel: Mutex::new(mel),
            mel_out,
            emb: Mutex::new(emb),
            emb_in,
            emb_out,
            heads: out,
            threshold: threshold.unwrap_or(0.5),
            refractory_ms: (refractory_s.unwrap_or(2.0) * 1000.0) as u64,
        })
    }

    pub fn stream(&self, names: Vec<String>) -> WakeStream {
        WakeStream {
            tail: vec![0.0; OVERLAP],
            pending: Vec::with_capacity(STEP * 2),
            mel: VecDeque::new(),
            emb: VecDeque::new(),
            samples: 0,
            last_fire: BTreeMap::new(),
            best: BTreeMap::new(),
            names,
        }
    }

    pub fn names(&self) -> Vec<String> {
        self.heads.iter().map(|h| h.name.clone()).collect()
    }

    /// Feed 16 kHz i16 PCM; returns the detections that fired.
    pub fn push(&self, st: &mut WakeStream, pcm: &[i16]) -> Result<Vec<Detection>, String> {
        st.pending.extend(pcm.iter().map(|&s| f32::from(s)));
        let mut fired = Vec::new();
        while st.pending.len() >= STEP {
            let step: Vec<f32> = st.pending.drain(..STEP).collect();
            st.samples += STEP as u64;
            let mut audio = Vec::with_capacity(OVERLAP + STEP);
            audio.extend_from_slice(&st.tail);
            audio.extend_from_slice(&step);
            st.tail.copy_from_slice(&step[STEP - OVERLAP..]);
            self.step(st, audio, &mut fired)?;
        }
        Ok(fired)
    }

    fn step(
        &self,
        st: &mut WakeStream,
        audio: Vec<f32>,
        fired: &mut Vec<Detection>,
    ) -> Result<(), String> {
        let n = audio.len();
        let frames = {
            let mut s = lock(&self.mel);
            let input = Tensor::from_array(([1usize, n], audio)).map_err(engine::ort_err)?;
            let out = s
                .run(ort::inputs!["input" => input])
                .map_err(|e| format!("melspectrogram: {e}"))?;
            output_f32(&out, &self.mel_out)?.1
        };
        for f in frames.chunks_exact(MEL_BINS) {
            let mut row = [0.0; MEL_BINS];
            for (r, v) in row.iter_mut().zip(f) {
                *r = v / 10.0 + 2.0;
            }
            st.mel.push_back(row);
        }
        while st.mel.len() > EMB_WINDOW {
            st.mel.pop_front();
        }
        if st.mel.len() < EMB_WINDOW {
            return Ok(());
        }
        let window: Vec<f32> = st.mel.iter().flat_map(|r| r.iter().copied()).collect();
        let feat = {
            let mut s = lock(&self.emb);
            let input = Tensor::from_array(([1usize, EMB_WINDOW, MEL_BINS, 1], window))
                .map_err(engine::ort_err)?;
            let out = s
                .run(ort::inputs![self.emb_in.as_str() => input])
                .map_err(|e| format!("embedding: {e}"))?;
            output_f32(&out, &self.emb_out)?.1
        };
        let mut e = [0.0; EMB_DIM];
        if feat.len() != EMB_DIM {
            return Err(format!(
                "embedding: expected {EMB_DIM} features, got {}",
                feat.len()
            ));
        }
        e.copy_from_slice(&feat);
        st.emb.push_back(e);
        let keep = self.heads.iter().map(|h| h.window).max().unwrap_or(16);
        while st.emb.len() > keep {
            st.emb.pop_front();
        }
        let ms = st.samples * 1000 / 16_000;
        for h in &self.heads {
            if !st.names.is_empty() && !st.names.contains(&h.name) {
                continue;
            }
            if st.emb.len() < h.window {
                continue;
            }
            let x: Vec<f32> = st
                .emb
                .iter()
                .skip(st.emb.len() - h.window)
                .flat_map(|r| r.iter().copied())
                .collect();
            let score = {
                let mut s = lock(&h.session);
                let input = Tensor::from_array(([1usize, h.window, EMB_DIM], x))
                    .map_err(engine::ort_err)?;
                let out = s
                    .run(ort::inputs![h.input.as_str() => input])
                    .map_err(|e| format!("wake head {}: {e}", h.name))?;
                output_f32(&out, &h.output)?
                    .1
                    .first()
                    .copied()
                    .unwrap_or(0.0)
            };
            let best = st.best.entry(h.name.clone()).or_insert(0.0);
            *best = best.max(score);
            if score >= self.threshold {
                let recent = st
                    .last_fire
                    .get(&h.name)
                    .is_some_and(|&t| ms.saturating_sub(t) < self.refractory_ms);
                if !recent {
                    st.last_fire.insert(h.name.clone(), ms);
                    fired.push(Detection {
                        name: h.name.clone(),
                        score,
                        ms,
                    });
                }
            }
        }
        Ok(())
    }

    /// Warm-up: enough silence to run every head once.
    pub fn warm(&self) -> Result<(), String> {
        let mut st = self.stream(Vec::new());
        let need = (EMB_WINDOW / 8 + 17) * STEP;
        self.push(&mut st, &vec![0i16; need]).map(|_| ())
    }
}
