//! The memory agent against the real barnabee-memory daemon (built by the workspace).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::*;

/// target/<profile>/barnabee-memory, next to our own binary.
fn memory_binary() -> PathBuf {
    let p = Path::new(BIN).with_file_name("barnabee-memory");
    assert!(
        p.exists(),
        "{} is missing: build it with `cargo build -p barnabee-memory` (the workspace test run, dev/test, builds it)",
        p.display()
    );
    p
}

pub(crate) struct Memory {
    _process: DaemonProcess,
    pub(crate) base: String,
}

pub(crate) fn start_memory(dir: &Path) -> Memory {
    let cfg = dir.join("memory.toml");
    std::fs::write(
        &cfg,
        format!(
            "[service]\nlisten = \"127.0.0.1:0\"\ndrain_timeout = 2\n[service.log]\ntarget = \"stderr\"\n[database]\npath = \"{}\"\n",
            dir.join("memory.db").display()
        ),
    )
    .unwrap();
    let mut cmd = Command::new(memory_binary());
    cmd.arg("--config").arg(&cfg);
    let mut process = DaemonProcess::spawn(cmd, &dir.join("memory.stderr.log"));
    let addr = process.wait_serving(Duration::from_secs(30));
    Memory {
        _process: process,
        base: format!("http://{addr}"),
    }
}

#[test]
fn remember_then_recall_through_barnabee_memory() {
    let dir = tempfile::tempdir().unwrap();
    let mem = start_memory(dir.path());
    let d = Daemon::start(dir.path(), &format!("[memory]\nurl = \"{}\"\n", mem.base));
    let (_, h) = d.health();
    assert_eq!(h["checks"]["memory"]["ok"], true, "{h}");

    let v = d.say("m", "Remember that Ana's dentist is on Friday.");
    assert_eq!(
        (v["route"].as_str().unwrap(), v["intent"].as_str().unwrap()),
        ("memory", "remember"),
        "{v}"
    );
    assert_eq!(
        v["text"], "Got it, I'll remember: Ana's dentist is on Friday.",
        "{v}"
    );
    let id = v["memories_used"][0].as_i64().unwrap();
    assert!(v["timings"]["memory"].as_f64().unwrap() > 0.0, "{v}");

    // Stored for real: the memory daemon has it.
    let stored: serde_json::Value = http()
        .get(format!("{}/v1/memories/{id}?requester=family", mem.base))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(stored["summary"], "Ana's dentist is on Friday", "{stored}");

    d.say("m", "remember that the spare key is under the blue pot");
    let v = d.say("m", "When is Ana's dentist?");
    assert_eq!(v["intent"], "recall", "{v}");
    assert!(
        v["text"]
            .as_str()
            .unwrap()
            .contains("Ana's dentist is on Friday"),
        "{v}"
    );
    assert_eq!(v["memories_used"][0].as_i64().unwrap(), id, "{v}");

    let v = d.say("m", "do you remember where the spare key is");
    assert!(
        v["text"].as_str().unwrap().contains("under the blue pot"),
        "{v}"
    );

    let v = d.say("m", "what do you know about the spaceship");
    assert_eq!(
        v["text"], "I don't remember anything about spaceship.",
        "{v}"
    );
    assert_eq!(v["memories_used"].as_array().unwrap().len(), 0);
}

#[test]
fn recall_is_phrased_by_the_llm_when_the_budget_allows() {
    use crate::llm::{FakeLlm, answer};
    let dir = tempfile::tempdir().unwrap();
    let mem = start_memory(dir.path());
    let llm = FakeLlm::start(answer("Ana's dentist appointment is on Friday.", 12));
    let d = Daemon::start(
        dir.path(),
        &format!(
            "[memory]\nurl = \"{}\"\n[[llm.providers]]\nname = \"beast\"\nbase_url = \"{}\"\nmodel = \"m\"\nlocal = true\n",
            mem.base, llm.base
        ),
    );
    d.say("m", "Remember that Ana's dentist is on Friday");
    assert_eq!(llm.requests().len(), 0, "storing needs no LLM");
    let v = d.say("m", "When is Ana's dentist?");
    assert_eq!(v["text"], "Ana's dentist appointment is on Friday.", "{v}");
    assert_eq!(v["memories_used"].as_array().unwrap().len(), 1, "{v}");
    assert!(v["timings"]["llm"].as_f64().unwrap() > 0.0, "{v}");
    let system = llm.requests()[0]["messages"][0]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(system.contains("- Ana's dentist is on Friday"), "{system}");
    // Nothing found: no LLM call, the plain answer.
    let v = d.say("m", "what do you know about the spaceship");
    assert_eq!(
        v["text"], "I don't remember anything about spaceship.",
        "{v}"
    );
    assert_eq!(llm.requests().len(), 1);
}
