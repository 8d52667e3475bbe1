//! `barnabee ask "turn on the kitchen lights"`: text in, the agents' reply, route, what was
//! done and the step timings out, exactly as a voice request reaches the agents daemon
//! (`POST /v1/process`), without a microphone or speech models. Consecutive asks share a
//! session (`--session`, default `cli`), so "turn it off" follows "turn on the kitchen lights"
//! within the session's time to live.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::{Value, json};

#[derive(clap::Args)]
pub struct AskArgs {
    /// What to ask, as it would be said ("what time is it", "turn on the kitchen lights").
    #[arg(value_name = "TEXT", required = true, num_args = 1..)]
    text: Vec<String>,
    /// The conversation this belongs to: follow-ups in the same session keep their context.
    #[arg(long, default_value = "cli")]
    session: String,
    /// Speak as this family member (`speaker` in the request; default: unknown).
    #[arg(long)]
    speaker: Option<String>,
    /// Print the agents' whole answer as JSON.
    #[arg(long)]
    json: bool,
    /// The agents daemon's base URL (default: the one a running `barnabee up` recorded, else
    /// `[service] listen` of /etc/barnabee/agents.toml, else http://127.0.0.1:7702).
    #[arg(long)]
    url: Option<String>,
    /// The data dir of a `barnabee up` (default: $XDG_DATA_HOME/barnabee).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// An LLM call may take a while; the agents daemon bounds each provider itself.
const TIMEOUT: Duration = Duration::from_secs(120);

/// Exit 0: answered. 1: the agents refused the request (its message is printed). 2: the
/// daemon was not reached.
pub fn run(args: AskArgs) -> anyhow::Result<ExitCode> {
    let text = args.text.join(" ");
    let base = match args.url.clone() {
        Some(u) => u,
        None => crate::say::daemon_url("agents", args.data_dir.as_deref())?,
    };
    let url = format!("{}/v1/process", base.trim_end_matches('/'));
    let mut body = json!({"text": text, "session_id": args.session, "device_id": "cli"});
    if let Some(s) = &args.speaker {
        body["speaker"] = json!(s);
    }
    let (status, raw, v) =
        crate::voice::post_to("agents", &base, &url, TIMEOUT, |r| r.json(&body))?;
    if !status.is_success() {
        let message = v["error"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| raw.trim().to_owned());
        eprintln!("barnabee: not answered: HTTP {status}: {message}");
        return Ok(ExitCode::from(1));
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", render(&v));
    }
    Ok(ExitCode::SUCCESS)
}

/// The answer for a person: reply, route, each action, the timings.
fn render(v: &Value) -> String {
    let mut out = format!("reply:   {}\n", v["text"].as_str().unwrap_or_default());
    out.push_str(&format!(
        "route:   {} ({}, confidence {:.2})\n",
        v["route"].as_str().unwrap_or("?"),
        v["intent"].as_str().unwrap_or("?"),
        v["confidence"].as_f64().unwrap_or(0.0)
    ));
    for a in v["actions"].as_array().into_iter().flatten() {
        let service = a["service"].as_str().filter(|s| !s.is_empty());
        out.push_str(&format!(
            "did:     {} {}: {} -> {} ({})\n",
            service.unwrap_or("(no call)"),
            a["entity_id"].as_str().unwrap_or("?"),
            a["state_before"].as_str().unwrap_or("?"),
            a["state_after"].as_str().unwrap_or("?"),
            a["outcome"].as_str().unwrap_or("?"),
        ));
    }
    if let Some(b) = v["budget"].as_str() {
        out.push_str(&format!("budget:  {b}\n"));
    }
    let t = &v["timings"];
    let step = |k: &str| t[k].as_f64().unwrap_or(0.0);
    out.push_str(&format!(
        "timings: router {:.1} ms, action {:.1} ms, llm {:.1} ms, memory {:.1} ms, total {:.1} ms\n",
        step("router"),
        step("action"),
        step("llm"),
        step("memory"),
        step("total")
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_reply_route_actions_and_timings() {
        let v = json!({"text": "Turned on Kitchen Lights.", "route": "action", "intent": "control",
            "confidence": 0.93, "actions": [{"entity_id": "light.kitchen_lights", "service": "light.turn_on",
            "state_before": "off", "state_after": "on", "outcome": "done"}],
            "timings": {"router": 1.2, "action": 28.0, "llm": 0.0, "memory": 0.0, "total": 30.1}});
        assert_eq!(
            render(&v),
            "reply:   Turned on Kitchen Lights.\n\
             route:   action (control, confidence 0.93)\n\
             did:     light.turn_on light.kitchen_lights: off -> on (done)\n\
             timings: router 1.2 ms, action 28.0 ms, llm 0.0 ms, memory 0.0 ms, total 30.1 ms\n"
        );
    }
}
