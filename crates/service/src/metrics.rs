//! `/metrics`: the Prometheus text exposition of one registry per daemon.
//!
//! Names follow `barnabee_<area>_<what>_<unit>`; prometheus-client appends `_total` to
//! counters itself, so register a counter as `barnabee_llm_requests`.

use std::sync::{Arc, Mutex};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Metric, Registry};

/// The daemon's metric registry; cheap to clone.
#[derive(Clone, Default)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// Register a metric under its full name.
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        self.registry
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .register(name, help, metric);
    }

    /// `barnabee_build_info{daemon, version} 1`, so dashboards can tell generations apart.
    pub fn register_build_info(&self, daemon: &str, version: &str) {
        let info = Family::<Vec<(String, String)>, Gauge>::default();
        info.get_or_create(&vec![
            ("daemon".to_owned(), daemon.to_owned()),
            ("version".to_owned(), version.to_owned()),
        ])
        .set(1);
        self.register("barnabee_build_info", "Daemon name and version", info);
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;

    #[test]
    fn counters_appear_in_exposition() {
        let m = Metrics::new();
        let c = Counter::<u64>::default();
        m.register("barnabee_demo_requests", "Requests served", c.clone());
        m.register_build_info("demo", "0.1.0");
        c.inc_by(3);
        let text = m.encode();
        assert!(text.contains("barnabee_demo_requests_total 3"), "{text}");
        assert!(
            text.contains("barnabee_build_info{daemon=\"demo\",version=\"0.1.0\"} 1"),
            "{text}"
        );
        assert!(text.trim_end().ends_with("# EOF"));
    }
}
