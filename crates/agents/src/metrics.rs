//! The agents' Prometheus metrics.

use std::sync::atomic::{AtomicU64, Ordering};

use barnabee_service::metrics::Metrics;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

type Labels = Vec<(String, String)>;

#[derive(Clone)]
pub struct AgentMetrics {
    /// `barnabee_requests_by_agent_total{agent}`
    pub requests_by_agent: Family<Labels, Counter>,
    /// The router's decision time.
    pub meta_latency: Histogram,
    pub action_latency: Histogram,
    pub interaction_latency: Histogram,
    pub memory_latency: Histogram,
    pub daily_cost: Gauge<f64, AtomicU64>,
    pub monthly_cost: Gauge<f64, AtomicU64>,
    /// `barnabee_llm_requests_total{provider, model, outcome}`
    pub llm_requests: Family<Labels, Counter>,
    /// `barnabee_llm_tokens_total{provider, model, kind}`
    pub llm_tokens: Family<Labels, Counter>,
    /// Share of router decisions since start that fell back to the LLM classifier (no rule
    /// matched and `[router] llm_classifier` is on).
    pub llm_fallback_rate: Gauge<f64, AtomicU64>,
    /// LLM answers served by a later provider after an earlier one failed.
    pub llm_failovers: Counter,
    decisions: std::sync::Arc<AtomicU64>,
    classified: std::sync::Arc<AtomicU64>,
}

fn ms_histogram(buckets: &[f64]) -> Histogram {
    Histogram::new(buckets.iter().copied())
}

impl AgentMetrics {
    pub fn new() -> Self {
        Self {
            requests_by_agent: Family::default(),
            meta_latency: ms_histogram(&[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0]),
            action_latency: ms_histogram(&[
                5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0,
            ]),
            interaction_latency: ms_histogram(&[
                50.0, 100.0, 250.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0, 20000.0,
            ]),
            memory_latency: ms_histogram(&[1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 1000.0]),
            daily_cost: Gauge::default(),
            monthly_cost: Gauge::default(),
            llm_requests: Family::default(),
            llm_tokens: Family::default(),
            llm_fallback_rate: Gauge::default(),
            llm_failovers: Counter::default(),
            decisions: Default::default(),
            classified: Default::default(),
        }
    }

    pub fn register(&self, m: &Metrics) {
        m.register(
            "barnabee_requests_by_agent",
            "Utterances handled, by agent (instant, action, memory, interaction)",
            self.requests_by_agent.clone(),
        );
        m.register(
            "barnabee_meta_agent_latency_ms",
            "Meta router decision time (ms)",
            self.meta_latency.clone(),
        );
        m.register(
            "barnabee_action_agent_latency_ms",
            "Action agent time per utterance, Home Assistant included (ms)",
            self.action_latency.clone(),
        );
        m.register(
            "barnabee_interaction_agent_latency_ms",
            "Interaction agent time per utterance, LLM included (ms)",
            self.interaction_latency.clone(),
        );
        m.register(
            "barnabee_memory_agent_latency_ms",
            "Memory agent time per utterance, barnabee-memory included (ms)",
            self.memory_latency.clone(),
        );
        m.register(
            "barnabee_daily_cost_usd",
            "LLM spend today (local day), USD",
            self.daily_cost.clone(),
        );
        m.register(
            "barnabee_monthly_cost_usd",
            "LLM spend this calendar month, USD",
            self.monthly_cost.clone(),
        );
        m.register(
            "barnabee_llm_requests",
            "LLM completion requests by provider, model and outcome (ok, error, timeout)",
            self.llm_requests.clone(),
        );
        m.register(
            "barnabee_llm_tokens",
            "LLM tokens by provider, model and kind (prompt, completion)",
            self.llm_tokens.clone(),
        );
        m.register(
            "barnabee_llm_fallback_rate",
            "Share of router decisions since start that consulted the LLM classifier",
            self.llm_fallback_rate.clone(),
        );
        m.register(
            "barnabee_llm_failovers",
            "LLM answers served by a later provider after an earlier one failed",
            self.llm_failovers.clone(),
        );
    }

    pub fn count_agent(&self, agent: &str) {
        self.requests_by_agent
            .get_or_create(&vec![("agent".into(), agent.into())])
            .inc();
    }

    pub fn llm_request(&self, provider: &str, model: &str, outcome: &str) {
        self.llm_requests
            .get_or_create(&vec![
                ("provider".into(), provider.into()),
                ("model".into(), model.into()),
                ("outcome".into(), outcome.into()),
            ])
            .inc();
    }

    pub fn llm_tokens(&self, provider: &str, model: &str, prompt: u64, completion: u64) {
        for (kind, n) in [("prompt", prompt), ("completion", completion)] {
            self.llm_tokens
                .get_or_create(&vec![
                    ("provider".into(), provider.into()),
                    ("model".into(), model.into()),
                    ("kind".into(), kind.into()),
                ])
                .inc_by(n);
        }
    }

    /// One router decision; `classified` when the LLM classifier was consulted.
    pub fn decision(&self, classified: bool) {
        let n = self.decisions.fetch_add(1, Ordering::Relaxed) + 1;
        let c = self
            .classified
            .fetch_add(u64::from(classified), Ordering::Relaxed)
            + u64::from(classified);
        self.llm_fallback_rate.set(c as f64 / n as f64);
    }
}

impl Default for AgentMetrics {
    fn default() -> Self {
        Self::new()
    }
}
