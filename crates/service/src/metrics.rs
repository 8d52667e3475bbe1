//! `/metrics`: the Prometheus text exposition of one registry per daemon.
//!
//! Every metric is declared once in [`crate::catalog`] and registered with
//! [`Metrics::register_def`]; prometheus-client appends `_total` to counters itself.

use std::sync::{Arc, Mutex};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Metric, Registry};

use crate::catalog::{self, MetricDef};
use crate::health::Report;

type Labels = Vec<(String, String)>;

/// The daemon's metric registry, with what every daemon exports (HTTP requests by route and
/// status, the /health checks); cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    /// What was registered, so families without series yet still appear (see `encode`).
    registered: Arc<Mutex<Vec<&'static MetricDef>>>,
    http_requests: Family<Labels, Counter>,
    health_checks: Family<Labels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let m = Self {
            registry: Arc::default(),
            registered: Arc::default(),
            http_requests: Family::default(),
            health_checks: Family::default(),
        };
        m.register_def(&catalog::HTTP_REQUESTS, m.http_requests.clone());
        m.register_def(&catalog::HEALTH_CHECK_OK, m.health_checks.clone());
        m
    }
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// Count one answered HTTP request. `route` is the matched route template (`/v1/memories/{id}`,
    /// never the raw path, so ids do not explode the series), or `unmatched`.
    pub fn http_request(&self, route: &str, status: u16) {
        self.http_requests
            .get_or_create(&vec![
                ("route".to_owned(), route.to_owned()),
                ("status".to_owned(), status.to_string()),
            ])
            .inc();
    }

    /// Mirror a `/health` report into `barnabee_health_check_ok{check, critical}`; checks that
    /// disappeared from the report disappear from the metric.
    pub fn set_health(&self, report: &Report) {
        self.health_checks.clear();
        for (name, check) in &report.checks {
            self.health_checks
                .get_or_create(&vec![
                    ("check".to_owned(), name.clone()),
                    ("critical".to_owned(), check.critical.to_string()),
                ])
                .set(i64::from(check.ok));
        }
    }

    /// Register a metric of the contract ([`crate::catalog`]): its name and help come from
    /// the one declaration, so no daemon can export a name the alert rules do not know about.
    pub fn register_def(&self, def: &'static MetricDef, metric: impl Metric) {
        self.registry
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .register(def.name, def.help, metric);
        self.registered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(def);
    }

    /// `barnabee_build_info{daemon, version} 1`, so dashboards can tell generations apart.
    pub fn register_build_info(&self, daemon: &str, version: &str) {
        let info = Family::<Vec<(String, String)>, Gauge>::default();
        info.get_or_create(&vec![
            ("daemon".to_owned(), daemon.to_owned()),
            ("version".to_owned(), version.to_owned()),
        ])
        .set(1);
        self.register_def(&catalog::BUILD_INFO, info);
    }

    /// The text exposition format (OpenMetrics).
    ///
    /// A labelled family with no series yet (no GPU, no LLM provider configured, no unit
    /// supervised) is still announced with its `# HELP`/`# TYPE` lines: OpenMetrics allows a
    /// family without samples, and it lets `checks/monitoring` tell "registered, nothing to
    /// report" from "not exported at all" when it checks the alert rules' names.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        {
            let registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
            // Writing into a String cannot fail.
            let _ = encode(&mut out, &registry);
        }
        let registered = self.registered.lock().unwrap_or_else(|e| e.into_inner());
        let mut missing = String::new();
        for def in registered.iter() {
            if !out.contains(&format!("# TYPE {} ", def.name)) {
                missing.push_str(&format!(
                    "# HELP {} {}.\n# TYPE {} {}\n",
                    def.name,
                    def.help,
                    def.name,
                    def.kind.as_str()
                ));
            }
        }
        if !missing.is_empty() {
            match out.rfind("# EOF") {
                Some(at) => out.insert_str(at, &missing),
                None => out.push_str(&missing),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::{Check, Health};

    #[test]
    fn counters_appear_in_exposition() {
        let m = Metrics::new();
        let c = Counter::<u64>::default();
        m.register_def(&catalog::VOICE_BARGE_INS, c.clone());
        m.register_build_info("demo", "0.1.0");
        c.inc_by(3);
        let text = m.encode();
        assert!(text.contains("barnabee_voice_barge_ins_total 3"), "{text}");
        assert!(
            text.contains("barnabee_build_info{daemon=\"demo\",version=\"0.1.0\"} 1"),
            "{text}"
        );
        assert!(text.trim_end().ends_with("# EOF"));
    }

    #[test]
    fn a_family_without_series_is_still_announced() {
        let m = Metrics::new();
        let gpu = Family::<Labels, Gauge>::default();
        m.register_def(&catalog::GPU_TEMPERATURE, gpu.clone());
        let text = m.encode();
        assert!(
            text.contains("# TYPE barnabee_gpu_temperature_celsius gauge\n"),
            "{text}"
        );
        assert!(text.trim_end().ends_with("# EOF"), "{text}");
        gpu.get_or_create(&vec![("gpu".into(), "0".into())]).set(61);
        let text = m.encode();
        assert_eq!(
            text.matches("# TYPE barnabee_gpu_temperature_celsius gauge")
                .count(),
            1,
            "{text}"
        );
        assert!(text.contains("barnabee_gpu_temperature_celsius{gpu=\"0\"} 61"));
    }

    #[tokio::test]
    async fn health_checks_and_http_requests_are_exported() {
        let m = Metrics::new();
        let h = Health::new();
        h.component("database", Check::ok("open"));
        let ha = h.component("home_assistant", Check::ok("connected").non_critical());
        m.http_request("/v1/memories/{id}", 404);
        m.http_request("/v1/memories/{id}", 404);
        m.set_health(&h.report().await);
        let text = m.encode();
        for line in [
            "barnabee_http_requests_total{route=\"/v1/memories/{id}\",status=\"404\"} 2",
            "barnabee_health_check_ok{check=\"database\",critical=\"true\"} 1",
            "barnabee_health_check_ok{check=\"home_assistant\",critical=\"false\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
        ha.fail("connection refused");
        m.set_health(&h.report().await);
        let text = m.encode();
        assert!(
            text.contains(
                "barnabee_health_check_ok{check=\"home_assistant\",critical=\"false\"} 0"
            ),
            "{text}"
        );
    }
}
