//! The instant agent: clock answers, greetings and kitchen timers ([`Timers`]), no peer
//! involved in answering.

use std::sync::Arc;
use std::time::Duration;

use crate::agent::timers::Timers;
use crate::clock::Clock;
use crate::route::instant as parse;

pub struct InstantAgent {
    clock: Arc<dyn Clock>,
    pub timers: Timers,
}

impl InstantAgent {
    pub fn new(clock: Arc<dyn Clock>, timers: Timers) -> Self {
        Self { clock, timers }
    }

    /// `device_id`: where the request came from (a timer rings there).
    pub fn handle(&self, intent: &str, normalized: &str, device_id: Option<&str>) -> String {
        match intent {
            "time" => parse::say_time(&self.clock.now()),
            "date" => parse::say_date(&self.clock.now()),
            "greeting" => parse::greeting(normalized).to_owned(),
            "thanks" => "You're welcome!".to_owned(),
            "goodbye" => "Goodbye!".to_owned(),
            "timer_set" => self.set_timer(normalized, device_id),
            "timer_cancel" => self.cancel_timers(),
            "timer_query" => self.query_timers(),
            other => {
                log::warn!(intent = other; "instant rule with an intent this agent does not know");
                "Sorry, I don't know how to do that yet.".to_owned()
            }
        }
    }

    fn set_timer(&self, normalized: &str, device_id: Option<&str>) -> String {
        let Some(d) = parse::parse_duration(normalized) else {
            return "For how long should I set the timer?".to_owned();
        };
        if d > Duration::from_secs(24 * 3600) {
            return "Timers can run for at most 24 hours.".to_owned();
        }
        let label = self.timers.set(d, device_id);
        format!("Timer set for {label}.")
    }

    fn cancel_timers(&self) -> String {
        match self.timers.cancel_all() {
            0 => "There are no timers running.".to_owned(),
            1 => "Timer cancelled.".to_owned(),
            n => format!("Cancelled {n} timers."),
        }
    }

    fn query_timers(&self) -> String {
        let left: Vec<String> = self
            .timers
            .left()
            .into_iter()
            .map(|(label, left)| {
                let secs = left.as_secs().max(1);
                format!(
                    "{} left on the {label} timer",
                    parse::say_duration(Duration::from_secs(secs))
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
        let a = InstantAgent::new(clock, Timers::open(None, None));
        assert_eq!(a.handle("time", "what time is it", None), "It's 9:05 AM.");
        assert_eq!(
            a.handle("timer_set", "set a timer for 5 minutes", None),
            "Timer set for 5 minutes."
        );
        assert!(
            a.handle("timer_query", "how much time is left", None)
                .contains("5 minutes timer")
        );
        assert_eq!(
            a.handle("timer_cancel", "cancel the timer", None),
            "Timer cancelled."
        );
        assert_eq!(
            a.handle("timer_query", "", None),
            "There are no timers running."
        );
        a.handle("timer_set", "set a timer for 10 seconds", None);
        tokio::time::sleep(Duration::from_secs(11)).await;
        tokio::task::yield_now().await;
        assert_eq!(
            a.handle("timer_query", "", None),
            "There are no timers running."
        );
        assert_eq!(
            a.handle("timer_set", "set a timer", None),
            "For how long should I set the timer?"
        );
    }
}
