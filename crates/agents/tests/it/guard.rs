//! Guarded actions against the real Home Assistant (demo locks and garage door; the 2024.3.3
//! floor, which every machine that runs the tests has): who may unlock the front door, the
//! spoken confirmation, and every attempt in the audit log. The guarded-action matrix is
//! printed for the closing note.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::*;
use crate::ha::{DEMO_SET_UP, Hass, floor_hass, onboard, ws_setup};
use crate::memory::start_memory;

struct Ask<'a> {
    d: &'a Daemon,
    matrix: Vec<String>,
}

impl Ask<'_> {
    /// One utterance from `who` (name, confidence; `None`: nobody recognised) in `session`.
    fn say(&mut self, session: &str, who: Option<(&str, f64)>, text: &str) -> Value {
        let mut body = json!({"text": text, "session_id": session, "device_id": "kitchen"});
        if let Some((name, confidence)) = who {
            body["speaker"] = json!(name);
            body["speaker_confidence"] = json!(confidence);
        }
        let (status, v) = self.d.process_raw(body.to_string().as_bytes());
        assert_eq!(status, 200, "{text:?} -> {v}");
        let who = who.map_or("nobody recognised".to_owned(), |(n, c)| {
            format!("{n} ({c:.2})")
        });
        self.matrix.push(format!(
            "| {who} | {text} | {} |",
            v["text"].as_str().unwrap()
        ));
        v
    }
}

#[test]
fn guarded_actions_need_a_permitted_member_and_their_spoken_yes() {
    let tmp = tempfile::tempdir().unwrap();
    let ha_dir = tmp.path().join("ha");
    std::fs::create_dir(&ha_dir).unwrap();
    let mut hass = Hass::start(&floor_hass(), &ha_dir);
    let access = onboard(&hass.base);
    hass.wait_for_entities(&access, DEMO_SET_UP);
    hass.wait_for_entities(&access, &["lock.front_door", "cover.garage_door"]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let llat = rt.block_on(ws_setup(&hass.base, &access));
    let token = secret_file(tmp.path(), "ha-token", &llat);
    let mem_dir = tmp.path().join("memory");
    std::fs::create_dir(&mem_dir).unwrap();
    let memory = start_memory(&mem_dir);
    let d = Daemon::start(
        tmp.path(),
        &format!(
            "[memory]\nurl = \"{}\"\n[home_assistant]\nurl = \"{}\"\ntoken_file = \"{}\"\n[guard]\nconfirm_timeout = 2\nmin_confidence = 0.75\n[guard.members]\nanna = [\"*\"]\nben = [\"lock\"]\nleo = []\n",
            memory.base,
            hass.base,
            token.display()
        ),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while d.health().1["checks"]["home_assistant"]["ok"] != true {
        assert!(Instant::now() < deadline, "agents never connected to HA");
        std::thread::sleep(Duration::from_millis(100));
    }
    let lock = |hass: &Hass| hass.state(&llat, "lock.front_door")["state"].clone();
    let garage = |hass: &Hass| hass.state(&llat, "cover.garage_door")["state"].clone();
    assert_eq!(lock(&hass), "locked");
    let garage_before = garage(&hass);
    let mut a = Ask {
        d: &d,
        matrix: Vec::new(),
    };
    let unlock = "unlock the front door";

    // Refused, nothing called: nobody recognised (a guest, the TV, speaker ID off), a child,
    // an unsure identification, a member not listed.
    let v = a.say("guest", None, unlock);
    assert!(
        v["text"].as_str().unwrap().contains("recognise by voice"),
        "{v}"
    );
    assert_eq!(v["actions"], json!([]));
    let v = a.say("leo", Some(("leo", 0.95)), unlock);
    assert!(v["text"].as_str().unwrap().contains("not allowed"), "{v}");
    let v = a.say("anna-unsure", Some(("anna", 0.5)), unlock);
    assert!(
        v["text"].as_str().unwrap().contains("not sure enough"),
        "{v}"
    );
    let v = a.say("zoe", Some(("zoe", 0.99)), unlock);
    assert!(v["text"].as_str().unwrap().contains("not allowed"), "{v}");
    let v = a.say("ben", Some(("ben", 0.9)), "open the garage door");
    assert!(
        v["text"].as_str().unwrap().contains("not allowed"),
        "ben may unlock, not open the garage: {v}"
    );
    assert_eq!(lock(&hass), "locked");
    assert_eq!(garage(&hass), garage_before);

    // Anna asks; an unclear answer asks again; Ben's "yes" is not hers; her "yes" unlocks.
    let v = a.say("s1", Some(("anna", 0.92)), unlock);
    assert_eq!(v["text"], "Unlock Front Door? Say yes to confirm.", "{v}");
    assert_eq!(lock(&hass), "locked", "asked, not done");
    let v = a.say("s1", Some(("anna", 0.92)), "ja");
    assert!(
        v["text"]
            .as_str()
            .unwrap()
            .starts_with("Please say yes or no"),
        "{v}"
    );
    let v = a.say("s1", Some(("ben", 0.9)), "yes");
    assert_eq!(v["text"], "Only anna can confirm that.", "{v}");
    assert_eq!(lock(&hass), "locked");
    let v = a.say("s1", Some(("anna", 0.9)), "yes please");
    assert_eq!(v["intent"], "confirm", "{v}");
    assert_eq!(v["actions"][0]["entity_id"], "lock.front_door", "{v}");
    assert_eq!(lock(&hass), "unlocked", "{v}");

    // Locking is never guarded: a guest may lock the door.
    let v = a.say("guest", None, "lock the front door");
    assert_eq!(v["actions"][0]["service"], "lock.lock", "{v}");
    assert_eq!(lock(&hass), "locked");

    // "No" declines; silence times out and a late "yes" is told so; a new request abandons.
    let v = a.say("s2", Some(("anna", 0.9)), unlock);
    assert!(
        v["text"].as_str().unwrap().ends_with("Say yes to confirm."),
        "{v}"
    );
    let v = a.say("s2", Some(("anna", 0.9)), "no");
    assert_eq!(v["text"], "Okay, I won't unlock Front Door.", "{v}");
    let v = a.say("s3", Some(("anna", 0.9)), "open the garage door");
    assert_eq!(v["text"], "Open Garage Door? Say yes to confirm.", "{v}");
    std::thread::sleep(Duration::from_millis(2600));
    let v = a.say("s3", Some(("anna", 0.9)), "yes");
    assert!(
        v["text"]
            .as_str()
            .unwrap()
            .starts_with("That question timed out"),
        "{v}"
    );
    assert_eq!(garage(&hass), garage_before);
    a.say("s4", Some(("anna", 0.9)), unlock);
    let v = a.say(
        "s4",
        Some(("anna", 0.9)),
        "turn on the kitchen lights please",
    );
    assert_eq!(v["actions"][0]["entity_id"], "light.kitchen_lights", "{v}");
    let v = a.say("s4", Some(("anna", 0.9)), "yes");
    assert_eq!(v["actions"], json!([]), "the question was abandoned: {v}");
    assert_eq!(lock(&hass), "locked");

    // Every attempt is in the audit log, with who and the outcome.
    let entries: Value = http()
        .get(d.url("/v1/audit?limit=100"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let entries = entries["entries"].as_array().unwrap();
    let count = |o: &str| entries.iter().filter(|e| e["outcome"] == o).count();
    for (outcome, n) in [
        ("refused_unidentified", 1),
        ("refused_not_permitted", 3),
        ("refused_low_confidence", 1),
        ("asked", 4),
        ("refused_other_speaker", 1),
        ("confirmed", 1),
        ("declined", 1),
        ("timed_out", 1),
        ("abandoned", 1),
    ] {
        assert_eq!(count(outcome), n, "{outcome}: {entries:#?}");
    }
    let confirmed = entries
        .iter()
        .find(|e| e["outcome"] == "confirmed")
        .unwrap();
    assert_eq!(confirmed["speaker"], "anna");
    assert_eq!(confirmed["entity_ids"], json!(["lock.front_door"]));
    assert_eq!(
        http()
            .get(d.url("/v1/audit?limit=0"))
            .send()
            .unwrap()
            .status(),
        400
    );
    // The same attempts in barnabee-memory's audit log (forwarded off the request's path).
    let deadline = Instant::now() + Duration::from_secs(10);
    let in_memory = loop {
        let v: Value = http()
            .get(format!(
                "{}/v1/audit?action=guarded_action&limit=100",
                memory.base
            ))
            .send()
            .unwrap()
            .json()
            .unwrap();
        let n = v["entries"].as_array().unwrap().len();
        if n == entries.len() || Instant::now() > deadline {
            break v;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let in_memory = in_memory["entries"].as_array().unwrap();
    assert_eq!(in_memory.len(), entries.len(), "{in_memory:#?}");
    let confirmed = in_memory
        .iter()
        .find(|e| e["detail"]["outcome"] == "confirmed")
        .unwrap();
    assert_eq!(confirmed["actor"], "anna");
    assert_eq!(confirmed["target_id"], "lock.front_door");
    eprintln!(
        "guarded-action matrix (HA demo, [guard.members] anna = [\"*\"], ben = [\"lock\"], leo = []):\n| who | said | reply |\n|---|---|---|\n{}",
        a.matrix.join("\n")
    );
}
