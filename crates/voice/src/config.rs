//! The daemon's configuration (`/etc/barnabee/voice.toml`). Every section is optional: with
//! `[service] listen` alone the daemon starts, reports "no audio device" / "inference not
//! configured" as degraded on `/health`, and serves its API.

use std::time::Duration;

use barnabee_service::config::{ServiceConfig, seconds};
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub service: ServiceConfig,
    #[serde(default)]
    pub audio: AudioConfig,
    #[serde(default)]
    pub inference: InferenceConfig,
    #[serde(default)]
    pub agents: AgentsConfig,
    #[serde(default)]
    pub pipeline: PipelineConfig,
    #[serde(default)]
    pub arbitration: ArbitrationConfig,
    #[serde(default)]
    pub speaker: SpeakerConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AudioConfig {
    /// `false`: no microphone loop at all (an API-only node, e.g. the arbitration coordinator).
    pub enabled: bool,
    /// ALSA capture device id (`default`, `hw:CARD=…`, `null`) or its description.
    pub input_device: String,
    /// ALSA playback device.
    pub output_device: String,
    /// Retry opening the devices this often while they are missing.
    #[serde(with = "seconds")]
    pub retry: Duration,
}

impl Default for AudioConfig {
    fn default() -> Self {
        AudioConfig {
            enabled: true,
            input_device: "default".into(),
            output_device: "default".into(),
            retry: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InferenceConfig {
    /// Where wake word, VAD, STT and TTS run: `remote` (the beast's barnabee-inference over
    /// Wyoming) is the only mode built so far.
    pub mode: String,
    /// `host:port` of the inference daemon's Wyoming server; empty = not configured.
    pub wyoming: String,
    /// Wake words to listen for (empty = every wake word the server has).
    pub wake_words: Vec<String>,
    /// STT language sent with `transcribe`.
    pub language: String,
    /// TTS voice name (empty = the server's first).
    pub voice: String,
    /// Per-event timeout on the Wyoming connections.
    #[serde(with = "seconds")]
    pub timeout: Duration,
    /// `mode = "local"`: wake word and VAD on this machine's CPU (STT and TTS stay remote).
    pub local: Option<LocalConfig>,
}

/// Local wake word and VAD, with barnabee-inference's own model loading and processing code.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalConfig {
    /// ONNX Runtime (`library`, `intra_threads`, …) as in barnabee-inference's `[runtime]`.
    #[serde(default)]
    pub runtime: barnabee_inference::config::RuntimeConfig,
    /// The openWakeWord model set (`kind = "wake"`, files melspectrogram/embedding/<word>).
    pub wake: barnabee_inference::config::ModelConfig,
    /// The Silero VAD model (`kind = "vad"`).
    pub vad: barnabee_inference::config::ModelConfig,
}

impl Default for InferenceConfig {
    fn default() -> Self {
        InferenceConfig {
            mode: "remote".into(),
            wyoming: String::new(),
            wake_words: Vec::new(),
            language: "en".into(),
            voice: String::new(),
            timeout: Duration::from_secs(10),
            local: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentsConfig {
    /// Base URL of barnabee-agents (`POST {url}/v1/process`); empty = not configured.
    pub url: String,
    #[serde(with = "seconds")]
    pub timeout: Duration,
}

impl Default for AgentsConfig {
    fn default() -> Self {
        AgentsConfig {
            url: String::new(),
            timeout: Duration::from_secs(15),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// This satellite's id (sent to the agents as `device_id`).
    pub device_id: String,
    /// Speech shorter than this (ms) is treated as a noise blip, not a request.
    pub min_utterance_ms: u64,
    /// Capture is cut (endpointed) after this many ms even if the speaker goes on.
    pub max_utterance_ms: u64,
    /// Extra silence (ms) required after the VAD's own "voice stopped" before endpointing.
    pub end_silence_ms: u64,
    /// After the wake word, give up when no speech starts within this many ms.
    pub no_speech_timeout_ms: u64,
    /// How many request breakdowns `GET /v1/latency` keeps.
    pub keep_breakdowns: usize,
    /// Spoken when the agents cannot be reached.
    pub agents_down_reply: String,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            device_id: "kitchen".into(),
            min_utterance_ms: 300,
            max_utterance_ms: 10_000,
            end_silence_ms: 0,
            no_speech_timeout_ms: 4_000,
            keep_breakdowns: 50,
            agents_down_reply: "Sorry, I can't reach the assistant right now.".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArbitrationConfig {
    /// Wake events (`POST /v1/wake`) within this many ms of the first one compete.
    pub window_ms: u64,
    /// Base URL of the barnabee-voice that arbitrates (may be this one); empty = this
    /// satellite answers every wake word it hears without asking.
    pub coordinator: String,
}

impl Default for ArbitrationConfig {
    fn default() -> Self {
        ArbitrationConfig {
            window_ms: 300,
            coordinator: String::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpeakerConfig {
    /// Identify the speaker of each request (personalisation only).
    pub enabled: bool,
    /// barnabee-inference HTTP base URL (`POST /v1/embed/speaker`).
    pub inference_url: String,
    /// barnabee-memory base URL (`GET /v1/speakers`: enrolled centroids).
    pub memory_url: String,
    /// Minimum cosine similarity to the best centroid. Unset (the default): the speaker
    /// model's own threshold, as barnabee-inference reports it in `GET /v1/models`
    /// (`details.threshold` of the model named in the embedding's answer). Cosines are not
    /// comparable across embedding families: GE2E d-vectors score 0.46 to 0.71 between
    /// different voices and need 0.8, WeSpeaker 0.6; a fixed default here would be right for
    /// one family and let strangers through with the other. Set: an operator's override,
    /// used whatever the model.
    pub threshold: Option<f64>,
    /// Minimum lead of the best centroid over the runner-up.
    pub margin: f64,
    /// How long the enrolled profiles are cached.
    #[serde(with = "seconds")]
    pub refresh: Duration,
}

impl Default for SpeakerConfig {
    fn default() -> Self {
        SpeakerConfig {
            enabled: false,
            inference_url: String::new(),
            memory_url: String::new(),
            threshold: None,
            margin: 0.1,
            refresh: Duration::from_secs(60),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn minimal_config_and_example_parse() {
        let c: Config = toml::from_str("[service]\nlisten = \"127.0.0.1:7703\"\n").unwrap();
        assert!(c.inference.wyoming.is_empty());
        let ex = include_str!("../voice.example.toml");
        let c: Config = toml::from_str(ex).unwrap();
        assert_eq!(c.pipeline.max_utterance_ms, 10_000);
        // the example leaves the speaker threshold to the model (see SpeakerConfig::threshold)
        assert_eq!(c.speaker.threshold, None);
    }

    #[test]
    fn speaker_threshold_is_the_models_unless_set() {
        let c: Config = toml::from_str("[speaker]\nenabled = true\n").unwrap();
        assert_eq!(c.speaker.threshold, None);
        let c: Config = toml::from_str("[speaker]\nthreshold = 0.75\n").unwrap();
        assert_eq!(c.speaker.threshold, Some(0.75));
    }

    #[test]
    fn unknown_key_is_named() {
        let e = barnabee_service::config::parse::<Config>(
            std::path::Path::new("voice.toml"),
            "[pipeline]\nmax_utterance = 3\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("max_utterance"), "{e}");
    }
}
