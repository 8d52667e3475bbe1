//! OpenAI-compatible chat completions over reqwest: providers in priority order with
//! failover, streaming (SSE) or not, `usage` accounted on every call.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use barnabee_service::secret::Secret;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::breaker::{Breakers, Gate};
use crate::config::{Price, ProviderConfig};

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Message {
    pub role: &'static str,
    pub content: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub text: String,
    pub provider: String,
    pub model: String,
    pub usage: Usage,
    /// `usage` was missing from the answer and was estimated from the text length.
    pub usage_estimated: bool,
    pub cost_usd: f64,
    /// How many providers failed before this one answered.
    pub failed_before: usize,
    pub elapsed: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("{provider}: HTTP {status}")]
    Status { provider: String, status: u16 },
    #[error("{provider}: timed out after {after:?}")]
    Timeout { provider: String, after: Duration },
    #[error("{provider}: {message}")]
    Transport { provider: String, message: String },
    #[error("{provider}: unexpected answer: {message}")]
    Protocol { provider: String, message: String },
    #[error("{provider}: skipped, its circuit is open for {} s more", .left.as_secs() + 1)]
    CircuitOpen { provider: String, left: Duration },
    #[error("no LLM provider is configured")]
    NoProvider,
    #[error("no allowed provider (budget: local only) is configured")]
    NoneAllowed,
    #[error("every provider failed: {}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    AllFailed(Vec<LlmError>),
}

impl LlmError {
    pub fn outcome(&self) -> &'static str {
        match self {
            LlmError::Timeout { .. } => "timeout",
            _ => "error",
        }
    }
}

pub struct Provider {
    pub cfg: ProviderConfig,
    pub api_key: Option<Secret>,
}

pub struct LlmClient {
    http: reqwest::Client,
    pub providers: Vec<Provider>,
    prices: BTreeMap<String, Price>,
    /// Skips a provider that keeps failing (`crate::breaker`).
    pub breakers: Breakers,
}

/// The outcome of one provider attempt, reported to the caller for metrics.
pub struct Attempt<'a> {
    pub provider: &'a str,
    pub model: &'a str,
    pub outcome: &'static str,
}

impl LlmClient {
    pub fn new(
        providers: Vec<Provider>,
        prices: BTreeMap<String, Price>,
        breakers: Breakers,
    ) -> Result<Self, reqwest::Error> {
        let http = barnabee_service::http_client::build(|b| b.no_proxy())?;
        for p in &providers {
            breakers.register(&p.cfg.name);
        }
        Ok(Self {
            http,
            providers,
            prices,
            breakers,
        })
    }

    pub fn cost(&self, model: &str, usage: Usage) -> f64 {
        self.prices.get(model).map_or(0.0, |p| {
            (usage.prompt_tokens as f64 * p.input + usage.completion_tokens as f64 * p.output)
                / 1_000_000.0
        })
    }

    /// Try each allowed provider in order until one answers.
    pub async fn complete(
        &self,
        messages: &[Message],
        stream: bool,
        allowed: impl Fn(&ProviderConfig) -> bool,
        mut on_attempt: impl FnMut(Attempt<'_>),
    ) -> Result<Completion, LlmError> {
        if self.providers.is_empty() {
            return Err(LlmError::NoProvider);
        }
        let mut errors = Vec::new();
        let mut tried = 0;
        for p in self.providers.iter().filter(|p| allowed(&p.cfg)) {
            tried += 1;
            if let Gate::Open { left } = self.breakers.gate(&p.cfg.name) {
                errors.push(LlmError::CircuitOpen {
                    provider: p.cfg.name.clone(),
                    left,
                });
                continue;
            }
            let start = Instant::now();
            let result = tokio::time::timeout(p.cfg.timeout, self.one(p, messages, stream))
                .await
                .unwrap_or_else(|_| {
                    Err(LlmError::Timeout {
                        provider: p.cfg.name.clone(),
                        after: p.cfg.timeout,
                    })
                });
            match &result {
                Ok(_) => self.breakers.success(&p.cfg.name),
                Err(e) => self.breakers.failure(&p.cfg.name, &e.to_string()),
            }
            match result {
                Ok((text, usage)) => {
                    on_attempt(Attempt {
                        provider: &p.cfg.name,
                        model: &p.cfg.model,
                        outcome: "ok",
                    });
                    let (usage, estimated) = match usage {
                        Some(u) => (u, false),
                        None => (estimate(messages, &text), true),
                    };
                    return Ok(Completion {
                        cost_usd: self.cost(&p.cfg.model, usage),
                        text,
                        provider: p.cfg.name.clone(),
                        model: p.cfg.model.clone(),
                        usage,
                        usage_estimated: estimated,
                        failed_before: errors.len(),
                        elapsed: start.elapsed(),
                    });
                }
                Err(e) => {
                    on_attempt(Attempt {
                        provider: &p.cfg.name,
                        model: &p.cfg.model,
                        outcome: e.outcome(),
                    });
                    log::warn!(provider = p.cfg.name.as_str(), event = "llm_failover"; "LLM provider failed: {e}");
                    errors.push(e);
                }
            }
        }
        if tried == 0 {
            Err(LlmError::NoneAllowed)
        } else {
            Err(LlmError::AllFailed(errors))
        }
    }

    async fn one(
        &self,
        p: &Provider,
        messages: &[Message],
        stream: bool,
    ) -> Result<(String, Option<Usage>), LlmError> {
        let name = &p.cfg.name;
        let transport = |e: reqwest::Error| LlmError::Transport {
            provider: name.clone(),
            message: e.to_string(),
        };
        let protocol = |m: String| LlmError::Protocol {
            provider: name.clone(),
            message: m,
        };
        let mut body = json!({
            "model": p.cfg.model,
            "messages": messages,
            "max_tokens": p.cfg.max_tokens,
            "stream": stream,
        });
        if stream {
            body["stream_options"] = json!({"include_usage": true});
        }
        let url = format!("{}/chat/completions", p.cfg.base_url.trim_end_matches('/'));
        let mut req = self.http.post(url).json(&body);
        if let Some(key) = &p.api_key {
            req = req.bearer_auth(key.expose());
        }
        let mut resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        if !status.is_success() {
            return Err(LlmError::Status {
                provider: name.clone(),
                status: status.as_u16(),
            });
        }
        if !stream {
            let v: Value = resp.json().await.map_err(transport)?;
            let text = v["choices"][0]["message"]["content"]
                .as_str()
                .ok_or_else(|| protocol("no choices[0].message.content".into()))?
                .to_owned();
            let usage = serde_json::from_value(v["usage"].clone()).ok();
            return Ok((text, usage));
        }
        let mut sse = SseText::default();
        while let Some(chunk) = resp.chunk().await.map_err(transport)? {
            sse.feed(&chunk).map_err(protocol)?;
            if sse.done {
                break;
            }
        }
        if !sse.done && sse.text.is_empty() {
            return Err(protocol("stream ended without data".into()));
        }
        Ok((sse.text, sse.usage))
    }
}

/// Rough token estimate (4 characters a token) when a provider sends no `usage`.
fn estimate(messages: &[Message], text: &str) -> Usage {
    let prompt: usize = messages.iter().map(|m| m.content.len()).sum();
    Usage {
        prompt_tokens: (prompt as u64).div_ceil(4),
        completion_tokens: (text.len() as u64).div_ceil(4),
    }
}

/// Accumulates an OpenAI streaming answer (`data: {json}` lines, `data: [DONE]`).
#[derive(Default)]
pub struct SseText {
    buf: Vec<u8>,
    pub text: String,
    pub usage: Option<Usage>,
    pub done: bool,
}

impl SseText {
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.buf.extend_from_slice(bytes);
        while let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=i).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim();
            let Some(data) = line.strip_prefix("data:") else {
                continue; // comments (": keep-alive"), event:, id:, blank separators
            };
            let data = data.trim();
            if data == "[DONE]" {
                self.done = true;
                return Ok(());
            }
            let v: Value =
                serde_json::from_str(data).map_err(|e| format!("bad SSE data {data:?}: {e}"))?;
            if let Some(err) = v.get("error") {
                return Err(format!("error in stream: {err}"));
            }
            if let Some(t) = v["choices"][0]["delta"]["content"].as_str() {
                self.text.push_str(t);
            }
            if let Ok(u) = serde_json::from_value::<Usage>(v["usage"].clone()) {
                self.usage = Some(u);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sse_split_across_chunks() {
        let mut s = SseText::default();
        s.feed(
            b"data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n: ping\n\ndata: {\"choi",
        )
        .unwrap();
        s.feed(b"ces\":[{\"delta\":{\"content\":\"lo\"}}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2,\"total_tokens\":9}}\n\ndata: [DONE]\n\n")
            .unwrap();
        assert_eq!(s.text, "Hello");
        assert_eq!(
            s.usage,
            Some(Usage {
                prompt_tokens: 7,
                completion_tokens: 2
            })
        );
        assert!(s.done);
    }

    #[test]
    fn price_per_million() {
        let mut prices = BTreeMap::new();
        prices.insert(
            "m".to_owned(),
            Price {
                input: 1.0,
                output: 4.0,
            },
        );
        let c = LlmClient::new(
            Vec::new(),
            prices,
            Breakers::new(3, Duration::from_secs(60), Default::default()),
        )
        .unwrap();
        let cost = c.cost(
            "m",
            Usage {
                prompt_tokens: 1_000_000,
                completion_tokens: 500_000,
            },
        );
        assert!((cost - 3.0).abs() < 1e-9);
        assert_eq!(c.cost("unknown", Usage::default()), 0.0);
    }
}
