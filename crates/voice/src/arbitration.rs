//! Multi-device wake arbitration: several satellites hear the same wake word and each posts
//! `POST /v1/wake {device_id, confidence}`. The first event opens a window; every event in
//! it waits until the window closes, then learns the winner (highest confidence; ties go to
//! the earliest). Losers stand down.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WakeEvent {
    pub device_id: String,
    pub confidence: f64,
    #[serde(default)]
    pub wake_word: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Decision {
    /// This event's device won.
    pub winner: bool,
    pub winner_device_id: String,
    pub winner_confidence: f64,
    /// Round number (events in the same window share it).
    pub round: u64,
    /// How many devices competed.
    pub contenders: usize,
}

/// (winner device, its confidence, contenders), once the window closed.
type Outcome = Option<(String, f64, usize)>;

struct Round {
    id: u64,
    events: Vec<WakeEvent>,
    result: watch::Receiver<Outcome>,
}

#[derive(Clone)]
pub struct Arbiter {
    window: Duration,
    state: Arc<Mutex<(u64, Option<Round>)>>,
}

impl Arbiter {
    pub fn new(window: Duration) -> Arbiter {
        Arbiter {
            window,
            state: Arc::new(Mutex::new((0, None))),
        }
    }

    /// Join (or open) the current window and wait for its decision.
    pub async fn submit(&self, ev: WakeEvent) -> Decision {
        let device = ev.device_id.clone();
        let (id, mut rx) = {
            let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if g.1.is_none() {
                g.0 += 1;
                let id = g.0;
                let (tx, rx) = watch::channel(None);
                g.1 = Some(Round {
                    id,
                    events: Vec::new(),
                    result: rx,
                });
                let state = self.state.clone();
                let window = self.window;
                tokio::spawn(async move {
                    tokio::time::sleep(window).await;
                    let round = state.lock().unwrap_or_else(|e| e.into_inner()).1.take();
                    if let Some(r) = round {
                        let mut best: Option<&WakeEvent> = None;
                        for e in &r.events {
                            if best.is_none_or(|b| e.confidence > b.confidence) {
                                best = Some(e);
                            }
                        }
                        if let Some(b) = best {
                            log::info!(round = r.id, winner = b.device_id.as_str(), confidence = b.confidence, contenders = r.events.len(); "wake arbitration: {} wins ({:.2}) among {}", b.device_id, b.confidence, r.events.len());
                            let _ =
                                tx.send(Some((b.device_id.clone(), b.confidence, r.events.len())));
                        }
                    }
                });
            }
            let r = g.1.as_mut().map(|r| {
                r.events.push(ev);
                (r.id, r.result.clone())
            });
            match r {
                Some(x) => x,
                None => unreachable_round(),
            }
        };
        let res = loop {
            if let Some(r) = rx.borrow().clone() {
                break r;
            }
            if rx.changed().await.is_err() {
                break (device.clone(), 0.0, 1);
            }
        };
        Decision {
            winner: res.0 == device,
            winner_device_id: res.0,
            winner_confidence: res.1,
            round: id,
            contenders: res.2,
        }
    }
}

fn unreachable_round() -> (u64, watch::Receiver<Outcome>) {
    // a round is always open at this point; answer "you win alone" rather than panic
    let (_tx, rx) = watch::channel(None);
    (0, rx)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ev(d: &str, c: f64) -> WakeEvent {
        WakeEvent {
            device_id: d.into(),
            confidence: c,
            wake_word: None,
        }
    }

    #[tokio::test]
    async fn highest_confidence_in_the_window_wins_and_later_events_open_a_new_round() {
        let a = Arbiter::new(Duration::from_millis(150));
        let (x, y, z) = tokio::join!(
            a.submit(ev("kitchen", 0.91)),
            async {
                tokio::time::sleep(Duration::from_millis(30)).await;
                a.submit(ev("hall", 0.97)).await
            },
            async {
                tokio::time::sleep(Duration::from_millis(60)).await;
                a.submit(ev("lounge", 0.50)).await
            }
        );
        assert!(!x.winner && y.winner && !z.winner);
        assert_eq!(x.winner_device_id, "hall");
        assert_eq!(x.contenders, 3);
        assert_eq!(x.round, y.round);
        // after the window: a fresh round, alone → wins
        let w = a.submit(ev("kitchen", 0.2)).await;
        assert!(w.winner);
        assert_eq!(w.contenders, 1);
        assert_eq!(w.round, x.round + 1);
    }
}
