//! The model registry: every configured model's files verified against their SHA-256, sessions
//! created on the configured provider and warmed up, before the daemon says READY.
//!
//! A model that fails (missing file, hash mismatch, wrong inputs, warm-up error) is left out
//! with a clear error naming the model and the path; the other models keep serving and
//! `/health` shows the failure.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use sha2::{Digest, Sha256};

use crate::config::{FileSpec, Kind, ModelConfig, SttFamily};
use crate::engine::{Engine, Placement};
use crate::{speaker, stt, textembed, tts, vad, wake, whisper};

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model {model}: file `{role}` {path} cannot be read: {reason}")]
    Missing {
        model: String,
        role: String,
        path: PathBuf,
        reason: String,
    },
    #[error(
        "model {model}: file `{role}` {path} has SHA-256 {actual}, expected {expected} (wrong or corrupted file; refusing to load it)"
    )]
    HashMismatch {
        model: String,
        role: String,
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("model {model}: {path}: {message}")]
    Session {
        model: String,
        path: PathBuf,
        message: String,
    },
    #[error("model {model}: {message}")]
    Invalid { model: String, message: String },
}

pub enum Inner {
    Vad(vad::Vad),
    Wake(wake::Wake),
    Stt(stt::Stt),
    Tts(tts::Tts),
    Speaker(speaker::Speaker),
    TextEmbedding(textembed::TextEmbedder),
}

pub struct Model {
    pub name: String,
    pub kind: Kind,
    pub languages: Vec<String>,
    pub placement: Placement,
    pub load_ms: f64,
    pub vram_mb: u64,
    pub inner: Inner,
}

#[derive(Default)]
pub struct Registry {
    pub models: BTreeMap<String, Arc<Model>>,
    /// Model name → why it is not loaded.
    pub failures: BTreeMap<String, String>,
}

impl Registry {
    /// The first loaded model of a kind, or the named one.
    pub fn find(&self, kind: Kind, name: Option<&str>) -> Option<Arc<Model>> {
        self.models
            .values()
            .find(|m| m.kind == kind && name.is_none_or(|n| n == m.name))
            .cloned()
    }

    pub fn of_kind(&self, kind: Kind) -> Vec<Arc<Model>> {
        self.models
            .values()
            .filter(|m| m.kind == kind)
            .cloned()
            .collect()
    }
}

/// Hash a file (streaming); `Err` is the I/O error text.
pub fn sha256_file(path: &Path) -> Result<String, String> {
    let mut f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Resolve (relative to `base`) and verify one file.
pub fn verify(
    model: &str,
    role: &str,
    spec: &FileSpec,
    base: &Path,
) -> Result<PathBuf, ModelError> {
    let path = if spec.path.is_absolute() {
        spec.path.clone()
    } else {
        base.join(&spec.path)
    };
    let actual = sha256_file(&path).map_err(|reason| ModelError::Missing {
        model: model.into(),
        role: role.into(),
        path: path.clone(),
        reason,
    })?;
    if !actual.eq_ignore_ascii_case(&spec.sha256) {
        return Err(ModelError::HashMismatch {
            model: model.into(),
            role: role.into(),
            path,
            expected: spec.sha256.to_lowercase(),
            actual,
        });
    }
    Ok(path)
}

/// Load, check and warm one model.
pub fn load(engine: &Engine, cfg: &ModelConfig, base: &Path) -> Result<Model, ModelError> {
    load_placed(engine, cfg, base, None)
}

/// [`load`], but on CPU when `cpu_because` says why the GPU cannot take the model now
/// (admission control at load time: not enough free VRAM, GPU too hot).
pub fn load_placed(
    engine: &Engine,
    cfg: &ModelConfig,
    base: &Path,
    cpu_because: Option<String>,
) -> Result<Model, ModelError> {
    let start = Instant::now();
    let mut paths = BTreeMap::new();
    for (role, spec) in &cfg.files {
        paths.insert(role.clone(), verify(&cfg.name, role, spec, base)?);
    }
    let gpu = cfg.gpu.unwrap_or(true) && cpu_because.is_none();
    let mut placement = match cpu_because {
        Some(reason) => Placement::CpuFallback(reason),
        None => Placement::Cpu,
    };
    let mut session = |role: &str| -> Result<ort::session::Session, ModelError> {
        let path = paths.get(role).cloned().unwrap_or_default();
        let (s, p) = engine
            .session(&path, gpu)
            .map_err(|e| ModelError::Session {
                model: cfg.name.clone(),
                path: path.clone(),
                message: e.to_string(),
            })?;
        if p != Placement::Cpu {
            placement = p;
        }
        Ok(s)
    };
    let invalid = |message: String| ModelError::Invalid {
        model: cfg.name.clone(),
        message,
    };
    let inner = match cfg.kind {
        Kind::Vad => {
            let v = vad::Vad::new(session("model")?, cfg.threshold).map_err(invalid)?;
            v.warm().map_err(|e| invalid(format!("warm-up: {e}")))?;
            Inner::Vad(v)
        }
        Kind::Wake => {
            let mel = session("melspectrogram")?;
            let emb = session("embedding")?;
            let mut heads = Vec::new();
            for role in cfg.files.keys() {
                if role != "melspectrogram" && role != "embedding" {
                    heads.push((role.clone(), session(role)?));
                }
            }
            let w =
                wake::Wake::new(mel, emb, heads, cfg.threshold, cfg.refractory).map_err(invalid)?;
            w.warm().map_err(|e| invalid(format!("warm-up: {e}")))?;
            Inner::Wake(w)
        }
        Kind::Stt => {
            let path = |role: &str| paths.get(role).cloned().unwrap_or_default();
            let s = match cfg.stt_family() {
                SttFamily::Parakeet => {
                    let enc = session("encoder")?;
                    let dec = session("decoder_joint")?;
                    stt::Stt::Parakeet(
                        stt::Parakeet::new(enc, dec, &path("vocab")).map_err(invalid)?,
                    )
                }
                SttFamily::Whisper => {
                    let enc = session("encoder")?;
                    let dec = session("decoder")?;
                    stt::Stt::Whisper(Box::new(
                        whisper::Whisper::new(
                            enc,
                            dec,
                            &path("tokenizer"),
                            &path("generation_config"),
                            cfg.languages.first().map(String::as_str),
                            cfg.max_tokens,
                        )
                        .map_err(invalid)?,
                    ))
                }
            };
            s.warm().map_err(|e| invalid(format!("warm-up: {e}")))?;
            Inner::Stt(s)
        }
        Kind::Tts => {
            let m = session("model")?;
            let conf = paths.get("config").cloned().unwrap_or_default();
            let t = tts::Tts::new(
                m,
                &conf,
                cfg.espeak_voice.clone(),
                engine.config().espeak_ng.clone(),
                tts::Scales {
                    noise_scale: cfg.noise_scale,
                    length_scale: cfg.length_scale,
                    noise_w: cfg.noise_w,
                },
            )
            .map_err(invalid)?;
            t.warm().map_err(|e| invalid(format!("warm-up: {e}")))?;
            Inner::Tts(t)
        }
        Kind::Speaker => {
            let s = speaker::Speaker::new(session("model")?, cfg.speaker_family(), cfg.threshold)
                .map_err(invalid)?;
            s.warm().map_err(|e| invalid(format!("warm-up: {e}")))?;
            Inner::Speaker(s)
        }
        Kind::TextEmbedding => {
            let m = session("model")?;
            let vocab = paths.get("vocab").cloned().unwrap_or_default();
            let t = textembed::TextEmbedder::new(m, &vocab).map_err(invalid)?;
            t.warm().map_err(|e| invalid(format!("warm-up: {e}")))?;
            Inner::TextEmbedding(t)
        }
    };
    Ok(Model {
        name: cfg.name.clone(),
        kind: cfg.kind,
        languages: if cfg.languages.is_empty() {
            vec!["en".into()]
        } else {
            cfg.languages.clone()
        },
        placement,
        load_ms: start.elapsed().as_secs_f64() * 1000.0,
        vram_mb: cfg.vram_mb.unwrap_or(0),
        inner,
    })
}
