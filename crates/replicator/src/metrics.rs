//! Prometheus metrics `barnabee_replication_*`, registered into the embedding daemon's registry.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LevelLabel {
    pub level: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabel {
    pub op: String,
}

/// All replication metrics; cheap to clone (handles share state).
#[derive(Clone)]
pub struct ReplicationMetrics {
    pub lag_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub last_shipped_txid: Gauge,
    pub uploaded_bytes: Family<LevelLabel, Counter>,
    pub uploaded_objects: Family<LevelLabel, Counter>,
    pub errors: Family<OpLabel, Counter>,
    pub compaction_seconds: Family<LevelLabel, Histogram>,
    pub checkpoints: Counter,
    /// Delay before the next level-0 upload retry (0 when the last upload succeeded).
    pub retry_backoff_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
}

impl Default for ReplicationMetrics {
    fn default() -> Self {
        Self {
            lag_seconds: Gauge::default(),
            last_shipped_txid: Gauge::default(),
            uploaded_bytes: Family::default(),
            uploaded_objects: Family::default(),
            errors: Family::default(),
            compaction_seconds: Family::new_with_constructor(|| {
                Histogram::new([0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0])
            }),
            checkpoints: Counter::default(),
            retry_backoff_seconds: Gauge::default(),
        }
    }
}

impl ReplicationMetrics {
    pub fn uploaded(&self, level: u8, bytes: usize) {
        let l = LevelLabel {
            level: level.to_string(),
        };
        self.uploaded_bytes.get_or_create(&l).inc_by(bytes as u64);
        self.uploaded_objects.get_or_create(&l).inc();
    }

    pub fn error(&self, op: &str) {
        self.errors
            .get_or_create(&OpLabel { op: op.to_owned() })
            .inc();
    }

    /// Register every metric with `register(name, help, metric)`; works with
    /// `barnabee_service::metrics::Metrics::register` and a plain prometheus-client `Registry`.
    pub fn register_with(&self, mut register: impl FnMut(&str, &str, Box<dyn RegisterableMetric>)) {
        register(
            "barnabee_replication_lag_seconds",
            "Seconds the oldest unshipped commit has waited",
            Box::new(self.lag_seconds.clone()),
        );
        register(
            "barnabee_replication_last_shipped_txid",
            "TXID of the newest level-0 file on the replica",
            Box::new(self.last_shipped_txid.clone()),
        );
        register(
            "barnabee_replication_uploaded_bytes",
            "Bytes uploaded, by level",
            Box::new(self.uploaded_bytes.clone()),
        );
        register(
            "barnabee_replication_uploaded_objects",
            "Objects uploaded, by level",
            Box::new(self.uploaded_objects.clone()),
        );
        register(
            "barnabee_replication_errors",
            "Errors, by operation",
            Box::new(self.errors.clone()),
        );
        register(
            "barnabee_replication_compaction_duration_seconds",
            "Compaction durations, by target level",
            Box::new(self.compaction_seconds.clone()),
        );
        register(
            "barnabee_replication_checkpoints",
            "WAL checkpoints run by the replicator",
            Box::new(self.checkpoints.clone()),
        );
        register(
            "barnabee_replication_retry_backoff_seconds",
            "Delay before the next upload retry after failures (0 when uploads succeed)",
            Box::new(self.retry_backoff_seconds.clone()),
        );
    }

    /// Register into a daemon's `barnabee_service` metrics.
    pub fn register(&self, metrics: &barnabee_service::metrics::Metrics) {
        self.register_with(|name, help, m| metrics.register(name, help, m));
    }

    /// Register into a prometheus-client registry.
    pub fn register_registry(&self, registry: &mut Registry) {
        self.register_with(|name, help, m| registry.register(name, help, m));
    }
}

/// A boxed metric that both registries accept.
pub trait RegisterableMetric: prometheus_client::registry::Metric {}
impl<T: prometheus_client::registry::Metric> RegisterableMetric for T {}

impl prometheus_client::encoding::EncodeMetric for Box<dyn RegisterableMetric> {
    fn encode(
        &self,
        encoder: prometheus_client::encoding::MetricEncoder,
    ) -> Result<(), std::fmt::Error> {
        (**self).encode(encoder)
    }
    fn metric_type(&self) -> prometheus_client::metrics::MetricType {
        (**self).metric_type()
    }
}
