//! `barnabee up --demo-home` with the real Home Assistant that `dev/setup home-assistant`
//! installs and the real memory and agents daemons: HA is started and onboarded beside them,
//! the agents daemon is wired to it, "turn on the kitchen lights" (a text request, as voice
//! sends one) turns on HA's `light.kitchen_lights`, `barnabee status` shows the demo home
//! connected, Ctrl-C stops HA with the daemons, a second `up` on the same data dir reuses
//! the onboarded home and its token, and a third one whose token was deleted logs in again.
//!
//! Without Home Assistant installed this prints a loud NOT RUN line (and fails under CI=true).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
#![allow(clippy::disallowed_methods)] // tests build their own HTTP clients (clippy.toml)

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::barnabee;
use common::demo_home::*;
use serde_json::{Value, json};

/// One text request, as the voice daemon sends it.
fn ask(http: &Http, agents: &str, text: &str) -> Value {
    let (code, v) = http.post(
        &format!("{agents}/v1/process"),
        None,
        &json!({"text": text, "session_id": "demo-home-test"}),
    );
    assert_eq!(code, 200, "{text:?} -> {v}");
    eprintln!("agents: {text:?} -> {v}");
    v
}

#[test]
fn demo_home_turns_on_the_kitchen_lights_and_survives_a_restart() {
    if !have_hass(
        hass_installed(),
        "barnabee up --demo-home test",
        "run `dev/setup home-assistant`, or set BARNABEE_HASS",
    ) {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let offset = free_port_offset();
    let ha = format!("http://127.0.0.1:{}", HA_PORT + offset);
    let agents = format!("http://127.0.0.1:{}", 7702 + offset);
    let http = Http::new();
    let token_file = data.path().join("state/hass/token");

    // First start: a fresh demo home is onboarded.
    let t0 = Instant::now();
    let mut up = Up::start(data.path(), offset, "memory,agents");
    up.wait_for(
        "[up] hass: onboarded a new demo home",
        Duration::from_secs(240),
    );
    up.wait_for("the local appliance is up", Duration::from_secs(120));
    eprintln!(
        "up with the demo home in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    let token = std::fs::read_to_string(&token_file).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the token is readable by others: {mode:o}");
    }
    let agents_toml = std::fs::read_to_string(data.path().join("config/agents.toml")).unwrap();
    assert!(
        agents_toml.contains(&format!("url = \"{ha}\"")) && agents_toml.contains("token_file"),
        "{agents_toml}"
    );
    // The demo home starts with its lights off.
    assert_eq!(state(&http, &ha, &token, "light.kitchen_lights"), "off");
    wait_agents_connected(&http, &agents);

    let v = ask(&http, &agents, "turn on the kitchen lights");
    assert_eq!(v["route"], "action", "{v}");
    assert_eq!(v["actions"][0]["entity_id"], "light.kitchen_lights", "{v}");
    assert_eq!(v["actions"][0]["outcome"], "done", "{v}");
    assert_eq!(state(&http, &ha, &token, "light.kitchen_lights"), "on");
    // The living room light by the area the demo home put it in.
    let v = ask(&http, &agents, "turn on the living room light");
    assert_eq!(v["route"], "action", "{v}");
    assert_eq!(
        state(&http, &ha, &token, "light.living_room_rgbww_lights"),
        "on",
        "{v}"
    );
    // A switch, by the alias the demo home gave it.
    assert_eq!(state(&http, &ha, &token, "switch.decorative_lights"), "on");
    let v = ask(&http, &agents, "turn off the fairy lights");
    assert_eq!(v["route"], "action", "{v}");
    assert_eq!(
        state(&http, &ha, &token, "switch.decorative_lights"),
        "off",
        "{v}"
    );

    // `barnabee status` shows the demo home, and agents connected to it.
    let out = Command::new(barnabee())
        .args(["status", "--alertmanager", "none", "--data-dir"])
        .arg(data.path())
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("barnabee status:\n{table}");
    let row = table
        .lines()
        .find(|l| l.starts_with("hass"))
        .unwrap_or_else(|| panic!("no hass row:\n{table}"));
    assert!(
        row.contains(&ha) && row.contains("connected") && row.contains("agents connected"),
        "{row}"
    );
    assert_eq!(out.status.code(), Some(0), "status:\n{table}");

    // `barnabee ask` finds the agents of this `up` by its data dir; a follow-up in its session
    // acts on what the first request changed.
    let ask_cli = |text: &str| {
        let out = Command::new(barnabee())
            .args(["ask", "--data-dir"])
            .arg(data.path())
            .arg(text)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(out.status.code(), Some(0), "{text}: {stdout}");
        eprintln!("barnabee ask {text:?}:\n{stdout}");
        stdout
    };
    let out = ask_cli("turn off the kitchen lights");
    assert!(out.contains("reply:   Turned off Kitchen Lights."), "{out}");
    assert_eq!(state(&http, &ha, &token, "light.kitchen_lights"), "off");
    let out = ask_cli("turn it on");
    assert!(out.contains("reply:   Turned on Kitchen Lights."), "{out}");
    assert!(
        out.contains("did:     light.turn_on light.kitchen_lights: off -> on (done)"),
        "{out}"
    );
    assert_eq!(state(&http, &ha, &token, "light.kitchen_lights"), "on");

    up.stop();
    assert!(
        std::net::TcpListener::bind(("127.0.0.1", HA_PORT + offset)).is_ok(),
        "Home Assistant still listens after up stopped"
    );

    // Second start on the same data dir: the onboarded home and its token are reused.
    let mut up = Up::start(data.path(), offset, "memory,agents");
    up.wait_for(
        "[up] hass: reused its long-lived token",
        Duration::from_secs(240),
    );
    up.wait_for("the local appliance is up", Duration::from_secs(120));
    assert_eq!(std::fs::read_to_string(&token_file).unwrap(), token);
    assert_eq!(state(&http, &ha, &token, "light.kitchen_lights"), "off");
    wait_agents_connected(&http, &agents);
    let v = ask(&http, &agents, "turn on the kitchen lights");
    assert_eq!(v["actions"][0]["outcome"], "done", "{v}");
    assert_eq!(state(&http, &ha, &token, "light.kitchen_lights"), "on");
    up.stop();

    // A lost token: the owner logs in again (its password is kept) and a new token is made.
    std::fs::remove_file(&token_file).unwrap();
    let mut up = Up::start(data.path(), offset, "memory,agents");
    up.wait_for(
        "[up] hass: logged in again and made a new long-lived token",
        Duration::from_secs(240),
    );
    up.wait_for("the local appliance is up", Duration::from_secs(120));
    let new_token = std::fs::read_to_string(&token_file).unwrap();
    assert_ne!(new_token, token);
    wait_agents_connected(&http, &agents);
    let v = ask(&http, &agents, "turn on the kitchen lights");
    assert_eq!(v["actions"][0]["outcome"], "done", "{v}");
    assert_eq!(state(&http, &ha, &new_token, "light.kitchen_lights"), "on");
    up.stop();
}
