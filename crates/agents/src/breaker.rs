//! A circuit breaker per LLM provider: a provider that failed `failures` times in a row is
//! skipped for `cooldown` (instead of costing its full timeout on every request), then given
//! one request again (half-open): a success closes it, a failure opens it for another
//! cool-down. State is on `/health` (`llm_providers`, non-critical) and in
//! `barnabee_agents_llm_breaker_open{provider}`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

#[derive(Debug, Default)]
struct State {
    consecutive: u32,
    open_until: Option<Instant>,
    last_error: String,
}

/// Whether a provider may be tried now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Gate {
    Closed,
    /// Open, but the cool-down is over: one trial.
    HalfOpen,
    Open {
        left: Duration,
    },
}

/// Cheap to clone: the clones share the state (the LLM client and the `/health` probe).
#[derive(Clone)]
pub struct Breakers {
    failures: u32,
    cooldown: Duration,
    state: Arc<Mutex<BTreeMap<String, State>>>,
    open: Family<Vec<(String, String)>, Gauge>,
}

impl Breakers {
    pub fn new(
        failures: u32,
        cooldown: Duration,
        open: Family<Vec<(String, String)>, Gauge>,
    ) -> Self {
        Breakers {
            failures: failures.max(1),
            cooldown,
            state: Arc::default(),
            open,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, State>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn gauge(&self, provider: &str, open: bool) {
        self.open
            .get_or_create(&vec![("provider".into(), provider.into())])
            .set(i64::from(open));
    }

    /// Announce a provider (its gauge at 0), so the series exists before anything fails.
    pub fn register(&self, provider: &str) {
        self.gauge(provider, false);
    }

    pub fn gate(&self, provider: &str) -> Gate {
        match self.lock().get(provider).and_then(|s| s.open_until) {
            None => Gate::Closed,
            Some(until) => match until.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Gate::Open { left },
                _ => Gate::HalfOpen,
            },
        }
    }

    pub fn success(&self, provider: &str) {
        let was_open = self
            .lock()
            .insert(provider.to_owned(), State::default())
            .is_some_and(|s| s.open_until.is_some());
        if was_open {
            log::info!(provider = provider, event = "llm_breaker_closed"; "LLM provider {provider} answers again: circuit closed");
        }
        self.gauge(provider, false);
    }

    pub fn failure(&self, provider: &str, error: &str) {
        let opened = {
            let mut map = self.lock();
            let s = map.entry(provider.to_owned()).or_default();
            s.consecutive += 1;
            s.last_error = error.to_owned();
            if s.consecutive >= self.failures {
                s.open_until = Some(Instant::now() + self.cooldown);
                Some(s.consecutive)
            } else {
                None
            }
        };
        if let Some(n) = opened {
            log::warn!(provider = provider, event = "llm_breaker_open"; "LLM provider {provider} failed {n} times in a row ({error}): skipped for {} s", self.cooldown.as_secs());
            self.gauge(provider, true);
        }
    }

    /// For `/health`: which providers are skipped, and why.
    pub fn report(&self) -> Result<String, String> {
        let now = Instant::now();
        let open: Vec<String> = self
            .lock()
            .iter()
            .filter_map(|(name, s)| {
                let left = s.open_until?.checked_duration_since(now)?;
                Some(format!(
                    "{name}: circuit open for {} s more after {} failures in a row ({})",
                    left.as_secs() + 1,
                    s.consecutive,
                    s.last_error
                ))
            })
            .collect();
        if open.is_empty() {
            Ok("every provider's circuit is closed".to_owned())
        } else {
            Err(open.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_n_failures_then_half_opens_and_closes_on_success() {
        let b = Breakers::new(3, Duration::from_millis(100), Family::default());
        assert_eq!(b.gate("p"), Gate::Closed);
        b.failure("p", "HTTP 503");
        b.failure("p", "HTTP 503");
        assert_eq!(b.gate("p"), Gate::Closed, "two failures are not enough");
        b.success("p");
        b.failure("p", "HTTP 503");
        b.failure("p", "HTTP 503");
        assert_eq!(b.gate("p"), Gate::Closed, "a success resets the count");
        b.failure("p", "timed out");
        assert!(matches!(b.gate("p"), Gate::Open { .. }));
        assert!(
            b.report().unwrap_err().contains("p: circuit open"),
            "{:?}",
            b.report()
        );
        std::thread::sleep(Duration::from_millis(120));
        assert_eq!(b.gate("p"), Gate::HalfOpen);
        // the trial fails: open again at once
        b.failure("p", "timed out");
        assert!(matches!(b.gate("p"), Gate::Open { .. }));
        std::thread::sleep(Duration::from_millis(120));
        b.success("p");
        assert_eq!(b.gate("p"), Gate::Closed);
        assert!(b.report().is_ok());
    }
}
