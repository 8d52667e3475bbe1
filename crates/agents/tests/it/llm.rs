//! The interaction agent and the cost governor against an OpenAI-compatible test server
//! written here (axum): streaming and not, usage, errors, slow answers, failover, budget states.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use crate::common::*;

#[derive(Clone, Debug)]
pub enum Mode {
    Answer {
        text: String,
        completion_tokens: u64,
        usage: bool,
    },
    Status(u16),
    Slow(Duration),
}

#[derive(Clone)]
struct Shared {
    mode: Arc<Mutex<Mode>>,
    requests: Arc<Mutex<Vec<Value>>>,
}

/// A fake provider on a loopback port, on its own runtime thread.
pub struct FakeLlm {
    pub base: String,
    shared: Shared,
    _rt: tokio::runtime::Runtime,
}

impl FakeLlm {
    pub fn start(mode: Mode) -> FakeLlm {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let shared = Shared {
            mode: Arc::new(Mutex::new(mode)),
            requests: Arc::default(),
        };
        let app = Router::new()
            .route("/v1/chat/completions", post(completions))
            .with_state(shared.clone());
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        rt.spawn(async move { axum::serve(listener, app).await });
        FakeLlm {
            base: format!("http://{addr}/v1"),
            shared,
            _rt: rt,
        }
    }

    pub fn requests(&self) -> Vec<Value> {
        self.shared.requests.lock().unwrap().clone()
    }

    pub fn set(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap() = mode;
    }
}

async fn completions(State(s): State<Shared>, body: axum::body::Bytes) -> Response {
    let req: Value = serde_json::from_slice(&body).unwrap();
    s.requests.lock().unwrap().push(req.clone());
    let mode = s.mode.lock().unwrap().clone();
    match mode {
        Mode::Status(code) => (
            StatusCode::from_u16(code).unwrap(),
            axum::Json(json!({"error": {"message": "test failure", "type": "server_error"}})),
        )
            .into_response(),
        Mode::Slow(d) => {
            tokio::time::sleep(d).await;
            axum::Json(
                json!({"choices": [{"message": {"role": "assistant", "content": "too late"}}]}),
            )
            .into_response()
        }
        Mode::Answer {
            text,
            completion_tokens,
            usage,
        } => {
            let prompt_tokens = 20;
            let usage_v = json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                                 "total_tokens": prompt_tokens + completion_tokens});
            if req["stream"] == true {
                let mut sse = String::new();
                for piece in text.split_inclusive(' ') {
                    let chunk = json!({"object": "chat.completion.chunk", "model": req["model"],
                        "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": null}]});
                    sse.push_str(&format!("data: {chunk}\n\n"));
                }
                sse.push_str(": keep-alive\n\n");
                if usage && req["stream_options"]["include_usage"] == true {
                    sse.push_str(&format!(
                        "data: {}\n\n",
                        json!({"choices": [], "usage": usage_v})
                    ));
                }
                sse.push_str("data: [DONE]\n\n");
                Response::builder()
                    .header("content-type", "text/event-stream")
                    .body(Body::from(sse))
                    .unwrap()
            } else {
                let mut v = json!({"object": "chat.completion", "model": req["model"],
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]});
                if usage {
                    v["usage"] = usage_v;
                }
                axum::Json(v).into_response()
            }
        }
    }
}

pub fn answer(text: &str, completion_tokens: u64) -> Mode {
    Mode::Answer {
        text: text.into(),
        completion_tokens,
        usage: true,
    }
}

/// A `[[llm.providers]]` entry.
fn provider(name: &str, base: &str, local: bool, timeout: f64) -> String {
    format!(
        "[[llm.providers]]\nname = \"{name}\"\nbase_url = \"{base}\"\nmodel = \"{name}-model\"\nlocal = {local}\ntimeout = {timeout}\n"
    )
}

/// Completion tokens cost $1 per thousand for `cloud-model` (prompt tokens are free), so
/// the tests can steer the spend exactly.
const PRICES: &str = "[llm.prices.\"cloud-model\"]\ninput = 0.0\noutput = 1000.0\n";

#[test]
fn streaming_answer_with_usage_history_and_metrics() {
    let cloud = FakeLlm::start(answer("Because of Rayleigh scattering.", 100));
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        dir.path(),
        &format!("{}{PRICES}", provider("cloud", &cloud.base, false, 5.0)),
    );
    let v = d.say("s", "Why is the sky blue?");
    assert_eq!(v["route"], "interaction", "{v}");
    assert_eq!(v["text"], "Because of Rayleigh scattering.", "{v}");
    assert_eq!(v["budget"], "green", "{v}");
    assert!(v["timings"]["llm"].as_f64().unwrap() > 0.0, "{v}");
    let req = &cloud.requests()[0];
    assert_eq!(req["stream"], true);
    assert_eq!(req["model"], "cloud-model");
    assert_eq!(req["messages"][0]["role"], "system");
    assert_eq!(req["messages"][1]["content"], "Why is the sky blue?");

    // The session's history goes with the next question.
    d.say("s", "tell me more about it");
    let req = &cloud.requests()[1];
    let msgs = req["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 4, "{req}");
    assert_eq!(msgs[2]["content"], "Because of Rayleigh scattering.");

    let m = d.metrics();
    for line in [
        "barnabee_agents_llm_requests_total{provider=\"cloud\",model=\"cloud-model\",outcome=\"ok\"} 2",
        "barnabee_agents_llm_tokens_total{provider=\"cloud\",model=\"cloud-model\",kind=\"completion\"} 200",
        "barnabee_agents_llm_tokens_total{provider=\"cloud\",model=\"cloud-model\",kind=\"prompt\"} 40",
        "barnabee_agents_llm_cost_today_dollars 0.2",
        "barnabee_agents_router_decisions_total{method=\"llm\"} 0",
        "barnabee_agents_llm_failovers_total 0",
        "barnabee_agents_requests_total{agent=\"interaction\"} 2",
    ] {
        assert!(m.contains(line), "{line} missing:\n{m}");
    }
}

#[test]
fn failover_past_errors_and_slow_providers() {
    let broken = FakeLlm::start(Mode::Status(500));
    let slow = FakeLlm::start(Mode::Slow(Duration::from_secs(5)));
    let good = FakeLlm::start(Mode::Answer {
        text: "Paris.".into(),
        completion_tokens: 3,
        usage: false, // usage missing: estimated, still accounted
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "{}{}{}[llm]\nstream = false\n",
        provider("broken", &broken.base, true, 5.0),
        provider("slow", &slow.base, true, 0.5),
        provider("good", &good.base, true, 5.0),
    );
    let d = Daemon::start(dir.path(), &cfg);
    let v = d.say("s", "what's the capital of France");
    assert_eq!(v["text"], "Paris.", "{v}");
    assert_eq!(broken.requests().len(), 1);
    assert_eq!(slow.requests().len(), 1);
    assert_eq!(good.requests()[0]["stream"], false);
    let m = d.metrics();
    for line in [
        "barnabee_agents_llm_requests_total{provider=\"broken\",model=\"broken-model\",outcome=\"error\"} 1",
        "barnabee_agents_llm_requests_total{provider=\"slow\",model=\"slow-model\",outcome=\"timeout\"} 1",
        "barnabee_agents_llm_requests_total{provider=\"good\",model=\"good-model\",outcome=\"ok\"} 1",
        "barnabee_agents_llm_failovers_total 1",
    ] {
        assert!(m.contains(line), "{line} missing:\n{m}");
    }
    // Estimated usage (no `usage` in the answer) is still counted.
    assert!(m.contains("kind=\"completion\"} 2"), "{m}");

    // Every provider failing: a clear reply, not an error.
    good.set(Mode::Status(503));
    let v = d.say("s", "why do we yawn");
    assert_eq!(
        v["text"], "Sorry, I can't reach a language model right now.",
        "{v}"
    );
}

#[test]
fn governor_green_yellow_red_persisting_across_restart() {
    let cloud = FakeLlm::start(answer("From the cloud.", 550)); // $0.55 a call
    let beast = FakeLlm::start(answer("From the beast.", 10));
    let dir = tempfile::tempdir().unwrap();
    let providers = format!(
        "{}{}{PRICES}",
        provider("cloud", &cloud.base, false, 5.0),
        provider("beast", &beast.base, true, 5.0)
    );
    let mut d = Daemon::start(dir.path(), &providers);
    // Green: the first choice (cloud) answers; $0.55 of $1.00 spent.
    let v = d.say("s", "tell me a joke");
    assert_eq!(
        (v["text"].as_str().unwrap(), v["budget"].as_str().unwrap()),
        ("From the cloud.", "green")
    );
    // Yellow (55 %): local providers only.
    let v = d.say("s", "tell me another joke");
    assert_eq!(
        (v["text"].as_str().unwrap(), v["budget"].as_str().unwrap()),
        ("From the beast.", "yellow")
    );
    assert_eq!(cloud.requests().len(), 1);
    let (_, h) = d.health();
    assert!(
        h["checks"]["budget"]["detail"]
            .as_str()
            .unwrap()
            .starts_with("yellow"),
        "{h}"
    );
    d.stop();

    // Restart: the ledger in the state directory still says $0.55 today.
    let mut d = Daemon::start(dir.path(), &providers);
    assert!(
        d.metrics()
            .contains("barnabee_agents_llm_cost_today_dollars 0.55"),
        "{}",
        d.metrics()
    );
    let v = d.say("s2", "what is a black hole");
    assert_eq!(
        (v["text"].as_str().unwrap(), v["budget"].as_str().unwrap()),
        ("From the beast.", "yellow")
    );
    assert_eq!(cloud.requests().len(), 1);
    // Yellow also rate-limits long questions: one a minute.
    let v = d.say("s2", "write me a story about a dragon");
    assert_eq!(v["text"], "From the beast.", "{v}");
    let v = d.say("s2", "write me a story about a unicorn");
    assert!(
        v["text"]
            .as_str()
            .unwrap()
            .starts_with("I'm saving budget today"),
        "{v}"
    );
    assert_eq!(d.say("s2", "why do we yawn")["text"], "From the beast.");
    d.stop();

    // Red: the operators lower the daily limit to $0.60 (92 % used): interaction disabled,
    // basic commands still work, no provider is asked.
    let d = Daemon::start(
        dir.path(),
        &format!("{providers}[budget]\ndaily_limit_usd = 0.6\n"),
    );
    let asked = (cloud.requests().len(), beast.requests().len());
    let v = d.say("s3", "why is the sky blue");
    assert_eq!(
        v["text"], "Cost limit approaching. Basic commands only.",
        "{v}"
    );
    assert_eq!(v["budget"], "red");
    assert_eq!((cloud.requests().len(), beast.requests().len()), asked);
    assert_eq!(d.say("s3", "what time is it")["route"], "instant");
    let (status, h) = d.health();
    assert_eq!(
        (status, h["status"].as_str().unwrap()),
        (200, "degraded"),
        "{h}"
    );
}

#[test]
fn llm_classifier_routes_what_no_rule_matched() {
    let cloud = FakeLlm::start(answer("memory", 1));
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        dir.path(),
        &format!(
            "{}{PRICES}[router]\nllm_classifier = true\n[memory]\nurl = \"http://127.0.0.1:{}\"\n",
            provider("cloud", &cloud.base, false, 5.0),
            closed_port()
        ),
    );
    // A rule matches: no LLM call.
    assert_eq!(d.say("s", "what time is it")["route"], "instant");
    assert_eq!(cloud.requests().len(), 0);
    // No rule matches: the classifier decides (here: memory).
    let v = d.say("s", "the blue folder with grandma's recipes");
    assert_eq!(
        (
            v["route"].as_str().unwrap(),
            v["confidence"].as_f64().unwrap()
        ),
        ("memory", 0.7),
        "{v}"
    );
    assert_eq!(cloud.requests().len(), 1);
    assert!(
        cloud.requests()[0]["messages"][0]["content"]
            .as_str()
            .unwrap()
            .contains("one word")
    );
    let m = d.metrics();
    assert!(
        m.contains("barnabee_agents_router_decisions_total{method=\"llm\"} 1")
            && m.contains("barnabee_agents_router_decisions_total{method=\"rule\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("barnabee_agents_llm_cost_today_dollars 0.001"),
        "{m}"
    );
}

#[test]
fn a_providers_own_daily_budget_moves_work_to_the_next_tier() {
    let cloud = FakeLlm::start(answer("From the cloud.", 200)); // $0.20 a call
    let beast = FakeLlm::start(answer("From the beast.", 10));
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        dir.path(),
        &format!(
            "{}daily_budget_usd = 0.1\n{}{PRICES}",
            provider("cloud", &cloud.base, false, 5.0),
            provider("beast", &beast.base, true, 5.0)
        ),
    );
    assert_eq!(d.say("s", "tell me a joke")["text"], "From the cloud.");
    // The cloud tier spent $0.20 of its $0.10 today (20 % of the global limit: still green).
    let v = d.say("s", "tell me another joke");
    assert_eq!(
        (v["text"].as_str().unwrap(), v["budget"].as_str().unwrap()),
        ("From the beast.", "green"),
        "{v}"
    );
    assert_eq!((cloud.requests().len(), beast.requests().len()), (1, 1));
}

/// A provider that keeps failing costs its timeout only until its circuit opens: then it is
/// skipped (fast answers from the next one), `/health` and the gauge say so, and after the
/// cool-down one request tries it again; once it answers, the circuit closes.
#[test]
fn the_breaker_skips_a_dead_provider_and_retries_it_after_the_cool_down() {
    let dead = FakeLlm::start(Mode::Slow(Duration::from_secs(60)));
    let good = FakeLlm::start(answer("Paris.", 3));
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "{}{}[llm]\nstream = false\nbreaker_failures = 2\nbreaker_cooldown = 2\n",
        provider("dead", &dead.base, true, 0.5),
        provider("good", &good.base, true, 5.0),
    );
    let d = Daemon::start(dir.path(), &cfg);
    let timed = |q: &str| {
        let t = std::time::Instant::now();
        let v = d.say("s", q);
        assert_eq!(v["text"], "Paris.", "{v}");
        t.elapsed()
    };
    let gauge = |v: u8| format!("barnabee_agents_llm_breaker_open{{provider=\"dead\"}} {v}");
    assert!(d.metrics().contains(&gauge(0)));
    for _ in 0..2 {
        assert!(timed("what's the capital of France") >= Duration::from_millis(500));
    }
    assert_eq!(dead.requests().len(), 2);
    // Open: skipped, so the answer no longer waits for the dead provider's timeout.
    let fast = timed("what's the capital of France");
    assert!(fast < Duration::from_millis(450), "{fast:?}");
    assert_eq!(dead.requests().len(), 2, "an open circuit is not tried");
    let (_, h) = d.health();
    let check = &h["checks"]["llm_providers"];
    assert_eq!(check["ok"], false, "{h}");
    assert!(
        check["detail"]
            .as_str()
            .unwrap()
            .contains("dead: circuit open"),
        "{h}"
    );
    assert!(d.metrics().contains(&gauge(1)));
    // After the cool-down one request tries it (half-open); it fails again: open again.
    std::thread::sleep(Duration::from_millis(2100));
    timed("what's the capital of France");
    assert_eq!(dead.requests().len(), 3);
    timed("what's the capital of France");
    assert_eq!(dead.requests().len(), 3);
    // It comes back: the next trial succeeds and closes the circuit.
    dead.set(answer("Paris.", 3));
    std::thread::sleep(Duration::from_millis(2100));
    timed("what's the capital of France");
    assert_eq!(dead.requests().len(), 4);
    assert!(d.metrics().contains(&gauge(0)));
    assert_eq!(d.health().1["checks"]["llm_providers"]["ok"], true);
}

/// The ledger knows why: each call's route, agent and speaker make the monthly report (by
/// provider and tier, route, family member, top cost drivers); "local only" and "reset today"
/// are runtime switches that survive a restart, not redeploys.
#[test]
fn cost_report_by_why_and_runtime_switches() {
    let cloud = FakeLlm::start(answer("Because of the light.", 100));
    let beast = FakeLlm::start(answer("Local answer.", 10));
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "{}{}{PRICES}[llm]\nstream = false\n",
        provider("cloud", &cloud.base, false, 5.0),
        provider("beast", &beast.base, true, 5.0),
    );
    let ask = |d: &Daemon, speaker: &str| {
        let body =
            json!({"text": "Why is the sky blue?", "session_id": speaker, "speaker": speaker});
        let (status, v) = d.process_raw(body.to_string().as_bytes());
        assert_eq!(status, 200, "{v}");
        v["text"].as_str().unwrap().to_owned()
    };
    let post_mode = |d: &Daemon, body: &str| {
        let r = http()
            .post(d.url("/v1/cost/mode"))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().unwrap())
    };
    let report = |d: &Daemon, q: &str| {
        let r = http()
            .get(d.url(&format!("/v1/cost/report{q}")))
            .send()
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().unwrap())
    };

    let mut d = Daemon::start(dir.path(), &cfg);
    for who in ["anna", "anna", "ben"] {
        assert_eq!(ask(&d, who), "Because of the light.");
    }
    let (code, r) = report(&d, "");
    assert_eq!(code, 200, "{r}");
    assert_eq!(r["requests"], 3, "{r}");
    assert!((r["cost_usd"].as_f64().unwrap() - 0.3).abs() < 1e-9, "{r}");
    assert_eq!(r["by_provider"][0]["provider"], "cloud", "{r}");
    assert_eq!(r["by_provider"][0]["tier"], "cloud", "{r}");
    assert_eq!(r["by_route"][0]["route"], "interaction", "{r}");
    assert_eq!(r["by_route"][0]["agent"], "interaction", "{r}");
    assert_eq!(r["by_speaker"][0]["speaker"], "anna", "{r}");
    assert!(
        (r["by_speaker"][0]["cost_usd"].as_f64().unwrap() - 0.2).abs() < 1e-9,
        "{r}"
    );
    assert_eq!(r["top_drivers"][0]["speaker"], "anna", "{r}");
    assert_eq!(r["top_drivers"][0]["requests"], 2, "{r}");
    let (code, r) = report(&d, "?month=2020-01");
    assert_eq!((code, r["requests"].as_u64()), (200, Some(0)), "{r}");

    // Local only: the paid provider is not asked, now and after a restart.
    let (code, v) = post_mode(&d, r#"{"local_only": true}"#);
    assert_eq!((code, v["local_only"].as_bool()), (200, Some(true)), "{v}");
    assert_eq!(ask(&d, "anna"), "Local answer.");
    assert_eq!(cloud.requests().len(), 3);
    d.stop();
    let d = Daemon::start(dir.path(), &cfg);
    assert_eq!(ask(&d, "ben"), "Local answer.");
    assert_eq!(cloud.requests().len(), 3, "local only survives a restart");
    let (_, r) = report(&d, "");
    assert_eq!(r["by_provider"][1]["tier"], "local", "{r}");

    // Reset today: the daily budget starts again; the month keeps what was spent.
    let (code, v) = post_mode(&d, r#"{"reset_today": true, "local_only": false}"#);
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["budget"]["day_usd"], 0.0, "{v}");
    assert!(
        (v["budget"]["month_usd"].as_f64().unwrap() - 0.3).abs() < 1e-9,
        "{v}"
    );
    assert_eq!(v["local_only"], false);
    assert_eq!(ask(&d, "anna"), "Because of the light.");
    assert_eq!(cloud.requests().len(), 4);

    // Bad input names the field.
    for (body, field) in [
        ("{}", "body"),
        (r#"{"local_only": "yes"}"#, "local_only"),
        (r#"{"colour": 1}"#, "colour"),
        ("[]", "body"),
    ] {
        let (code, v) = post_mode(&d, body);
        assert_eq!(
            (code, v["field"].as_str()),
            (400, Some(field)),
            "{body} -> {v}"
        );
    }
    let (code, v) = report(&d, "?month=2026-13");
    assert_eq!((code, v["field"].as_str()), (400, Some("month")), "{v}");
}

/// `[llm.local_server]` (the beast's llama.cpp) is tried after the providers, and is the one
/// left when "local only" is on (or the budget is yellow).
#[test]
fn the_local_server_is_tried_last_and_kept_when_local_only() {
    let cloud = FakeLlm::start(answer("From the cloud.", 10));
    let beast = FakeLlm::start(answer("From the beast.", 10));
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "{}{PRICES}[llm]\nstream = false\n[llm.local_server]\nurl = \"{}\"\n",
        provider("cloud", &cloud.base, false, 5.0),
        beast.base
    );
    let d = Daemon::start(dir.path(), &cfg);
    assert_eq!(
        d.say("s", "Why is the sky blue?")["text"],
        "From the cloud."
    );
    cloud.set(Mode::Status(500));
    assert_eq!(
        d.say("s", "Why is the sky blue?")["text"],
        "From the beast."
    );
    assert_eq!(beast.requests()[0]["model"], "local");
    cloud.set(answer("From the cloud.", 10));
    let r = http()
        .post(d.url("/v1/cost/mode"))
        .header("content-type", "application/json")
        .body(r#"{"local_only": true}"#)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        d.say("s", "Why is the sky blue?")["text"],
        "From the beast."
    );
    assert!(
        d.metrics()
            .contains("barnabee_agents_llm_breaker_open{provider=\"local-server\"} 0")
    );
}
