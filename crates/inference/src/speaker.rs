//! Speaker embeddings (WeSpeaker / 3D-Speaker style): 80-bin Kaldi fbank with mean
//! normalisation → model `[1, T, 80]` → `[1, D]` → L2-normalised vector; cosine similarity
//! against enrolled centroids is the caller's (the voice daemon's) job.

use std::sync::Mutex;

use ort::session::Session;
use ort::value::Tensor;

use crate::engine::{self, lock, output_f32};
use crate::features;

pub struct Speaker {
    session: Mutex<Session>,
    input: String,
    output: String,
    n_mels: usize,
    pub threshold: f32,
}

impl Speaker {
    pub fn new(session: Session, threshold: Option<f32>) -> Result<Speaker, String> {
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
                return Err(format!(
                    "speaker model input `{input}` must be [1, T, n_mels], found {shape:?}"
                ));
            }
        };
        Ok(Speaker {
            session: Mutex::new(session),
            input,
            output,
            n_mels,
            threshold: threshold.unwrap_or(0.6),
        })
    }

    /// Embed 16 kHz samples in [-1, 1]; needs at least 0.5 s.
    pub fn embed(&self, samples: &[f32]) -> Result<Vec<f32>, String> {
        if samples.len() < 8000 {
            return Err(format!(
                "speaker embedding needs at least 0.5 s of audio, got {} samples",
                samples.len()
            ));
        }
        let scaled: Vec<f32> = samples.iter().map(|s| s * 32768.0).collect();
        let (fb, frames) = features::fbank(&scaled, self.n_mels);
        let x = Tensor::from_array(([1usize, frames, self.n_mels], fb)).map_err(engine::ort_err)?;
        let mut s = lock(&self.session);
        let out = s
            .run(ort::inputs![self.input.as_str() => x])
            .map_err(|e| format!("speaker model: {e}"))?;
        let (_, mut v) = output_f32(&out, &self.output)?;
        l2_normalise(&mut v);
        Ok(v)
    }

    pub fn warm(&self) -> Result<(), String> {
        let noise: Vec<f32> = (0..16_000)
            .map(|i| ((i * 7919) % 200) as f32 / 2000.0 - 0.05)
            .collect();
        self.embed(&noise).map(|_| ())
    }
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
