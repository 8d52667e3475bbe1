//! The Wyoming server against the PyPI `wyoming` package's AsyncTcpClient (the code Home
//! Assistant runs), for the versions HA releases pin, plus malformed frames over a raw socket.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

use crate::common::*;
use crate::daemon::wav_bytes;
use crate::models::standin_toml;

fn models() -> String {
    format!(
        "{}{}{}",
        standin_toml(),
        model_toml("silero", "vad", &[("model", &silero())], ""),
        model_toml(
            "oww",
            "wake",
            &[
                ("melspectrogram", &oww("melspectrogram")),
                ("embedding", &oww("embedding_model")),
                ("hey_jarvis", &oww("hey_jarvis_v0.1")),
                ("alexa", &oww("alexa_v0.1")),
            ],
            "",
        )
    )
}

fn client(version: &str) -> PathBuf {
    let p = cache().join(format!("wyoming-{version}/bin/python"));
    assert!(
        p.exists(),
        "{} missing — run dev/setup (dev/setup.d/70-inference.sh makes one venv per wyoming version)",
        p.display()
    );
    p
}

fn conformance(version: &str) {
    let port = free_port();
    let d = Daemon::start(&models(), Some(port));
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, pcm: &[i16]| {
        let p = dir.path().join(name);
        std::fs::write(&p, wav_bytes(pcm)).unwrap();
        p
    };
    let cmd = write(
        "cmd.wav",
        &speak("turn on the kitchen lights", "en-us", 160, 1.0),
    );
    let wake = write("wake.wav", &speak("hey jarvis", "en-us", 150, 1.0));
    let neg = write("neg.wav", &speak("what is the weather", "en-us", 150, 1.0));
    let out = std::process::Command::new(client(version))
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/wyoming_client.py"))
        .arg(port.to_string())
        .args([&cmd, &wake, &neg])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "wyoming {version} client failed: {}\ndaemon: {}",
        String::from_utf8_lossy(&out.stderr),
        d.stderr()
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!("wyoming {version}: {v:#}");
    assert_eq!(v["version"], version);
    assert_eq!(v["asr"], serde_json::json!(["parakeet"]));
    assert_eq!(v["tts"], serde_json::json!(["piper"]));
    assert_eq!(v["wake"], serde_json::json!(["alexa", "hey_jarvis"]));
    assert_eq!(v["attribution"], "Barnabee");
    assert_eq!(v["installed"], true);
    assert_eq!(v["languages"], serde_json::json!(["en"]));
    assert_eq!(v["transcript"], "turn on the kitchen lights");
    let others: Vec<&str> = v["transcribe_other_events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert_eq!(
        others,
        vec!["voice-started", "voice-stopped"],
        "VAD events while audio arrives"
    );
    assert_eq!(v["synthesize"]["rate"], 22050);
    assert!(v["synthesize"]["chunks"].as_u64().unwrap() >= 2);
    assert_eq!(v["detect_positive"], "hey_jarvis");
    assert_eq!(v["detect_negative"], "not-detected");
    assert!(
        v["empty_text"].as_str().unwrap().contains("empty"),
        "{}",
        v["empty_text"]
    );
    if version != "1.5.4" {
        assert_eq!(v["tts_streaming"], true);
        assert_eq!(
            v["streaming"]["groups"], 3,
            "one audio-start per sentence: {}",
            v["streaming"]
        );
        assert!(v["streaming"]["bytes"].as_u64().unwrap() > 0);
    }
}

#[test]
fn wyoming_1_5_4_client_home_assistant_2025_4() {
    conformance("1.5.4");
}

#[test]
fn wyoming_1_7_2_client_home_assistant_2026_2() {
    conformance("1.7.2");
}

#[test]
fn wyoming_1_10_2_client_latest() {
    conformance("1.10.2");
}

#[test]
fn malformed_frames_get_an_error_and_the_server_keeps_serving() {
    let port = free_port();
    let d = Daemon::start(
        &model_toml("silero", "vad", &[("model", &silero())], ""),
        Some(port),
    );
    let cases: [&[u8]; 4] = [
        b"this is not json\n",
        b"{\"data\":{}}\n",
        b"{\"type\":\"audio-chunk\",\"payload_length\":99999999999}\n",
        b"{\"type\":\"transcribe\",\"data_length\":5}\n{bad}",
    ];
    for raw in cases {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(raw).unwrap();
        let mut r = BufReader::new(s);
        let mut header = String::new();
        r.read_line(&mut header).unwrap();
        let h: serde_json::Value = serde_json::from_str(&header).unwrap();
        assert_eq!(h["type"], "error", "{header}");
        let mut data = vec![0u8; h["data_length"].as_u64().unwrap() as usize];
        std::io::Read::read_exact(&mut r, &mut data).unwrap();
        let data: serde_json::Value = serde_json::from_slice(&data).unwrap();
        eprintln!("{:?} → {data}", String::from_utf8_lossy(raw));
        assert!(
            data["text"]
                .as_str()
                .unwrap()
                .contains("malformed Wyoming frame"),
            "{data}"
        );
        let mut rest = Vec::new();
        assert_eq!(
            std::io::Read::read_to_end(&mut r, &mut rest).unwrap(),
            0,
            "connection closed"
        );
    }
    // an application error (unsupported audio format) keeps the connection open
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"{\"type\":\"audio-start\",\"data\":{\"rate\":16000,\"width\":4,\"channels\":1}}\n{\"type\":\"ping\"}\n")
        .unwrap();
    let mut r = BufReader::new(s);
    let mut header = String::new();
    r.read_line(&mut header).unwrap();
    let h: serde_json::Value = serde_json::from_str(&header).unwrap();
    assert_eq!(h["type"], "error");
    let mut data = vec![0u8; h["data_length"].as_u64().unwrap() as usize];
    std::io::Read::read_exact(&mut r, &mut data).unwrap();
    assert!(String::from_utf8_lossy(&data).contains("width 4"));
    header.clear();
    r.read_line(&mut header).unwrap();
    assert!(header.contains("\"pong\""), "{header}");
    // a well-formed describe on a new connection still works
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"{\"type\":\"describe\"}\n").unwrap();
    let mut header = String::new();
    BufReader::new(s).read_line(&mut header).unwrap();
    assert!(header.contains("\"info\""), "{header}");
    let (st, _) = d.health();
    assert_eq!(st, 200);
}

/// The first sentence's audio leaves before the later sentences are synthesised: espeak-ng is
/// wrapped so that phonemising the second sentence takes 1.5 s.
#[test]
fn synthesis_streams_the_first_sentence_before_the_rest_is_ready() {
    let dir = tempfile::tempdir().unwrap();
    let wrapper = dir.path().join("slow-espeak-ng");
    std::fs::write(
        &wrapper,
        "#!/bin/sh\ncase \"$*\" in *Slowly*) sleep 1.5;; esac\nexec espeak-ng \"$@\"\n",
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let port = free_port();
    let d = Daemon::start_with_env(
        &standin_toml(),
        Some(port),
        &[("BARNABEE_ESPEAK_NG", wrapper.to_str().unwrap())],
    );
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let t0 = std::time::Instant::now();
    s.write_all(b"{\"type\":\"synthesize\",\"data\":{\"text\":\"Quick first sentence. Slowly the second one.\"}}\n")
        .unwrap();
    let mut r = BufReader::new(s);
    let (mut first_audio, mut stop) = (None, None);
    while stop.is_none() {
        let mut header = String::new();
        r.read_line(&mut header).unwrap();
        let h: serde_json::Value =
            serde_json::from_str(&header).unwrap_or_else(|_| panic!("{header:?} {}", d.stderr()));
        let skip =
            h["data_length"].as_u64().unwrap_or(0) + h["payload_length"].as_u64().unwrap_or(0);
        std::io::copy(&mut std::io::Read::take(&mut r, skip), &mut std::io::sink()).unwrap();
        match h["type"].as_str().unwrap() {
            "audio-chunk" if first_audio.is_none() => first_audio = Some(t0.elapsed()),
            "audio-stop" => stop = Some(t0.elapsed()),
            "error" => panic!("{header}"),
            _ => {}
        }
    }
    let (first, stop) = (first_audio.unwrap(), stop.unwrap());
    eprintln!("first audio after {first:?}, audio-stop after {stop:?}");
    assert!(stop >= Duration::from_millis(1500), "{stop:?}");
    assert!(
        first + Duration::from_millis(1000) < stop,
        "first audio {first:?} should leave well before {stop:?}"
    );
}
