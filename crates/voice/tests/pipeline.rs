//! The pipeline's mechanics without hardware: espeak-ng speech played by the WAV source on a
//! test clock, the real barnabee-inference (real Silero VAD and openWakeWord over Wyoming;
//! generated stand-in STT, TTS and speaker models, which load in a second), the real
//! barnabee-agents WITHOUT Home Assistant.
//!
//! The end to end with nothing injected (real Whisper, Piper, GE2E, Home Assistant) is
//! tests/real_voices.rs. The stand-in STT model hears nothing meaningful, so the tests here
//! that need a transcript inject it at the STT stage (the STT round trip still runs and is
//! timed); their names end `injected_transcript`. They remain because each tests a mechanism
//! whose assertion must not depend on what Whisper hears, and which the real path does not
//! exercise:
//! - `over_long_utterance_is_cut_at_max_utterance_injected_transcript`: endpointing cuts at
//!   `max_utterance_ms` (a cut sentence is a garbled transcript; the agents need a valid one
//!   to answer).
//! - `inference_down_is_logged_on_health_and_the_pipeline_recovers_when_it_returns`: the
//!   daemon starts mid-test; with real models its 30 s load would dominate the test.
//! - `barge_in_wake_word_while_speaking_stops_playback_and_starts_capture`: a reply long
//!   enough to be interrupted (the agents-down reply, made long).
//! - `speaker_id_wiring_…`: the plumbing with a negated centroid, independent of any
//!   embedding model's accuracy; plus the confidence metric and an enrolment error.
//! - `wake_arbitration_…` and `local_mode_…`: who answers, and where wake/VAD run.
//!
//! The former `e2e_…_injected_transcript` tests (with and without Home Assistant) are
//! superseded by tests/real_voices.rs, which asserts everything they did on the real path.

#![allow(clippy::unwrap_used)]
#![allow(clippy::disallowed_methods)] // tests build their own HTTP clients (clippy.toml)

mod common;

use std::time::Duration;

use barnabee_service::{Check, Health};
use barnabee_voice::audio::wav::{Played, WavFileSink, WavSource};
use barnabee_voice::audio::{Clock, ManualClock};
use barnabee_voice::config::{AgentsConfig, InferenceConfig, PipelineConfig};
use barnabee_voice::latency::VoiceMetrics;
use barnabee_voice::pipeline::{Pipeline, Shared, State};
use common::*;

struct Outcome {
    shared: Shared,
    played: Played,
    health: barnabee_service::health::Component,
    _dir: tempfile::TempDir,
}

fn configs(wyoming_port: u16, agents_url: &str) -> (InferenceConfig, AgentsConfig, PipelineConfig) {
    let inf = InferenceConfig {
        wyoming: format!("127.0.0.1:{wyoming_port}"),
        wake_words: vec!["hey_jarvis".into()],
        timeout: Duration::from_secs(20),
        ..Default::default()
    };
    let ag = AgentsConfig {
        url: agents_url.into(),
        ..Default::default()
    };
    (inf, ag, PipelineConfig::default())
}

async fn run(
    pcm: Vec<i16>,
    clock: ManualClock,
    wyoming_port: u16,
    agents_url: &str,
    tweak: impl FnOnce(&mut PipelineConfig),
    inject: Option<&str>,
) -> Outcome {
    let health = Health::new().component("inference", Check::ok("starting").non_critical());
    run_with(pcm, clock, wyoming_port, agents_url, tweak, inject, health).await
}

async fn run_with(
    pcm: Vec<i16>,
    clock: ManualClock,
    wyoming_port: u16,
    agents_url: &str,
    tweak: impl FnOnce(&mut PipelineConfig),
    inject: Option<&str>,
    health: barnabee_service::health::Component,
) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let (inf, ag, mut pc) = configs(wyoming_port, agents_url);
    tweak(&mut pc);
    let shared = Shared::new(
        20,
        VoiceMetrics::new(&barnabee_service::metrics::Metrics::new()),
        Some(health.clone()),
    );
    let src = WavSource::from_pcm(pcm, Clock::Manual(clock), Duration::from_secs(1));
    let sink = WavFileSink::new(dir.path());
    let mut p = Pipeline::new(inf, ag, pc, shared.clone(), src, sink);
    p.hooks.inject_transcript = inject.map(str::to_owned);
    tokio::time::timeout(Duration::from_secs(240), p.run(None))
        .await
        .expect("pipeline did not finish within 240 s")
        .unwrap();
    Outcome {
        played: p.sink().played(),
        shared,
        health,
        _dir: dir,
    }
}

fn transitions(s: &Shared) -> Vec<State> {
    s.transitions.lock().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_and_noise_never_wake() {
    let wy = free_port();
    let _inf = inference(wy);
    let pcm = [silence(3.0), noise(3.0, 3000.0), silence(1.0)].concat();
    let o = run(pcm, ManualClock::free_running(), wy, "", |_| {}, None).await;
    assert!(o.shared.breakdowns.last(10).is_empty());
    assert!(o.played.utterances.is_empty());
    assert!(transitions(&o.shared).iter().all(|s| *s == State::Idle));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wake_word_with_no_request_returns_to_idle() {
    let wy = free_port();
    let _inf = inference(wy);
    let pcm = [speak("hey jarvis", 1.0), silence(5.0)].concat();
    let o = run(
        pcm,
        ManualClock::free_running(),
        wy,
        "",
        |c| c.no_speech_timeout_ms = 3000,
        None,
    )
    .await;
    let b = o.shared.breakdowns.last(10);
    assert_eq!(b.len(), 1, "{b:#?}");
    assert_eq!(b[0].outcome, "no_request");
    assert!(b[0].stt_ms.is_none() && b[0].tts_first_audio_ms.is_none());
    assert!(o.played.utterances.is_empty());
    assert_eq!(o.shared.state(), State::Idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_long_utterance_is_cut_at_max_utterance_injected_transcript() {
    let wy = free_port();
    let _inf = inference(wy);
    let ag = agents();
    let long = "turn on the kitchen lights and the hall lights and the garden lights and the porch lights and the bedroom lights and the attic lights and the cellar lights";
    let pcm = [speak("hey jarvis", 1.0), speak(long, 0.0), silence(1.0)].concat();
    let o = run(
        pcm,
        ManualClock::free_running(),
        wy,
        &format!("http://{}", ag.addr),
        |c| {
            c.max_utterance_ms = 2500;
            c.end_silence_ms = 2000; // espeak's pauses between phrases must not endpoint
        },
        Some("turn on the kitchen lights"),
    )
    .await;
    let b = o.shared.breakdowns.last(10);
    assert!(!b.is_empty());
    let b = b.last().unwrap();
    assert!(b.truncated, "{b:#?}");
    assert_eq!(b.outcome, "answered", "{b:#?}");
    let w = b.wake_to_speech_end_ms.unwrap();
    assert!((2000.0..=2700.0).contains(&w), "cut at ~2.5 s, got {w}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inference_down_is_logged_on_health_and_the_pipeline_recovers_when_it_returns() {
    let wy = free_port(); // nobody listens yet
    let ag = agents();
    let clock = ManualClock::new();
    let pcm = [
        silence(4.0),
        speak("hey jarvis, turn on the kitchen lights", 1.0),
    ]
    .concat();
    let url = format!("http://{}", ag.addr);
    let c2 = clock.clone();
    let health = Health::new().component("inference", Check::ok("starting").non_critical());
    let h2 = health.clone();
    let task = tokio::spawn(async move {
        run_with(
            pcm,
            c2,
            wy,
            &url,
            |_| {},
            Some("turn on the kitchen lights"),
            h2,
        )
        .await
    });
    // one second of audio with the inference daemon down
    for _ in 0..12 {
        clock.advance(Duration::from_millis(80));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let down = health.get();
    assert!(!down.ok, "{down:?}");
    assert!(
        down.detail.contains("inference unreachable (wake word)")
            && down.detail.contains(&format!("127.0.0.1:{wy}")),
        "{down:?}"
    );
    assert!(
        !task.is_finished(),
        "the pipeline keeps running while inference is down"
    );
    let inf = inference(wy);
    // let the rest run free
    loop {
        clock.advance(Duration::from_millis(80));
        tokio::time::sleep(Duration::from_millis(2)).await;
        if task.is_finished() {
            break;
        }
    }
    let o = task.await.unwrap();
    let b = o.shared.breakdowns.last(10);
    assert_eq!(b.len(), 1, "{b:#?}\n{}", inf.stderr());
    assert_eq!(b[0].outcome, "answered", "{b:#?}");
    assert!(o.health.get().ok, "{:?}", o.health.get());
    assert!(o.health.get().detail.contains(&wy.to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn barge_in_wake_word_while_speaking_stops_playback_and_starts_capture() {
    let wy = free_port();
    let _inf = inference(wy);
    // No agents configured: the pipeline speaks `agents_down_reply`, made long here so the
    // playback (stand-in TTS, ~12 ms per phoneme) outlasts the second "hey jarvis".
    let long_reply = "Sorry, I can't reach the assistant right now. ".repeat(8);
    let pcm = [
        speak("hey jarvis, turn on the kitchen lights", 1.0),
        silence(0.3),
        speak("hey jarvis", 0.0),
        silence(6.0),
    ]
    .concat();
    let o = run(
        pcm,
        ManualClock::free_running(),
        wy,
        "",
        |c| {
            c.agents_down_reply = long_reply.clone();
            c.no_speech_timeout_ms = 2000;
        },
        Some("turn on the kitchen lights"),
    )
    .await;
    let b = o.shared.breakdowns.last(10);
    assert_eq!(b.len(), 2, "{b:#?}");
    // newest first: the barge-in request (nothing said after it), then the answered one
    assert_eq!(b[1].outcome, "answered");
    assert!(
        b[1].error
            .as_deref()
            .unwrap()
            .contains("agents not configured")
    );
    assert_eq!(b[0].outcome, "no_request");
    assert_eq!(o.played.utterances.len(), 1);
    let (rate, pcm, stopped) = &o.played.utterances[0];
    assert!(*stopped, "playback was not stopped by the barge-in");
    let full_s = pcm.len() as f64 / *rate as f64;
    assert!(full_s > 3.0, "reply audio {full_s} s");
    let t = transitions(&o.shared);
    assert!(
        t.windows(2)
            .any(|w| w == [State::Speaking, State::WakeDetected]),
        "{t:?}"
    );
}

/// Enrol `name` in barnabee-memory with the inference daemon's embedding of `pcm`.
async fn enrol(inf: &Proc, mem: &Proc, name: &str, pcm: &[i16], negate: bool) {
    let http = reqwest::Client::new();
    let v: serde_json::Value = http
        .post(format!("http://{}/v1/embed/speaker", inf.http.unwrap()))
        .header("content-type", "audio/wav")
        .body(barnabee_voice::speaker::wav_bytes(pcm))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut centroid = v["embedding"].clone();
    if negate {
        centroid = serde_json::json!(
            centroid
                .as_array()
                .unwrap()
                .iter()
                .map(|x| -x.as_f64().unwrap())
                .collect::<Vec<_>>()
        );
    }
    assert!(centroid.as_array().is_some_and(|a| !a.is_empty()), "{v}");
    let r = http
        .put(format!("http://{}/v1/speakers/{name}", mem.addr))
        .json(&serde_json::json!({"embedding_model_hash": v["model"], "centroid": centroid, "sample_count": 1}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{:?}", r.text().await);
}

/// The stand-in embedding model (generated by the inference crate's make_models.py) does NOT
/// separate espeak voices (measured: every pair scores ~0.99), so this test checks the wiring,
/// not the model: "alice" is enrolled with the embedding of her command, "bob" with its
/// negation; the pipeline must fetch the captured utterance's embedding from the real
/// barnabee-inference, the centroids from the real barnabee-memory, pick alice by threshold and
/// margin, pass her to the agents and export the confidence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speaker_id_wiring_inference_embedding_memory_centroids_stand_in_model_injected_transcript()
{
    let wy = free_port();
    let inf = inference(wy);
    let mem = memory();
    let ag = agents();
    let command = "turn on the kitchen lights";
    let alice = |t: &str| speak_as("en-us+f2", t, 0.0);
    // alice through the library's enrolment (what `barnabee voice enroll` calls)
    let n = barnabee_voice::speaker::enroll(
        &format!("http://{}", inf.http.unwrap()),
        &format!("http://{}", mem.addr),
        "alice",
        &[alice(command), alice(command)],
        false,
    )
    .await
    .unwrap();
    assert_eq!(n, 2);
    let e = barnabee_voice::speaker::enroll(
        &format!("http://{}", inf.http.unwrap()),
        &format!("http://127.0.0.1:{}", free_port()),
        "carol",
        &[alice(command)],
        false,
    )
    .await
    .unwrap_err();
    assert!(e.contains("/v1/speakers/carol"), "{e}");
    enrol(&inf, &mem, "bob", &alice(command), true).await;
    let pcm = [
        silence(1.0),
        alice("hey jarvis"),
        alice(command),
        silence(1.0),
    ]
    .concat();
    let dir = tempfile::tempdir().unwrap();
    let (infc, agc, pc) = configs(wy, &format!("http://{}", ag.addr));
    let metrics = barnabee_service::metrics::Metrics::new();
    let shared = Shared::new(20, VoiceMetrics::new(&metrics), None);
    let src = WavSource::from_pcm(
        pcm,
        Clock::Manual(ManualClock::free_running()),
        Duration::from_secs(1),
    );
    let mut p = Pipeline::new(
        infc,
        agc,
        pc,
        shared.clone(),
        src,
        WavFileSink::new(dir.path()),
    );
    p.hooks.inject_transcript = Some(command.into());
    p.speaker = Some(barnabee_voice::speaker::SpeakerId::new(
        barnabee_voice::config::SpeakerConfig {
            enabled: true,
            inference_url: format!("http://{}", inf.http.unwrap()),
            memory_url: format!("http://{}", mem.addr),
            threshold: Some(0.5),
            margin: 0.5,
            ..Default::default()
        },
    ));
    p.run(None).await.unwrap();
    let b = shared.breakdowns.last(5);
    assert_eq!(b.len(), 1, "{b:#?}");
    eprintln!(
        "speaker {:?} confidence {:?}",
        b[0].speaker, b[0].speaker_confidence
    );
    assert_eq!(b[0].speaker.as_deref(), Some("alice"), "{b:#?}");
    assert_eq!(b[0].outcome, "answered");
    let c = b[0].speaker_confidence.unwrap();
    let text = metrics.encode();
    assert!(
        text.contains(&format!("barnabee_voice_speaker_confidence_ratio_sum {c}"))
            && text.contains("barnabee_voice_speaker_confidence_ratio_count 1"),
        "{text}"
    );
}

/// Two satellites hear the same wake word: the coordinator (this crate's own HTTP API, served
/// in-process) picks one; the loser stands down (no capture), the winner answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wake_arbitration_loser_stands_down_winner_answers() {
    let wy = free_port();
    let _inf = inference(wy);
    let metrics = barnabee_service::metrics::Metrics::new();
    let shared = Shared::new(20, VoiceMetrics::new(&metrics), None);
    let arbiter = barnabee_voice::arbitration::Arbiter::new(Duration::from_secs(10));
    let app = barnabee_voice::api::router(barnabee_voice::api::ApiState {
        shared: shared.clone(),
        arbiter,
        device_id: "kitchen".into(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let coord = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let speech = speak("hey jarvis, turn on the kitchen lights", 1.0);
    for (rival, we_win) in [(1.0, false), (0.4, true)] {
        // the rival satellite ("hall") reports first; ties go to the earliest
        let c = coord.clone();
        let rival_task = tokio::spawn(async move {
            let v: serde_json::Value = reqwest::Client::new()
                .post(format!("{c}/v1/wake"))
                .json(&serde_json::json!({"device_id": "hall", "confidence": rival}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let dir = tempfile::tempdir().unwrap();
        let (infc, agc, pc) = configs(wy, "");
        let pipeline_shared = Shared::new(20, VoiceMetrics::new(&metrics), None);
        let src = WavSource::from_pcm(
            speech.clone(),
            Clock::Manual(ManualClock::free_running()),
            Duration::from_secs(1),
        );
        let mut p = Pipeline::new(
            infc,
            agc,
            pc,
            pipeline_shared.clone(),
            src,
            WavFileSink::new(dir.path()),
        );
        p.coordinator = Some(coord.clone());
        p.hooks.inject_transcript = Some("turn on the kitchen lights".into());
        p.run(None).await.unwrap();
        let r = rival_task.await.unwrap();
        assert_eq!(r["contenders"], 2, "{r}");
        assert_eq!(r["winner"], !we_win, "{r}");
        let b = pipeline_shared.breakdowns.last(5);
        if we_win {
            assert_eq!(b.len(), 1, "{b:#?}");
            assert_eq!(b[0].outcome, "answered");
            assert_eq!(p.sink().played().utterances.len(), 1);
        } else {
            assert!(b.is_empty(), "the loser must not capture: {b:#?}");
            assert!(p.sink().played().utterances.is_empty());
            let t = pipeline_shared.transitions.lock().unwrap().clone();
            assert!(!t.contains(&State::Capturing), "{t:?}");
        }
    }
    assert!(
        metrics
            .encode()
            .contains("barnabee_voice_requests_total{outcome=\"stood_down\"} 1")
    );
}

/// `mode = "local"`: wake word and VAD run in-process with barnabee-inference's own code and
/// the real models (the inference daemon here has NO wake or VAD model, so only the local
/// path can have fired); STT (transcript injected: stand-in model) and TTS stay remote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_mode_real_wake_word_and_vad_in_process_injected_transcript() {
    let wy = free_port();
    let _inf = inference_with(wy, false);
    let oww = |n: &str| model(&format!("openwakeword-0.5.1/{n}.onnx"));
    let file = |role: &str, p: std::path::PathBuf| {
        format!(
            "files.{role} = {{ path = \"{}\", sha256 = \"{}\" }}\n",
            p.display(),
            sha256(&p)
        )
    };
    let local_toml = format!(
        "[runtime]\nlibrary = \"{}\"\n[wake]\nkind = \"wake\"\n{}{}{}[vad]\nkind = \"vad\"\n{}",
        ort_lib().display(),
        file("melspectrogram", oww("melspectrogram")),
        file("embedding", oww("embedding_model")),
        file("hey_jarvis", oww("hey_jarvis_v0.1")),
        file("model", model("silero-vad-6.2.3/silero_vad.onnx")),
    );
    let lc: barnabee_voice::config::LocalConfig = toml::from_str(&local_toml).unwrap();
    let local = barnabee_voice::local::Local::load(
        &lc,
        std::path::Path::new("/"),
        vec!["hey_jarvis".into()],
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (infc, agc, pc) = configs(wy, "");
    let shared = Shared::new(
        20,
        VoiceMetrics::new(&barnabee_service::metrics::Metrics::new()),
        None,
    );
    let src = WavSource::from_pcm(
        speak("hey jarvis, turn on the kitchen lights", 1.0),
        Clock::Manual(ManualClock::free_running()),
        Duration::from_secs(1),
    );
    let mut p = Pipeline::new(
        infc,
        agc,
        pc,
        shared.clone(),
        src,
        WavFileSink::new(dir.path()),
    );
    p.local = Some(local);
    p.hooks.inject_transcript = Some("turn on the kitchen lights".into());
    p.run(None).await.unwrap();
    let b = shared.breakdowns.last(5);
    assert_eq!(b.len(), 1, "{b:#?}");
    assert_eq!(b[0].outcome, "answered", "{b:#?}");
    assert_eq!(b[0].wake_word.as_deref(), Some("hey_jarvis"));
    assert!(!b[0].truncated, "the local VAD endpointed: {b:#?}");
    let w = b[0].wake_to_speech_end_ms.unwrap();
    assert!((500.0..4000.0).contains(&w), "{w}");
    assert_eq!(p.sink().played().utterances.len(), 1);
}

/// `POST /v1/announce` (the API served in-process, as the daemon serves it) and the live
/// pipeline: refused with 503 while no pipeline runs, bad input named, another device's
/// announcement refused; queued while the pipeline runs, it is spoken once idle (the real
/// inference's TTS into the sink) without being a request, and counted as played.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announcements_are_spoken_by_the_live_pipeline_when_idle() {
    let wy = free_port();
    let _inf = inference(wy);
    let metrics = barnabee_service::metrics::Metrics::new();
    let shared = Shared::new(20, VoiceMetrics::new(&metrics), None);
    let app = barnabee_voice::api::router(barnabee_voice::api::ApiState {
        shared: shared.clone(),
        arbiter: barnabee_voice::arbitration::Arbiter::new(Duration::from_secs(1)),
        device_id: "kitchen".into(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1/announce", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let post = |body: serde_json::Value| {
        let url = url.clone();
        async move {
            let r = reqwest::Client::new()
                .post(url)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (code, v) = post(serde_json::json!({"text": "The washing machine is done."})).await;
    assert_eq!(code, 503, "no pipeline runs yet: {v}");
    assert!(v["error"].as_str().unwrap().contains("not running"), "{v}");
    for (body, field) in [
        (serde_json::json!({"text": "  "}), "text"),
        (serde_json::json!({"txt": "hi"}), "txt"),
        (serde_json::json!({"text": "x".repeat(1001)}), "text"),
        (
            serde_json::json!({"text": "hi", "device_id": 7}),
            "device_id",
        ),
    ] {
        let (code, v) = post(body.clone()).await;
        assert_eq!(
            (code, v["field"].as_str()),
            (400, Some(field)),
            "{body} -> {v}"
        );
    }

    let clock = ManualClock::new();
    let dir = tempfile::tempdir().unwrap();
    let (inf, ag, pc) = configs(wy, "");
    let src = WavSource::from_pcm(
        silence(6.0),
        Clock::Manual(clock.clone()),
        Duration::from_secs(1),
    );
    let sink = WavFileSink::new(dir.path());
    let played = sink.clone();
    let mut p = Pipeline::new(inf, ag, pc, shared.clone(), src, sink);
    let task = tokio::spawn(async move { p.run(None).await });
    // Queued once the pipeline runs (it marks the queue live as it starts).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let queued = loop {
        let (code, v) = post(
            serde_json::json!({"text": "The washing machine is done.", "from": "home-assistant", "device_id": "kitchen"}),
        )
        .await;
        if code == 202 {
            break v;
        }
        assert_eq!(code, 503, "{v}");
        assert!(
            std::time::Instant::now() < deadline,
            "the pipeline never took announcements"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(queued["queued"], 1, "{queued}");
    let (code, v) = post(serde_json::json!({"text": "hi", "device_id": "hall"})).await;
    assert_eq!(code, 404, "another satellite's announcement: {v}");
    while !task.is_finished() {
        clock.advance(Duration::from_millis(80));
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    task.await.unwrap().unwrap();
    let played = played.played();
    assert_eq!(played.utterances.len(), 1, "one announcement spoken");
    let (rate, pcm, stopped) = &played.utterances[0];
    assert!(!stopped);
    assert!(
        pcm.len() as f64 / *rate as f64 > 0.5,
        "{} samples at {rate} Hz",
        pcm.len()
    );
    assert!(
        shared.breakdowns.last(10).is_empty(),
        "an announcement is not a request"
    );
    assert!(transitions(&shared).contains(&State::Speaking));
    assert_eq!(shared.state(), State::Idle);
    let text = metrics.encode();
    assert!(
        text.contains(r#"barnabee_voice_announcements_total{outcome="played"} 1"#)
            && text.contains(r#"barnabee_voice_announcements_total{outcome="refused"}"#),
        "{text}"
    );
    // After the pipeline stopped, nothing takes announcements again.
    let (code, _) = post(serde_json::json!({"text": "anyone there?"})).await;
    assert_eq!(code, 503);
}
