//! Test peers: the real barnabee-inference and barnabee-agents binaries (built by the
//! workspace build: `cargo build -p barnabee-inference -p barnabee-agents`), the models
//! dev/setup.d/70-inference.sh unpacks, the inference crate's stand-in model generator,
//! espeak-ng speech.

#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use barnabee_service::testing::DaemonProcess;

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A sibling binary of this workspace, next to the test executable's target dir.
pub fn sibling_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/debug/deps/<test> → target/debug/<name>
    let p = exe.parent().unwrap().parent().unwrap().join(name);
    assert!(
        p.exists(),
        "{} not found: build it first (`cargo build -p {name}`; the workspace test run `dev/test` builds it)",
        p.display()
    );
    p
}

/// `$BARNABEE_INFERENCE_CACHE`, else `$BARNABEE_CACHE/inference`, else `~/.cache/barnabee/inference`.
pub fn cache() -> PathBuf {
    if let Some(p) = std::env::var_os("BARNABEE_INFERENCE_CACHE") {
        return PathBuf::from(p);
    }
    std::env::var_os("BARNABEE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/barnabee"))
        .join("inference")
}

fn need(p: PathBuf, what: &str) -> PathBuf {
    assert!(
        p.exists(),
        "{what} not found at {} — run dev/setup (dev/setup.d/70-inference.sh installs it)",
        p.display()
    );
    p
}

pub fn ort_lib() -> PathBuf {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
        return need(PathBuf::from(p), "ORT_DYLIB_PATH");
    }
    need(
        cache().join("onnxruntime-1.22.1/libonnxruntime.so"),
        "libonnxruntime.so",
    )
}

pub fn model(rel: &str) -> PathBuf {
    need(cache().join("models").join(rel), "model")
}

/// The inference crate's generated stand-ins (STT, TTS), once per test process.
pub fn standins() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir =
            std::env::temp_dir().join(format!("barnabee-voice-standins-{}", std::process::id()));
        let py = need(
            workspace().join(".venv/bin/python"),
            "the project venv (.venv)",
        );
        let out = Command::new(py)
            .arg(workspace().join("crates/inference/tests/py/make_models.py"))
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "make_models.py failed (run dev/setup): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}

pub fn sha256(p: &Path) -> String {
    let out = Command::new("sha256sum").arg(p).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

fn model_toml(name: &str, kind: &str, files: &[(&str, PathBuf)]) -> String {
    let mut s = format!("[models.\"{name}\"]\nkind = \"{kind}\"\n");
    for (role, p) in files {
        s.push_str(&format!(
            "files.{role} = {{ path = \"{}\", sha256 = \"{}\" }}\n",
            p.display(),
            sha256(p)
        ));
    }
    s
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process with its stderr in a file; SIGTERM on drop.
pub struct Proc {
    pub process: DaemonProcess,
    pub addr: SocketAddr,
    /// The HTTP API (for the inference daemon, whose `addr` is the Wyoming port).
    pub http: Option<SocketAddr>,
    pub _dir: tempfile::TempDir,
}

impl Proc {
    fn start(bin: &Path, cfg: &str, file: &str, wait_for: SocketAddr) -> Proc {
        Proc::start_within(bin, cfg, file, wait_for, Duration::from_secs(90))
    }

    /// [`Proc::start`], waiting up to `within` for `wait_for` (real models take a while).
    fn start_within(
        bin: &Path,
        cfg: &str,
        file: &str,
        wait_for: SocketAddr,
        within: Duration,
    ) -> Proc {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(file);
        std::fs::write(
            &path,
            cfg.replace("@DIR@", &dir.path().display().to_string()),
        )
        .unwrap();
        let args = vec!["--config".to_owned(), path.display().to_string()];
        Proc::spawn(bin, &args, dir, wait_for, within)
    }

    /// Run `bin` until `wait_for` accepts connections (`within`; 90 s covers Home Assistant's
    /// first start).
    fn spawn(
        bin: &Path,
        args: &[String],
        dir: tempfile::TempDir,
        wait_for: SocketAddr,
        within: Duration,
    ) -> Proc {
        let mut cmd = Command::new(bin);
        cmd.args(args);
        let mut process = DaemonProcess::spawn(cmd, &dir.path().join("stderr.log"));
        process.wait_listening(wait_for, within);
        Proc {
            process,
            addr: wait_for,
            http: None,
            _dir: dir,
        }
    }

    pub fn stderr(&self) -> String {
        self.process.log()
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// The real barnabee-voice: `[service] listen` on a free port, then `extra` (TOML).
pub fn voice(extra: &str) -> Proc {
    let port = free_port();
    Proc::start(
        &PathBuf::from(env!("CARGO_BIN_EXE_barnabee-voice")),
        &format!("[service]\nlisten = \"127.0.0.1:{port}\"\n{extra}"),
        "voice.toml",
        ([127, 0, 0, 1], port).into(),
    )
}

/// The real barnabee-inference with Silero VAD, openWakeWord (hey_jarvis) and the stand-in
/// STT/TTS, its Wyoming server on `wyoming_port`.
pub fn inference(wyoming_port: u16) -> Proc {
    inference_with(wyoming_port, true)
}

/// Silero VAD and openWakeWord (hey_jarvis) as `[models.*]` tables.
fn wake_vad_toml() -> String {
    [
        model_toml(
            "silero",
            "vad",
            &[("model", model("silero-vad-6.2.3/silero_vad.onnx"))],
        ),
        model_toml(
            "oww",
            "wake",
            &[
                (
                    "melspectrogram",
                    model("openwakeword-0.5.1/melspectrogram.onnx"),
                ),
                (
                    "embedding",
                    model("openwakeword-0.5.1/embedding_model.onnx"),
                ),
                (
                    "hey_jarvis",
                    model("openwakeword-0.5.1/hey_jarvis_v0.1.onnx"),
                ),
            ],
        ),
    ]
    .concat()
}

/// [`inference`]; `wake_vad = false`: no wake word or VAD model on the server (STT/TTS only).
pub fn inference_with(wyoming_port: u16, wake_vad: bool) -> Proc {
    let s = standins();
    let models = [
        if wake_vad {
            wake_vad_toml()
        } else {
            String::new()
        },
        model_toml(
            "parakeet",
            "stt",
            &[
                ("encoder", s.join("stt/encoder.onnx")),
                ("decoder_joint", s.join("stt/decoder_joint.onnx")),
                ("vocab", s.join("stt/vocab.txt")),
            ],
        ),
        model_toml(
            "wespeaker",
            "speaker",
            &[("model", s.join("speaker/speaker.onnx"))],
        ),
        model_toml(
            "piper",
            "tts",
            &[
                ("model", s.join("tts/voice.onnx")),
                ("config", s.join("tts/voice.onnx.json")),
            ],
        ),
    ]
    .concat();
    inference_daemon(wyoming_port, &models, Duration::from_secs(90))
}

/// dev/setup's real models (dev/setup.d/70-inference.sh), under `models/` of the cache.
pub const WHISPER_DIR: &str = "whisper-tiny.en-0.1.0";
pub const PIPER_DIR: &str = "piper-en_US-joe-medium-1.0.0";
pub const GE2E_DIR: &str = "ge2e-resemblyzer-0.1.4";

/// The real barnabee-inference with nothing generated: Silero VAD, openWakeWord (hey_jarvis),
/// Whisper tiny.en (`family = "whisper"`, the optimum ONNX layout dev/setup converts to), the
/// Piper voice en_US-joe-medium and the GE2E speaker encoder (`family = "ge2e"`, whose own
/// threshold the voice daemon takes from `/v1/models`). Every file is pinned by SHA-256 in the
/// config as in production, so the daemon verifies what it loads. A missing model fails the
/// test, naming dev/setup.
pub fn inference_real(wyoming_port: u16) -> Proc {
    let w = |f: &str| model(&format!("{WHISPER_DIR}/{f}"));
    let models = [
        wake_vad_toml(),
        model_toml(
            "whisper-tiny.en",
            "stt",
            &[
                ("encoder", w("encoder_model.onnx")),
                ("decoder", w("decoder_model.onnx")),
                ("tokenizer", w("tokenizer.json")),
                ("generation_config", w("generation_config.json")),
            ],
        ),
        "family = \"whisper\"\n".to_owned(),
        model_toml(
            "en_US-joe-medium",
            "tts",
            &[
                (
                    "model",
                    model(&format!("{PIPER_DIR}/en_US-joe-medium.onnx")),
                ),
                (
                    "config",
                    model(&format!("{PIPER_DIR}/en_US-joe-medium.onnx.json")),
                ),
            ],
        ),
        model_toml(
            "ge2e-resemblyzer",
            "speaker",
            &[("model", model(&format!("{GE2E_DIR}/model.onnx")))],
        ),
        "family = \"ge2e\"\n".to_owned(),
    ]
    .concat();
    // Whisper's and Piper's sessions take tens of seconds to build on a loaded 2-core machine
    // (measured 30 s and 12 s); the Wyoming port opens only once every model is loaded.
    inference_daemon(wyoming_port, &models, Duration::from_secs(300))
}

fn inference_daemon(wyoming_port: u16, models: &str, within: Duration) -> Proc {
    let http = free_port();
    let cfg = format!(
        "[service]\nlisten = \"127.0.0.1:{http}\"\n[service.log]\ntarget = \"stderr\"\n[runtime]\nlibrary = \"{}\"\n[wyoming]\nlisten = \"127.0.0.1:{wyoming_port}\"\n{models}",
        ort_lib().display()
    );
    let mut p = Proc::start_within(
        &sibling_bin("barnabee-inference"),
        &cfg,
        "inference.toml",
        format!("127.0.0.1:{wyoming_port}").parse().unwrap(),
        within,
    );
    p.http = Some(format!("127.0.0.1:{http}").parse().unwrap());
    p
}

/// The real barnabee-memory (speaker profiles) with a database in a temp dir.
pub fn memory() -> Proc {
    let port = free_port();
    let cfg = format!(
        "[service]\nlisten = \"127.0.0.1:{port}\"\n[service.log]\ntarget = \"stderr\"\n[database]\npath = \"@DIR@/memory.db\"\n"
    );
    Proc::start(
        &sibling_bin("barnabee-memory"),
        &cfg,
        "memory.toml",
        format!("127.0.0.1:{port}").parse().unwrap(),
    )
}

/// The real barnabee-agents without Home Assistant (memory at a closed port).
pub fn agents() -> Proc {
    let port = free_port();
    let closed = free_port();
    let cfg = format!(
        "state_dir = \"@DIR@\"\n[memory]\nurl = \"http://127.0.0.1:{closed}\"\n[service]\nlisten = \"127.0.0.1:{port}\"\n[service.log]\ntarget = \"stderr\"\n"
    );
    Proc::start(
        &sibling_bin("barnabee-agents"),
        &cfg,
        "agents.toml",
        format!("127.0.0.1:{port}").parse().unwrap(),
    )
}

/// The real barnabee-agents keeping its state (ledger, timers) in `state_dir`, so a restart
/// finds it again; memory at a closed port; then `extra` (TOML).
pub fn agents_in(state_dir: &Path, extra: &str) -> Proc {
    let port = free_port();
    let closed = free_port();
    let cfg = format!(
        "state_dir = \"{}\"\n{extra}\n[memory]\nurl = \"http://127.0.0.1:{closed}\"\n[service]\nlisten = \"127.0.0.1:{port}\"\n[service.log]\ntarget = \"stderr\"\n",
        state_dir.display()
    );
    Proc::start(
        &sibling_bin("barnabee-agents"),
        &cfg,
        "agents.toml",
        format!("127.0.0.1:{port}").parse().unwrap(),
    )
}

/// espeak-ng speech at 16 kHz mono with `pad_s` seconds of silence before and after.
pub fn speak(text: &str, pad_s: f32) -> Vec<i16> {
    speak_as("en-us", text, pad_s)
}

/// [`speak`] with an espeak-ng voice (`en-us+f2`, `en-gb+m1`, …).
pub fn speak_as(voice: &str, text: &str, pad_s: f32) -> Vec<i16> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.wav");
    let out = Command::new("espeak-ng")
        .args(["-v", voice, "-s", "150", "-w"])
        .arg(&path)
        .arg(text)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run espeak-ng ({e}): install the Debian package espeak-ng (dev/setup does)"
            )
        });
    assert!(
        out.status.success(),
        "espeak-ng: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let speech = barnabee_voice::audio::wav::read_16k_mono(&path).unwrap();
    let pad = silence(pad_s);
    [pad.clone(), speech, pad].concat()
}

/// Debian flite's recorded voices (slt, rms, awb: CMU ARCTIC speakers) at 16 kHz mono.
pub fn flite(voice: &str, text: &str) -> Vec<i16> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.wav");
    let out = Command::new("flite")
        .args(["-voice", voice, "-t", text, "-o"])
        .arg(&path)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run flite ({e}): install the Debian package flite (dev/setup does)")
        });
    assert!(
        out.status.success(),
        "flite -voice {voice}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    barnabee_voice::audio::wav::read_16k_mono(&path).unwrap()
}

/// Lower case, words only: what two transcripts of the same sentence share.
pub fn normalise(text: &str) -> String {
    text.to_lowercase()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '\'' {
                c
            } else {
                ' '
            }
        })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn silence(s: f32) -> Vec<i16> {
    vec![0i16; (16_000.0 * s) as usize]
}

/// Deterministic white noise.
pub fn noise(s: f32, amplitude: f32) -> Vec<i16> {
    let mut x: u64 = 0x2545F4914F6CDD1D;
    (0..(16_000.0 * s) as usize)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (((x % 20001) as f32 / 10000.0 - 1.0) * amplitude) as i16
        })
        .collect()
}

/// Home Assistant Core (the agents crate's test peer: dev/setup.d/60-home-assistant.sh installs
/// it; `$BARNABEE_TEST_HASS` overrides) with the agents crate's test configuration (demo
/// integration: `light.kitchen_lights`).
pub fn hass() -> Proc {
    let bin = std::env::var_os("BARNABEE_TEST_HASS")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache().parent().unwrap().join("home-assistant/bin/hass"));
    assert!(
        bin.exists(),
        "Home Assistant Core not found at {} (nor BARNABEE_TEST_HASS): run `dev/setup home-assistant`",
        bin.display()
    );
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let template =
        std::fs::read_to_string(workspace().join("crates/agents/tests/ha/configuration.yaml.in"))
            .unwrap();
    std::fs::write(
        dir.path().join("configuration.yaml"),
        template.replace("__PORT__", &port.to_string()),
    )
    .unwrap();
    let args = vec![
        "-c".to_owned(),
        dir.path().display().to_string(),
        "--skip-pip".to_owned(),
    ];
    Proc::spawn(
        &bin,
        &args,
        dir,
        format!("127.0.0.1:{port}").parse().unwrap(),
        Duration::from_secs(90),
    )
}

/// Onboard HA's owner and return an access token.
pub async fn ha_onboard(base: &str) -> String {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    while !http
        .get(format!("{base}/api/onboarding"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(
            Instant::now() < deadline,
            "HA onboarding API not up in 90 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let cid = format!("{base}/");
    let v: serde_json::Value = http
        .post(format!("{base}/api/onboarding/users"))
        .json(
            &serde_json::json!({"client_id": cid, "name": "Test Admin", "username": "admin",
                                  "password": "admin-password", "language": "en"}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let code = v["auth_code"]
        .as_str()
        .unwrap_or_else(|| panic!("{v}"))
        .to_owned();
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    let v: serde_json::Value = http
        .post(format!("{base}/auth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=authorization_code&code={}&client_id={}",
            enc(&code),
            enc(&cid)
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{v}"))
        .to_owned()
}

pub async fn ha_state(base: &str, token: &str, id: &str) -> String {
    let v: serde_json::Value = reqwest::Client::new()
        .get(format!("{base}/api/states/{id}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap_or_default();
    v["state"].as_str().unwrap_or("").to_owned()
}

/// barnabee-agents connected to Home Assistant (waits until its health says so).
pub async fn agents_with_ha(ha_base: &str, token: &str) -> Proc {
    use std::os::unix::fs::PermissionsExt;
    let tdir = tempfile::tempdir().unwrap();
    let tok = tdir.path().join("ha-token");
    std::fs::write(&tok, token).unwrap();
    std::fs::set_permissions(&tok, std::fs::Permissions::from_mode(0o600)).unwrap();
    let port = free_port();
    let closed = free_port();
    let cfg = format!(
        "state_dir = \"@DIR@\"\n[memory]\nurl = \"http://127.0.0.1:{closed}\"\n[home_assistant]\nurl = \"{ha_base}\"\ntoken_file = \"{}\"\nconfirm_timeout = 3\n[service]\nlisten = \"127.0.0.1:{port}\"\n[service.log]\ntarget = \"stderr\"\n",
        tok.display()
    );
    let p = Proc::start(
        &sibling_bin("barnabee-agents"),
        &cfg,
        "agents.toml",
        format!("127.0.0.1:{port}").parse().unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let h: serde_json::Value = reqwest::get(format!("http://{}/health", p.addr))
            .await
            .unwrap()
            .json()
            .await
            .unwrap_or_default();
        if h["checks"]["home_assistant"]["ok"] == true {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "agents never connected to HA: {h}\n{}",
            p.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    std::mem::forget(tdir); // the token must outlive the daemon's start; removed with /tmp
    p
}

/// The inference daemon's Whisper (`POST /v1/transcribe`) on `wav`: the text it heard.
pub async fn transcribe_wav(inf: &Proc, wav: Vec<u8>) -> String {
    let r = reqwest::Client::new()
        .post(format!("http://{}/v1/transcribe", inf.http.unwrap()))
        .header("content-type", "audio/wav")
        .body(wav)
        .timeout(std::time::Duration::from_secs(120))
        .send()
        .await
        .unwrap();
    let st = r.status();
    let v: serde_json::Value = r.json().await.unwrap();
    assert!(st.is_success(), "/v1/transcribe: HTTP {st}: {v}");
    assert_eq!(v["family"], "whisper", "{v}");
    v["text"].as_str().unwrap().to_owned()
}
