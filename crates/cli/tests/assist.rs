//! Barnabee inside the current Home Assistant's Assist (issue #20), nothing of HA mocked:
//! `barnabee up --demo-home` with Home Assistant 2026.2.3 (the Debian trixie chroot of
//! dev/setup.d/61-home-assistant-current.sh) and the real memory, agents and inference daemons
//! (Whisper tiny.en and a Piper voice from the set-up cache).
//!
//! - HA's `wyoming` integration is added by its config flow (REST, as the UI does) twice: the
//!   inference daemon's Wyoming server (STT, TTS, wake) and the agents' conversation service.
//! - An Assist pipeline using Barnabee for STT, conversation and TTS is created over HA's
//!   WebSocket API and run (`assist_pipeline/run`) with **text** ("turn on the kitchen lights":
//!   the light is on, the reply is Barnabee's), a **follow-up** in the same conversation ("turn
//!   it off": the same light, so the conversation id reached Barnabee's session), and **audio**
//!   (espeak-ng speech streamed to HA → Barnabee's Whisper → agents → Piper → a TTS URL HA
//!   serves). The stage timings of the audio run are printed.
//! - An HA automation (made through HA's automation config API, fired by an event) calls the
//!   demo home's `rest_command.barnabee_announce`, and a real voice daemon (the ALSA `null`
//!   PCM as its microphone and speaker: this machine has no sound card) speaks it.
//!
//! Without the current HA (no root for the chroot, or `dev/setup` not run) this prints a loud
//! NOT RUN line and fails under CI=true.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
#![allow(clippy::disallowed_methods)] // tests build their own HTTP clients (clippy.toml)

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::time::{Duration, Instant};

use common::demo_home::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// HA's WebSocket API: authenticated, one command at a time.
struct HaWs {
    ws: Ws,
    id: u64,
}

impl HaWs {
    async fn connect(ha: &str, token: &str) -> HaWs {
        let url = format!("{}/api/websocket", ha.replace("http://", "ws://"));
        let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .unwrap();
        let hello = next_json(&mut ws).await;
        assert_eq!(hello["type"], "auth_required", "{hello}");
        ws.send(Message::text(
            json!({"type": "auth", "access_token": token.trim()}).to_string(),
        ))
        .await
        .unwrap();
        let ok = next_json(&mut ws).await;
        assert_eq!(ok["type"], "auth_ok", "{ok}");
        HaWs { ws, id: 0 }
    }

    async fn send(&mut self, mut cmd: Value) -> u64 {
        self.id += 1;
        cmd["id"] = json!(self.id);
        self.ws.send(Message::text(cmd.to_string())).await.unwrap();
        self.id
    }

    /// A command's result (asserts success).
    async fn call(&mut self, cmd: Value) -> Value {
        let id = self.send(cmd.clone()).await;
        loop {
            let m = next_json(&mut self.ws).await;
            if m["id"] == id && m["type"] == "result" {
                assert_eq!(m["success"], true, "{cmd} -> {m}");
                return m["result"].clone();
            }
        }
    }
}

async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(120), ws.next())
            .await
            .expect("Home Assistant sent nothing for 120 s")
            .expect("Home Assistant closed the WebSocket")
            .unwrap();
        if let Message::Text(t) = m {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

/// One pipeline run's events, in order, each with when it arrived.
struct Run {
    events: Vec<(Instant, Value)>,
}

impl Run {
    fn event(&self, kind: &str) -> &Value {
        self.events
            .iter()
            .find(|(_, e)| e["type"] == kind)
            .map(|(_, e)| e)
            .unwrap_or_else(|| panic!("no {kind} event in {:#?}", self.kinds()))
    }

    fn at(&self, kind: &str) -> Instant {
        self.events
            .iter()
            .find(|(_, e)| e["type"] == kind)
            .map(|(t, _)| *t)
            .unwrap_or_else(|| panic!("no {kind} event in {:#?}", self.kinds()))
    }

    fn kinds(&self) -> Vec<String> {
        self.events.iter().map(|(_, e)| e.to_string()).collect()
    }

    fn speech(&self) -> String {
        self.event("intent-end")["data"]["intent_output"]["response"]["speech"]["plain"]["speech"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    fn conversation_id(&self) -> String {
        self.event("intent-end")["data"]["intent_output"]["conversation_id"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

/// Run the pipeline; with `audio`, stream it (16 kHz mono s16le) once HA says where.
async fn run(ws: &mut HaWs, mut cmd: Value, audio: Option<&[u8]>) -> Run {
    cmd["type"] = json!("assist_pipeline/run");
    let id = ws.send(cmd.clone()).await;
    let mut events = Vec::new();
    loop {
        let m = next_json(&mut ws.ws).await;
        if m["id"] != id {
            continue;
        }
        if m["type"] == "result" {
            assert_eq!(m["success"], true, "{cmd} -> {m}");
            continue;
        }
        let ev = m["event"].clone();
        events.push((Instant::now(), ev.clone()));
        match ev["type"].as_str().unwrap_or_default() {
            "run-start" => {
                if let Some(pcm) = audio {
                    let handler = ev["data"]["runner_data"]["stt_binary_handler_id"]
                        .as_u64()
                        .unwrap_or_else(|| panic!("no stt_binary_handler_id: {ev}"))
                        as u8;
                    // 100 ms per frame, as a satellite streams; an empty frame ends the audio.
                    for chunk in pcm.chunks(3200) {
                        let mut frame = vec![handler];
                        frame.extend_from_slice(chunk);
                        ws.ws.send(Message::binary(frame)).await.unwrap();
                    }
                    ws.ws.send(Message::binary(vec![handler])).await.unwrap();
                    events.push((Instant::now(), json!({"type": "audio-sent"})));
                }
            }
            "error" => panic!("pipeline error: {ev}\nevents: {:#?}", events),
            "run-end" => return Run { events },
            _ => {}
        }
    }
}

/// Add a Wyoming service through HA's config flow, as the UI does.
fn add_wyoming(http: &Http, ha: &str, token: &str, port: u16) -> Value {
    let (code, flow) = http.post(
        &format!("{ha}/api/config/config_entries/flow"),
        Some(token),
        &json!({"handler": "wyoming", "show_advanced_options": false}),
    );
    assert_eq!(code, 200, "{flow}");
    assert_eq!(flow["step_id"], "user", "{flow}");
    let (code, done) = http.post(
        &format!(
            "{ha}/api/config/config_entries/flow/{}",
            flow["flow_id"].as_str().unwrap()
        ),
        Some(token),
        &json!({"host": "127.0.0.1", "port": port}),
    );
    assert_eq!(code, 200, "{done}");
    assert_eq!(done["type"], "create_entry", "port {port}: {done}");
    done
}

/// `describe` on a Wyoming server (the framing by hand: one header line, then the data).
fn describe(port: u16) -> Value {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"{\"type\":\"describe\"}\n").unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let header: Value = serde_json::from_str(&line).unwrap();
    let mut data = vec![0u8; header["data_length"].as_u64().unwrap_or(0) as usize];
    r.read_exact(&mut data).unwrap();
    serde_json::from_slice(&data).unwrap()
}

/// espeak-ng's speech as 16 kHz mono s16le (espeak writes 22 050 Hz; linear resampling).
fn speak(text: &str) -> Vec<u8> {
    let out = std::process::Command::new("espeak-ng")
        .args(["-s", "150", "--stdout", text])
        .output()
        .expect("espeak-ng (dev/setup installs it)");
    assert!(out.status.success(), "espeak-ng failed");
    let wav = out.stdout;
    let rate = u32::from_le_bytes(wav[24..28].try_into().unwrap()) as f64;
    let data = wav
        .windows(4)
        .position(|w| w == b"data")
        .expect("no data chunk")
        + 8;
    let src: Vec<f64> = wav[data..]
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]) as f64)
        .collect();
    let n = (src.len() as f64 * 16_000.0 / rate) as usize;
    let mut pcm = Vec::with_capacity(2 * (n + 16_000));
    for i in 0..n {
        let x = i as f64 * rate / 16_000.0;
        let (j, f) = (x as usize, x.fract());
        let a = src[j.min(src.len() - 1)];
        let b = src[(j + 1).min(src.len() - 1)];
        pcm.extend_from_slice(&((a + (b - a) * f) as i16).to_le_bytes());
    }
    // A second of silence after the words, so HA's own VAD hears the end.
    pcm.extend(std::iter::repeat_n(0u8, 32_000));
    pcm
}

fn ms(a: Instant, b: Instant) -> f64 {
    b.saturating_duration_since(a).as_secs_f64() * 1e3
}

#[test]
fn home_assistant_assist_uses_barnabee_for_stt_conversation_and_tts() {
    if !have_hass(
        current_hass(),
        "the Assist test",
        "2026.2.3: run `dev/setup current` as root, it needs a Debian trixie chroot",
    ) {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let offset = free_port_offset();
    let ha = format!("http://127.0.0.1:{}", HA_PORT + offset);
    let agents = format!("http://127.0.0.1:{}", 7702 + offset);
    let (inference_wyoming, agents_wyoming) = (10300 + offset, 10800 + offset);
    let http = Http::new();

    let mut up = Up::start(data.path(), offset, "memory,agents,inference");
    up.wait_for("the local appliance is up", Duration::from_secs(300));
    let token = std::fs::read_to_string(data.path().join("state/hass/token")).unwrap();
    let (_, version) = http.get(&format!("{ha}/api/config"), Some(&token));
    let version = version["version"].as_str().unwrap().to_owned();
    eprintln!("Home Assistant {version}");
    assert!(
        version.starts_with("2026."),
        "not the current HA: {version}"
    );
    wait_agents_connected(&http, &agents);

    // What the inference daemon serves (from the set-up cache): an STT model and a voice.
    let info = describe(inference_wyoming);
    let stt = &info["asr"][0]["models"];
    let voice = &info["tts"][0]["voices"][0];
    assert!(
        stt.as_array().is_some_and(|a| !a.is_empty()) && voice.is_object(),
        "the inference daemon serves no STT model or no voice (run `dev/setup inference`): {info}"
    );
    let voice_name = voice["name"].as_str().unwrap().to_owned();
    let tts_language = voice["languages"][0].as_str().unwrap().to_owned();

    let speech_entry = add_wyoming(&http, &ha, &token, inference_wyoming);
    let brain_entry = add_wyoming(&http, &ha, &token, agents_wyoming);
    eprintln!(
        "Wyoming entries: {:?} (speech), {:?} (conversation)",
        speech_entry["title"], brain_entry["title"]
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let light = |http: &Http| state(http, &ha, &token, "light.kitchen_lights");
    let (text_run, follow_up, audio_run) = rt.block_on(async {
        let mut ws = HaWs::connect(&ha, &token).await;
        // The entities the two entries made (they appear once their platforms are set up).
        let deadline = Instant::now() + Duration::from_secs(60);
        let (conversation, stt_entity, tts_entity) = loop {
            let list = ws
                .call(json!({"type": "config/entity_registry/list"}))
                .await;
            let of = |domain: &str, entry: &Value| {
                list.as_array().unwrap().iter().find_map(|e| {
                    let id = e["entity_id"].as_str()?;
                    (e["platform"] == "wyoming"
                        && e["config_entry_id"] == entry["result"]["entry_id"]
                        && id.starts_with(&format!("{domain}.")))
                    .then(|| id.to_owned())
                })
            };
            if let (Some(c), Some(s), Some(t)) = (
                of("conversation", &brain_entry),
                of("stt", &speech_entry),
                of("tts", &speech_entry),
            ) {
                break (c, s, t);
            }
            assert!(
                Instant::now() < deadline,
                "the Wyoming entries made no conversation/stt/tts entities: {list}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        eprintln!("entities: {conversation}, {stt_entity}, {tts_entity}");
        let pipeline = ws
            .call(json!({
                "type": "assist_pipeline/pipeline/create",
                "name": "Barnabee",
                "language": "en",
                "conversation_engine": conversation,
                "conversation_language": "en",
                "stt_engine": stt_entity,
                "stt_language": "en",
                "tts_engine": tts_entity,
                "tts_language": tts_language,
                "tts_voice": voice_name,
                "wake_word_entity": null,
                "wake_word_id": null,
                "prefer_local_intents": false,
            }))
            .await;
        let pipeline = pipeline["id"].as_str().unwrap().to_owned();

        // Text, then a follow-up in the same conversation.
        let text_run = run(
            &mut ws,
            json!({"start_stage": "intent", "end_stage": "intent", "pipeline": pipeline,
                   "input": {"text": "turn on the kitchen lights"}}),
            None,
        )
        .await;
        let follow_up = run(
            &mut ws,
            json!({"start_stage": "intent", "end_stage": "intent", "pipeline": pipeline,
                   "conversation_id": text_run.conversation_id(),
                   "input": {"text": "turn it off"}}),
            None,
        )
        .await;
        // Speech, start to end.
        let pcm = speak("turn on the kitchen lights");
        let audio_run = run(
            &mut ws,
            json!({"start_stage": "stt", "end_stage": "tts", "pipeline": pipeline,
                   "input": {"sample_rate": 16000}}),
            Some(&pcm),
        )
        .await;
        (text_run, follow_up, audio_run)
    });

    // Text: Barnabee acted and answered (HA's own agent would say "Turned on the light").
    eprintln!("text: {:?}", text_run.speech());
    assert_eq!(text_run.speech(), "Turned on Kitchen Lights.");
    // The follow-up reached the same Barnabee session: "it" is the kitchen light.
    eprintln!("follow-up: {:?}", follow_up.speech());
    assert_eq!(follow_up.conversation_id(), text_run.conversation_id());
    assert_eq!(follow_up.speech(), "Turned off Kitchen Lights.");
    // Audio: HA streamed it to Barnabee's Whisper, the agents acted, Piper spoke.
    let heard = audio_run.event("stt-end")["data"]["stt_output"]["text"]
        .as_str()
        .unwrap()
        .to_owned();
    eprintln!("audio: heard {heard:?}, replied {:?}", audio_run.speech());
    assert!(heard.to_lowercase().contains("kitchen"), "heard {heard:?}");
    assert_eq!(audio_run.speech(), "Turned on Kitchen Lights.");
    assert_eq!(light(&http), "on");
    let tts = &audio_run.event("tts-end")["data"]["tts_output"];
    let url = tts["url"].as_str().unwrap();
    let t = Instant::now();
    let (code, audio) = http.get_bytes(&format!("{ha}{url}"));
    let fetch_ms = t.elapsed().as_secs_f64() * 1e3;
    assert_eq!(code, 200, "{url}");
    assert!(audio.len() > 4000, "TTS audio of {} bytes", audio.len());

    let r = &audio_run;
    eprintln!(
        "HA {version} pipeline stages with Barnabee behind them (ms, as this test saw the events): \
         stt {:.0} (end of audio -> stt-end), intent {:.0}, tts {:.0} (tts-start -> tts-end, \
         URL ready), audio fetch {:.0} ({} bytes {}); text run intent {:.0}, follow-up intent {:.0}",
        ms(r.at("audio-sent"), r.at("stt-end")),
        ms(r.at("intent-start"), r.at("intent-end")),
        ms(r.at("tts-start"), r.at("tts-end")),
        fetch_ms,
        audio.len(),
        tts["mime_type"].as_str().unwrap_or("?"),
        ms(text_run.at("intent-start"), text_run.at("intent-end")),
        ms(follow_up.at("intent-start"), follow_up.at("intent-end")),
    );

    // An automation makes Barnabee speak: the voice daemon on the port the demo home's
    // rest_command names (7703 + offset; `up` was not asked to run one).
    let voice_dir = tempfile::tempdir().unwrap();
    let voice_cfg = voice_dir.path().join("voice.toml");
    std::fs::write(
        &voice_cfg,
        format!(
            "[service]\nlisten = \"127.0.0.1:{}\"\n[service.log]\ntarget = \"stderr\"\n[audio]\ninput_device = \"null\"\noutput_device = \"null\"\n[inference]\nwyoming = \"127.0.0.1:{inference_wyoming}\"\nwake_words = [\"hey_jarvis\"]\n",
            7703 + offset
        ),
    )
    .unwrap();
    let mut cmd = std::process::Command::new(common::daemon_bin("voice"));
    cmd.arg("--config").arg(&voice_cfg);
    let mut voice =
        barnabee_service::testing::DaemonProcess::spawn(cmd, &voice_dir.path().join("voice.log"));
    let voice_base = format!("http://{}", voice.wait_serving(Duration::from_secs(60)));
    let (code, v) = http.post(
        &format!("{ha}/api/config/automation/config/barnabee_washer"),
        Some(&token),
        &json!({
            "id": "barnabee_washer",
            "alias": "Washing machine done",
            "description": "",
            "mode": "single",
            "triggers": [{"trigger": "event", "event_type": "barnabee_test_washer_done"}],
            "conditions": [],
            "actions": [{"action": "rest_command.barnabee_announce",
                         "data": {"text": "The washing machine is done."}}],
        }),
    );
    assert_eq!(code, 200, "{v}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut fired = Instant::now();
    let mut last_fire = None;
    loop {
        // The new automation is live once HA has reloaded; fire again until it answers.
        if last_fire.is_none_or(|t: Instant| t.elapsed() > Duration::from_secs(3)) {
            let (code, v) = http.post(
                &format!("{ha}/api/events/barnabee_test_washer_done"),
                Some(&token),
                &json!({}),
            );
            assert_eq!(code, 200, "{v}");
            fired = Instant::now();
            last_fire = Some(fired);
        }
        let (_, m) = http.get(&format!("{voice_base}/metrics"), None);
        let metrics = m.as_str().unwrap_or_default().to_owned();
        if metrics.contains(r#"barnabee_voice_announcements_total{outcome="played"} 1"#) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "HA's automation never made the voice daemon speak\nvoice log:\n{}\nHA log:\n{}",
            voice.log(),
            std::fs::read_to_string(data.path().join("state/hass/config/home-assistant.log"))
                .unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "HA automation -> rest_command -> voice spoke it {:.0} ms after the event",
        fired.elapsed().as_secs_f64() * 1e3
    );
    assert!(
        voice.log().contains("announcement from home-assistant")
            && voice.log().contains("The washing machine is done."),
        "{}",
        voice.log()
    );
    voice.stop();
    up.stop();
}
