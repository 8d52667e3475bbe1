//! The metric contract: every metric a Barnabee daemon exports, declared once.
//!
//! Daemons register metrics only through [`crate::metrics::Metrics::register_def`] with one of
//! these definitions, so a name cannot be typed twice. The alert rules and the Grafana dashboard
//! (`nixos-modules/monitoring/`) are checked against what the running daemons really expose by
//! `checks/monitoring` (it scrapes every daemon of `barnabee up`), and `docs/metrics.md` is
//! generated from this list (`barnabee metrics --markdown`; a test keeps it in step).
//!
//! Names follow `barnabee_<area>_<what>_<unit>` (DESIGN.md). Latencies are milliseconds
//! (`_ms`), because the family's targets are stated in milliseconds; durations of background
//! work are seconds. `name` is the family name as registered: prometheus-client appends
//! `_total` to counters, and histograms expose `_bucket`, `_sum` and `_count`.

/// The Prometheus type of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// Which daemon exports a metric. `Every` is the shared surface of barnabee-service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Exporter {
    Every,
    /// Every daemon that replicates its own database (the replicator's embed module):
    /// barnabee-memory, and barnabee-agents and barnabee-watchdog with `[replication]`.
    Replicating,
    Memory,
    Agents,
    Voice,
    Inference,
    Watchdog,
}

/// One metric of the contract.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct MetricDef {
    /// The family name as registered (counters without `_total`).
    pub name: &'static str,
    pub kind: Kind,
    /// `ms`, `seconds`, `bytes`, `dollars`, `celsius`, `percent`, `watts`, `ratio` or `` (a count or state).
    pub unit: &'static str,
    /// Label names, in the order the daemon sets them.
    pub labels: &'static [&'static str],
    pub help: &'static str,
    pub exporter: Exporter,
}

impl MetricDef {
    /// The sample names Prometheus stores for this family.
    pub fn sample_names(&self) -> Vec<String> {
        match self.kind {
            Kind::Counter => vec![format!("{}_total", self.name)],
            Kind::Gauge => vec![self.name.to_owned()],
            Kind::Histogram => ["_bucket", "_sum", "_count"]
                .iter()
                .map(|s| format!("{}{s}", self.name))
                .collect(),
        }
    }
}

const fn def(
    exporter: Exporter,
    name: &'static str,
    kind: Kind,
    unit: &'static str,
    labels: &'static [&'static str],
    help: &'static str,
) -> MetricDef {
    MetricDef {
        name,
        kind,
        unit,
        labels,
        help,
        exporter,
    }
}

use Exporter::*;
use Kind::*;

// --- every daemon (barnabee-service) ---
pub const BUILD_INFO: MetricDef = def(
    Every,
    "barnabee_build_info",
    Gauge,
    "",
    &["daemon", "version"],
    "Daemon name and version (always 1)",
);
pub const HTTP_REQUESTS: MetricDef = def(
    Every,
    "barnabee_http_requests",
    Counter,
    "",
    &["route", "status"],
    "HTTP requests answered, by route template and status code (/health and /metrics included)",
);
pub const HEALTH_CHECK_OK: MetricDef = def(
    Every,
    "barnabee_health_check_ok",
    Gauge,
    "",
    &["check", "critical"],
    "1 when the /health check passes, 0 when it fails; evaluated at each scrape",
);

// --- barnabee-memory ---
pub const MEMORY_RETRIEVAL_LATENCY: MetricDef = def(
    Memory,
    "barnabee_memory_retrieval_latency_ms",
    Histogram,
    "ms",
    &[],
    "Latency of /v1/search and turn search",
);
pub const MEMORY_SQLITE_QUERY_LATENCY: MetricDef = def(
    Memory,
    "barnabee_memory_sqlite_query_latency_ms",
    Histogram,
    "ms",
    &["op"],
    "Latency of SQLite work, by operation",
);
pub const MEMORY_DB_SIZE: MetricDef = def(
    Memory,
    "barnabee_memory_db_size_bytes",
    Gauge,
    "bytes",
    &[],
    "Database file plus WAL",
);
pub const MEMORY_MEMORIES: MetricDef = def(
    Memory,
    "barnabee_memory_memories",
    Gauge,
    "",
    &[],
    "Memories stored",
);
pub const MEMORY_SCHEMA_VERSION: MetricDef = def(
    Memory,
    "barnabee_memory_schema_version",
    Gauge,
    "",
    &[],
    "Schema version of the open database",
);

// --- replication (the replicator library, embedded by memory, agents and the watchdog) ---
pub const REPLICATION_LAG: MetricDef = def(
    Replicating,
    "barnabee_replication_lag_seconds",
    Gauge,
    "seconds",
    &[],
    "Seconds the oldest unshipped commit has waited",
);
pub const REPLICATION_LAST_SHIPPED_TXID: MetricDef = def(
    Replicating,
    "barnabee_replication_last_shipped_txid",
    Gauge,
    "",
    &[],
    "TXID of the newest level-0 file on the replica",
);
pub const REPLICATION_UPLOADED_BYTES: MetricDef = def(
    Replicating,
    "barnabee_replication_uploaded_bytes",
    Counter,
    "bytes",
    &["level"],
    "Bytes uploaded, by level",
);
pub const REPLICATION_UPLOADED_OBJECTS: MetricDef = def(
    Replicating,
    "barnabee_replication_uploaded_objects",
    Counter,
    "",
    &["level"],
    "Objects uploaded, by level",
);
pub const REPLICATION_ERRORS: MetricDef = def(
    Replicating,
    "barnabee_replication_errors",
    Counter,
    "",
    &["op"],
    "Replication errors, by operation",
);
pub const REPLICATION_COMPACTION_DURATION: MetricDef = def(
    Replicating,
    "barnabee_replication_compaction_duration_seconds",
    Histogram,
    "seconds",
    &["level"],
    "Compaction durations, by target level",
);
pub const REPLICATION_CHECKPOINTS: MetricDef = def(
    Replicating,
    "barnabee_replication_checkpoints",
    Counter,
    "",
    &[],
    "WAL checkpoints run by the replicator",
);
pub const REPLICATION_RETRY_BACKOFF: MetricDef = def(
    Replicating,
    "barnabee_replication_retry_backoff_seconds",
    Gauge,
    "seconds",
    &[],
    "Delay before the next upload retry after failures (0 when uploads succeed)",
);

// --- backup verification (barnabee-memory restores its replica and compares) ---
pub const BACKUP_LAST_VERIFIED: MetricDef = def(
    Memory,
    "barnabee_backup_last_verified_timestamp_seconds",
    Gauge,
    "seconds",
    &["replica"],
    "Unix time of the last good restore verification of the replica (0: never)",
);
pub const BACKUP_VERIFY_DURATION: MetricDef = def(
    Memory,
    "barnabee_backup_verify_duration_seconds",
    Gauge,
    "seconds",
    &["replica"],
    "Duration of the last restore verification, good or failed",
);
pub const BACKUP_VERIFY_FAILURES: MetricDef = def(
    Memory,
    "barnabee_backup_verify_failures",
    Counter,
    "",
    &["replica"],
    "Restore verifications that failed (restore, checksum, integrity or row counts)",
);

// --- barnabee-agents ---
pub const AGENTS_REQUESTS: MetricDef = def(
    Agents,
    "barnabee_agents_requests",
    Counter,
    "",
    &["agent"],
    "Utterances handled, by agent (instant, action, memory, interaction)",
);
pub const AGENTS_ROUTER_LATENCY: MetricDef = def(
    Agents,
    "barnabee_agents_router_latency_ms",
    Histogram,
    "ms",
    &[],
    "Router decision time",
);
pub const AGENTS_ROUTER_DECISIONS: MetricDef = def(
    Agents,
    "barnabee_agents_router_decisions",
    Counter,
    "",
    &["method"],
    "Router decisions, by method: rule (a rule matched) or llm (the LLM classifier was consulted)",
);
pub const AGENTS_ACTION_LATENCY: MetricDef = def(
    Agents,
    "barnabee_agents_action_latency_ms",
    Histogram,
    "ms",
    &[],
    "Action agent time per utterance, Home Assistant included",
);
pub const AGENTS_INTERACTION_LATENCY: MetricDef = def(
    Agents,
    "barnabee_agents_interaction_latency_ms",
    Histogram,
    "ms",
    &[],
    "Interaction agent time per utterance, LLM included",
);
pub const AGENTS_MEMORY_LATENCY: MetricDef = def(
    Agents,
    "barnabee_agents_memory_latency_ms",
    Histogram,
    "ms",
    &[],
    "Memory agent time per utterance, barnabee-memory included",
);
pub const AGENTS_LLM_COST_TODAY: MetricDef = def(
    Agents,
    "barnabee_agents_llm_cost_today_dollars",
    Gauge,
    "dollars",
    &[],
    "LLM spend today (local day), USD",
);
pub const AGENTS_LLM_COST_MONTH: MetricDef = def(
    Agents,
    "barnabee_agents_llm_cost_month_dollars",
    Gauge,
    "dollars",
    &[],
    "LLM spend this calendar month, USD",
);
pub const AGENTS_LLM_BUDGET_DAILY: MetricDef = def(
    Agents,
    "barnabee_agents_llm_budget_daily_dollars",
    Gauge,
    "dollars",
    &[],
    "The daily LLM budget ([budget] daily_limit_usd), USD",
);
pub const AGENTS_LLM_BUDGET_MONTHLY: MetricDef = def(
    Agents,
    "barnabee_agents_llm_budget_monthly_dollars",
    Gauge,
    "dollars",
    &[],
    "The monthly LLM budget ([budget] monthly_limit_usd), USD",
);
pub const AGENTS_LLM_REQUESTS: MetricDef = def(
    Agents,
    "barnabee_agents_llm_requests",
    Counter,
    "",
    &["provider", "model", "outcome"],
    "LLM completion requests by provider, model and outcome (ok, error, timeout)",
);
pub const AGENTS_LLM_TOKENS: MetricDef = def(
    Agents,
    "barnabee_agents_llm_tokens",
    Counter,
    "",
    &["provider", "model", "kind"],
    "LLM tokens by provider, model and kind (prompt, completion)",
);
pub const AGENTS_LLM_BREAKER_OPEN: MetricDef = def(
    Agents,
    "barnabee_agents_llm_breaker_open",
    Gauge,
    "",
    &["provider"],
    "1 while a provider's circuit breaker is open (skipped after repeated failures), else 0",
);
pub const AGENTS_LLM_FAILOVERS: MetricDef = def(
    Agents,
    "barnabee_agents_llm_failovers",
    Counter,
    "",
    &[],
    "LLM answers served by a later provider after an earlier one failed",
);

// --- barnabee-voice ---
pub const VOICE_STT_LATENCY: MetricDef = def(
    Voice,
    "barnabee_voice_stt_latency_ms",
    Histogram,
    "ms",
    &[],
    "End of capture to transcript (Wyoming round trip)",
);
pub const VOICE_TTS_LATENCY: MetricDef = def(
    Voice,
    "barnabee_voice_tts_latency_ms",
    Histogram,
    "ms",
    &[],
    "Synthesize sent to first audio",
);
pub const VOICE_TOTAL_LATENCY: MetricDef = def(
    Voice,
    "barnabee_voice_total_latency_ms",
    Histogram,
    "ms",
    &[],
    "End of speech to first audio of the answer (the voice end-to-end latency)",
);
pub const VOICE_STT_REQUESTS: MetricDef = def(
    Voice,
    "barnabee_voice_stt_requests",
    Counter,
    "",
    &["outcome"],
    "Speech-to-text attempts, by outcome (ok, error)",
);
pub const VOICE_REQUESTS: MetricDef = def(
    Voice,
    "barnabee_voice_requests",
    Counter,
    "",
    &["outcome"],
    "Voice requests, by outcome",
);
pub const VOICE_BARGE_INS: MetricDef = def(
    Voice,
    "barnabee_voice_barge_ins",
    Counter,
    "",
    &[],
    "Wake words heard while speaking (playback stopped)",
);
pub const VOICE_ANNOUNCEMENTS: MetricDef = def(
    Voice,
    "barnabee_voice_announcements",
    Counter,
    "",
    &["outcome"],
    "Announcements (POST /v1/announce), by outcome (played, failed, refused)",
);
pub const VOICE_SPEAKER_CONFIDENCE: MetricDef = def(
    Voice,
    "barnabee_voice_speaker_confidence_ratio",
    Histogram,
    "ratio",
    &[],
    "Cosine score of each speaker identification's best match",
);

// --- barnabee-inference ---
pub const INFERENCE_STT_LATENCY: MetricDef = def(
    Inference,
    "barnabee_inference_stt_latency_ms",
    Histogram,
    "ms",
    &[],
    "Speech-to-text latency (audio in hand to transcript)",
);
pub const INFERENCE_TTS_LATENCY: MetricDef = def(
    Inference,
    "barnabee_inference_tts_latency_ms",
    Histogram,
    "ms",
    &[],
    "Text-to-speech latency to the first sentence's audio",
);
pub const INFERENCE_MODEL_LOAD: MetricDef = def(
    Inference,
    "barnabee_inference_model_load_ms",
    Gauge,
    "ms",
    &["model", "kind"],
    "Time to verify, load and warm each model",
);
pub const INFERENCE_REQUESTS: MetricDef = def(
    Inference,
    "barnabee_inference_requests",
    Counter,
    "",
    &["kind", "outcome"],
    "Inference requests by kind and outcome",
);
pub const INFERENCE_SHED: MetricDef = def(
    Inference,
    "barnabee_inference_shed",
    Counter,
    "",
    &["reason"],
    "Requests refused by admission control, by reason",
);
pub const GPU_TEMPERATURE: MetricDef = def(
    Inference,
    "barnabee_gpu_temperature_celsius",
    Gauge,
    "celsius",
    &["gpu"],
    "GPU temperature (NVML)",
);
pub const GPU_MEMORY_USED: MetricDef = def(
    Inference,
    "barnabee_gpu_memory_used_bytes",
    Gauge,
    "bytes",
    &["gpu"],
    "GPU memory in use",
);
pub const GPU_MEMORY_TOTAL: MetricDef = def(
    Inference,
    "barnabee_gpu_memory_total_bytes",
    Gauge,
    "bytes",
    &["gpu"],
    "GPU memory in all",
);
pub const GPU_UTILIZATION: MetricDef = def(
    Inference,
    "barnabee_gpu_utilization_percent",
    Gauge,
    "percent",
    &["gpu"],
    "GPU utilisation",
);
pub const GPU_POWER: MetricDef = def(
    Inference,
    "barnabee_gpu_power_watts",
    Gauge,
    "watts",
    &["gpu"],
    "GPU power draw",
);
pub const GPU_THROTTLED: MetricDef = def(
    Inference,
    "barnabee_gpu_throttled",
    Gauge,
    "",
    &["gpu", "reason"],
    "1 while a throttle reason is active, per reason",
);
pub const GPU_PROCESS_MEMORY: MetricDef = def(
    Inference,
    "barnabee_gpu_process_memory_bytes",
    Gauge,
    "bytes",
    &["gpu", "pid"],
    "GPU memory per process",
);

// --- barnabee-watchdog ---
pub const WATCHDOG_RESTARTS: MetricDef = def(
    Watchdog,
    "barnabee_watchdog_restarts",
    Counter,
    "",
    &["unit"],
    "Restarts the watchdog issued, by unit",
);
pub const WATCHDOG_PROBE_FAILURES: MetricDef = def(
    Watchdog,
    "barnabee_watchdog_probe_failures",
    Counter,
    "",
    &["unit"],
    "Failed /health probes, by unit",
);
pub const WATCHDOG_UNIT_HEALTHY: MetricDef = def(
    Watchdog,
    "barnabee_watchdog_unit_healthy",
    Gauge,
    "",
    &["unit"],
    "1 when the unit is active and its /health answers 2xx",
);
pub const WATCHDOG_UNIT_NRESTARTS: MetricDef = def(
    Watchdog,
    "barnabee_watchdog_unit_nrestarts",
    Gauge,
    "",
    &["unit"],
    "systemd's NRestarts of the unit",
);
pub const WATCHDOG_INCIDENTS: MetricDef = def(
    Watchdog,
    "barnabee_watchdog_incidents",
    Counter,
    "",
    &["severity"],
    "Incidents raised, by severity (P1..P4)",
);
pub const WATCHDOG_DISK_FREE: MetricDef = def(
    Watchdog,
    "barnabee_watchdog_disk_free_percent",
    Gauge,
    "percent",
    &["path"],
    "Free disk space, by path",
);
pub const WATCHDOG_MEMORY_AVAILABLE: MetricDef = def(
    Watchdog,
    "barnabee_watchdog_memory_available_bytes",
    Gauge,
    "bytes",
    &[],
    "MemAvailable",
);
pub const WATCHDOG_LOAD1: MetricDef = def(
    Watchdog,
    "barnabee_watchdog_load1",
    Gauge,
    "",
    &[],
    "1-minute load average",
);
pub const WATCHDOG_GPU_TEMPERATURE: MetricDef = def(
    Watchdog,
    "barnabee_watchdog_gpu_temperature_celsius",
    Gauge,
    "celsius",
    &[],
    "Hottest GPU, from the inference daemon",
);
pub const WATCHDOG_GPU_MEMORY_USED: MetricDef = def(
    Watchdog,
    "barnabee_watchdog_gpu_memory_used_percent",
    Gauge,
    "percent",
    &[],
    "Fullest GPU memory, from the inference daemon",
);

// --- barnabee-watchdog: the notifier (area `notify`) ---
pub const NOTIFY_SENT: MetricDef = def(
    Watchdog,
    "barnabee_notify_sent",
    Counter,
    "",
    &["channel"],
    "Notifications delivered, by channel (home_assistant, email, webhook)",
);
pub const NOTIFY_FAILURES: MetricDef = def(
    Watchdog,
    "barnabee_notify_failures",
    Counter,
    "",
    &["channel"],
    "Failed delivery attempts, by channel (each is retried with backoff)",
);
pub const NOTIFY_DROPPED: MetricDef = def(
    Watchdog,
    "barnabee_notify_dropped",
    Counter,
    "",
    &["channel"],
    "Notifications dropped undelivered after notify.max_age, by channel",
);
pub const NOTIFY_QUEUE_DEPTH: MetricDef = def(
    Watchdog,
    "barnabee_notify_queue_depth",
    Gauge,
    "",
    &["channel"],
    "Notifications waiting for delivery, by channel",
);

/// Every metric of the contract, grouped by exporter.
pub const ALL: &[MetricDef] = &[
    BUILD_INFO,
    HTTP_REQUESTS,
    HEALTH_CHECK_OK,
    MEMORY_RETRIEVAL_LATENCY,
    MEMORY_SQLITE_QUERY_LATENCY,
    MEMORY_DB_SIZE,
    MEMORY_MEMORIES,
    MEMORY_SCHEMA_VERSION,
    REPLICATION_LAG,
    REPLICATION_LAST_SHIPPED_TXID,
    REPLICATION_UPLOADED_BYTES,
    REPLICATION_UPLOADED_OBJECTS,
    REPLICATION_ERRORS,
    REPLICATION_COMPACTION_DURATION,
    REPLICATION_CHECKPOINTS,
    REPLICATION_RETRY_BACKOFF,
    BACKUP_LAST_VERIFIED,
    BACKUP_VERIFY_DURATION,
    BACKUP_VERIFY_FAILURES,
    AGENTS_REQUESTS,
    AGENTS_ROUTER_LATENCY,
    AGENTS_ROUTER_DECISIONS,
    AGENTS_ACTION_LATENCY,
    AGENTS_INTERACTION_LATENCY,
    AGENTS_MEMORY_LATENCY,
    AGENTS_LLM_COST_TODAY,
    AGENTS_LLM_COST_MONTH,
    AGENTS_LLM_BUDGET_DAILY,
    AGENTS_LLM_BUDGET_MONTHLY,
    AGENTS_LLM_REQUESTS,
    AGENTS_LLM_TOKENS,
    AGENTS_LLM_FAILOVERS,
    AGENTS_LLM_BREAKER_OPEN,
    VOICE_STT_LATENCY,
    VOICE_TTS_LATENCY,
    VOICE_TOTAL_LATENCY,
    VOICE_STT_REQUESTS,
    VOICE_REQUESTS,
    VOICE_BARGE_INS,
    VOICE_ANNOUNCEMENTS,
    VOICE_SPEAKER_CONFIDENCE,
    INFERENCE_STT_LATENCY,
    INFERENCE_TTS_LATENCY,
    INFERENCE_MODEL_LOAD,
    INFERENCE_REQUESTS,
    INFERENCE_SHED,
    GPU_TEMPERATURE,
    GPU_MEMORY_USED,
    GPU_MEMORY_TOTAL,
    GPU_UTILIZATION,
    GPU_POWER,
    GPU_THROTTLED,
    GPU_PROCESS_MEMORY,
    WATCHDOG_RESTARTS,
    WATCHDOG_PROBE_FAILURES,
    WATCHDOG_UNIT_HEALTHY,
    WATCHDOG_UNIT_NRESTARTS,
    WATCHDOG_INCIDENTS,
    WATCHDOG_DISK_FREE,
    WATCHDOG_MEMORY_AVAILABLE,
    WATCHDOG_LOAD1,
    WATCHDOG_GPU_TEMPERATURE,
    WATCHDOG_GPU_MEMORY_USED,
    NOTIFY_SENT,
    NOTIFY_FAILURES,
    NOTIFY_DROPPED,
    NOTIFY_QUEUE_DEPTH,
];

/// Look a family up by name.
pub fn find(name: &str) -> Option<&'static MetricDef> {
    ALL.iter().find(|d| d.name == name)
}

/// `docs/metrics.md`: the contract as a table, one section per exporter.
pub fn markdown() -> String {
    let mut out = String::from(
        "# Barnabee metrics\n\n\
         Generated from `crates/service/src/catalog.rs` by `barnabee metrics --markdown`; do not \
         edit by hand (a test compares). Every name below is what the daemons export; the alert \
         rules and the dashboard in `nixos-modules/monitoring/` may use only these (and \
         node_exporter's), which `checks/monitoring` verifies against the running daemons.\n\n\
         Counters are stored by Prometheus with a `_total` suffix; histograms as `_bucket`, \
         `_sum` and `_count`.\n",
    );
    for exporter in [
        Every,
        Replicating,
        Memory,
        Agents,
        Voice,
        Inference,
        Watchdog,
    ] {
        let title = match exporter {
            Every => "Every daemon (barnabee-service)",
            Replicating => {
                "Every daemon that replicates its database (barnabee-memory; barnabee-agents and barnabee-watchdog with `[replication]`)"
            }
            Memory => "barnabee-memory",
            Agents => "barnabee-agents",
            Voice => "barnabee-voice",
            Inference => "barnabee-inference",
            Watchdog => "barnabee-watchdog",
        };
        out.push_str(&format!(
            "\n## {title}\n\n| name | type | unit | labels | help |\n| --- | --- | --- | --- | --- |\n"
        ));
        for d in ALL.iter().filter(|d| d.exporter == exporter) {
            out.push_str(&format!(
                "| `{}` | {} | {} | {} | {} |\n",
                d.sample_names()[0].trim_end_matches("_bucket"),
                d.kind.as_str(),
                if d.unit.is_empty() { "-" } else { d.unit },
                if d.labels.is_empty() {
                    "-".to_owned()
                } else {
                    d.labels.join(", ")
                },
                d.help
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_are_unique_and_follow_the_convention() {
        let mut seen = HashSet::new();
        for d in ALL {
            assert!(seen.insert(d.name), "{} is declared twice", d.name);
            assert!(
                d.name.starts_with("barnabee_")
                    && d.name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{} is not barnabee_<area>_<what>_<unit>",
                d.name
            );
            // prometheus-client adds `_total` itself; a declared `_total` would double it.
            assert!(!d.name.ends_with("_total"), "{}", d.name);
            if !d.unit.is_empty() {
                assert!(
                    d.name.ends_with(&format!("_{}", d.unit)),
                    "{} does not end in its unit {}",
                    d.name,
                    d.unit
                );
            }
        }
    }

    #[test]
    fn docs_metrics_md_is_generated_from_the_catalog() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/metrics.md");
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == markdown(),
            "docs/metrics.md is out of date: run `cargo run -p barnabee-cli -- metrics --markdown > docs/metrics.md`"
        );
    }
}
