//! Prometheus metrics `barnabee_replication_*`, registered into the embedding daemon's registry.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use barnabee_service::catalog::{self, MetricDef};

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

    /// Register every metric with `register(definition, metric)`; the names and help come
    /// from the metric contract (`barnabee_service::catalog`). Works with
    /// `barnabee_service::metrics::Metrics::register_def` and a plain prometheus-client `Registry`.
    pub fn register_with(
        &self,
        mut register: impl FnMut(&'static MetricDef, Box<dyn RegisterableMetric>),
    ) {
        register(
            &catalog::REPLICATION_LAG,
            Box::new(self.lag_seconds.clone()),
        );
        register(
            &catalog::REPLICATION_LAST_SHIPPED_TXID,
            Box::new(self.last_shipped_txid.clone()),
        );
        register(
            &catalog::REPLICATION_UPLOADED_BYTES,
            Box::new(self.uploaded_bytes.clone()),
        );
        register(
            &catalog::REPLICATION_UPLOADED_OBJECTS,
            Box::new(self.uploaded_objects.clone()),
        );
        register(&catalog::REPLICATION_ERRORS, Box::new(self.errors.clone()));
        register(
            &catalog::REPLICATION_COMPACTION_DURATION,
            Box::new(self.compaction_seconds.clone()),
        );
        register(
            &catalog::REPLICATION_CHECKPOINTS,
            Box::new(self.checkpoints.clone()),
        );
        register(
            &catalog::REPLICATION_RETRY_BACKOFF,
            Box::new(self.retry_backoff_seconds.clone()),
        );
    }

    /// Register into a daemon's `barnabee_service` metrics.
    pub fn register(&self, metrics: &barnabee_service::metrics::Metrics) {
        self.register_with(|def, m| metrics.register_def(def, m));
    }

    /// Register into a prometheus-client registry.
    pub fn register_registry(&self, registry: &mut Registry) {
        self.register_with(|def, m| registry.register(def.name, def.help, m));
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
