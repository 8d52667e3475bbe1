//! Local wake word and VAD (`[inference] mode = "local"`): barnabee-inference's own model
//! loading (SHA-256-pinned files, ort load-dynamic) and its `wake` / `vad` stream processing,
//! used as a library — not a copy. STT and TTS stay on the beast over Wyoming.
//!
//! Follow-up: move `vad`, `wake` (and what they need of `engine`/`registry`) into a shared
//! `crates/` library so that no daemon depends on another daemon's crate.

use std::path::Path;
use std::sync::Arc;

use barnabee_inference::config::{Kind, ModelConfig};
use barnabee_inference::registry::{Inner, Model};
use barnabee_inference::{engine::Engine, registry, vad, wake};

use crate::config::LocalConfig;

pub struct Local {
    wake: Arc<Model>,
    vad: Arc<Model>,
    wake_names: Vec<String>,
    wake_stream: Option<wake::WakeStream>,
    vad_stream: Option<vad::VadStream>,
}

/// A speech boundary from the local VAD, in ms from the start of the capture.
pub use barnabee_inference::vad::VadEvent;

fn load_one(
    engine: &Engine,
    mut cfg: ModelConfig,
    name: &str,
    kind: Kind,
    base: &Path,
) -> Result<Arc<Model>, String> {
    if cfg.kind != kind {
        return Err(format!(
            "[inference.local.{name}] must have kind = \"{}\"",
            kind.as_str()
        ));
    }
    cfg.name = name.to_owned();
    registry::load(engine, &cfg, base)
        .map(Arc::new)
        .map_err(|e| format!("local {name} model: {e}"))
}

impl Local {
    /// Load ONNX Runtime and both models (blocking; call before serving).
    pub fn load(cfg: &LocalConfig, base: &Path, wake_names: Vec<String>) -> Result<Local, String> {
        let engine = Engine::init(&cfg.runtime).map_err(|e| format!("local ONNX Runtime: {e}"))?;
        Ok(Local {
            wake: load_one(&engine, cfg.wake.clone(), "wake", Kind::Wake, base)?,
            vad: load_one(&engine, cfg.vad.clone(), "vad", Kind::Vad, base)?,
            wake_names,
            wake_stream: None,
            vad_stream: None,
        })
    }

    /// Feed one frame to the wake word detector; the first detection (name, score).
    pub fn wake_push(&mut self, pcm: &[i16]) -> Result<Option<(String, f32)>, String> {
        let Inner::Wake(w) = &self.wake.inner else {
            return Err("local wake model is not a wake model".into());
        };
        let st = self
            .wake_stream
            .get_or_insert_with(|| w.stream(self.wake_names.clone()));
        let dets = tokio::task::block_in_place(|| w.push(st, pcm))?;
        Ok(dets.into_iter().next().map(|d| (d.name, d.score)))
    }

    /// Start a fresh wake stream (after a detection).
    pub fn wake_reset(&mut self) {
        self.wake_stream = None;
    }

    /// Feed one capture frame to the VAD (a fresh stream per capture: call `vad_reset`).
    pub fn vad_push(&mut self, pcm: &[i16]) -> Result<Vec<VadEvent>, String> {
        let Inner::Vad(v) = &self.vad.inner else {
            return Err("local VAD model is not a VAD model".into());
        };
        let st = self.vad_stream.get_or_insert_with(|| v.stream());
        let f = vad::pcm_to_f32(pcm);
        tokio::task::block_in_place(|| v.push(st, &f)).map(|(_, ev)| ev)
    }

    pub fn vad_reset(&mut self) {
        self.vad_stream = None;
    }
}
