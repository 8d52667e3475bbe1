//! Announcements: text the house wants spoken without anyone asking (a timer that rang, a Home
//! Assistant automation's "the washing machine is done"), `POST /v1/announce`.
//!
//! They go through the live pipeline, not around it: the pipeline speaks the next one when it
//! is idle (never over a request in progress or a reply being played), with the same TTS and
//! sink as replies; a wake word during one barges in as during a reply. The queue is bounded
//! (a flood from a looping automation is refused with 429, not spoken for an hour), and with no
//! pipeline running (no audio device, inference not configured) the caller is told at once
//! (503) instead of the announcement being silently dropped.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// At most this many announcements wait; more are refused.
pub const QUEUE: usize = 8;
/// Longest announcement text, in characters (TTS of ~1 minute).
pub const MAX_CHARS: usize = 1000;

#[derive(Debug, Clone, PartialEq)]
pub struct Announcement {
    pub text: String,
    /// Who asked ("home-assistant", "timer"), for the journal.
    pub from: String,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AnnounceError {
    #[error("nothing can speak it: the voice pipeline is not running ({0})")]
    NotRunning(String),
    #[error("{QUEUE} announcements are already waiting; try again later")]
    Full,
}

/// The queue shared by the HTTP API (producer) and the live pipeline (consumer).
#[derive(Clone, Default)]
pub struct Announcements {
    queue: Arc<Mutex<VecDeque<Announcement>>>,
    live: Arc<AtomicBool>,
}

impl Announcements {
    /// Queue one; returns its place in the queue (1 = next).
    pub fn push(&self, a: Announcement, why_not_running: &str) -> Result<usize, AnnounceError> {
        if !self.live.load(Ordering::SeqCst) {
            return Err(AnnounceError::NotRunning(why_not_running.to_owned()));
        }
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if q.len() >= QUEUE {
            return Err(AnnounceError::Full);
        }
        q.push_back(a);
        Ok(q.len())
    }

    pub fn pop(&self) -> Option<Announcement> {
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front()
    }

    pub fn waiting(&self) -> usize {
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether a pipeline takes announcements (set while the live pipeline runs).
    pub fn set_live(&self, live: bool) {
        self.live.store(live, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(t: &str) -> Announcement {
        Announcement {
            text: t.into(),
            from: "test".into(),
        }
    }

    #[test]
    fn refused_when_no_pipeline_runs_and_bounded_when_one_does() {
        let q = Announcements::default();
        assert_eq!(
            q.push(a("x"), "no audio device"),
            Err(AnnounceError::NotRunning("no audio device".into()))
        );
        q.set_live(true);
        for i in 1..=QUEUE {
            assert_eq!(q.push(a("x"), ""), Ok(i));
        }
        assert_eq!(q.push(a("one too many"), ""), Err(AnnounceError::Full));
        assert_eq!(q.pop(), Some(a("x")));
        assert_eq!(q.waiting(), QUEUE - 1);
    }
}
