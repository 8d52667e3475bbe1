//! `barnabee ask` against the real agents daemon (no Home Assistant, no LLM): an instant
//! answer with its route and timings, `--json`, a refused request (exit 1 with the agents'
//! message) and an unreachable daemon (exit 2 naming it). The follow-up ("turn it off") with a
//! real Home Assistant is in demo_home.rs.

#![allow(clippy::unwrap_used)]
#![allow(clippy::disallowed_methods)] // tests build their own HTTP clients (clippy.toml)

mod common;

use std::process::Command;

use common::{Daemon, barnabee, closed_url};

fn ask(url: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(barnabee())
        .args(["ask", "--url", url])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn ask_prints_the_reply_route_and_timings_and_says_what_went_wrong() {
    let agents = Daemon::start(
        "agents",
        &format!(
            "[service]\nlisten = \"@LISTEN@\"\n[memory]\nurl = \"{}\"\n",
            closed_url()
        ),
    );
    let (code, out, err) = ask(&agents.url, &["what", "time", "is", "it?"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.starts_with("reply:   It's "), "{out}");
    assert!(out.contains("route:   instant (time, confidence"), "{out}");
    assert!(out.contains("timings: router "), "{out}");

    let (code, out, _) = ask(&agents.url, &["--json", "set a timer for 5 minutes"]);
    assert_eq!(code, Some(0));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["text"], "Timer set for 5 minutes.", "{v}");

    // The agents refuse it: their message, exit 1.
    let long = "a".repeat(3000);
    let (code, _, err) = ask(&agents.url, &[&long]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("HTTP 400") && err.contains("text: too long"),
        "{err}"
    );

    // Nobody there: exit 2, naming the daemon and the address.
    let closed = closed_url();
    let (code, _, err) = ask(&closed, &["hello"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("cannot reach the agents daemon") && err.contains(&closed),
        "{err}"
    );
}
