//! Timers ring at the sink (issue #20): the real barnabee-agents sets a timer for the device
//! that asked and, when it ends, the real barnabee-voice speaks it through its live pipeline
//! (the cpal/ALSA sink on alsa-lib's `null` PCM, the only sound device this machine has; the
//! real inference daemon's TTS); the timer survives a restart of the agents daemon, one that
//! ended while the daemon was down rings at start, and one set from a device this voice
//! daemon is not rings on its speaker rather than nowhere. Counted by voice's
//! `barnabee_voice_announcements_total{outcome="played"}`.

#![allow(clippy::unwrap_used)]
#![allow(clippy::disallowed_methods)] // tests build their own HTTP clients (clippy.toml)

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

async fn played(voice: &Proc) -> u64 {
    let text = reqwest::get(format!("{}/metrics", voice.base()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with(r#"barnabee_voice_announcements_total{outcome="played"}"#))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

async fn wait_played(voice: &Proc, n: u64, within: Duration) -> Duration {
    let t = Instant::now();
    while played(voice).await < n {
        assert!(
            t.elapsed() < within,
            "the voice daemon played {} announcements, expected {n}\nvoice log:\n{}",
            played(voice).await,
            voice.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    t.elapsed()
}

async fn ask(agents: &Proc, text: &str, device: &str) -> Value {
    let v: Value = reqwest::Client::new()
        .post(format!("{}/v1/process", agents.base()))
        .json(&json!({"text": text, "session_id": "timers", "device_id": device}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_rings_at_the_voice_daemons_sink_even_across_an_agents_restart() {
    let wy = free_port();
    let _inf = inference(wy);
    let voice = voice(&format!(
        "[audio]\ninput_device = \"null\"\noutput_device = \"null\"\n[inference]\nwyoming = \"127.0.0.1:{wy}\"\nwake_words = [\"hey_jarvis\"]\n[pipeline]\ndevice_id = \"kitchen\"\n"
    ));
    let state = tempfile::tempdir().unwrap();
    let ring = format!("[voice]\nurl = \"{}\"\n", voice.base());
    let mut agents = agents_in(state.path(), &ring);

    // Set from the kitchen, rung in the kitchen after its duration.
    let v = ask(&agents, "set a timer for 2 seconds", "kitchen").await;
    assert_eq!(v["text"], "Timer set for 2 seconds.", "{v}");
    let after = wait_played(&voice, 1, Duration::from_secs(30)).await;
    eprintln!(
        "rang {:.1} s after it was set (2 s timer)",
        after.as_secs_f64()
    );
    assert!(
        after >= Duration::from_millis(1500),
        "rang early: {after:?}"
    );
    assert!(voice.stderr().contains("Your 2 seconds timer is done."));

    // Set, then the agents daemon restarts before it ends: it still rings.
    let v = ask(&agents, "set a timer for 4 seconds", "kitchen").await;
    assert_eq!(v["text"], "Timer set for 4 seconds.", "{v}");
    agents.process.stop();
    let agents = agents_in(state.path(), &ring);
    wait_played(&voice, 2, Duration::from_secs(30)).await;
    assert!(voice.stderr().contains("Your 4 seconds timer is done."));
    assert!(
        agents.stderr().contains("resumed after a restart"),
        "{}",
        agents.stderr()
    );

    // Ended while the daemon was down: rung at start, saying so.
    let v = ask(&agents, "set a timer for 1 second", "kitchen").await;
    assert_eq!(v["text"], "Timer set for 1 second.", "{v}");
    let mut agents = agents;
    agents.process.stop();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let agents = agents_in(state.path(), &ring);
    wait_played(&voice, 3, Duration::from_secs(30)).await;
    assert!(
        voice
            .stderr()
            .contains("Your 1 second timer finished while I was restarting."),
        "{}",
        voice.stderr()
    );

    // Set from a device this voice daemon is not (404): rung on its speaker anyway.
    ask(&agents, "set a timer for 1 second", "garage").await;
    wait_played(&voice, 4, Duration::from_secs(30)).await;
    assert!(agents.stderr().contains("ringing on its own speaker"));

    // A cancelled timer never rings.
    ask(&agents, "set a timer for 2 seconds", "kitchen").await;
    let v = ask(&agents, "cancel the timer", "kitchen").await;
    assert_eq!(v["text"], "Timer cancelled.", "{v}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(played(&voice).await, 4);
}
