//! The restart policy of one unit, as a pure state machine (no clock, no I/O): consecutive
//! probe failures make a unit unhealthy; restarts are spaced by an exponential backoff; after
//! `max_restarts` restarts within `window` the circuit breaker opens and the watchdog stops
//! restarting until the unit is healthy again.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::config::Supervision;

/// What one observation of the unit showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    Healthy,
    /// Not healthy; the reason goes into the incident.
    Unhealthy(String),
    /// Starting, stopping or reloading: neither counts.
    Transitioning,
}

/// What the supervisor should do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Nothing,
    /// Unhealthy, but still inside the backoff (or below the failure count).
    Wait,
    /// Restart now; `attempt` counts restarts within the window, this one included.
    Restart {
        attempt: u32,
        reason: String,
    },
    /// Give up: too many restarts within the window.
    OpenBreaker {
        restarts: u32,
        reason: String,
    },
    /// Healthy again after the breaker was open.
    Recovered,
}

#[derive(Debug, Clone)]
pub struct Policy {
    unhealthy_after: u32,
    backoff_initial: Duration,
    backoff_max: Duration,
    max_restarts: u32,
    window: Duration,
    failures: u32,
    restarts: VecDeque<Instant>,
    breaker_open: bool,
}

impl Policy {
    pub fn new(cfg: &Supervision) -> Self {
        Self {
            unhealthy_after: cfg.unhealthy_after.max(1),
            backoff_initial: cfg.backoff_initial,
            backoff_max: cfg.backoff_max,
            max_restarts: cfg.max_restarts,
            window: cfg.window,
            failures: 0,
            restarts: VecDeque::new(),
            breaker_open: false,
        }
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.failures
    }

    pub fn breaker_open(&self) -> bool {
        self.breaker_open
    }

    /// The wait before the next restart, given `done` restarts already in the window:
    /// 0 for the first, then initial, 2x initial, 4x ... capped at `backoff_max`.
    pub fn backoff(&self, done: u32) -> Duration {
        if done == 0 {
            return Duration::ZERO;
        }
        let factor = 2u32.saturating_pow(done - 1);
        self.backoff_initial
            .saturating_mul(factor)
            .min(self.backoff_max)
    }

    pub fn observe(&mut self, now: Instant, observation: Observation) -> Decision {
        let reason = match observation {
            Observation::Transitioning => return Decision::Nothing,
            Observation::Healthy => {
                self.failures = 0;
                if self.breaker_open {
                    self.breaker_open = false;
                    self.restarts.clear();
                    return Decision::Recovered;
                }
                return Decision::Nothing;
            }
            Observation::Unhealthy(reason) => reason,
        };
        self.failures = self.failures.saturating_add(1);
        if self.failures < self.unhealthy_after || self.breaker_open {
            return Decision::Wait;
        }
        while self
            .restarts
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > self.window)
        {
            self.restarts.pop_front();
        }
        let done = u32::try_from(self.restarts.len()).unwrap_or(u32::MAX);
        if done >= self.max_restarts {
            self.breaker_open = true;
            return Decision::OpenBreaker {
                restarts: done,
                reason,
            };
        }
        if let Some(last) = self.restarts.back()
            && now.saturating_duration_since(*last) < self.backoff(done)
        {
            return Decision::Wait;
        }
        self.restarts.push_back(now);
        // The restarted unit gets a fresh count of failures before the next restart.
        self.failures = 0;
        Decision::Restart {
            attempt: done + 1,
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Supervision {
        Supervision {
            unhealthy_after: 2,
            backoff_initial: Duration::from_secs(10),
            backoff_max: Duration::from_secs(25),
            max_restarts: 3,
            window: Duration::from_secs(600),
            ..Supervision::default()
        }
    }

    fn bad() -> Observation {
        Observation::Unhealthy("503".into())
    }

    #[test]
    fn needs_n_consecutive_failures() {
        let mut p = Policy::new(&cfg());
        let t = Instant::now();
        assert_eq!(p.observe(t, bad()), Decision::Wait);
        assert_eq!(p.observe(t, Observation::Healthy), Decision::Nothing);
        assert_eq!(p.observe(t, bad()), Decision::Wait);
        assert!(matches!(
            p.observe(t, bad()),
            Decision::Restart { attempt: 1, .. }
        ));
    }

    #[test]
    fn transitioning_does_not_count() {
        let mut p = Policy::new(&cfg());
        let t = Instant::now();
        assert_eq!(p.observe(t, bad()), Decision::Wait);
        assert_eq!(p.observe(t, Observation::Transitioning), Decision::Nothing);
        assert_eq!(p.consecutive_failures(), 1);
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let p = Policy::new(&cfg());
        assert_eq!(p.backoff(0), Duration::ZERO);
        assert_eq!(p.backoff(1), Duration::from_secs(10));
        assert_eq!(p.backoff(2), Duration::from_secs(20));
        assert_eq!(p.backoff(3), Duration::from_secs(25));
        assert_eq!(p.backoff(40), Duration::from_secs(25));
    }

    #[test]
    fn restarts_are_spaced_then_breaker_opens_then_recovers() {
        let mut p = Policy::new(&cfg());
        let t0 = Instant::now();
        let s = Duration::from_secs;
        p.observe(t0, bad());
        assert!(matches!(
            p.observe(t0, bad()),
            Decision::Restart { attempt: 1, .. }
        ));
        p.observe(t0 + s(1), bad());
        // 2 failures again, but inside the 10 s backoff.
        assert_eq!(p.observe(t0 + s(2), bad()), Decision::Wait);
        assert!(matches!(
            p.observe(t0 + s(10), bad()),
            Decision::Restart { attempt: 2, .. }
        ));
        p.observe(t0 + s(11), bad());
        assert_eq!(p.observe(t0 + s(29), bad()), Decision::Wait);
        assert!(matches!(
            p.observe(t0 + s(30), bad()),
            Decision::Restart { attempt: 3, .. }
        ));
        p.observe(t0 + s(31), bad());
        assert!(matches!(
            p.observe(t0 + s(60), bad()),
            Decision::OpenBreaker { restarts: 3, .. }
        ));
        assert!(p.breaker_open());
        assert_eq!(p.observe(t0 + s(120), bad()), Decision::Wait);
        assert_eq!(
            p.observe(t0 + s(121), Observation::Healthy),
            Decision::Recovered
        );
        assert!(!p.breaker_open());
    }

    #[test]
    fn old_restarts_leave_the_window() {
        let mut p = Policy::new(&Supervision {
            max_restarts: 1,
            ..cfg()
        });
        let t0 = Instant::now();
        p.observe(t0, bad());
        assert!(matches!(p.observe(t0, bad()), Decision::Restart { .. }));
        let later = t0 + Duration::from_secs(601);
        p.observe(later, bad());
        assert!(matches!(
            p.observe(later, bad()),
            Decision::Restart { attempt: 1, .. }
        ));
    }
}
