//! Credentials not provisioned yet: on a freshly flashed appliance sops-nix cannot decrypt, and
//! systemd hands the daemon an EMPTY credential (the NixOS module's `SetCredential=NAME:`
//! default). The daemon starts and serves; `/health` is degraded (200) and says which key is
//! not provisioned. A credential that is missing altogether is still a refused start.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use crate::common::*;
use crate::llm::{FakeLlm, answer};

fn config(dir: &std::path::Path, beast: &str) -> std::path::PathBuf {
    write_config(
        dir,
        &format!(
            "[home_assistant]\nurl = \"http://127.0.0.1:{}\"\ntoken_file = \"ha-token\"\n\
             [memory]\nurl = \"http://127.0.0.1:{}\"\n\
             [[llm.providers]]\nname = \"cloud\"\nbase_url = \"http://127.0.0.1:{}/v1\"\nmodel = \"cloud-model\"\napi_key_file = \"openrouter-key\"\n\
             [[llm.providers]]\nname = \"beast\"\nbase_url = \"{beast}\"\nmodel = \"beast-model\"\nlocal = true\n\
             [llm.prices.\"cloud-model\"]\ninput = 1.0\noutput = 1.0\n",
            closed_port(),
            closed_port(),
            closed_port(),
        ),
    )
}

#[test]
fn empty_credentials_degrade_instead_of_failing_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("creds");
    std::fs::create_dir_all(&creds).unwrap();
    secret_file(&creds, "ha-token", "");
    secret_file(&creds, "openrouter-key", "\n");
    let beast = FakeLlm::start(answer("Because of Rayleigh scattering.", 10));
    let cfg = config(dir.path(), &beast.base);
    let d = Daemon::start_with_env(&cfg, &[("CREDENTIALS_DIRECTORY", creds.as_path())]);

    let (status, h) = d.health();
    assert_eq!(status, 200, "{h}");
    assert_eq!(h["status"], "degraded", "{h}");
    let ha = &h["checks"]["home_assistant"];
    assert_eq!(ha["ok"], false, "{h}");
    assert_eq!(ha["critical"], false, "{h}");
    let detail = ha["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("secret `home_assistant.token_file`: ")
            && detail.contains("ha-token is empty: not provisioned yet"),
        "{h}"
    );
    let llm = &h["checks"]["llm"];
    assert_eq!(llm["ok"], false, "{h}");
    assert_eq!(llm["critical"], false, "{h}");
    let detail = llm["detail"].as_str().unwrap();
    assert!(
        detail.starts_with(
            "1 provider(s): beast; cloud unavailable: secret `llm.providers[0].api_key_file`: "
        ) && detail.contains("openrouter-key is empty: not provisioned yet"),
        "{h}"
    );

    // The provider whose key is there answers; the other one is never tried.
    let v = d.say("s", "why is the sky blue");
    assert_eq!(v["route"], "interaction", "{v}");
    assert_eq!(v["text"], "Because of Rayleigh scattering.", "{v}");
    assert_eq!(beast.requests().len(), 1);
    // Device control says why it cannot.
    let v = d.say("s", "turn on the kitchen lights");
    assert_eq!(v["route"], "action", "{v}");
    assert!(
        v["text"].as_str().unwrap().contains("not set up yet"),
        "{v}"
    );

    let log = d.log();
    for event in [
        "event=home_assistant_not_provisioned",
        "event=llm_provider_not_provisioned",
    ] {
        assert!(log.contains(event), "{event} missing:\n{log}");
    }
    assert!(!log.contains("event=incident"), "{log}");
}

#[test]
fn a_missing_api_key_credential_still_refuses_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("creds");
    std::fs::create_dir_all(&creds).unwrap();
    secret_file(&creds, "ha-token", "");
    let cfg = config(dir.path(), "http://127.0.0.1:9/v1");
    let mut cmd = std::process::Command::new(BIN);
    cmd.arg("--config")
        .arg(&cfg)
        .env("CREDENTIALS_DIRECTORY", &creds);
    let mut p = DaemonProcess::spawn(cmd, &cfg.with_extension("stderr.log"));
    let end = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = p.try_wait() {
            break s;
        }
        assert!(Instant::now() < end, "still running:\n{}", p.log());
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success());
    let log = p.log();
    assert!(
        log.contains("llm.providers[0].api_key_file") && log.contains("cannot read"),
        "{log}"
    );
}
