//! barnabee-inference: the model server on the beast.
//!
//! It loads ONNX models (VAD, wake word, STT (Parakeet or Whisper), TTS, speaker and text embeddings) from the
//! registry in its config, verifies each file's SHA-256, creates and warms the sessions before
//! `READY=1`, and serves them over HTTP (`/v1/...`, for the voice daemon and tools) and the
//! Wyoming protocol (TCP, for a stock Home Assistant). An NVML thread watches the GPU; admission
//! control sheds GPU work (503 + reason) when VRAM or temperature say no.
//!
//! ## ONNX Runtime and the `ort` API level
//!
//! `ort` 2.0.0-rc.15 with `load-dynamic`: `libonnxruntime.so` is opened at run time from
//! `[runtime] library`, else `$ORT_DYLIB_PATH`, else the dlopen search path, with
//! `ort::init_from` (an error, not the panic implicit loading gives). The `api-N` feature sets
//! the oldest runtime `ort` accepts (1.N). rc.15 offers `api-17` … `api-31`; the default
//! `api-31` refuses nixpkgs' onnxruntime 1.22 (measured in shared/docs/crates.md), and
//! `api-22` was seen to abort inside 1.22.1. What the gated APIs add (api-18 custom operator
//! kernels, api-20 LoRA adapters and run-option extras, api-22+ EP devices, compilation,
//! editor) is nothing this crate uses, so we build with **`api-17`**, the lowest level, which
//! accepts every runtime from 1.17 on; the tests run against the 1.22.1 wheel library, the
//! deployed minor (the whole suite also passed with `ORT_DYLIB_PATH` at the 1.32.0 wheel's).
//! `ort` loads one runtime per process, so [`engine::Engine`] is a process-wide singleton
//! (tests rely on nextest's process per test). The `cuda` feature only adds the CUDA EP type (with `load-dynamic` it links
//! nothing); whether CUDA works is decided at run time, with a CPU fallback.

pub mod api;
pub mod config;
pub mod engine;
pub mod features;
pub mod gpu;
pub mod registry;
pub mod speaker;
pub mod stt;
pub mod textembed;
pub mod tts;
pub mod vad;
pub mod wake;
pub mod wav;
pub mod whisper;
pub use barnabee_wyoming as wyoming;
pub mod wyoming_server;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use barnabee_service::{Check, Runtime};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use tokio::sync::Semaphore;

use crate::config::{Config, Kind};
use crate::engine::{Engine, Placement};
use crate::registry::{Inner, Model, Registry};

type Labels = Vec<(String, String)>;

/// The daemon's own metrics.
#[derive(Clone)]
pub struct AppMetrics {
    pub stt_latency: Histogram,
    pub tts_latency: Histogram,
    pub load_ms: Family<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    pub requests: Family<Labels, Counter>,
    pub shed: Family<Labels, Counter>,
}

fn latency_buckets() -> impl Iterator<Item = f64> {
    [
        5.0, 10.0, 25.0, 50.0, 100.0, 150.0, 200.0, 300.0, 500.0, 1000.0, 2000.0, 5000.0,
    ]
    .into_iter()
}

impl AppMetrics {
    pub fn new(m: &barnabee_service::metrics::Metrics) -> AppMetrics {
        let a = AppMetrics {
            stt_latency: Histogram::new(latency_buckets()),
            tts_latency: Histogram::new(latency_buckets()),
            load_ms: Family::default(),
            requests: Family::default(),
            shed: Family::default(),
        };
        use barnabee_service::catalog;
        m.register_def(&catalog::INFERENCE_STT_LATENCY, a.stt_latency.clone());
        m.register_def(&catalog::INFERENCE_TTS_LATENCY, a.tts_latency.clone());
        m.register_def(&catalog::INFERENCE_MODEL_LOAD, a.load_ms.clone());
        m.register_def(&catalog::INFERENCE_REQUESTS, a.requests.clone());
        m.register_def(&catalog::INFERENCE_SHED, a.shed.clone());
        a
    }

    pub fn count(&self, kind: Kind, outcome: &str) {
        self.requests
            .get_or_create(&vec![
                ("kind".into(), kind.as_str().into()),
                ("outcome".into(), outcome.into()),
            ])
            .inc();
    }
}

/// Errors of the inference API (HTTP status and Wyoming `error` code follow the variant).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("no {0} model is loaded")]
    NoModel(&'static str),
    #[error("busy: {0}")]
    Busy(String),
    #[error("bad input: {0}")]
    BadInput(String),
    #[error("inference failed: {0}")]
    Failed(String),
}

/// Everything the HTTP and Wyoming handlers share.
pub struct App {
    pub registry: Registry,
    pub admission: gpu::Admission,
    pub limiter: Semaphore,
    pub metrics: AppMetrics,
    pub cfg: Config,
    pub wyoming_addr: std::sync::Mutex<Option<SocketAddr>>,
}

impl App {
    pub fn model(&self, kind: Kind, name: Option<&str>) -> Result<Arc<Model>, ApiError> {
        self.registry
            .find(kind, name)
            .ok_or(ApiError::NoModel(kind.as_str()))
    }

    /// Admission (GPU headroom and temperature) plus the concurrency limit; then run `f` on a
    /// blocking thread.
    pub async fn run_model<T, F>(&self, model: Arc<Model>, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Model) -> Result<T, String> + Send + 'static,
    {
        if model.placement == Placement::Cuda
            && let Err(reason) = self.admission.admit(model.vram_mb).await
        {
            self.metrics
                .shed
                .get_or_create(&vec![(
                    "reason".into(),
                    if reason.contains("°C") {
                        "temperature"
                    } else {
                        "vram"
                    }
                    .into(),
                )])
                .inc();
            self.metrics.count(model.kind, "shed");
            return Err(ApiError::Busy(reason));
        }
        let permit = tokio::time::timeout(
            self.cfg.gpu.queue_wait.max(Duration::from_secs(30)),
            self.limiter.acquire(),
        )
        .await
        .map_err(|_| ApiError::Busy("too many requests in flight".into()))?
        .map_err(|_| ApiError::Busy("shutting down".into()))?;
        let kind = model.kind;
        let r = tokio::task::spawn_blocking(move || f(&model))
            .await
            .map_err(|e| ApiError::Failed(e.to_string()))?;
        drop(permit);
        self.metrics
            .count(kind, if r.is_ok() { "ok" } else { "error" });
        r.map_err(ApiError::Failed)
    }
}

/// Load ONNX Runtime and every configured model (before READY), reporting on `/health`.
pub fn load_models(
    cfg: &Config,
    base: &Path,
    rt: &Runtime,
    metrics: &AppMetrics,
    admission: &gpu::Admission,
) -> Registry {
    let health = rt.health();
    let mut registry = Registry::default();
    if cfg.models.is_empty() {
        health.component("onnxruntime", Check::ok("not loaded: no models configured"));
        health.component("models", Check::ok("no models configured"));
        return registry;
    }
    rt.extend_timeout(Duration::from_secs(60));
    let engine = match Engine::init(&cfg.runtime) {
        Ok(e) => {
            log::info!(library = e.library.display().to_string(); "ONNX Runtime {} loaded from {}", e.version(), e.library.display());
            health.component(
                "onnxruntime",
                Check::ok(format!("{} from {}", e.version(), e.library.display())),
            );
            e
        }
        Err(e) => {
            log::error!(event = "incident"; "{e}");
            health.component("onnxruntime", Check::fail(e.to_string()));
            for m in &cfg.models {
                registry.failures.insert(m.name.clone(), e.to_string());
            }
            health.component(
                "models",
                Check::fail(format!("no model loaded: {e}")).non_critical(),
            );
            return registry;
        }
    };
    let mut fallback = None;
    for m in &cfg.models {
        rt.status(&format!("loading model {} ({})", m.name, m.kind.as_str()));
        rt.extend_timeout(Duration::from_secs(120));
        let t = Instant::now();
        // admission at load time: a model the GPU cannot take now goes to CPU, said loudly
        let cpu_because = (cfg.runtime.provider == config::Provider::Cuda && m.gpu.unwrap_or(true))
            .then(|| admission.refusal(m.vram_mb.unwrap_or(0)))
            .flatten();
        if let Some(reason) = &cpu_because {
            log::warn!(model = m.name.as_str(), event = "gpu_admission"; "model {} loads on CPU: {reason}", m.name);
        }
        match registry::load_placed(&engine, m, base, cpu_because) {
            Ok(model) => {
                log::info!(model = m.name.as_str(), kind = m.kind.as_str(), load_ms = model.load_ms; "model {} loaded in {:.0} ms on {:?}", m.name, model.load_ms, model.placement);
                metrics
                    .load_ms
                    .get_or_create(&vec![
                        ("model".into(), m.name.clone()),
                        ("kind".into(), m.kind.as_str().into()),
                    ])
                    .set(model.load_ms);
                if let Placement::CpuFallback(r) = &model.placement {
                    fallback = Some(r.clone());
                }
                registry.models.insert(m.name.clone(), Arc::new(model));
            }
            Err(e) => {
                log::error!(model = m.name.as_str(), event = "incident", elapsed_ms = t.elapsed().as_millis() as u64; "{e}");
                registry.failures.insert(m.name.clone(), e.to_string());
            }
        }
    }
    if cfg.runtime.provider == config::Provider::Cuda {
        match fallback {
            Some(r) => health.component(
                "provider",
                Check::fail(format!("CUDA unusable, serving on CPU: {r}")).non_critical(),
            ),
            None => health.component("provider", Check::ok("cuda")),
        };
    }
    let loaded: Vec<String> = registry.models.keys().cloned().collect();
    if registry.failures.is_empty() {
        health.component(
            "models",
            Check::ok(format!("loaded: {}", loaded.join(", "))),
        );
    } else {
        let failed: Vec<String> = registry
            .failures
            .iter()
            .map(|(n, e)| format!("{n}: {e}"))
            .collect();
        health.component(
            "models",
            Check::fail(format!(
                "loaded: [{}]; failed: {}",
                loaded.join(", "),
                failed.join("; ")
            ))
            .non_critical(),
        );
    }
    registry
}

/// The daemon: load, bind Wyoming, serve HTTP until SIGTERM.
pub async fn run(cfg: Config, config_path: &Path, rt: Runtime) -> anyhow::Result<()> {
    let base = config_path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let metrics = AppMetrics::new(rt.metrics());
    let gpu_metrics = gpu::GpuMetrics::default();
    gpu_metrics.register(rt.metrics());
    let gpu_state = gpu::GpuState::default();
    let gpu_check = rt
        .health()
        .component("gpu", Check::ok("starting").non_critical());
    gpu::start(
        &cfg.gpu,
        gpu_state.clone(),
        gpu_metrics,
        gpu_check,
        rt.shutdown(),
    );
    let admission = gpu::Admission {
        state: gpu_state,
        max_temperature_c: cfg.gpu.max_temperature_c,
        queue_wait: cfg.gpu.queue_wait,
    };
    let registry = {
        let cfg = cfg.clone();
        let metrics = metrics.clone();
        // Loading blocks (file hashing, session creation); keep the runtime responsive.
        tokio::task::block_in_place(|| load_models(&cfg, &base, &rt, &metrics, &admission))
    };
    let app = Arc::new(App {
        registry,
        admission,
        limiter: Semaphore::new(cfg.runtime.max_concurrent),
        metrics,
        cfg: cfg.clone(),
        wyoming_addr: std::sync::Mutex::new(None),
    });
    if cfg.wyoming.enabled {
        // A busy port degrades (HTTP keeps serving, /health says why) rather than failing
        // the whole daemon into a restart loop.
        match tokio::net::TcpListener::bind(cfg.wyoming.listen).await {
            Ok(listener) => {
                let addr = listener.local_addr()?;
                *app.wyoming_addr.lock().unwrap_or_else(|e| e.into_inner()) = Some(addr);
                log::info!(wyoming = addr.to_string(); "Wyoming on tcp://{addr}");
                rt.health()
                    .component("wyoming", Check::ok(format!("tcp://{addr}")).non_critical());
                tokio::spawn(wyoming_server::serve(listener, app.clone(), rt.shutdown()));
            }
            Err(e) => {
                let msg = format!("cannot listen for Wyoming on {}: {e}", cfg.wyoming.listen);
                log::error!(event = "incident"; "{msg}");
                rt.health()
                    .component("wyoming", Check::fail(msg).non_critical());
            }
        }
    }
    rt.status("serving");
    rt.serve(api::router(app)).await?;
    Ok(())
}

/// Which model files and kinds are loaded (for `/v1/models`).
pub fn describe_model(m: &Model) -> serde_json::Value {
    let extra = match &m.inner {
        Inner::Wake(w) => serde_json::json!({"wake_words": w.names(), "threshold": w.threshold}),
        Inner::Vad(v) => serde_json::json!({"threshold": v.threshold}),
        Inner::Tts(t) => serde_json::json!({"sample_rate": t.rate}),
        Inner::Stt(s) => s.describe(),
        Inner::Speaker(s) => {
            serde_json::json!({"family": s.family().as_str(), "threshold": s.threshold})
        }
        _ => serde_json::json!({}),
    };
    serde_json::json!({
        "name": m.name,
        "kind": m.kind,
        "languages": m.languages,
        "placement": format!("{:?}", m.placement),
        "load_ms": m.load_ms,
        "details": extra,
    })
}
