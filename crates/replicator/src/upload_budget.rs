//! How often level 0 may upload: one PUT per sync interval on average, with a burst of
//! [`BURST`] (a token bucket in its GCRA form: one "theoretical arrival time").
//!
//! A fixed "one upload per interval counted from the last one" made every sporadic commit that
//! came a little less than an interval after the previous one wait out the rest of it, and the
//! waits carried over from commit to commit (sporadic lag p50 682 ms against Litestream's
//! 203 ms in the bench). With a budget, commits about an interval apart ship as soon as the
//! writers pause, while a sustained load still gets one upload per interval (plus the burst
//! once): the PUT rate, the sync interval's purpose, is bounded as before.

use std::time::{Duration, Instant};

/// Uploads that may follow each other at once after a quiet spell.
pub const BURST: u32 = 2;

#[derive(Debug)]
pub struct UploadBudget {
    interval: Duration,
    /// When the budget is back to one upload (None: full).
    tat: Option<Instant>,
}

impl UploadBudget {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            tat: None,
        }
    }

    /// An upload may start at `now`.
    pub fn allows(&self, now: Instant) -> bool {
        self.tat
            .is_none_or(|tat| now + self.interval * (BURST - 1) >= tat)
    }

    /// An upload whose capture began at `at` was made.
    pub fn spend(&mut self, at: Instant) {
        let from = self.tat.map_or(at, |tat| tat.max(at));
        self.tat = Some(from + self.interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn commits_about_an_interval_apart_never_wait() {
        // The bench's sporadic schedule: gaps of 0.8..1.2 s, 0.95 s on average.
        let t0 = Instant::now();
        let mut b = UploadBudget::new(S);
        let mut at = t0;
        for i in 0..20u64 {
            at += Duration::from_millis(800 + (i * 137) % 400);
            assert!(b.allows(at), "commit {i} would wait");
            b.spend(at);
        }
    }

    #[test]
    fn a_sustained_load_gets_one_upload_per_interval_plus_the_burst() {
        // Upload whenever allowed, probing every 25 ms for 60 s.
        let t0 = Instant::now();
        let mut b = UploadBudget::new(S);
        let mut uploads = 0;
        let mut now = t0;
        while now < t0 + 60 * S {
            if b.allows(now) {
                b.spend(now);
                uploads += 1;
            }
            now += Duration::from_millis(25);
        }
        assert_eq!(uploads, 60 + BURST - 1);
    }

    #[test]
    fn a_burst_then_the_interval() {
        let t0 = Instant::now();
        let mut b = UploadBudget::new(S);
        for _ in 0..BURST {
            assert!(b.allows(t0));
            b.spend(t0);
        }
        assert!(!b.allows(t0 + Duration::from_millis(999)));
        assert!(b.allows(t0 + S));
    }
}
