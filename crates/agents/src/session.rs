//! Per-session conversation context, forgotten after a TTL without turns.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::guard::Pending;

#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    pub user: String,
    pub assistant: String,
    /// Entities this turn changed: what "it" / "them" means in the next request.
    pub acted_on: Vec<String>,
}

struct Session {
    turns: VecDeque<Turn>,
    last: Instant,
    /// The barnabee-memory conversation this session's turns are stored in.
    conversation: Option<i64>,
    /// A guarded action waiting for its "yes".
    pending: Option<Pending>,
    /// What the last question that timed out would have done (for a late "yes").
    expired: Option<String>,
}

impl Session {
    fn new(now: Instant) -> Session {
        Session {
            turns: VecDeque::new(),
            last: now,
            conversation: None,
            pending: None,
            expired: None,
        }
    }
}

pub struct Sessions {
    ttl: Duration,
    max_turns: usize,
    inner: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    pub fn new(ttl: Duration, max_turns: usize) -> Self {
        Self {
            ttl,
            max_turns,
            inner: Mutex::new(HashMap::new()),
        }
    }

    /// The session's recent turns (empty when new or expired).
    pub fn history(&self, id: &str, now: Instant) -> Vec<Turn> {
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(id) {
            Some(s) if now.saturating_duration_since(s.last) <= self.ttl => {
                s.turns.iter().cloned().collect()
            }
            Some(_) => {
                map.remove(id);
                Vec::new()
            }
            None => Vec::new(),
        }
    }

    /// The entities the session's latest acting turn changed (empty: none, or expired), so
    /// "turn on the kitchen lights" … "turn it off" acts on the same lights.
    pub fn last_acted(&self, id: &str, now: Instant) -> Vec<String> {
        self.history(id, now)
            .into_iter()
            .rev()
            .find(|t| !t.acted_on.is_empty())
            .map(|t| t.acted_on)
            .unwrap_or_default()
    }

    pub fn push(&self, id: &str, turn: Turn, now: Instant) {
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        // Drop expired sessions as we go so the map stays bounded by active sessions.
        let ttl = self.ttl;
        map.retain(|_, s| now.saturating_duration_since(s.last) <= ttl);
        let s = map
            .entry(id.to_owned())
            .or_insert_with(|| Session::new(now));
        s.last = now;
        s.turns.push_back(turn);
        while s.turns.len() > self.max_turns {
            s.turns.pop_front();
        }
    }

    /// Wait for `p`'s answer in this session (replaces any earlier question).
    pub fn set_pending(&self, id: &str, p: Pending, now: Instant) {
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let s = map
            .entry(id.to_owned())
            .or_insert_with(|| Session::new(now));
        s.pending = Some(p);
        s.expired = None;
    }

    pub fn take_pending(&self, id: &str) -> Option<Pending> {
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        map.get_mut(id).and_then(|s| s.pending.take())
    }

    /// Drop question `pending_id` if it still waits (its timeout); remembered for a late "yes".
    pub fn expire_pending(&self, id: &str, pending_id: u64) -> Option<Pending> {
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let s = map.get_mut(id)?;
        if s.pending.as_ref().is_some_and(|p| p.id == pending_id) {
            let p = s.pending.take()?;
            s.expired = Some(p.what());
            return Some(p);
        }
        None
    }

    pub fn take_expired(&self, id: &str) -> Option<String> {
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        map.get_mut(id).and_then(|s| s.expired.take())
    }

    /// The memory conversation id of a live session.
    pub fn conversation(&self, id: &str) -> Option<i64> {
        let map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        map.get(id).and_then(|s| s.conversation)
    }

    pub fn set_conversation(&self, id: &str, conversation: i64) {
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = map.get_mut(id) {
            s.conversation = Some(conversation);
        }
    }

    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(u: &str) -> Turn {
        Turn {
            user: u.into(),
            assistant: "ok".into(),
            acted_on: Vec::new(),
        }
    }

    #[test]
    fn ttl_and_bound() {
        let s = Sessions::new(Duration::from_secs(10), 2);
        let t0 = Instant::now();
        s.push("a", turn("1"), t0);
        s.push("a", turn("2"), t0);
        s.push("a", turn("3"), t0);
        let h = s.history("a", t0 + Duration::from_secs(5));
        assert_eq!(h, vec![turn("2"), turn("3")]);
        assert!(s.history("b", t0).is_empty());
        assert!(s.history("a", t0 + Duration::from_secs(11)).is_empty());
        assert!(s.is_empty());
    }

    #[test]
    fn last_acted_is_the_latest_turn_that_changed_something() {
        let s = Sessions::new(Duration::from_secs(10), 5);
        let t0 = Instant::now();
        assert!(s.last_acted("a", t0).is_empty());
        let acted = |ids: &[&str]| Turn {
            acted_on: ids.iter().map(|i| i.to_string()).collect(),
            ..turn("x")
        };
        s.push("a", acted(&["light.kitchen"]), t0);
        s.push("a", turn("what time is it"), t0);
        assert_eq!(s.last_acted("a", t0), vec!["light.kitchen"]);
        s.push("a", acted(&["light.a", "light.b"]), t0);
        assert_eq!(s.last_acted("a", t0), vec!["light.a", "light.b"]);
        assert!(s.last_acted("b", t0).is_empty(), "per session");
        assert!(s.last_acted("a", t0 + Duration::from_secs(11)).is_empty());
    }
}
