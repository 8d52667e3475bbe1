//! Host checks with the operators' thresholds: free disk space, available memory, load, and
//! (on the GPU host) the GPU temperature and memory from the inference daemon's `/metrics`.
//! A check raises an incident when its level changes (ok → warn → critical and back), not on
//! every round.

use std::collections::BTreeMap;
use std::path::Path;

use barnabee_service::{Heartbeat, Shutdown};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use std::sync::atomic::AtomicU64;

use crate::config::Thresholds;
use crate::incident::{Incident, Incidents, Severity};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Ok,
    Warn,
    Critical,
}

/// Level of a figure where low is bad (free space, free memory).
pub fn level_low(value: f64, warn: f64, critical: f64) -> Level {
    if value < critical {
        Level::Critical
    } else if value < warn {
        Level::Warn
    } else {
        Level::Ok
    }
}

/// Level of a figure where high is bad (load, temperature).
pub fn level_high(value: f64, warn: f64, critical: f64) -> Level {
    if value >= critical {
        Level::Critical
    } else if value >= warn {
        Level::Warn
    } else {
        Level::Ok
    }
}

/// Free space of the filesystem holding `path`, in percent of its size (what unprivileged
/// users can still write, as `df` shows).
pub fn disk_free_percent(path: &Path) -> std::io::Result<f64> {
    let st = rustix::fs::statvfs(path)?;
    if st.f_blocks == 0 {
        return Ok(100.0);
    }
    Ok(st.f_bavail as f64 * 100.0 / st.f_blocks as f64)
}

/// `MemAvailable` from `/proc/meminfo`, in bytes.
pub fn parse_meminfo(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

/// The 1-minute load average from `/proc/loadavg`.
pub fn parse_loadavg(text: &str) -> Option<f64> {
    text.split_whitespace().next()?.parse().ok()
}

/// GPU figures from the inference daemon's Prometheus text: the hottest GPU and the fullest
/// GPU memory, from `barnabee_gpu_temperature_celsius`, `barnabee_gpu_memory_used_bytes` and
/// `barnabee_gpu_memory_total_bytes` (one series per GPU, matched by labels).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GpuFigures {
    pub max_temperature_celsius: Option<f64>,
    pub max_memory_used_percent: Option<f64>,
}

pub fn parse_gpu_metrics(text: &str) -> GpuFigures {
    let mut temp: Option<f64> = None;
    let mut used: BTreeMap<String, f64> = BTreeMap::new();
    let mut total: BTreeMap<String, f64> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        let (name, labels) = match series.find('{') {
            Some(i) => (&series[..i], &series[i..]),
            None => (series, ""),
        };
        match name {
            "barnabee_gpu_temperature_celsius" => {
                temp = Some(temp.map_or(value, |t: f64| t.max(value)))
            }
            "barnabee_gpu_memory_used_bytes" => {
                used.insert(labels.to_owned(), value);
            }
            "barnabee_gpu_memory_total_bytes" => {
                total.insert(labels.to_owned(), value);
            }
            _ => {}
        }
    }
    let mem = used
        .iter()
        .filter_map(|(labels, u)| {
            total
                .get(labels)
                .filter(|t| **t > 0.0)
                .map(|t| u * 100.0 / t)
        })
        .fold(None, |acc: Option<f64>, p| {
            Some(acc.map_or(p, |a| a.max(p)))
        });
    GpuFigures {
        max_temperature_celsius: temp,
        max_memory_used_percent: mem,
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PathLabel {
    pub path: String,
}

/// Host gauges.
#[derive(Clone, Default)]
pub struct HostMetrics {
    pub disk_free_percent: Family<PathLabel, Gauge<f64, AtomicU64>>,
    pub memory_available_bytes: Gauge,
    pub load1: Gauge<f64, AtomicU64>,
    pub gpu_temperature_celsius: Gauge<f64, AtomicU64>,
    pub gpu_memory_used_percent: Gauge<f64, AtomicU64>,
}

impl HostMetrics {
    pub fn register(&self, metrics: &barnabee_service::metrics::Metrics) {
        use barnabee_service::catalog;
        metrics.register_def(&catalog::WATCHDOG_DISK_FREE, self.disk_free_percent.clone());
        metrics.register_def(
            &catalog::WATCHDOG_MEMORY_AVAILABLE,
            self.memory_available_bytes.clone(),
        );
        metrics.register_def(&catalog::WATCHDOG_LOAD1, self.load1.clone());
        metrics.register_def(
            &catalog::WATCHDOG_GPU_TEMPERATURE,
            self.gpu_temperature_celsius.clone(),
        );
        metrics.register_def(
            &catalog::WATCHDOG_GPU_MEMORY_USED,
            self.gpu_memory_used_percent.clone(),
        );
    }
}

/// The host-check task's state: the last level per check.
pub struct HostMonitor {
    pub thresholds: Thresholds,
    pub incidents: Incidents,
    pub metrics: HostMetrics,
    pub http: reqwest::Client,
    levels: BTreeMap<String, Level>,
}

impl HostMonitor {
    pub fn new(
        thresholds: Thresholds,
        incidents: Incidents,
        metrics: HostMetrics,
        http: reqwest::Client,
    ) -> Self {
        Self {
            thresholds,
            incidents,
            metrics,
            http,
            levels: BTreeMap::new(),
        }
    }

    /// Record a level; raise an incident when it changed.
    pub fn report(&mut self, check: &str, reason: &str, level: Level, detail: String) {
        let before = self
            .levels
            .insert(check.to_owned(), level)
            .unwrap_or(Level::Ok);
        if before == level {
            return;
        }
        let (severity, why) = match level {
            Level::Critical => (Severity::P1, reason.to_owned()),
            Level::Warn => (Severity::P3, reason.to_owned()),
            Level::Ok => (Severity::P4, format!("{reason}_recovered")),
        };
        self.incidents
            .raise(Incident::new(severity, "host", &why, "none", detail));
    }

    /// One round of every check.
    pub async fn check(&mut self) {
        let t = self.thresholds.clone();
        for path in &t.disk_paths {
            let shown = path.display().to_string();
            match disk_free_percent(path) {
                Ok(free) => {
                    self.metrics
                        .disk_free_percent
                        .get_or_create(&PathLabel {
                            path: shown.clone(),
                        })
                        .set(free);
                    let level =
                        level_low(free, t.disk_warn_free_percent, t.disk_critical_free_percent);
                    self.report(
                        &format!("disk:{shown}"),
                        "disk_low",
                        level,
                        format!(
                            "{free:.1} % free on {shown} (warn < {} %, critical < {} %)",
                            t.disk_warn_free_percent, t.disk_critical_free_percent
                        ),
                    );
                }
                Err(err) => log::warn!("cannot stat {shown}: {err}"),
            }
        }
        match tokio::fs::read_to_string("/proc/meminfo")
            .await
            .ok()
            .as_deref()
            .and_then(parse_meminfo)
        {
            Some(bytes) => {
                self.metrics
                    .memory_available_bytes
                    .set(i64::try_from(bytes).unwrap_or(i64::MAX));
                let gb = bytes as f64 / 1e9;
                let level = level_low(
                    gb,
                    t.memory_warn_available_gb,
                    t.memory_critical_available_gb,
                );
                self.report(
                    "memory",
                    "memory_low",
                    level,
                    format!(
                        "{gb:.2} GB available (warn < {} GB, critical < {} GB)",
                        t.memory_warn_available_gb, t.memory_critical_available_gb
                    ),
                );
            }
            None => log::warn!("cannot read MemAvailable from /proc/meminfo"),
        }
        if let Some(load) = tokio::fs::read_to_string("/proc/loadavg")
            .await
            .ok()
            .as_deref()
            .and_then(parse_loadavg)
        {
            self.metrics.load1.set(load);
            let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
            let level = level_high(load / cpus, t.load_warn_per_cpu, t.load_critical_per_cpu);
            self.report(
                "load",
                "load_high",
                level,
                format!(
                    "load {load:.2} on {cpus} CPUs (warn >= {}/CPU, critical >= {}/CPU)",
                    t.load_warn_per_cpu, t.load_critical_per_cpu
                ),
            );
        }
        if let Some(url) = &t.gpu_metrics_url {
            self.check_gpu(url, &t).await;
        }
    }

    async fn check_gpu(&mut self, url: &str, t: &Thresholds) {
        let text = match self
            .http
            .get(url)
            .timeout(std::time::Duration::from_secs(5))
            .send()
            .await
        {
            Ok(resp) if resp.status().is_success() => resp.text().await.unwrap_or_default(),
            Ok(resp) => {
                log::warn!("GPU metrics {url}: HTTP {}", resp.status().as_u16());
                return;
            }
            Err(err) => {
                log::warn!("GPU metrics {url}: {err}");
                return;
            }
        };
        let gpu = parse_gpu_metrics(&text);
        if let Some(temp) = gpu.max_temperature_celsius {
            self.metrics.gpu_temperature_celsius.set(temp);
            let level = level_high(
                temp,
                t.gpu_temperature_warn_celsius,
                t.gpu_temperature_critical_celsius,
            );
            self.report(
                "gpu_temperature",
                "gpu_hot",
                level,
                format!(
                    "GPU at {temp:.0} °C (warn >= {}, critical >= {})",
                    t.gpu_temperature_warn_celsius, t.gpu_temperature_critical_celsius
                ),
            );
        }
        if let Some(pct) = gpu.max_memory_used_percent {
            self.metrics.gpu_memory_used_percent.set(pct);
            let level = level_high(
                pct,
                t.gpu_memory_warn_percent,
                t.gpu_memory_critical_percent,
            );
            self.report(
                "gpu_memory",
                "gpu_memory_full",
                level,
                format!(
                    "GPU memory {pct:.1} % used (warn >= {} %, critical >= {} %)",
                    t.gpu_memory_warn_percent, t.gpu_memory_critical_percent
                ),
            );
        }
    }

    pub async fn run(mut self, heartbeat: Heartbeat, shutdown: Shutdown) {
        let mut ticker = tokio::time::interval(self.thresholds.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = ticker.tick() => {}
            }
            heartbeat.beat();
            self.check().await;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::Arc;

    #[test]
    fn levels() {
        assert_eq!(level_low(25.0, 20.0, 10.0), Level::Ok);
        assert_eq!(level_low(19.9, 20.0, 10.0), Level::Warn);
        assert_eq!(level_low(9.9, 20.0, 10.0), Level::Critical);
        assert_eq!(level_high(1.9, 2.0, 4.0), Level::Ok);
        assert_eq!(level_high(2.0, 2.0, 4.0), Level::Warn);
        assert_eq!(level_high(4.5, 2.0, 4.0), Level::Critical);
    }

    #[test]
    fn meminfo_and_loadavg() {
        let meminfo =
            "MemTotal:       16000000 kB\nMemFree:  100 kB\nMemAvailable:    3000000 kB\n";
        assert_eq!(parse_meminfo(meminfo), Some(3_072_000_000));
        assert_eq!(parse_meminfo("MemTotal: 1 kB\n"), None);
        assert_eq!(parse_loadavg("0.52 0.58 0.59 1/467 12345\n"), Some(0.52));
        assert_eq!(parse_loadavg(""), None);
    }

    #[test]
    fn gpu_metrics() {
        let text = "# HELP barnabee_gpu_temperature_celsius t\n\
            barnabee_gpu_temperature_celsius{gpu=\"0\"} 71\n\
            barnabee_gpu_temperature_celsius{gpu=\"1\"} 88.5\n\
            barnabee_gpu_memory_used_bytes{gpu=\"0\"} 9000\n\
            barnabee_gpu_memory_total_bytes{gpu=\"0\"} 10000\n\
            barnabee_gpu_memory_used_bytes{gpu=\"1\"} 1000\n\
            barnabee_gpu_memory_total_bytes{gpu=\"1\"} 10000\n\
            barnabee_other 3\n";
        let g = parse_gpu_metrics(text);
        assert_eq!(g.max_temperature_celsius, Some(88.5));
        assert_eq!(g.max_memory_used_percent, Some(90.0));
        assert_eq!(parse_gpu_metrics("# EOF\n"), GpuFigures::default());
    }

    #[test]
    fn disk_free_of_root_is_a_percentage() {
        let pct = disk_free_percent(Path::new("/")).unwrap();
        assert!((0.0..=100.0).contains(&pct), "{pct}");
    }

    fn monitor(
        t: Thresholds,
    ) -> (
        HostMonitor,
        Arc<crate::incident::IncidentLog>,
        tempfile::TempDir,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(crate::incident::IncidentLog::open(dir.path()).unwrap());
        let m = HostMonitor::new(
            t,
            Incidents::new(log.clone()),
            HostMetrics::default(),
            crate::probe::client().unwrap(),
        );
        (m, log, dir)
    }

    /// Thresholds that never fire, to switch on one check at a time.
    fn quiet() -> Thresholds {
        Thresholds {
            disk_paths: Vec::new(),
            memory_warn_available_gb: 0.0,
            memory_critical_available_gb: 0.0,
            load_warn_per_cpu: 1e9,
            load_critical_per_cpu: 1e9,
            ..Thresholds::default()
        }
    }

    #[tokio::test]
    async fn disk_below_warn_is_a_p3_with_the_path() {
        let (mut m, log, _dir) = monitor(Thresholds {
            disk_paths: vec!["/".into()],
            disk_warn_free_percent: 101.0,
            disk_critical_free_percent: 0.0,
            ..quiet()
        });
        m.check().await;
        m.check().await;
        let rows = log.list(0, 10).unwrap();
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0].incident.severity, Severity::P3);
        assert_eq!(rows[0].incident.reason, "disk_low");
        assert!(
            rows[0].incident.detail.contains("free on /"),
            "{}",
            rows[0].incident.detail
        );
    }

    #[tokio::test]
    async fn memory_below_critical_is_a_p1() {
        let (mut m, log, _dir) = monitor(Thresholds {
            memory_warn_available_gb: 1e9,
            memory_critical_available_gb: 1e9,
            ..quiet()
        });
        m.check().await;
        let rows = log.list(0, 10).unwrap();
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(
            (rows[0].incident.severity, rows[0].incident.reason.as_str()),
            (Severity::P1, "memory_low")
        );
        assert!(m.metrics.memory_available_bytes.get() > 0);
    }

    #[tokio::test]
    async fn gpu_figures_come_from_the_inference_metrics() {
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(|| async {
                "barnabee_gpu_temperature_celsius{gpu=\"0\"} 93\nbarnabee_gpu_memory_used_bytes{gpu=\"0\"} 96\nbarnabee_gpu_memory_total_bytes{gpu=\"0\"} 100\n# EOF\n"
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let (mut m, log, _dir) = monitor(Thresholds {
            gpu_metrics_url: Some(format!("http://{addr}/metrics")),
            ..quiet()
        });
        m.check().await;
        let mut got: Vec<(Severity, String)> = log
            .list(0, 10)
            .unwrap()
            .into_iter()
            .map(|r| (r.incident.severity, r.incident.reason))
            .collect();
        got.sort();
        assert_eq!(
            got,
            vec![
                (Severity::P1, "gpu_hot".to_owned()),
                (Severity::P3, "gpu_memory_full".to_owned())
            ]
        );
        assert_eq!(m.metrics.gpu_temperature_celsius.get(), 93.0);
        assert_eq!(m.metrics.gpu_memory_used_percent.get(), 96.0);
    }

    #[test]
    fn incidents_only_on_level_change() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(crate::incident::IncidentLog::open(dir.path()).unwrap());
        let mut m = HostMonitor::new(
            Thresholds::default(),
            Incidents::new(log.clone()),
            HostMetrics::default(),
            crate::probe::client().unwrap(),
        );
        m.report("disk:/", "disk_low", Level::Ok, "fine".into());
        m.report("disk:/", "disk_low", Level::Warn, "15 %".into());
        m.report("disk:/", "disk_low", Level::Warn, "14 %".into());
        m.report("disk:/", "disk_low", Level::Critical, "5 %".into());
        m.report("disk:/", "disk_low", Level::Ok, "50 %".into());
        let rows = log.list(0, 10).unwrap();
        let got: Vec<(Severity, &str)> = rows
            .iter()
            .rev()
            .map(|r| (r.incident.severity, r.incident.reason.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (Severity::P3, "disk_low"),
                (Severity::P1, "disk_low"),
                (Severity::P4, "disk_low_recovered")
            ]
        );
    }
}
