//! One utterance end to end: route, dispatch to an agent, remember the turn, time each step.

use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::agent::ActionRecord;
use crate::agent::action::ActionAgent;
use crate::agent::instant::InstantAgent;
use crate::agent::interaction::InteractionAgent;
use crate::agent::memory::MemoryAgent;
use crate::governor::BudgetState;
use crate::guard::{self, Answer, Pending, Who};
use crate::metrics::AgentMetrics;
use crate::route::{Route, Router};
use crate::session::{Sessions, Turn};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessRequest {
    pub text: String,
    pub session_id: String,
    #[serde(default)]
    pub speaker: Option<String>,
    #[serde(default)]
    pub device_id: Option<String>,
    /// How sure the speaker identification is (0..1); guarded actions need it.
    #[serde(default)]
    pub speaker_confidence: Option<f64>,
}

/// Milliseconds spent in each step.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Timings {
    pub router: f64,
    pub action: f64,
    pub llm: f64,
    pub memory: f64,
    pub total: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProcessResponse {
    pub text: String,
    pub route: Route,
    pub intent: String,
    pub confidence: f64,
    pub actions: Vec<ActionRecord>,
    pub memories_used: Vec<i64>,
    pub timings: Timings,
    /// Present when the interaction agent ran: green, yellow or red.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetState>,
}

pub struct App {
    pub router: Router,
    pub sessions: Sessions,
    pub metrics: AgentMetrics,
    pub instant: InstantAgent,
    pub action: ActionAgent,
    pub memory: MemoryAgent,
    pub interaction: InteractionAgent,
    /// Store every turn in barnabee-memory (`[memory] store_turns`).
    pub store_turns: bool,
    /// Ask the LLM to route utterances no rule matched (`[router] llm_classifier`).
    pub llm_classifier: bool,
}

/// Confidence reported for a route the LLM classifier chose.
pub const CLASSIFIER_CONFIDENCE: f64 = 0.7;

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

impl App {
    /// When this session waits for a "yes": the answer's outcome (`None`: not an answer, a
    /// new request). Rules in `crate::guard`'s module doc.
    async fn confirmation(&self, text: &str, who: &Who<'_>) -> Option<(String, Vec<ActionRecord>)> {
        let answer = guard::answer(text);
        let audit = &self.action.guard.audit;
        let Some(p) = self.sessions.take_pending(who.session) else {
            // A "yes" to a question that already timed out.
            if answer == Answer::Yes
                && let Some(what) = self.sessions.take_expired(who.session)
            {
                return Some((
                    format!(
                        "That question timed out, so I didn't {what}. Ask me again if you still want it."
                    ),
                    Vec::new(),
                ));
            }
            return None;
        };
        if Instant::now() > p.expires {
            // The timeout task has not run yet: the same as if it had.
            audit.record(
                &Who {
                    speaker: Some(&p.speaker),
                    confidence: None,
                    ..*who
                },
                &p.what(),
                &p.entity_ids,
                "timed_out",
            );
            return (answer == Answer::Yes).then(|| {
                (
                    format!("That question timed out, so I didn't {}. Ask me again if you still want it.", p.what()),
                    Vec::new(),
                )
            });
        }
        match answer {
            Answer::Yes => {
                // The asker, still identified and permitted, and nobody else.
                let same = who.speaker == Some(p.speaker.as_str());
                if !same
                    || self
                        .action
                        .guard
                        .check(who, p.verb, &p.entity_ids, &p.names)
                        .is_err()
                {
                    audit.record(who, &p.what(), &p.entity_ids, "refused_other_speaker");
                    let reply = format!("Only {} can confirm that.", p.speaker);
                    self.sessions.set_pending(who.session, p, Instant::now());
                    return Some((reply, Vec::new()));
                }
                audit.record(who, &p.what(), &p.entity_ids, "confirmed");
                Some(self.action.act(p.verb, &p.entity_ids).await)
            }
            Answer::No => {
                audit.record(who, &p.what(), &p.entity_ids, "declined");
                Some((format!("Okay, I won't {}.", p.what()), Vec::new()))
            }
            Answer::Unclear => {
                let reply = format!("Please say yes or no: should I {}?", p.what());
                self.sessions.set_pending(who.session, p, Instant::now());
                Some((reply, Vec::new()))
            }
            Answer::Other => {
                audit.record(who, &p.what(), &p.entity_ids, "abandoned");
                None
            }
        }
    }

    /// Keep `p` for the session's next turn; if no answer comes in time, drop it and audit
    /// the timeout.
    fn await_confirmation(self: &Arc<Self>, session: &str, p: Pending) {
        let (app, session, id, wait) = (
            self.clone(),
            session.to_owned(),
            p.id,
            p.expires.saturating_duration_since(Instant::now()),
        );
        self.sessions.set_pending(&session, p, Instant::now());
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            if let Some(p) = app.sessions.expire_pending(&session, id) {
                let who = Who {
                    session: &session,
                    speaker: Some(&p.speaker),
                    confidence: None,
                    device_id: None,
                };
                app.action
                    .guard
                    .audit
                    .record(&who, &p.what(), &p.entity_ids, "timed_out");
            }
        });
    }

    pub async fn process(self: &Arc<Self>, req: ProcessRequest) -> ProcessResponse {
        let start = Instant::now();
        let mut decision = self.router.decide(&req.text);
        let mut timings = Timings {
            router: ms(start.elapsed()),
            ..Timings::default()
        };
        self.metrics.meta_latency.observe(timings.router);
        let who = Who {
            session: &req.session_id,
            speaker: req.speaker.as_deref(),
            confidence: req.speaker_confidence,
            device_id: req.device_id.as_deref(),
        };
        // An answer to "Unlock Front Door? Say yes to confirm." is not a new request.
        let t = Instant::now();
        let confirmed = self.confirmation(&req.text, &who).await;
        let mut classified = false;
        if confirmed.is_none() && decision.rule.is_none() && self.llm_classifier {
            let t = Instant::now();
            classified = true;
            if let Some(route) = self
                .interaction
                .classify(&req.text, req.speaker.as_deref())
                .await
            {
                decision.route = route;
                decision.intent = match route {
                    Route::Action => "control",
                    Route::Memory => "recall",
                    _ => "chat",
                }
                .to_owned();
                decision.confidence = CLASSIFIER_CONFIDENCE;
            }
            timings.llm += ms(t.elapsed());
        }
        self.metrics.decision(classified);
        self.metrics.count_agent(decision.route.as_str());
        let mut actions = Vec::new();
        let mut memories_used = Vec::new();
        let mut budget = None;
        let speaker = req.speaker.as_deref();
        let text = if let Some((text, records)) = confirmed {
            timings.action = ms(t.elapsed());
            decision.route = Route::Action;
            decision.intent = "confirm".to_owned();
            decision.confidence = 1.0;
            actions = records;
            text
        } else {
            match decision.route {
                Route::Instant => self.instant.handle(
                    &decision.intent,
                    &decision.normalized,
                    req.device_id.as_deref(),
                ),
                Route::Action => {
                    let t = Instant::now();
                    let previous = self.sessions.last_acted(&req.session_id, Instant::now());
                    let h = self
                        .action
                        .handle(&decision.normalized, &previous, &who)
                        .await;
                    timings.action = ms(t.elapsed());
                    self.metrics.action_latency.observe(timings.action);
                    if let Some(p) = h.pending {
                        self.await_confirmation(&req.session_id, p);
                    }
                    actions = h.records;
                    h.text
                }
                Route::Memory => {
                    let t = Instant::now();
                    let result = if decision.intent == "remember" {
                        self.memory.remember(&req.text, speaker).await
                    } else {
                        self.memory.recall(&decision.normalized, speaker).await
                    };
                    timings.memory = ms(t.elapsed());
                    self.metrics.memory_latency.observe(timings.memory);
                    match result {
                        Ok(r) => {
                            memories_used = r.memories_used;
                            match self
                                .interaction
                                .answer_from_notes(&req.text, &r.notes, speaker)
                                .await
                            {
                                Some((text, llm)) => {
                                    timings.llm += ms(llm);
                                    text
                                }
                                None => r.text,
                            }
                        }
                        Err(e) => {
                            log::warn!(event = "memory_unavailable"; "{e}");
                            if decision.intent == "remember" {
                                "I can't reach my memory right now, so I couldn't save that."
                                    .to_owned()
                            } else {
                                "I can't reach my memory right now, so I couldn't look that up."
                                    .to_owned()
                            }
                        }
                    }
                }
                Route::Interaction => {
                    // No rule parsed it: Home Assistant's own agent may know the command ("how
                    // many lights are on", a sentence an integration added) before it costs an
                    // LLM call; only its successes are used. A rule or the classifier that chose
                    // conversation goes straight to the LLM.
                    let t = Instant::now();
                    let from_ha = if decision.rule.is_none() && !classified {
                        self.action.ask_home_assistant(&decision.normalized).await
                    } else {
                        None
                    };
                    if let Some((text, records)) = from_ha {
                        timings.action = ms(t.elapsed());
                        self.metrics.action_latency.observe(timings.action);
                        decision.route = Route::Action;
                        decision.intent = "conversation".to_owned();
                        actions = records;
                        text
                    } else {
                        let t = Instant::now();
                        let history = self.sessions.history(&req.session_id, Instant::now());
                        let a = self
                            .interaction
                            .handle(&req.text, &decision.normalized, &history, speaker)
                            .await;
                        timings.llm += ms(a.llm);
                        self.metrics.interaction_latency.observe(ms(t.elapsed()));
                        budget = Some(a.budget);
                        a.text
                    }
                }
            }
        };
        self.sessions.push(
            &req.session_id,
            Turn {
                user: req.text.clone(),
                assistant: text.clone(),
                acted_on: actions
                    .iter()
                    .filter(|a| a.ok)
                    .map(|a| a.entity_id.clone())
                    .collect(),
            },
            Instant::now(),
        );
        timings.total = ms(start.elapsed());
        if self.store_turns {
            // Stored after answering, off the request's path.
            let app = self.clone();
            let (session, speaker, utterance, response) = (
                req.session_id.clone(),
                req.speaker.clone(),
                req.text.clone(),
                text.clone(),
            );
            let route = decision.route.as_str();
            let latency_ms = timings.total.round() as i64;
            tokio::spawn(async move {
                let conversation = app.sessions.conversation(&session);
                let turn = crate::agent::memory::StoredTurn {
                    speaker: speaker.as_deref(),
                    utterance: &utterance,
                    response: &response,
                    route,
                    latency_ms,
                };
                if let Some(id) = app.memory.store_turn(conversation, turn).await
                    && conversation.is_none()
                {
                    app.sessions.set_conversation(&session, id);
                }
            });
        }
        log::info!(session_id = req.session_id.as_str(), route = decision.route.as_str(),
            intent = decision.intent.as_str(), device_id = req.device_id.as_deref().unwrap_or(""),
            latency_ms = timings.total; "processed");
        ProcessResponse {
            text,
            route: decision.route,
            intent: decision.intent,
            confidence: decision.confidence,
            actions,
            memories_used,
            timings,
            budget,
        }
    }
}
