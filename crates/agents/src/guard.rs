//! Guarded actions: "unlock the front door" is not something anyone (a guest, the television)
//! may say and have happen.
//!
//! An action on a guarded device (`[guard]`: locks, alarm panels and valves by domain, garage
//! and gate covers by device class, more by entity id) needs, in this order:
//! 1. a family member identified by voice (`speaker`, not `guest`) with a confidence of at
//!    least `min_confidence` (the voice daemon sends `speaker_confidence`);
//! 2. that member permitted for every device of the request (`[guard.members]`; anyone not
//!    listed is refused: closed by default);
//! 3. a spoken confirmation from the same member in the same session within
//!    `confirm_timeout` ("Unlock Front Door? Say yes to confirm." → "yes").
//!
//! Anything else is refused with a reply that says why, and no service is called. Locking and
//! closing are never guarded (a guest may lock the door). Speaker identification off means
//! no speaker, so every guarded action is refused: it fails closed. Every attempt is written to
//! the audit log ([`Audit`]) with the speaker and the outcome.
//!
//! Defined behaviour for the awkward cases: a confirmation in another language or any short
//! answer that is neither yes nor no ("ja") asks again and keeps waiting; another member's
//! "yes" is refused and the question stays the asker's; anything longer than a short answer
//! drops the question (`abandoned`) and is handled as a new request; silence until the timeout
//! drops it (`timed_out`), and a late "yes" is told so.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use rusqlite::{Connection, params};
use serde::Serialize;

use crate::config::GuardConfig;
use crate::route::action::Verb;

/// Who asks: what the request says about the speaker.
#[derive(Debug, Clone, Copy)]
pub struct Who<'a> {
    pub session: &'a str,
    pub speaker: Option<&'a str>,
    pub confidence: Option<f64>,
    pub device_id: Option<&'a str>,
}

/// An action waiting for its "yes".
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub id: u64,
    pub verb: Verb,
    pub entity_ids: Vec<String>,
    /// The devices as the replies name them: "Front Door".
    pub names: String,
    pub speaker: String,
    pub expires: Instant,
}

impl Pending {
    /// "unlock Front Door", for the replies and the audit log.
    pub fn what(&self) -> String {
        format!("{} {}", self.verb.say(), self.names)
    }
}

/// What a reply to the question was.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Answer {
    Yes,
    No,
    /// A short answer that is neither (another language, a mumble): ask again.
    Unclear,
    /// A new request.
    Other,
}

/// Classify an utterance said while a question waits.
pub fn answer(text: &str) -> Answer {
    let t: String = text
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '\'' {
                c
            } else {
                ' '
            }
        })
        .collect();
    let t = t.split_whitespace().collect::<Vec<_>>().join(" ");
    let t = t
        .strip_prefix("hey barnabee ")
        .or_else(|| t.strip_prefix("barnabee "))
        .unwrap_or(&t);
    const YES: &[&str] = &[
        "yes",
        "yes please",
        "yeah",
        "yep",
        "yup",
        "sure",
        "confirm",
        "confirmed",
        "do it",
        "go ahead",
        "yes do it",
        "yes go ahead",
        "ok",
        "okay",
    ];
    const NO: &[&str] = &[
        "no",
        "nope",
        "no thanks",
        "no thank you",
        "cancel",
        "don't",
        "do not",
        "stop",
        "never mind",
        "nevermind",
    ];
    if YES.contains(&t) {
        Answer::Yes
    } else if NO.contains(&t) {
        Answer::No
    } else if t.split(' ').count() <= 3 {
        Answer::Unclear
    } else {
        Answer::Other
    }
}

pub struct Guard {
    cfg: GuardConfig,
    pub audit: Audit,
}

impl Guard {
    pub fn new(cfg: GuardConfig, audit: Audit) -> Guard {
        Guard { cfg, audit }
    }

    pub fn confirm_timeout(&self) -> std::time::Duration {
        self.cfg.confirm_timeout
    }

    /// Whether acting with `verb` on this entity needs the guard. Locking and closing make a
    /// home safer and are never guarded; a query changes nothing.
    pub fn guarded(&self, verb: Verb, entity_id: &str, device_class: Option<&str>) -> bool {
        if matches!(verb, Verb::Lock | Verb::Close | Verb::Query) {
            return false;
        }
        let domain = entity_id.split('.').next().unwrap_or_default();
        self.cfg.entities.iter().any(|e| e == entity_id)
            || self.cfg.domains.iter().any(|d| d == domain)
            || (domain == "cover"
                && device_class
                    .is_some_and(|c| self.cfg.cover_device_classes.iter().any(|g| g == c)))
    }

    /// May `who` be asked to confirm acting on `ids`? `Err((reply, outcome))` when not.
    pub fn check(
        &self,
        who: &Who,
        verb: Verb,
        ids: &[String],
        names: &str,
    ) -> Result<String, (String, &'static str)> {
        let what = format!("{} {names}", verb.say());
        let Some(speaker) = who
            .speaker
            .filter(|s| *s != "guest" && !s.trim().is_empty())
        else {
            return Err((
                format!("I can only {what} for a family member I recognise by voice."),
                "refused_unidentified",
            ));
        };
        if who.confidence.is_none_or(|c| c < self.cfg.min_confidence) {
            return Err((
                format!("I'm not sure enough that it's you, {speaker}, to {what}."),
                "refused_low_confidence",
            ));
        }
        let allowed = self.cfg.members.get(speaker);
        let permitted = |id: &String| {
            allowed.is_some_and(|list| {
                let domain = id.split('.').next().unwrap_or_default();
                list.iter().any(|a| a == "*" || a == id || a == domain)
            })
        };
        if !ids.iter().all(permitted) {
            return Err((
                format!("Sorry {speaker}, you're not allowed to {what}."),
                "refused_not_permitted",
            ));
        }
        Ok(speaker.to_owned())
    }
}

/// One audit log entry.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Entry {
    pub at_ms: i64,
    pub session_id: String,
    pub speaker: Option<String>,
    pub speaker_confidence: Option<f64>,
    pub device_id: Option<String>,
    pub action: String,
    pub entity_ids: Vec<String>,
    /// asked, refused_unidentified, refused_low_confidence, refused_not_permitted,
    /// refused_other_speaker, confirmed (then done), declined, timed_out, abandoned.
    pub outcome: String,
}

/// The audit log. Every entry goes to barnabee-memory's audit log (`POST /v1/audit`, action
/// `guarded_action`, the family's one audit trail, kept by memory's retention) and to a table
/// in the agents' own database (`cost-ledger.sqlite`, replicated with the ledger), which is
/// written even while memory is down, so no attempt goes unrecorded; `GET /v1/audit` here
/// reads that one.
pub struct Audit {
    conn: Mutex<Connection>,
    /// barnabee-memory's base URL and a client, when entries are forwarded there.
    memory: Option<(String, reqwest::Client)>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS guard_audit (
    id INTEGER PRIMARY KEY,
    at_ms INTEGER NOT NULL,
    session_id TEXT NOT NULL,
    speaker TEXT,
    speaker_confidence REAL,
    device_id TEXT,
    action TEXT NOT NULL,
    entity_ids TEXT NOT NULL,
    outcome TEXT NOT NULL
);
";

impl Audit {
    /// The log in `db` (the ledger's file), or in memory.
    pub fn open(db: Option<&Path>) -> Result<Audit, rusqlite::Error> {
        let conn = match db {
            Some(p) => Connection::open(p)?,
            None => Connection::open_in_memory()?,
        };
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Audit {
            conn: Mutex::new(conn),
            memory: None,
        })
    }

    /// Also send every entry to barnabee-memory at `base_url`.
    pub fn forwarding_to(mut self, base_url: &str, http: reqwest::Client) -> Audit {
        self.memory = Some((base_url.trim_end_matches('/').to_owned(), http));
        self
    }

    /// Record one attempt (a failure is logged: the action's outcome does not depend on it).
    pub fn record(&self, who: &Who, action: &str, entity_ids: &[String], outcome: &str) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        log::info!(event = "guarded_action", outcome = outcome, speaker = who.speaker.unwrap_or(""),
            session_id = who.session, entities = entity_ids.join(",").as_str(); "guarded action {action:?}: {outcome}");
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = conn.execute(
            "INSERT INTO guard_audit (at_ms, session_id, speaker, speaker_confidence, device_id, action, entity_ids, outcome) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![now, who.session, who.speaker, who.confidence, who.device_id, action, entity_ids.join(","), outcome],
        ) {
            log::error!(event = "audit_not_written"; "cannot write the guard audit log: {e}");
        }
        drop(conn);
        // Off the request's path; outside a runtime (unit tests) only the local table.
        if let (Some((base, http)), Ok(rt)) = (&self.memory, tokio::runtime::Handle::try_current())
        {
            let body = serde_json::json!({
                "actor": who.speaker,
                "action": "guarded_action",
                "target_kind": "entity",
                "target_id": entity_ids.join(","),
                "detail": {"outcome": outcome, "action": action, "session_id": who.session,
                           "device_id": who.device_id, "speaker_confidence": who.confidence},
            });
            let (url, http) = (format!("{base}/v1/audit"), http.clone());
            rt.spawn(async move {
                match http.post(&url).json(&body).send().await {
                    Ok(r) if r.status().is_success() => {}
                    Ok(r) => log::warn!(event = "audit_not_forwarded"; "barnabee-memory refused the audit entry: HTTP {}", r.status()),
                    Err(e) => log::warn!(event = "audit_not_forwarded"; "cannot reach barnabee-memory for the audit log ({e}); the entry is in the agents' own log"),
                }
            });
        }
    }

    /// The newest `limit` entries, newest first.
    pub fn recent(&self, limit: usize) -> Result<Vec<Entry>, rusqlite::Error> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let mut st = conn.prepare(
            "SELECT at_ms, session_id, speaker, speaker_confidence, device_id, action, entity_ids, outcome FROM guard_audit ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = st.query_map([limit as i64], |r| {
            let ids: String = r.get(6)?;
            Ok(Entry {
                at_ms: r.get(0)?,
                session_id: r.get(1)?,
                speaker: r.get(2)?,
                speaker_confidence: r.get(3)?,
                device_id: r.get(4)?,
                action: r.get(5)?,
                entity_ids: ids
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
                outcome: r.get(7)?,
            })
        })?;
        rows.collect()
    }

    /// How many entries per outcome (for tests and the closing figures).
    pub fn outcomes(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for e in self.recent(10_000).unwrap_or_default() {
            *m.entry(e.outcome).or_default() += 1;
        }
        m
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn guard(members: &[(&str, &[&str])]) -> Guard {
        let cfg = GuardConfig {
            members: members
                .iter()
                .map(|(n, l)| (n.to_string(), l.iter().map(|s| s.to_string()).collect()))
                .collect(),
            ..GuardConfig::default()
        };
        Guard::new(cfg, Audit::open(None).unwrap())
    }

    fn who(speaker: Option<&'static str>, confidence: Option<f64>) -> Who<'static> {
        Who {
            session: "s",
            speaker,
            confidence,
            device_id: None,
        }
    }

    #[test]
    fn what_is_guarded() {
        let g = guard(&[]);
        assert!(g.guarded(Verb::Unlock, "lock.front_door", None));
        assert!(
            !g.guarded(Verb::Lock, "lock.front_door", None),
            "locking is safe"
        );
        assert!(g.guarded(Verb::Open, "cover.garage_door", Some("garage")));
        assert!(!g.guarded(Verb::Open, "cover.kitchen_window", Some("window")));
        assert!(!g.guarded(Verb::Close, "cover.garage_door", Some("garage")));
        assert!(!g.guarded(Verb::TurnOn, "light.kitchen", None));
        assert!(g.guarded(Verb::TurnOn, "valve.garden", None));
    }

    #[test]
    fn who_may_be_asked() {
        let g = guard(&[("anna", &["*"]), ("ben", &["lock"]), ("leo", &[])]);
        let ids = vec!["lock.front_door".to_owned()];
        let outcome = |w: Who| {
            g.check(&w, Verb::Unlock, &ids, "Front Door")
                .map_err(|(_, o)| o)
        };
        assert_eq!(outcome(who(None, None)), Err("refused_unidentified"));
        assert_eq!(
            outcome(who(Some("guest"), Some(0.9))),
            Err("refused_unidentified")
        );
        assert_eq!(
            outcome(who(Some("anna"), Some(0.5))),
            Err("refused_low_confidence")
        );
        assert_eq!(
            outcome(who(Some("anna"), None)),
            Err("refused_low_confidence")
        );
        assert_eq!(
            outcome(who(Some("leo"), Some(0.95))),
            Err("refused_not_permitted")
        );
        assert_eq!(
            outcome(who(Some("zoe"), Some(0.95))),
            Err("refused_not_permitted")
        );
        assert_eq!(outcome(who(Some("anna"), Some(0.9))), Ok("anna".into()));
        assert_eq!(outcome(who(Some("ben"), Some(0.9))), Ok("ben".into()));
        let garage = vec!["cover.garage_door".to_owned()];
        assert!(
            g.check(
                &who(Some("ben"), Some(0.9)),
                Verb::Open,
                &garage,
                "Garage Door"
            )
            .is_err()
        );
    }

    #[test]
    fn answers() {
        for y in [
            "yes",
            "Yes.",
            "yes please",
            "Hey Barnabee, yes!",
            "do it",
            "OK",
        ] {
            assert_eq!(answer(y), Answer::Yes, "{y}");
        }
        for n in ["no", "No thanks.", "cancel", "never mind"] {
            assert_eq!(answer(n), Answer::No, "{n}");
        }
        for u in ["ja", "oui", "si", "hmm what"] {
            assert_eq!(answer(u), Answer::Unclear, "{u}");
        }
        assert_eq!(answer("turn on the kitchen lights please"), Answer::Other);
    }

    #[test]
    fn the_audit_log_keeps_every_attempt() {
        let a = Audit::open(None).unwrap();
        let w = who(Some("anna"), Some(0.9));
        a.record(
            &w,
            "unlock Front Door",
            &["lock.front_door".into()],
            "asked",
        );
        a.record(
            &w,
            "unlock Front Door",
            &["lock.front_door".into()],
            "confirmed",
        );
        let r = a.recent(10).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].outcome, "confirmed");
        assert_eq!(r[1].entity_ids, vec!["lock.front_door"]);
        assert_eq!(r[1].speaker.as_deref(), Some("anna"));
    }
}
