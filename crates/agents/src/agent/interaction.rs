//! The interaction agent: the LLM answers what no rule claimed, inside the cost governor.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::governor::{BudgetState, Governor, Why};
use crate::llm::{LlmClient, LlmError, Message};
use crate::metrics::AgentMetrics;
use crate::route::interaction::is_complex;
use crate::session::Turn;

pub struct InteractionAgent {
    pub llm: LlmClient,
    pub governor: Governor,
    metrics: AgentMetrics,
    system_prompt: String,
    stream: bool,
    /// Yellow state: at most one complex query per this interval.
    complex_interval: Duration,
    last_complex: Mutex<Option<Instant>>,
}

pub struct Answer {
    pub text: String,
    /// Time spent in LLM calls.
    pub llm: Duration,
    pub budget: BudgetState,
}

impl InteractionAgent {
    pub fn new(
        llm: LlmClient,
        governor: Governor,
        metrics: AgentMetrics,
        system_prompt: String,
        stream: bool,
    ) -> Self {
        Self {
            llm,
            governor,
            metrics,
            system_prompt,
            stream,
            complex_interval: Duration::from_secs(60),
            last_complex: Mutex::new(None),
        }
    }

    /// Refresh the cost gauges from the ledger; returns the current state. The ledger is
    /// SQLite: read on the blocking pool, never on the async threads.
    pub async fn budget_state(&self) -> BudgetState {
        let gov = self.governor.clone();
        let spend = tokio::task::spawn_blocking(move || gov.spend().map_err(|e| e.to_string()))
            .await
            .unwrap_or_else(|join| Err(join.to_string()));
        self.apply_spend(spend)
    }

    /// [`Self::budget_state`] for start-up, before anything is served (a direct read is fine).
    pub fn budget_state_at_start(&self) -> BudgetState {
        self.apply_spend(self.governor.spend().map_err(|e| e.to_string()))
    }

    fn apply_spend(&self, spend: Result<crate::governor::Spend, String>) -> BudgetState {
        match spend {
            Ok(s) => {
                self.metrics.daily_cost.set(s.day_usd);
                self.metrics.monthly_cost.set(s.month_usd);
                s.state
            }
            Err(e) => {
                // Without a readable ledger we cannot know the spend: be safe, local only.
                log::error!(event = "incident"; "cost ledger unreadable: {e}");
                BudgetState::Yellow
            }
        }
    }

    /// The cheap LLM classifier for utterances no rule matched: one word, one of
    /// action / memory / interaction. `None` when the budget or the providers say no.
    pub async fn classify(&self, text: &str, speaker: Option<&str>) -> Option<crate::route::Route> {
        use crate::route::Route;
        let state = self.budget_state().await;
        if state == BudgetState::Red {
            return None;
        }
        let messages = [
            Message {
                role: "system",
                content: "Classify the user's request for a home assistant. Answer with exactly one word: action (control a device: lights, switches, covers, locks, climate), memory (store or recall a personal fact), or interaction (anything else).".into(),
            },
            Message {
                role: "user",
                content: text.to_owned(),
            },
        ];
        let c = self
            .llm
            .complete(
                &messages,
                false,
                |p| self.governor.allows(p, state),
                |a| self.metrics.llm_request(a.provider, a.model, a.outcome),
            )
            .await
            .ok()?;
        self.account(
            &c,
            Why {
                route: "router",
                agent: "classifier",
                speaker,
            },
        )
        .await;
        let word = c.text.trim().to_lowercase();
        let word = word.trim_matches(|ch: char| !ch.is_alphabetic());
        match word {
            "action" => Some(Route::Action),
            "memory" => Some(Route::Memory),
            "interaction" => Some(Route::Interaction),
            _ => None,
        }
    }

    /// Phrase a recall answer from memory notes with the LLM, when the budget allows (red:
    /// never; yellow: local providers only). `None`: use the plain summary.
    pub async fn answer_from_notes(
        &self,
        question: &str,
        notes: &[String],
        speaker: Option<&str>,
    ) -> Option<(String, Duration)> {
        if self.llm.providers.is_empty() || notes.is_empty() {
            return None;
        }
        let state = self.budget_state().await;
        if state == BudgetState::Red {
            return None;
        }
        let listed: String = notes.iter().map(|n| format!("- {n}\n")).collect();
        let messages = [
            Message {
                role: "system",
                content: format!(
                    "{} Answer the question using only these notes from the family's memory. If they do not answer it, say you don't know.\nNotes:\n{listed}",
                    self.system_prompt
                ),
            },
            Message {
                role: "user",
                content: question.to_owned(),
            },
        ];
        let start = Instant::now();
        let c = self
            .llm
            .complete(
                &messages,
                self.stream,
                |p| self.governor.allows(p, state),
                |a| self.metrics.llm_request(a.provider, a.model, a.outcome),
            )
            .await
            .ok()?;
        self.account(
            &c,
            Why {
                route: "memory",
                agent: "memory",
                speaker,
            },
        )
        .await;
        let text = c.text.trim().to_owned();
        (!text.is_empty()).then(|| (text, start.elapsed()))
    }

    async fn account(&self, c: &crate::llm::Completion, why: Why<'_>) {
        self.metrics.llm_tokens(
            &c.provider,
            &c.model,
            c.usage.prompt_tokens,
            c.usage.completion_tokens,
        );
        if c.failed_before > 0 {
            self.metrics.llm_failovers.inc();
        }
        // Written on the blocking pool (SQLite), with owned copies of what the call was for.
        let gov = self.governor.clone();
        let (provider, model) = (c.provider.clone(), c.model.clone());
        let (prompt, completion, cost) =
            (c.usage.prompt_tokens, c.usage.completion_tokens, c.cost_usd);
        let (route, agent, speaker) = (
            why.route.to_owned(),
            why.agent.to_owned(),
            why.speaker.map(str::to_owned),
        );
        let recorded = tokio::task::spawn_blocking(move || {
            gov.record(
                &provider,
                &model,
                prompt,
                completion,
                cost,
                Why {
                    route: &route,
                    agent: &agent,
                    speaker: speaker.as_deref(),
                },
            )
            .map_err(|e| e.to_string())
        })
        .await
        .unwrap_or_else(|join| Err(join.to_string()));
        if let Err(e) = recorded {
            log::error!(event = "incident"; "cannot record LLM spend: {e}");
        }
        self.budget_state().await;
    }

    pub async fn handle(
        &self,
        text: &str,
        normalized: &str,
        history: &[Turn],
        speaker: Option<&str>,
    ) -> Answer {
        let state = self.budget_state().await;
        let answer = |text: String| Answer {
            text,
            llm: Duration::ZERO,
            budget: state,
        };
        if state == BudgetState::Red {
            return answer(self.governor.policy.red_reply.clone());
        }
        if state == BudgetState::Yellow && is_complex(normalized) {
            let mut last = self.last_complex.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            if last.is_some_and(|t| now.duration_since(t) < self.complex_interval) {
                return answer(
                    "I'm saving budget today, so long questions have to wait a minute. Please ask again shortly."
                        .into(),
                );
            }
            *last = Some(now);
        }
        let mut messages = vec![Message {
            role: "system",
            content: self.system_prompt.clone(),
        }];
        for t in history {
            messages.push(Message {
                role: "user",
                content: t.user.clone(),
            });
            messages.push(Message {
                role: "assistant",
                content: t.assistant.clone(),
            });
        }
        messages.push(Message {
            role: "user",
            content: text.to_owned(),
        });
        let start = Instant::now();
        let result = self
            .llm
            .complete(
                &messages,
                self.stream,
                |p| self.governor.allows(p, state),
                |a| self.metrics.llm_request(a.provider, a.model, a.outcome),
            )
            .await;
        let llm = start.elapsed();
        let text = match result {
            Ok(c) => {
                self.account(
                    &c,
                    Why {
                        route: "interaction",
                        agent: "interaction",
                        speaker,
                    },
                ).await;
                log::info!(provider = c.provider.as_str(), model = c.model.as_str(),
                    prompt_tokens = c.usage.prompt_tokens, completion_tokens = c.usage.completion_tokens,
                    cost_usd = c.cost_usd, usage_estimated = c.usage_estimated,
                    latency_ms = c.elapsed.as_secs_f64() * 1e3; "LLM answered");
                let t = c.text.trim().to_owned();
                if t.is_empty() {
                    "Sorry, I don't have an answer for that.".to_owned()
                } else {
                    t
                }
            }
            Err(LlmError::NoProvider) => {
                "I can't answer that: no language model is configured.".to_owned()
            }
            Err(LlmError::NoneAllowed) if self.governor.is_local_only() => {
                "I'm set to use only local language models, and none is available, so I can only do basic commands.".to_owned()
            }
            Err(LlmError::NoneAllowed) => {
                "I'm saving budget today and no local language model is set up, so I can only do basic commands.".to_owned()
            }
            Err(e) => {
                log::warn!(event = "llm_unavailable"; "{e}");
                "Sorry, I can't reach a language model right now.".to_owned()
            }
        };
        Answer {
            text,
            llm,
            budget: state,
        }
    }
}
