//! The NVIDIA GPU watched through NVML (`libnvidia-ml.so.1`, opened at run time by
//! nvml-wrapper), and admission control on top of it.
//!
//! No driver or library → one clear log line, `/health` check `gpu` fails non-critically
//! ("no GPU, serving on CPU") and the daemon serves on CPU. With a GPU, a thread polls every
//! `poll_interval` and exports `barnabee_gpu_*` metrics; [`Admission`] refuses (after waiting
//! up to `queue_wait`) GPU work when free VRAM is below a model's need or the GPU is hotter
//! than `max_temperature_c`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use barnabee_service::health::Component;
use nvml_wrapper::Nvml;
use nvml_wrapper::enum_wrappers::device::TemperatureSensor;
use nvml_wrapper::enums::device::UsedGpuMemory;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use crate::config::GpuConfig;

/// One reading of the GPU.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Snapshot {
    pub name: String,
    pub temperature_c: u32,
    pub memory_total_mb: u64,
    pub memory_used_mb: u64,
    pub memory_free_mb: u64,
    pub utilization_percent: u32,
    pub memory_utilization_percent: u32,
    pub power_w: f64,
    pub throttle_reasons: Vec<String>,
    /// (pid, MiB)
    pub processes: Vec<(u32, u64)>,
}

#[derive(Clone, Default)]
pub struct GpuMetrics {
    pub temperature: Family<Vec<(String, String)>, Gauge>,
    pub memory_used: Family<Vec<(String, String)>, Gauge>,
    pub memory_total: Family<Vec<(String, String)>, Gauge>,
    pub utilization: Family<Vec<(String, String)>, Gauge>,
    pub power: Family<Vec<(String, String)>, Gauge<f64, std::sync::atomic::AtomicU64>>,
    pub throttled: Family<Vec<(String, String)>, Gauge>,
    pub process_memory: Family<Vec<(String, String)>, Gauge>,
}

impl GpuMetrics {
    pub fn register(&self, m: &barnabee_service::metrics::Metrics) {
        use barnabee_service::catalog;
        m.register_def(&catalog::GPU_TEMPERATURE, self.temperature.clone());
        m.register_def(&catalog::GPU_MEMORY_USED, self.memory_used.clone());
        m.register_def(&catalog::GPU_MEMORY_TOTAL, self.memory_total.clone());
        m.register_def(&catalog::GPU_UTILIZATION, self.utilization.clone());
        m.register_def(&catalog::GPU_POWER, self.power.clone());
        m.register_def(&catalog::GPU_THROTTLED, self.throttled.clone());
        m.register_def(&catalog::GPU_PROCESS_MEMORY, self.process_memory.clone());
    }

    fn update(&self, s: &Snapshot) {
        let l = vec![("gpu".to_owned(), "0".to_owned())];
        self.temperature
            .get_or_create(&l)
            .set(i64::from(s.temperature_c));
        self.memory_used
            .get_or_create(&l)
            .set((s.memory_used_mb * 1024 * 1024) as i64);
        self.memory_total
            .get_or_create(&l)
            .set((s.memory_total_mb * 1024 * 1024) as i64);
        self.utilization
            .get_or_create(&l)
            .set(i64::from(s.utilization_percent));
        self.power.get_or_create(&l).set(s.power_w);
        self.throttled.clear();
        for r in &s.throttle_reasons {
            self.throttled
                .get_or_create(&vec![
                    ("gpu".to_owned(), "0".to_owned()),
                    ("reason".to_owned(), r.clone()),
                ])
                .set(1);
        }
        self.process_memory.clear();
        for (pid, mb) in &s.processes {
            self.process_memory
                .get_or_create(&vec![
                    ("gpu".to_owned(), "0".to_owned()),
                    ("pid".to_owned(), pid.to_string()),
                ])
                .set((mb * 1024 * 1024) as i64);
        }
    }
}

/// The latest snapshot (None: no GPU).
#[derive(Clone, Default)]
pub struct GpuState {
    latest: Arc<Mutex<Option<Snapshot>>>,
    pub present: Arc<std::sync::atomic::AtomicBool>,
}

impl GpuState {
    pub fn latest(&self) -> Option<Snapshot> {
        self.latest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Tests and the admission unit tests set readings directly.
    pub fn set(&self, s: Option<Snapshot>) {
        self.present
            .store(s.is_some(), std::sync::atomic::Ordering::Relaxed);
        *self.latest.lock().unwrap_or_else(|e| e.into_inner()) = s;
    }
}

fn read(nvml: &Nvml) -> Result<Snapshot, String> {
    let d = nvml.device_by_index(0).map_err(|e| e.to_string())?;
    let mem = d.memory_info().map_err(|e| e.to_string())?;
    let util = d.utilization_rates().ok();
    let throttle = d
        .current_throttle_reasons()
        .map(|r| {
            r.iter_names()
                .filter(|(n, _)| *n != "GPU_IDLE")
                .map(|(n, _)| n.to_lowercase())
                .collect()
        })
        .unwrap_or_default();
    let processes = d
        .running_compute_processes()
        .unwrap_or_default()
        .into_iter()
        .map(|p| {
            let b = match p.used_gpu_memory {
                UsedGpuMemory::Used(b) => b,
                UsedGpuMemory::Unavailable => 0,
            };
            (p.pid, b / (1024 * 1024))
        })
        .collect();
    Ok(Snapshot {
        name: d.name().unwrap_or_default(),
        temperature_c: d
            .temperature(TemperatureSensor::Gpu)
            .map_err(|e| e.to_string())?,
        memory_total_mb: mem.total / (1024 * 1024),
        memory_used_mb: mem.used / (1024 * 1024),
        memory_free_mb: mem.free / (1024 * 1024),
        utilization_percent: util.as_ref().map_or(0, |u| u.gpu),
        memory_utilization_percent: util.map_or(0, |u| u.memory),
        power_w: d.power_usage().map_or(0.0, |mw| f64::from(mw) / 1000.0),
        throttle_reasons: throttle,
        processes,
    })
}

/// Open NVML; `Err` is the reason there is no GPU.
pub fn open(cfg: &GpuConfig) -> Result<Nvml, String> {
    let r = match &cfg.nvml_library {
        Some(p) => Nvml::builder().lib_path(p.as_os_str()).init(),
        None => Nvml::init(),
    };
    let nvml = r.map_err(|e| e.to_string())?;
    let n = nvml.device_count().map_err(|e| e.to_string())?;
    if n == 0 {
        return Err("NVML reports no device".into());
    }
    Ok(nvml)
}

/// Start the monitor: a thread polling NVML. No GPU → one log line and a degraded check.
pub fn start(
    cfg: &GpuConfig,
    state: GpuState,
    metrics: GpuMetrics,
    check: Component,
    stop: barnabee_service::Shutdown,
) {
    if !cfg.monitor {
        check.ok("GPU monitor disabled in config");
        return;
    }
    let nvml = match open(cfg) {
        Ok(n) => n,
        Err(reason) => {
            log::warn!(event = "no_gpu"; "no GPU (NVML unavailable: {reason}); serving on CPU");
            check.fail(format!("no GPU, serving on CPU (NVML: {reason})"));
            state.set(None);
            return;
        }
    };
    let interval = cfg.poll_interval;
    let max_temp = cfg.max_temperature_c;
    let poll = move || match read(&nvml) {
        Ok(s) => {
            metrics.update(&s);
            if s.temperature_c > max_temp {
                check.fail(format!(
                    "{} at {} °C, above {} °C: new GPU work is refused",
                    s.name, s.temperature_c, max_temp
                ));
            } else {
                check.ok(format!(
                    "{}: {} °C, {}/{} MiB used, {} %",
                    s.name,
                    s.temperature_c,
                    s.memory_used_mb,
                    s.memory_total_mb,
                    s.utilization_percent
                ));
            }
            state.set(Some(s));
        }
        Err(e) => {
            check.fail(format!("NVML read failed: {e}"));
        }
    };
    poll();
    let spawned = std::thread::Builder::new()
        .name("nvml".into())
        .spawn(move || {
            while !stop.is_triggered() {
                let until = Instant::now() + interval;
                while Instant::now() < until && !stop.is_triggered() {
                    std::thread::sleep(Duration::from_millis(100).min(interval));
                }
                poll();
            }
        });
    if let Err(e) = spawned {
        log::error!("cannot start the NVML thread: {e}");
    }
}

/// Admission control for GPU work.
#[derive(Clone)]
pub struct Admission {
    pub state: GpuState,
    pub max_temperature_c: u32,
    pub queue_wait: Duration,
}

impl Admission {
    /// Why GPU work needing `need_mb` cannot start now (None: go).
    pub fn refusal(&self, need_mb: u64) -> Option<String> {
        let s = self.state.latest()?;
        if s.temperature_c > self.max_temperature_c {
            return Some(format!(
                "GPU at {} °C, above the {} °C limit",
                s.temperature_c, self.max_temperature_c
            ));
        }
        if need_mb > 0 && s.memory_free_mb < need_mb {
            return Some(format!(
                "GPU has {} MiB free, the model needs {} MiB",
                s.memory_free_mb, need_mb
            ));
        }
        None
    }

    /// Wait up to `queue_wait` for the GPU to admit the work; `Err(reason)` → 503.
    pub async fn admit(&self, need_mb: u64) -> Result<(), String> {
        let until = Instant::now() + self.queue_wait;
        loop {
            match self.refusal(need_mb) {
                None => return Ok(()),
                Some(reason) if Instant::now() >= until => return Err(reason),
                Some(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn admission_refuses_hot_or_full_gpu() {
        let state = GpuState::default();
        let a = Admission {
            state: state.clone(),
            max_temperature_c: 85,
            queue_wait: Duration::from_millis(150),
        };
        assert!(a.admit(1000).await.is_ok(), "no GPU: nothing to refuse");
        state.set(Some(Snapshot {
            temperature_c: 90,
            memory_free_mb: 5000,
            ..Snapshot::default()
        }));
        let e = a.admit(10).await.unwrap_err();
        assert!(e.contains("90 °C"), "{e}");
        state.set(Some(Snapshot {
            temperature_c: 60,
            memory_free_mb: 500,
            ..Snapshot::default()
        }));
        let e = a.admit(1000).await.unwrap_err();
        assert!(e.contains("500 MiB free"), "{e}");
        assert!(a.admit(400).await.is_ok());
    }
}
