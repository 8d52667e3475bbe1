//! The memory agent: "remember …" stores a memory in barnabee-memory; recall questions
//! search it and answer from the results (a plain summary of the best hits). When no memory
//! answers, or the question is about a past conversation ("what did I ask you about the weather?"),
//! the speaker's earlier turns are searched too, by words and meaning, and the best one is read
//! back with its day ("Yesterday you said: is it going to rain tomorrow").

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, TimeZone};
use serde_json::{Value, json};

use crate::clock::Clock;
use crate::route::memory as parse;

/// A memory or turn found by meaning alone answers only from this cosine similarity on: the
/// nearest of unrelated sentences is still the nearest. Measured with all-MiniLM-L6-v2 on the
/// recall set (crates/cli/tests/recall.rs prints both sides): see README "Recall by meaning".
const SIMILARITY: f64 = 0.3;

#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error("cannot reach barnabee-memory at {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("barnabee-memory answered HTTP {status} to {what}: {body}")]
    Status {
        status: u16,
        what: &'static str,
        body: String,
    },
    #[error("barnabee-memory sent an unexpected answer to {what}: {message}")]
    Protocol { what: &'static str, message: String },
}

pub struct MemoryAgent {
    http: reqwest::Client,
    base: String,
    default_speaker: String,
    clock: Arc<dyn Clock>,
    /// Whether the last turn could not be stored (warn on changes only, not every turn).
    store_failing: std::sync::atomic::AtomicBool,
}

/// One turn as stored in barnabee-memory.
pub struct StoredTurn<'a> {
    pub speaker: Option<&'a str>,
    pub utterance: &'a str,
    pub response: &'a str,
    pub route: &'a str,
    pub latency_ms: i64,
}

pub struct Reply {
    pub text: String,
    pub memories_used: Vec<i64>,
    /// The summaries found (recall), for an LLM to phrase the answer.
    pub notes: Vec<String>,
}

impl MemoryAgent {
    pub fn new(
        base: &str,
        timeout: Duration,
        default_speaker: &str,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, reqwest::Error> {
        let http = barnabee_service::http_client::build(|b| b.timeout(timeout).no_proxy())?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            default_speaker: default_speaker.to_owned(),
            clock,
            store_failing: Default::default(),
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn unreachable(&self, e: impl std::fmt::Display) -> MemoryError {
        MemoryError::Unreachable {
            url: self.base.clone(),
            message: e.to_string(),
        }
    }

    async fn post(
        &self,
        path: &str,
        what: &'static str,
        body: Value,
    ) -> Result<Value, MemoryError> {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            let body = resp.text().await.unwrap_or_default();
            return Err(MemoryError::Status { status, what, body });
        }
        resp.json().await.map_err(|e| MemoryError::Protocol {
            what,
            message: e.to_string(),
        })
    }

    /// Store one turn in barnabee-memory, creating the conversation on the session's first
    /// turn; returns the conversation id. Failures are logged (on change), never spoken.
    pub async fn store_turn(&self, conversation: Option<i64>, turn: StoredTurn<'_>) -> Option<i64> {
        use std::sync::atomic::Ordering;
        let result = async {
            let id = match conversation {
                Some(id) => id,
                None => {
                    let c = self
                        .post(
                            "/v1/conversations",
                            "POST /v1/conversations",
                            json!({"speaker": turn.speaker.unwrap_or(&self.default_speaker), "mode": "voice"}),
                        )
                        .await?;
                    c["id"].as_i64().ok_or_else(|| MemoryError::Protocol {
                        what: "POST /v1/conversations",
                        message: "no id in the answer".into(),
                    })?
                }
            };
            self.post(
                &format!("/v1/conversations/{id}/turns"),
                "POST /v1/conversations/{id}/turns",
                json!({"utterance": turn.utterance, "response": turn.response,
                       "route": turn.route, "latency_ms": turn.latency_ms}),
            )
            .await?;
            Ok::<i64, MemoryError>(id)
        }
        .await;
        match result {
            Ok(id) => {
                if self.store_failing.swap(false, Ordering::Relaxed) {
                    log::info!(event = "turn_store_recovered"; "storing turns in barnabee-memory works again");
                }
                Some(id)
            }
            Err(e) => {
                if !self.store_failing.swap(true, Ordering::Relaxed) {
                    log::warn!(event = "turn_store_failed"; "cannot store turns in barnabee-memory: {e}");
                }
                None
            }
        }
    }

    pub async fn remember(
        &self,
        original: &str,
        speaker: Option<&str>,
    ) -> Result<Reply, MemoryError> {
        let content = parse::memory_content(original);
        if content.is_empty() {
            return Ok(Reply {
                text: "What should I remember?".into(),
                memories_used: Vec::new(),
                notes: Vec::new(),
            });
        }
        let owner = speaker.unwrap_or(&self.default_speaker);
        let keywords: Vec<String> = parse::recall_query(&crate::route::normalize(&content))
            .split(' ')
            .filter(|w| w.len() > 2)
            .map(str::to_owned)
            .collect();
        let created = self
            .post(
                "/v1/memories",
                "POST /v1/memories",
                json!({
                    "summary": content,
                    "content": original.trim(),
                    "keywords": keywords,
                    "memory_type": "fact",
                    "owner": owner,
                    "visibility": "family",
                    "source": "barnabee-agents",
                }),
            )
            .await?;
        let id = created["id"]
            .as_i64()
            .ok_or_else(|| MemoryError::Protocol {
                what: "POST /v1/memories",
                message: "no id in the answer".into(),
            })?;
        Ok(Reply {
            text: format!("Got it, I'll remember: {content}."),
            memories_used: vec![id],
            notes: Vec::new(),
        })
    }

    pub async fn recall(
        &self,
        normalized: &str,
        speaker: Option<&str>,
    ) -> Result<Reply, MemoryError> {
        let query = parse::recall_query(normalized);
        let requester = speaker.unwrap_or(&self.default_speaker);
        let about_conversation = parse::asks_about_conversation(normalized);
        let found = self
            .post(
                "/v1/search",
                "POST /v1/search",
                // Hybrid: words and meaning ("what is Leo allergic to?" finds "Leo can't have
                // peanuts"); memory falls back to words when it has no embeddings.
                json!({"requester": requester, "query": query, "mode": "hybrid", "limit": 3}),
            )
            .await?;
        let hits = found["results"].as_array().cloned().unwrap_or_default();
        let mut used = Vec::new();
        let mut summaries = Vec::new();
        // The nearest memories always come back; only those sharing a word or close in
        // meaning answer ("I don't remember" beats reading back an unrelated fact).
        for h in hits.iter().filter(|h| relevant(h)) {
            if let (Some(id), Some(s)) =
                (h["memory"]["id"].as_i64(), h["memory"]["summary"].as_str())
            {
                used.push(id);
                summaries.push(s.trim_end_matches('.').to_owned());
            }
        }
        // Earlier turns: when no memory answers, or first when the question is about them.
        let turn = if summaries.is_empty() || about_conversation {
            match self.earlier_turn(&query, requester).await {
                Ok(t) => t,
                Err(e) => {
                    log::warn!(event = "turn_search_failed"; "answering from memories only: {e}");
                    None
                }
            }
        } else {
            None
        };
        let mut notes = Vec::new();
        let said = turn.map(|(text, at)| {
            let when = when_said(at, &self.clock.now());
            notes.push(format!("{when} the family member said: {text}"));
            format!("{} you said: {text}.", capitalise(&when))
        });
        let remembered = match summaries.as_slice() {
            [] => None,
            [one] => Some(format!("You told me: {one}.")),
            [first, rest @ ..] => Some(format!("You told me: {first}. Also: {}.", rest.join(". "))),
        };
        notes.extend(summaries);
        let text = match (said, remembered, about_conversation) {
            (None, None, _) => format!("I don't remember anything about {query}."),
            (Some(s), None, _) | (None, Some(s), _) => s,
            (Some(s), Some(r), true) => format!("{s} {r}"),
            (Some(s), Some(r), false) => format!("{r} {s}"),
        };
        Ok(Reply {
            text,
            memories_used: used,
            notes,
        })
    }

    /// The speaker's best matching earlier turn that was not itself about memory (a recall
    /// question would find itself), as (what was said, when in Unix ms).
    async fn earlier_turn(
        &self,
        query: &str,
        speaker: &str,
    ) -> Result<Option<(String, i64)>, MemoryError> {
        let url = reqwest::Url::parse_with_params(
            &format!("{}/v1/turns/search", self.base),
            [
                ("query", query),
                ("speaker", speaker),
                ("mode", "hybrid"),
                ("limit", "5"),
            ],
        )
        .map_err(|e| self.unreachable(e))?;
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let status = resp.status().as_u16();
        if status != 200 {
            let body = resp.text().await.unwrap_or_default();
            return Err(MemoryError::Status {
                status,
                what: "GET /v1/turns/search",
                body,
            });
        }
        let hits: Vec<Value> = resp.json().await.map_err(|e| MemoryError::Protocol {
            what: "GET /v1/turns/search",
            message: e.to_string(),
        })?;
        Ok(hits.iter().find_map(|h| {
            let about_memory = h["route"].as_str() == Some("memory");
            (relevant(h) && !about_memory).then(|| {
                (
                    h["utterance"]
                        .as_str()
                        .unwrap_or("")
                        .trim_end_matches(['.', '?', '!'])
                        .to_owned(),
                    h["created_at"].as_i64().unwrap_or(0),
                )
            })
        }))
    }
}

/// A search hit (memory or turn) that answers the question: it shares a word with it, or its
/// meaning is close enough ([`SIMILARITY`]).
fn relevant(hit: &Value) -> bool {
    hit["fts_rank"].is_u64() || hit["similarity"].as_f64().is_some_and(|s| s >= SIMILARITY)
}

/// When something was said, as the family would put it: "today", "yesterday", "on Monday"
/// (within a week), else "on 3 March".
pub fn when_said(at_ms: i64, now: &DateTime<FixedOffset>) -> String {
    let Some(at) = now.offset().timestamp_millis_opt(at_ms).single() else {
        return "earlier".into();
    };
    let days = (now.date_naive() - at.date_naive()).num_days();
    match days {
        ..0 | 0 => "today".into(),
        1 => "yesterday".into(),
        2..=6 => format!("on {}", at.format("%A")),
        _ => format!("on {}", at.format("%-d %B")),
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_as_the_family_says_them() {
        let now = DateTime::parse_from_rfc3339("2026-12-07T09:00:00+01:00").unwrap();
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis();
        assert_eq!(when_said(at("2026-12-07T00:30:00+01:00"), &now), "today");
        // 23:30 the evening before is yesterday in the house's zone, though under 10 hours ago.
        assert_eq!(
            when_said(at("2026-12-06T23:30:00+01:00"), &now),
            "yesterday"
        );
        assert_eq!(
            when_said(at("2026-12-03T12:00:00+01:00"), &now),
            "on Thursday"
        );
        assert_eq!(
            when_said(at("2026-11-02T12:00:00+01:00"), &now),
            "on 2 November"
        );
        assert_eq!(capitalise("on Thursday"), "On Thursday");
    }
}
