//! `barnabee voice enroll NAME WAV...` with the real binary: a missing or unreadable file is
//! named before any request is made; the voice daemon's refusal (the real barnabee-voice) is
//! printed and the exit status is 1. The enrolment itself is tested at the endpoint
//! (crates/voice/tests/enroll.rs) against real inference and memory daemons.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
#![allow(clippy::disallowed_methods)] // tests build their own HTTP clients (clippy.toml)

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{Daemon, barnabee};

/// A 16-bit PCM WAV of `seconds` of a quiet sawtooth.
fn write_wav(path: &Path, rate: u32, channels: u16, seconds: f32) {
    let frames = (rate as f32 * seconds) as u32;
    let data_len = frames * channels as u32 * 2;
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data_len).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&channels.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * channels as u32 * 2).to_le_bytes());
    b.extend_from_slice(&(channels * 2).to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data_len.to_le_bytes());
    for i in 0..frames * channels as u32 {
        b.extend_from_slice(&(((i % 200) as i16 - 100) * 30).to_le_bytes());
    }
    std::fs::write(path, b).unwrap();
}

fn enroll(args: &[&str]) -> Output {
    let out = Command::new(barnabee())
        .args(["voice", "enroll"])
        .args(args)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .output()
        .unwrap();
    eprintln!(
        "barnabee voice enroll {args:?}: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn voice_enroll_missing_or_unreadable_file_is_named_before_any_request() {
    // a listener that must never see a connection
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("one.wav");
    write_wav(&good, 16_000, 1, 1.0);
    let missing = dir.path().join("two.wav");

    let out = enroll(&[
        "alice",
        good.to_str().unwrap(),
        missing.to_str().unwrap(),
        "--url",
        &url,
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "cannot read WAV file 2 of 2: {}: No such file or directory",
            missing.display()
        )),
        "{stderr}"
    );
    // a directory where a file should be
    let out = enroll(&["alice", dir.path().to_str().unwrap(), "--url", &url]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "cannot read WAV file 1 of 1: {}",
            dir.path().display()
        )),
        "{stderr}"
    );
    assert_eq!(
        listener.accept().unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock,
        "a request was made despite the unreadable file"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn voice_enroll_prints_the_real_voice_daemons_refusal_and_exits_1() {
    // API-only voice daemon without [speaker] URLs
    let voice = Daemon::start(
        "voice",
        "[service]\nlisten = \"@LISTEN@\"\n[service.log]\ntarget = \"stderr\"\n[audio]\nenabled = false\n",
    );
    let dir = tempfile::tempdir().unwrap();
    let call = dir.path().join("call.wav");
    write_wav(&call, 8_000, 2, 1.0);
    let good = dir.path().join("good.wav");
    write_wav(&good, 16_000, 1, 1.0);

    let out = enroll(&["bob", call.to_str().unwrap(), "--url", &voice.url]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "enrolment of \"bob\" refused: HTTP 400 Bad Request: utterance 1 ({}): 8000 Hz, 2 channels, 16-bit integer; at least 16000 Hz is needed",
            call.display()
        )),
        "{stderr}"
    );

    let out = enroll(&["guest", good.to_str().unwrap(), "--url", &voice.url]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("HTTP 400 Bad Request: name: \"guest\""));

    // a good file, but this daemon has no [speaker] URLs
    let out = enroll(&["bob", good.to_str().unwrap(), "--url", &voice.url]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("HTTP 503 Service Unavailable: [speaker] inference_url is not set"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

fn say(args: &[&str]) -> Output {
    let out = Command::new(barnabee())
        .arg("say")
        .args(args)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .output()
        .unwrap();
    eprintln!(
        "barnabee say {args:?}: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `barnabee say`'s failures: a missing file is named before any request (2); a daemon that
/// is not there is named (2); the real voice daemon's refusals are printed (1) and no reply
/// file is written. The answered path (real Whisper, agents and Piper) is tested with the
/// voice daemon's endpoint in crates/voice/tests/say.rs, which runs this binary too.
#[test]
fn say_names_a_missing_file_an_absent_daemon_and_prints_the_daemons_refusal() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("ask.wav");
    let out = say(&[missing.to_str().unwrap(), "--url", &url]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot read {}", missing.display())),
        "{stderr}"
    );
    assert_eq!(
        listener.accept().unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock,
        "a request was made without a file"
    );

    let good = dir.path().join("good.wav");
    write_wav(&good, 16_000, 1, 1.0);
    let closed = common::closed_url();
    let out = say(&[good.to_str().unwrap(), "--url", &closed]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains(&format!("cannot reach the voice daemon at {closed}")),
    );

    // API-only voice daemon without [inference]: bad WAVs are refused first, then the config
    let voice = Daemon::start(
        "voice",
        "[service]\nlisten = \"@LISTEN@\"\n[service.log]\ntarget = \"stderr\"\n[audio]\nenabled = false\n",
    );
    let call = dir.path().join("call.wav");
    write_wav(&call, 8_000, 2, 1.0);
    let out = say(&[call.to_str().unwrap(), "--url", &voice.url]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{} not answered: HTTP 400 Bad Request: body: 8000 Hz, 2 channels, 16-bit integer; at least 16000 Hz is needed",
            call.display()
        )),
        "{stderr}"
    );
    let out = say(&[good.to_str().unwrap(), "--url", &voice.url]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(
            "HTTP 503 Service Unavailable: [inference] wyoming is not set in the voice daemon's config"
        ),
        "{}",
        voice.stderr()
    );
    assert!(out.stdout.is_empty());
    assert!(!dir.path().join("good.reply.wav").exists());
}
