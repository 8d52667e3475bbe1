//! The agents' Prometheus metrics.

use std::sync::atomic::AtomicU64;

use barnabee_service::metrics::Metrics;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

type Labels = Vec<(String, String)>;

#[derive(Clone)]
pub struct AgentMetrics {
    /// `barnabee_agents_requests_total{agent}`
    pub requests_by_agent: Family<Labels, Counter>,
    /// The router's decision time.
    pub meta_latency: Histogram,
    pub action_latency: Histogram,
    pub interaction_latency: Histogram,
    pub memory_latency: Histogram,
    pub daily_cost: Gauge<f64, AtomicU64>,
    pub monthly_cost: Gauge<f64, AtomicU64>,
    /// `barnabee_agents_llm_requests_total{provider, model, outcome}`
    pub llm_requests: Family<Labels, Counter>,
    /// `barnabee_agents_llm_tokens_total{provider, model, kind}`
    pub llm_tokens: Family<Labels, Counter>,
    pub daily_budget: Gauge<f64, AtomicU64>,
    pub monthly_budget: Gauge<f64, AtomicU64>,
    /// LLM answers served by a later provider after an earlier one failed.
    pub llm_failovers: Counter,
    /// `barnabee_agents_llm_breaker_open{provider}` (set by `crate::breaker`).
    pub llm_breaker_open: Family<Labels, Gauge>,
    /// `barnabee_agents_router_decisions_total{method}`: rule, or llm when no rule matched
    /// and `[router] llm_classifier` asked the LLM.
    decisions: Family<Labels, Counter>,
}

fn ms_histogram(buckets: &[f64]) -> Histogram {
    Histogram::new(buckets.iter().copied())
}

impl AgentMetrics {
    pub fn new() -> Self {
        Self {
            requests_by_agent: Family::default(),
            // Bucket edges at the alert thresholds (docs/runbook.md): router 15/50 ms, action
            // 80/200 ms, interaction 2/5 s, memory agent beside retrieval's 40/100 ms.
            meta_latency: ms_histogram(&[
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 10.0, 15.0, 25.0, 50.0, 100.0, 250.0,
            ]),
            action_latency: ms_histogram(&[
                5.0, 10.0, 25.0, 50.0, 80.0, 100.0, 200.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0,
            ]),
            interaction_latency: ms_histogram(&[
                50.0, 100.0, 250.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0, 20000.0,
            ]),
            memory_latency: ms_histogram(&[1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 1000.0]),
            daily_cost: Gauge::default(),
            monthly_cost: Gauge::default(),
            llm_requests: Family::default(),
            llm_tokens: Family::default(),
            daily_budget: Gauge::default(),
            monthly_budget: Gauge::default(),
            llm_failovers: Counter::default(),
            llm_breaker_open: Family::default(),
            decisions: {
                let f = Family::<Labels, Counter>::default();
                // Present at 0 from the start, so rate() has both series.
                for method in ["rule", "llm"] {
                    let _ = f.get_or_create(&vec![("method".into(), method.into())]);
                }
                f
            },
        }
    }

    pub fn register(&self, m: &Metrics) {
        use barnabee_service::catalog;
        m.register_def(&catalog::AGENTS_REQUESTS, self.requests_by_agent.clone());
        m.register_def(&catalog::AGENTS_ROUTER_LATENCY, self.meta_latency.clone());
        m.register_def(&catalog::AGENTS_ROUTER_DECISIONS, self.decisions.clone());
        m.register_def(&catalog::AGENTS_ACTION_LATENCY, self.action_latency.clone());
        m.register_def(
            &catalog::AGENTS_INTERACTION_LATENCY,
            self.interaction_latency.clone(),
        );
        m.register_def(&catalog::AGENTS_MEMORY_LATENCY, self.memory_latency.clone());
        m.register_def(&catalog::AGENTS_LLM_COST_TODAY, self.daily_cost.clone());
        m.register_def(&catalog::AGENTS_LLM_COST_MONTH, self.monthly_cost.clone());
        m.register_def(&catalog::AGENTS_LLM_BUDGET_DAILY, self.daily_budget.clone());
        m.register_def(
            &catalog::AGENTS_LLM_BUDGET_MONTHLY,
            self.monthly_budget.clone(),
        );
        m.register_def(&catalog::AGENTS_LLM_REQUESTS, self.llm_requests.clone());
        m.register_def(&catalog::AGENTS_LLM_TOKENS, self.llm_tokens.clone());
        m.register_def(&catalog::AGENTS_LLM_FAILOVERS, self.llm_failovers.clone());
        m.register_def(
            &catalog::AGENTS_LLM_BREAKER_OPEN,
            self.llm_breaker_open.clone(),
        );
    }

    /// The configured budget, so the alert rules can compare spend with it.
    pub fn set_budget(&self, daily_usd: f64, monthly_usd: f64) {
        self.daily_budget.set(daily_usd);
        self.monthly_budget.set(monthly_usd);
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

    /// One router decision; `classified` when the LLM classifier was consulted. The alert
    /// rules take the windowed fallback rate from the two counters.
    pub fn decision(&self, classified: bool) {
        let method = if classified { "llm" } else { "rule" };
        self.decisions
            .get_or_create(&vec![("method".into(), method.into())])
            .inc();
    }
}

impl Default for AgentMetrics {
    fn default() -> Self {
        Self::new()
    }
}
