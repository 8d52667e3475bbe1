//! Speech to text: [`Stt`] is one of the families (`family` in the model's config), each
//! turning 16 kHz samples into a [`Transcript`] with per-stage timings. Whisper is in
//! [`crate::whisper`]; this file has the family switch and Parakeet.
//!
//! [`Parakeet`]: NVIDIA Parakeet TDT (the NeMo export used by onnx-asr / sherpa-onnx):
//!
//! - features: [`crate::features::nemo_mel`] (`n_mels` read from the encoder's input shape),
//! - `encoder`: `audio_signal` f32 `[1, n_mels, T]`, `length` i64 `[1]` → `outputs` f32
//!   `[1, D, T']`, `encoded_lengths` i64 `[1]`,
//! - `decoder_joint`: `encoder_outputs` f32 `[1, D, 1]`, `targets` i32 `[1, 1]`,
//!   `target_length` i32 `[1]`, `input_states_1`/`input_states_2` f32 `[L, 1, H]` →
//!   `outputs` f32 `[1, 1, 1, V + 1 + durations]` (token logits incl. blank, then duration
//!   logits), `output_states_1`/`output_states_2`,
//! - `vocab`: `token id` lines (`▁` marks a word start); the blank is the last id.
//!
//! TDT greedy decoding: at each encoder frame take the best token and the best duration; a
//! non-blank token is emitted and advances the prediction network; the frame pointer moves by
//! the predicted duration (or by one frame after a blank / too many symbols on one frame).

use std::path::Path;
use std::sync::Mutex;

use ort::session::Session;
use ort::value::Tensor;

use crate::config::SttFamily;
use crate::engine::{self, lock, output_f32};
use crate::features;

const DURATIONS: [usize; 5] = [0, 1, 2, 3, 4];
const MAX_SYMBOLS_PER_FRAME: usize = 10;

/// A loaded speech-to-text model of either family.
pub enum Stt {
    Parakeet(Parakeet),
    Whisper(Box<crate::whisper::Whisper>),
}

impl Stt {
    pub fn family(&self) -> SttFamily {
        match self {
            Stt::Parakeet(_) => SttFamily::Parakeet,
            Stt::Whisper(_) => SttFamily::Whisper,
        }
    }

    /// Transcribe 16 kHz mono samples in [-1, 1] in the model's language.
    pub fn transcribe(&self, samples: &[f32]) -> Result<Transcript, String> {
        self.transcribe_in(samples, None)
    }

    /// Transcribe in `language` where the model can choose (multilingual Whisper); other
    /// models ignore it.
    pub fn transcribe_in(
        &self,
        samples: &[f32],
        language: Option<&str>,
    ) -> Result<Transcript, String> {
        match self {
            Stt::Parakeet(p) => p.transcribe(samples),
            Stt::Whisper(w) => w.transcribe(samples, language),
        }
    }

    pub fn warm(&self) -> Result<(), String> {
        match self {
            Stt::Parakeet(p) => p.warm(),
            Stt::Whisper(w) => w.warm(),
        }
    }

    /// Details for `/v1/models`.
    pub fn describe(&self) -> serde_json::Value {
        match self {
            Stt::Parakeet(_) => serde_json::json!({"family": "parakeet"}),
            Stt::Whisper(w) => serde_json::json!({
                "family": "whisper",
                "multilingual": w.multilingual(),
                "language": w.language,
                "max_tokens": w.max_tokens,
            }),
        }
    }
}

pub struct Parakeet {
    encoder: Mutex<Session>,
    decoder: Mutex<Session>,
    vocab: Vec<String>,
    blank: usize,
    n_mels: usize,
    state_shape: [usize; 3],
}

/// A transcript with per-stage timings.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Transcript {
    pub text: String,
    pub tokens: Vec<usize>,
    /// Encoder frame of each emitted token (Parakeet; empty for Whisper).
    pub frames: Vec<usize>,
    pub features_ms: f64,
    pub encoder_ms: f64,
    pub decoder_ms: f64,
}

/// Read a `token id` vocabulary; ids must be 0..n in any order.
pub fn read_vocab(path: &Path) -> Result<Vec<String>, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("vocab {}: {e}", path.display()))?;
    let mut pairs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let (tok, id) = line.rsplit_once(' ').ok_or_else(|| {
            format!(
                "vocab {} line {}: expected `token id`",
                path.display(),
                i + 1
            )
        })?;
        let id: usize = id
            .trim()
            .parse()
            .map_err(|_| format!("vocab {} line {}: bad id {id:?}", path.display(), i + 1))?;
        pairs.push((id, tok.to_owned()));
    }
    pairs.sort();
    if pairs.iter().enumerate().any(|(i, (id, _))| *id != i) || pairs.is_empty() {
        return Err(format!(
            "vocab {}: ids must run 0..n without gaps",
            path.display()
        ));
    }
    Ok(pairs.into_iter().map(|(_, t)| t).collect())
}

impl Parakeet {
    pub fn new(encoder: Session, decoder: Session, vocab: &Path) -> Result<Parakeet, String> {
        engine::expect_inputs(&encoder, &["audio_signal", "length"])
            .map_err(|e| format!("encoder: {e}"))?;
        engine::expect_inputs(
            &decoder,
            &[
                "encoder_outputs",
                "targets",
                "target_length",
                "input_states_1",
                "input_states_2",
            ],
        )
        .map_err(|e| format!("decoder_joint: {e}"))?;
        let n_mels = engine::input_shape(&encoder, 0)
            .and_then(|s| s.get(1).copied())
            .and_then(|d| usize::try_from(d).ok())
            .ok_or("encoder: audio_signal must have a fixed mel dimension [1, n_mels, T]")?;
        let idx = decoder
            .inputs()
            .iter()
            .position(|i| i.name() == "input_states_1")
            .unwrap_or(3);
        let st = engine::input_shape(&decoder, idx).unwrap_or_default();
        if st.len() != 3 || st[0] <= 0 || st[2] <= 0 {
            return Err(format!(
                "decoder_joint: input_states_1 must be [layers, 1, hidden], found {st:?}"
            ));
        }
        let vocab = read_vocab(vocab)?;
        let blank = vocab.len() - 1;
        Ok(Parakeet {
            encoder: Mutex::new(encoder),
            decoder: Mutex::new(decoder),
            blank,
            vocab,
            n_mels,
            state_shape: [st[0] as usize, 1, st[2] as usize],
        })
    }

    /// Transcribe 16 kHz mono samples in [-1, 1].
    pub fn transcribe(&self, samples: &[f32]) -> Result<Transcript, String> {
        let t0 = std::time::Instant::now();
        let (feats, frames) = features::nemo_mel(samples, self.n_mels);
        let features_ms = t0.elapsed().as_secs_f64() * 1e3;
        let t1 = std::time::Instant::now();
        let (enc_shape, enc) = {
            let mut s = lock(&self.encoder);
            let x = Tensor::from_array(([1usize, self.n_mels, frames], feats))
                .map_err(engine::ort_err)?;
            let len = Tensor::from_array((
                [1usize],
                vec![features::nemo_valid_frames(samples.len()) as i64],
            ))
            .map_err(engine::ort_err)?;
            let out = s
                .run(ort::inputs!["audio_signal" => x, "length" => len])
                .map_err(|e| format!("encoder: {e}"))?;
            let (shape, data) = output_f32(&out, "outputs")?;
            let lens = out
                .get("encoded_lengths")
                .and_then(|v| v.try_extract_tensor::<i64>().ok().map(|(_, d)| d.to_vec()));
            let mut shape = shape;
            if let (Some(l), 3) = (lens.and_then(|l| l.first().copied()), shape.len()) {
                shape.push(l);
            }
            (shape, data)
        };
        let encoder_ms = t1.elapsed().as_secs_f64() * 1e3;
        if enc_shape.len() < 3 {
            return Err(format!(
                "encoder: expected output [1, D, T'], got {enc_shape:?}"
            ));
        }
        let (d, tp) = (enc_shape[1] as usize, enc_shape[2] as usize);
        let valid = enc_shape
            .get(3)
            .map_or(tp, |&l| (l.max(0) as usize).min(tp));
        let t2 = std::time::Instant::now();
        let (tokens, at) = self.decode(&enc, d, tp, valid)?;
        let decoder_ms = t2.elapsed().as_secs_f64() * 1e3;
        Ok(Transcript {
            text: self.detokenize(&tokens),
            tokens,
            frames: at,
            features_ms,
            encoder_ms,
            decoder_ms,
        })
    }

    fn decode(
        &self,
        enc: &[f32],
        d: usize,
        tp: usize,
        valid: usize,
    ) -> Result<(Vec<usize>, Vec<usize>), String> {
        let n_state: usize = self.state_shape.iter().product();
        let mut s1 = vec![0.0f32; n_state];
        let mut s2 = vec![0.0f32; n_state];
        let mut tokens = Vec::new();
        let mut at = Vec::new();
        let mut t = 0;
        let mut emitted = 0;
        let mut dec = lock(&self.decoder);
        let n_tok = self.vocab.len();
        while t < valid {
            let frame: Vec<f32> = (0..d).map(|k| enc[k * tp + t]).collect();
            let last = tokens.last().copied().unwrap_or(self.blank) as i32;
            let x = Tensor::from_array(([1usize, d, 1], frame)).map_err(engine::ort_err)?;
            let tg = Tensor::from_array(([1usize, 1], vec![last])).map_err(engine::ort_err)?;
            let tl = Tensor::from_array(([1usize], vec![1i32])).map_err(engine::ort_err)?;
            let i1 = Tensor::from_array((self.state_shape, s1.clone())).map_err(engine::ort_err)?;
            let i2 = Tensor::from_array((self.state_shape, s2.clone())).map_err(engine::ort_err)?;
            let out = dec
                .run(ort::inputs![
                    "encoder_outputs" => x, "targets" => tg, "target_length" => tl,
                    "input_states_1" => i1, "input_states_2" => i2
                ])
                .map_err(|e| format!("decoder_joint: {e}"))?;
            let (_, logits) = output_f32(&out, "outputs")?;
            if logits.len() < n_tok + DURATIONS.len() {
                return Err(format!(
                    "decoder_joint: {} logits, expected {} tokens + {} durations",
                    logits.len(),
                    n_tok,
                    DURATIONS.len()
                ));
            }
            let token = argmax(&logits[..n_tok]);
            let step = DURATIONS[argmax(&logits[n_tok..n_tok + DURATIONS.len()])];
            if token != self.blank {
                s1 = output_f32(&out, "output_states_1")?.1;
                s2 = output_f32(&out, "output_states_2")?.1;
                tokens.push(token);
                at.push(t);
                emitted += 1;
            }
            if step > 0 {
                t += step;
                emitted = 0;
            } else if token == self.blank || emitted >= MAX_SYMBOLS_PER_FRAME {
                t += 1;
                emitted = 0;
            }
        }
        Ok((tokens, at))
    }

    fn detokenize(&self, tokens: &[usize]) -> String {
        let s: String = tokens
            .iter()
            .filter_map(|&t| self.vocab.get(t))
            .map(|t| t.replace('\u{2581}', " "))
            .collect();
        s.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    pub fn warm(&self) -> Result<(), String> {
        self.transcribe(&[0.0; 16_000]).map(|_| ())
    }
}

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i)
}
