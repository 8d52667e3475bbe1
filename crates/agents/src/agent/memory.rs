//! The memory agent: "remember …" stores a memory in barnabee-memory; recall questions
//! search it and answer from the results (a plain summary of the best hits).

use std::time::Duration;

use serde_json::{Value, json};

use crate::route::memory as parse;

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
    ) -> Result<Self, reqwest::Error> {
        let http = barnabee_service::http_client::build(|b| b.timeout(timeout).no_proxy())?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            default_speaker: default_speaker.to_owned(),
            store_failing: Default::default(),
        })
    }

    pub fn base(&self) -> &str {
        &self.base
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
            .map_err(|e| MemoryError::Unreachable {
                url: self.base.clone(),
                message: e.to_string(),
            })?;
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
        for h in &hits {
            if let (Some(id), Some(s)) =
                (h["memory"]["id"].as_i64(), h["memory"]["summary"].as_str())
            {
                used.push(id);
                summaries.push(s.trim_end_matches('.').to_owned());
            }
        }
        let text = match summaries.as_slice() {
            [] => format!("I don't remember anything about {query}."),
            [one] => format!("You told me: {one}."),
            [first, rest @ ..] => format!("You told me: {first}. Also: {}.", rest.join(". ")),
        };
        Ok(Reply {
            text,
            memories_used: used,
            notes: summaries,
        })
    }
}
