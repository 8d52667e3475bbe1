//! The instant agent: clock answers, greetings and kitchen timers, no peer involved.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::clock::Clock;
use crate::route::instant as parse;

struct Timer {
    id: u64,
    label: String,
    ends: Instant,
}

#[derive(Default)]
struct Timers {
    next: u64,
    running: Vec<Timer>,
}

pub struct InstantAgent {
    clock: Arc<dyn Clock>,
    timers: Arc<Mutex<Timers>>,
}

impl InstantAgent {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            timers: Arc::default(),
        }
    }

    pub fn handle(&self, intent: &str, normalized: &str) -> String {
        match intent {
            "time" => parse::say_time(&self.clock.now()),
            "date" => parse::say_date(&self.clock.now()),
            "greeting" => parse::greeting(normalized).to_owned(),
            "thanks" => "You're welcome!".to_owned(),
            "goodbye" => "Goodbye!".to_owned(),
            "timer_set" => self.set_timer(normalized),
            "timer_cancel" => self.cancel_timers(),
            "timer_query" => self.query_timers(),
            other => {
                log::warn!(intent = other; "instant rule with an intent this agent does not know");
                "Sorry, I don't know how to do that yet.".to_owned()
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Timers> {
        self.timers.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_timer(&self, normalized: &str) -> String {
        let Some(d) = parse::parse_duration(normalized) else {
            return "For how long should I set the timer?".to_owned();
        };
        if d > Duration::from_secs(24 * 3600) {
            return "Timers can run for at most 24 hours.".to_owned();
        }
        let label = parse::say_duration(d);
        let id = {
            let mut t = self.lock();
            t.next += 1;
            let id = t.next;
            t.running.push(Timer {
                id,
                label: label.clone(),
                ends: Instant::now() + d,
            });
            id
        };
        let timers = self.timers.clone();
        tokio::spawn(async move {
            tokio::time::sleep(d).await;
            let mut t = timers.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(i) = t.running.iter().position(|x| x.id == id) {
                let timer = t.running.remove(i);
                // The voice pipeline announces timers from this event (journald field EVENT=timer_done).
                log::info!(event = "timer_done", timer_id = id; "timer for {} is done", timer.label);
            }
        });
        format!("Timer set for {label}.")
    }

    fn cancel_timers(&self) -> String {
        let mut t = self.lock();
        let n = t.running.len();
        t.running.clear();
        match n {
            0 => "There are no timers running.".to_owned(),
            1 => "Timer cancelled.".to_owned(),
            n => format!("Cancelled {n} timers."),
        }
    }

    fn query_timers(&self) -> String {
        let t = self.lock();
        let now = Instant::now();
        let left: Vec<String> = t
            .running
            .iter()
            .map(|x| {
                let secs = x.ends.saturating_duration_since(now).as_secs().max(1);
                format!(
                    "{} left on the {} timer",
                    parse::say_duration(Duration::from_secs(secs)),
                    x.label
                )
            })
            .collect();
        if left.is_empty() {
            "There are no timers running.".to_owned()
        } else {
            format!("{}.", left.join(", and "))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::clock::ManualClock;
    use chrono::{FixedOffset, TimeZone};

    #[tokio::test(start_paused = true)]
    async fn timers_set_query_expire_cancel() {
        let clock = Arc::new(ManualClock::new(
            FixedOffset::east_opt(0)
                .unwrap()
                .with_ymd_and_hms(2026, 1, 1, 9, 5, 0)
                .unwrap(),
        ));
        let a = InstantAgent::new(clock);
        assert_eq!(a.handle("time", "what time is it"), "It's 9:05 AM.");
        assert_eq!(
            a.handle("timer_set", "set a timer for 5 minutes"),
            "Timer set for 5 minutes."
        );
        assert!(
            a.handle("timer_query", "how much time is left")
                .contains("5 minutes timer")
        );
        assert_eq!(
            a.handle("timer_cancel", "cancel the timer"),
            "Timer cancelled."
        );
        assert_eq!(a.handle("timer_query", ""), "There are no timers running.");
        a.handle("timer_set", "set a timer for 10 seconds");
        tokio::time::sleep(Duration::from_secs(11)).await;
        tokio::task::yield_now().await;
        assert_eq!(a.handle("timer_query", ""), "There are no timers running.");
        assert_eq!(
            a.handle("timer_set", "set a timer"),
            "For how long should I set the timer?"
        );
    }
}
