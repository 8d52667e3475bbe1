//! ONNX Runtime: loaded with dlopen at run time (`ort` `load-dynamic`), one environment per
//! process, sessions on the configured execution provider.
//!
//! CUDA is asked for with `error_on_failure`, so a missing CUDA provider library, driver or
//! device is an error we see: we log a warning, build the session on CPU, and the caller marks
//! `/health` degraded.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::session::Session;

use crate::config::{Provider, RuntimeConfig};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(
        "cannot load ONNX Runtime from {path}: {message} (set [runtime] library or ORT_DYLIB_PATH to a libonnxruntime.so >= 1.17; dev/setup puts one under ~/.cache/barnabee/inference/)"
    )]
    Load { path: PathBuf, message: String },
    #[error("ONNX Runtime environment: {0}")]
    Environment(String),
    #[error("cannot create a session for {path}: {message}")]
    Session { path: PathBuf, message: String },
}

/// What the engine ended up using.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    Cpu,
    Cuda,
    /// CUDA was configured but not usable; the reason.
    CpuFallback(String),
}

pub struct Engine {
    env: ort::environment::Environment,
    cfg: RuntimeConfig,
    pub library: PathBuf,
    /// The first CUDA failure, remembered so each later session goes straight to CPU.
    cuda_failed: Mutex<Option<String>>,
}

static ENGINE: OnceLock<std::sync::Arc<Engine>> = OnceLock::new();

/// The library path: config, then `$ORT_DYLIB_PATH`, then the dlopen search for `libonnxruntime.so`.
pub fn library_path(cfg: &RuntimeConfig) -> PathBuf {
    cfg.library
        .clone()
        .or_else(|| std::env::var_os("ORT_DYLIB_PATH").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("libonnxruntime.so"))
}

impl Engine {
    /// Load ONNX Runtime once per process (later calls return the first engine).
    pub fn init(cfg: &RuntimeConfig) -> Result<std::sync::Arc<Engine>, EngineError> {
        if let Some(e) = ENGINE.get() {
            return Ok(e.clone());
        }
        let library = library_path(cfg);
        let builder = ort::init_from(&library).map_err(|e| EngineError::Load {
            path: library.clone(),
            message: e.to_string(),
        })?;
        let env = builder
            .with_name("barnabee-inference")
            .build()
            .map_err(|e| EngineError::Environment(e.to_string()))?;
        let engine = std::sync::Arc::new(Engine {
            env,
            cfg: cfg.clone(),
            library,
            cuda_failed: Mutex::new(None),
        });
        Ok(ENGINE.get_or_init(|| engine).clone())
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.cfg
    }

    /// The runtime's version (`1.22.1`): from the resolved library file name
    /// (`libonnxruntime.so.1.22.1`), else the build info's release branch.
    pub fn version(&self) -> String {
        let from_name = std::fs::canonicalize(&self.library)
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .and_then(|n| n.strip_prefix("libonnxruntime.so.").map(str::to_owned));
        from_name
            .or_else(|| {
                ort::info()
                    .split(',')
                    .find_map(|p| p.trim().strip_prefix("git-branch=rel-"))
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| "unknown".into())
    }

    /// Create a session on the configured provider; with `gpu == false` always on CPU.
    pub fn session(&self, path: &Path, gpu: bool) -> Result<(Session, Placement), EngineError> {
        let err = |message: String| EngineError::Session {
            path: path.to_owned(),
            message,
        };
        let want_cuda = gpu && self.cfg.provider == Provider::Cuda;
        let known_failure = self
            .cuda_failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if want_cuda && known_failure.is_none() {
            let attempt = Session::builder(&self.env)
                .map_err(|e| e.to_string())
                .and_then(|b| {
                    b.with_intra_threads(self.cfg.intra_threads)
                        .map_err(|e| e.to_string())
                })
                .and_then(|b| {
                    b.with_execution_providers([ort::ep::CUDA::default()
                        .with_device_id(self.cfg.cuda_device)
                        .build()
                        .error_on_failure()])
                        .map_err(|e| e.to_string())
                })
                .and_then(|mut b| b.commit_from_file(path).map_err(|e| e.to_string()));
            match attempt {
                Ok(s) => return Ok((s, Placement::Cuda)),
                Err(reason) => {
                    log::warn!(event = "cuda_fallback", path = path.display().to_string(); "CUDA execution provider unusable, falling back to CPU: {reason}");
                    *self.cuda_failed.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason);
                }
            }
        }
        let mut b = Session::builder(&self.env)
            .map_err(|e| err(e.to_string()))?
            .with_intra_threads(self.cfg.intra_threads)
            .map_err(|e| err(e.to_string()))?
            .with_inter_threads(1)
            .map_err(|e| err(e.to_string()))?;
        let s = b.commit_from_file(path).map_err(|e| err(e.to_string()))?;
        let failure = self
            .cuda_failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        Ok(match (want_cuda, failure) {
            (true, Some(reason)) => (s, Placement::CpuFallback(reason)),
            _ => (s, Placement::Cpu),
        })
    }
}

/// Check a session's input names against what the processing code feeds it.
pub fn expect_inputs(session: &Session, names: &[&str]) -> Result<(), String> {
    let have: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
    for n in names {
        if !have.contains(n) {
            return Err(format!("model has no input `{n}` (inputs: {have:?})"));
        }
    }
    Ok(())
}

/// Run a session and map ORT errors to strings (the callers wrap them with the model name).
pub fn ort_err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Copy a named f32 output (shape, values) out of the session's outputs.
pub fn output_f32(
    outs: &ort::session::SessionOutputs<'_>,
    name: &str,
) -> Result<(Vec<i64>, Vec<f32>), String> {
    let v = outs
        .get(name)
        .ok_or_else(|| format!("model produced no output `{name}`"))?;
    let (shape, data) = v
        .try_extract_tensor::<f32>()
        .map_err(|e| format!("output `{name}`: {e}"))?;
    Ok((shape.to_vec(), data.to_vec()))
}

/// Names of a session's outputs, in order.
pub fn output_names(session: &Session) -> Vec<String> {
    session
        .outputs()
        .iter()
        .map(|o| o.name().to_owned())
        .collect()
}

/// Declared shape of input `idx` (`-1` for dynamic axes).
pub fn input_shape(session: &Session, idx: usize) -> Option<Vec<i64>> {
    session
        .inputs()
        .get(idx)?
        .dtype()
        .tensor_shape()
        .map(|s| s.to_vec())
}

/// Lock a session mutex; a poisoned lock only means a panic elsewhere mid-run.
pub fn lock(s: &Mutex<Session>) -> std::sync::MutexGuard<'_, Session> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}
