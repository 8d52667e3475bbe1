//! The cost ledger replicates (`[replication]`, the replicator's embed module): a replacement
//! machine (the state directory gone) restores this month's spend before the daemon serves.

use crate::common::*;
use crate::llm::{FakeLlm, answer};

#[test]
fn the_cost_ledger_comes_back_on_a_replacement_machine() {
    let cloud = FakeLlm::start(answer("From the cloud.", 550)); // $0.55 a call
    let replica = tempfile::tempdir().unwrap();
    let extra = format!(
        "[[llm.providers]]\nname = \"cloud\"\nbase_url = \"{}\"\nmodel = \"cloud-model\"\nlocal = false\ntimeout = 5\n\
         [llm.prices.\"cloud-model\"]\ninput = 0.0\noutput = 1000.0\n\
         [replication]\ntype = \"file\"\npath = \"{}\"\nsync_interval = 1\n",
        cloud.base,
        replica.path().join("agents").display()
    );
    let old = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(old.path(), &extra);
    let (_, h) = d.health();
    let detail = h["checks"]["replication"]["detail"].as_str().unwrap_or("");
    assert!(
        h["checks"]["replication"]["ok"] == true && detail.starts_with("replica file://"),
        "{h}"
    );
    assert_eq!(d.say("s", "tell me a joke")["text"], "From the cloud.");
    // SIGTERM ships what is committed (the drain, then the replicator's shutdown).
    d.stop();
    assert!(
        d.log().contains("replication_stopped") || d.log().contains("stopped at TXID"),
        "{}",
        d.log()
    );

    // A new machine: an empty state directory, the same replica.
    let new = tempfile::tempdir().unwrap();
    assert!(!new.path().join("cost-ledger.sqlite").exists());
    let d = Daemon::start(new.path(), &extra);
    assert!(
        d.log().contains("restored"),
        "no restore in the log:\n{}",
        d.log()
    );
    let m = d.metrics();
    assert!(
        m.contains("barnabee_agents_llm_cost_today_dollars 0.55"),
        "the spend did not come back:\n{m}"
    );
    // The replicator's families are on this daemon's /metrics (catalog: Replicating).
    assert!(m.contains("barnabee_replication_last_shipped_txid "), "{m}");
    let (_, h) = d.health();
    assert_eq!(h["checks"]["replication"]["ok"], true, "{h}");
}

/// `--check-config` on `text` (with no `$STATE_DIRECTORY`): it must refuse; its stderr.
#[allow(clippy::unwrap_used)]
fn refused(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agents.toml");
    std::fs::write(&cfg, text).unwrap();
    let out = std::process::Command::new(BIN)
        .arg("--config")
        .arg(&cfg)
        .arg("--check-config")
        .env_remove("STATE_DIRECTORY")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "accepted:\n{text}\n{err}");
    err
}

#[test]
fn replication_without_a_state_dir_is_refused_naming_the_key() {
    let listen = "[service]\nlisten = \"127.0.0.1:0\"\n";
    let err = refused(&format!(
        "{listen}[replication]\ntype = \"file\"\npath = \"/tmp/r\"\n"
    ));
    assert!(
        err.contains("replication") && err.contains("state_dir"),
        "{err}"
    );
    // A relative file replica path is named too.
    let err = refused(&format!(
        "state_dir = \"/tmp/x\"\n{listen}[replication]\ntype = \"file\"\npath = \"backup\"\n"
    ));
    assert!(
        err.contains("replication.path") && err.contains("absolute"),
        "{err}"
    );
    // [replication.verify] is memory's: refused here, saying so.
    let err = refused(&format!(
        "state_dir = \"/tmp/x\"\n{listen}[replication]\ntype = \"file\"\npath = \"/backup/agents\"\n[replication.verify]\ninterval = 60\n"
    ));
    assert!(
        err.contains("replication.verify") && err.contains("barnabee-memory"),
        "{err}"
    );
}
