//! The daemon's configuration (`/etc/barnabee/inference.toml`); every key is documented in
//! `inference.example.toml`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use barnabee_service::config::{self, ConfigError, ServiceConfig};
use serde::Deserialize;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:7704";
pub const DEFAULT_WYOMING: &str = "127.0.0.1:10300";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "default_service")]
    pub service: ServiceConfig,
    #[serde(default)]
    pub runtime: RuntimeConfig,
    #[serde(default)]
    pub wyoming: WyomingConfig,
    #[serde(default)]
    pub gpu: GpuConfig,
    /// `[models.<name>]` tables (a map, so NixOS settings merge; the name is the key).
    #[serde(default, rename = "models")]
    models_by_name: BTreeMap<String, ModelConfig>,
    /// The models in name order, names filled in, `path`/`sha256` shorthand expanded.
    #[serde(skip)]
    pub models: Vec<ModelConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            service: default_service(),
            runtime: RuntimeConfig::default(),
            wyoming: WyomingConfig::default(),
            gpu: GpuConfig::default(),
            models_by_name: BTreeMap::new(),
            models: Vec::new(),
        }
    }
}

fn default_service() -> ServiceConfig {
    ServiceConfig {
        listen: DEFAULT_LISTEN.parse().unwrap_or_else(|_| unreachable!()),
        ..ServiceConfig::default()
    }
}

/// Where ONNX Runtime comes from and how sessions run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// `libonnxruntime.so`; default `$ORT_DYLIB_PATH`, else `libonnxruntime.so` (dlopen search).
    pub library: Option<PathBuf>,
    pub provider: Provider,
    /// CUDA device ordinal.
    pub cuda_device: i32,
    /// Threads inside one operator (per session).
    pub intra_threads: usize,
    /// How many synthesis/transcription requests run at once; others queue.
    pub max_concurrent: usize,
    /// The espeak-ng executable TTS phonemises with (default `$BARNABEE_ESPEAK_NG`, else
    /// `espeak-ng` on PATH).
    pub espeak_ng: Option<PathBuf>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            library: None,
            provider: Provider::Cpu,
            cuda_device: 0,
            intra_threads: 1,
            max_concurrent: 2,
            espeak_ng: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Cpu,
    Cuda,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WyomingConfig {
    pub enabled: bool,
    pub listen: SocketAddr,
    /// Name reported in `info` for every program.
    pub name: String,
    /// Longest header line / data segment / payload accepted, in bytes.
    pub max_header_bytes: usize,
    pub max_payload_bytes: usize,
}

impl Default for WyomingConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: DEFAULT_WYOMING.parse().unwrap_or_else(|_| unreachable!()),
            name: "barnabee".into(),
            max_header_bytes: 64 * 1024,
            max_payload_bytes: 4 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GpuConfig {
    /// Watch the NVIDIA GPU through NVML (absent driver → "no GPU", CPU serving).
    pub monitor: bool,
    /// `libnvidia-ml.so.1` override.
    pub nvml_library: Option<PathBuf>,
    #[serde(with = "config::seconds")]
    pub poll_interval: Duration,
    /// Above this temperature new GPU work is refused with 503 (or queued, see `queue_wait`).
    pub max_temperature_c: u32,
    /// How long a request waits for VRAM/temperature to recover before 503.
    #[serde(with = "config::seconds")]
    pub queue_wait: Duration,
}

impl Default for GpuConfig {
    fn default() -> Self {
        Self {
            monitor: true,
            nvml_library: None,
            poll_interval: Duration::from_secs(5),
            max_temperature_c: 85,
            queue_wait: Duration::from_secs(2),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Vad,
    Wake,
    Stt,
    Tts,
    Speaker,
    TextEmbedding,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Vad => "vad",
            Kind::Wake => "wake",
            Kind::Stt => "stt",
            Kind::Tts => "tts",
            Kind::Speaker => "speaker",
            Kind::TextEmbedding => "text_embedding",
        }
    }
}

/// A model's `family` key: which file set and processing a model of its kind has. Only `stt`
/// and `speaker` models have families; each kind has its own (see [`SttFamily`],
/// [`SpeakerFamily`]), and a family of another kind is a config error naming the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Parakeet,
    Whisper,
    Wespeaker,
    Ge2e,
}

impl Family {
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Parakeet => "parakeet",
            Family::Whisper => "whisper",
            Family::Wespeaker => "wespeaker",
            Family::Ge2e => "ge2e",
        }
    }

    /// The kind whose family this is.
    pub fn kind(self) -> Kind {
        match self {
            Family::Parakeet | Family::Whisper => Kind::Stt,
            Family::Wespeaker | Family::Ge2e => Kind::Speaker,
        }
    }
}

/// Which speech-to-text model family an `stt` model is (its file set and decoding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SttFamily {
    /// NVIDIA Parakeet TDT, NeMo export: `encoder`, `decoder_joint`, `vocab`.
    #[default]
    Parakeet,
    /// OpenAI Whisper, Hugging Face / optimum export: `encoder` (`encoder_model.onnx`),
    /// `decoder` (`decoder_model.onnx`), `tokenizer` (`tokenizer.json`), `generation_config`
    /// (`generation_config.json`).
    Whisper,
}

impl SttFamily {
    pub fn as_str(self) -> &'static str {
        match self {
            SttFamily::Parakeet => "parakeet",
            SttFamily::Whisper => "whisper",
        }
    }

    /// The file roles a model of this family has (all required).
    pub fn roles(self) -> &'static [&'static str] {
        match self {
            SttFamily::Parakeet => &["encoder", "decoder_joint", "vocab"],
            SttFamily::Whisper => &["encoder", "decoder", "tokenizer", "generation_config"],
        }
    }
}

/// Which speaker-embedding family a `speaker` model is: its front end and how an utterance
/// becomes one vector. Both take one `model` file and give an L2-normalised embedding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SpeakerFamily {
    /// WeSpeaker / 3D-Speaker style: Kaldi fbank (80 bins, mean-normalised) of the whole
    /// utterance → `[1, T, n_mels]` → `[1, D]`.
    #[default]
    Wespeaker,
    /// GE2E d-vector (Resemblyzer): 40-channel mel power spectrogram, partials of 160 frames
    /// (1.6 s) at 1.3 per second → `[partials, 160, 40]` → `[partials, 256]`, averaged.
    Ge2e,
}

impl SpeakerFamily {
    pub fn as_str(self) -> &'static str {
        match self {
            SpeakerFamily::Wespeaker => "wespeaker",
            SpeakerFamily::Ge2e => "ge2e",
        }
    }
}

/// One file of a model, pinned by SHA-256.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    pub path: PathBuf,
    /// Lower-case hex; checked at load, a mismatch refuses the model.
    pub sha256: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The table key (`[models.<name>]`).
    #[serde(skip)]
    pub name: String,
    pub kind: Kind,
    /// Shorthand for a one-file model: `path` + `sha256` = `files.model`.
    pub path: Option<PathBuf>,
    pub sha256: Option<String>,
    /// stt: `parakeet` (default) or `whisper`, which decides the file roles; speaker:
    /// `wespeaker` (default) or `ge2e`, which decides the front end. See [`ModelConfig::stt_family`]
    /// and [`ModelConfig::speaker_family`].
    pub family: Option<Family>,
    /// Role → file. Roles per kind: vad `model`; wake `melspectrogram`, `embedding` and one
    /// role per wake word (the role is the wake word's name); stt per family (see
    /// [`SttFamily::roles`]); tts `model`, `config` (Piper `.onnx.json`); speaker `model`; text_embedding
    /// `model`, `vocab` (BERT `vocab.txt`).
    #[serde(default)]
    pub files: BTreeMap<String, FileSpec>,
    /// Decision threshold (vad: speech probability, default 0.5; wake: score, default 0.5;
    /// speaker: cosine, default 0.6 for WeSpeaker and 0.8 for GE2E, see `speaker.rs`).
    pub threshold: Option<f32>,
    /// Wake word: no second detection of the same word within this many seconds (default 2).
    pub refractory: Option<f64>,
    /// Whisper: the most tokens one transcription may decode (default 128; at most the
    /// model's `max_length` less the prompt).
    pub max_tokens: Option<usize>,
    /// Language(s) for `info` (default `["en"]`). A multilingual Whisper model decodes in the
    /// first one unless a request names another.
    #[serde(default)]
    pub languages: Vec<String>,
    /// TTS: espeak-ng voice for phonemes (default from the Piper config, else `en-us`).
    pub espeak_voice: Option<String>,
    /// TTS: Piper's `noise_scale`, `length_scale` (speaking rate: larger is slower) and
    /// `noise_w`, overriding the voice config's `inference` values (0 noise = deterministic).
    pub noise_scale: Option<f32>,
    pub length_scale: Option<f32>,
    pub noise_w: Option<f32>,
    /// Place on the GPU when the provider is CUDA (default true).
    pub gpu: Option<bool>,
    /// VRAM the model needs, MiB (admission control: loading or serving waits or sheds when
    /// less is free).
    pub vram_mb: Option<u64>,
}

impl ModelConfig {
    /// An stt model's family (`parakeet` unless the config says otherwise).
    pub fn stt_family(&self) -> SttFamily {
        match self.family {
            Some(Family::Whisper) => SttFamily::Whisper,
            _ => SttFamily::Parakeet,
        }
    }

    /// A speaker model's family (`wespeaker` unless the config says otherwise).
    pub fn speaker_family(&self) -> SpeakerFamily {
        match self.family {
            Some(Family::Ge2e) => SpeakerFamily::Ge2e,
            _ => SpeakerFamily::Wespeaker,
        }
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let cfg: Config = config::load(path)?;
        cfg.finish(path)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let cfg: Config = config::parse(path, text)?;
        cfg.finish(path)
    }

    fn finish(mut self, path: &Path) -> Result<Self, ConfigError> {
        let field = |field: String, message: String| ConfigError::Field {
            path: path.to_owned(),
            field,
            message,
        };
        let mut models = Vec::new();
        for (name, mut m) in std::mem::take(&mut self.models_by_name) {
            m.name = name.clone();
            match (m.path.take(), m.sha256.take()) {
                (Some(p), Some(sha256)) => {
                    if m.files
                        .insert("model".into(), FileSpec { path: p, sha256 })
                        .is_some()
                    {
                        return Err(field(
                            format!("models.{name}.path"),
                            "give either path + sha256 or files.model, not both".into(),
                        ));
                    }
                }
                (None, None) => {}
                _ => {
                    return Err(field(
                        format!("models.{name}"),
                        "path and sha256 go together".into(),
                    ));
                }
            }
            models.push(m);
        }
        self.models = models;
        self.validate(path)?;
        Ok(self)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let field = |field: String, message: String| ConfigError::Field {
            path: path.to_owned(),
            field,
            message,
        };
        for m in &self.models {
            let i = &m.name;
            let need: &[&str] = match m.kind {
                Kind::Vad | Kind::Speaker => &["model"],
                Kind::Wake => &["melspectrogram", "embedding"],
                Kind::Stt => m.stt_family().roles(),
                Kind::Tts => &["model", "config"],
                Kind::TextEmbedding => &["model", "vocab"],
            };
            match m.family {
                Some(f) if !matches!(m.kind, Kind::Stt | Kind::Speaker) => {
                    return Err(field(
                        format!("models.{i}.family"),
                        format!(
                            "only stt and speaker models have a family, not {} models (found {:?})",
                            m.kind.as_str(),
                            f.as_str()
                        ),
                    ));
                }
                Some(f) if f.kind() != m.kind => {
                    let theirs = match m.kind {
                        Kind::Stt => "parakeet (the default) or whisper",
                        _ => "wespeaker (the default) or ge2e",
                    };
                    return Err(field(
                        format!("models.{i}.family"),
                        format!(
                            "{:?} is a family of {} models; a {} model's family is {theirs}",
                            f.as_str(),
                            f.kind().as_str(),
                            m.kind.as_str()
                        ),
                    ));
                }
                _ => {}
            }
            let whisper = m.kind == Kind::Stt && m.stt_family() == SttFamily::Whisper;
            if m.max_tokens.is_some() && !whisper {
                return Err(field(
                    format!("models.{i}.max_tokens"),
                    "only Whisper models (kind = \"stt\", family = \"whisper\") take max_tokens"
                        .into(),
                ));
            }
            for (key, value, least) in [
                ("noise_scale", m.noise_scale, 0.0),
                ("noise_w", m.noise_w, 0.0),
                ("length_scale", m.length_scale, f32::MIN_POSITIVE),
            ] {
                let Some(v) = value else { continue };
                if m.kind != Kind::Tts {
                    return Err(field(
                        format!("models.{i}.{key}"),
                        format!("only TTS models (kind = \"tts\") take {key}"),
                    ));
                }
                if !v.is_finite() || v < least || v > 10.0 {
                    let range = if least > 0.0 { "above 0" } else { "0 or more" };
                    return Err(field(
                        format!("models.{i}.{key}"),
                        format!("{v} is not a usable scale: {range}, at most 10"),
                    ));
                }
            }
            if m.max_tokens == Some(0) {
                return Err(field(
                    format!("models.{i}.max_tokens"),
                    "must be at least 1".into(),
                ));
            }
            if m.kind == Kind::Stt {
                // a file of the other family is a config error, not a load-time surprise
                let family = m.stt_family();
                if let Some(role) = m.files.keys().find(|r| !need.contains(&r.as_str())) {
                    let hint = if family == SttFamily::Parakeet {
                        " (a Whisper model needs family = \"whisper\")"
                    } else {
                        ""
                    };
                    return Err(field(
                        format!("models.{i}.files.{role}"),
                        format!(
                            "not a file of a {} model, whose files are {}{hint}",
                            family.as_str(),
                            need.join(", ")
                        ),
                    ));
                }
            }
            for role in need {
                if !m.files.contains_key(*role) {
                    let family = match (m.kind, m.family) {
                        (Kind::Stt | Kind::Speaker, Some(f)) => format!(" (family {})", f.as_str()),
                        (Kind::Stt, None) => " (family parakeet, the default)".into(),
                        (Kind::Speaker, None) => " (family wespeaker, the default)".into(),
                        _ => String::new(),
                    };
                    return Err(field(
                        format!("models.{i}.files.{role}"),
                        format!(
                            "model {:?} of kind {}{family} needs a `{role}` file",
                            m.name,
                            m.kind.as_str()
                        ),
                    ));
                }
            }
            if m.kind == Kind::Wake && m.files.len() < 3 {
                return Err(field(
                    format!("models.{i}.files"),
                    format!(
                        "wake model {:?} needs at least one wake-word head besides melspectrogram and embedding",
                        m.name
                    ),
                ));
            }
            for (role, f) in &m.files {
                if f.sha256.len() != 64 || !f.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(field(
                        format!("models.{i}.files.{role}.sha256"),
                        "expected 64 hex digits".into(),
                    ));
                }
            }
            if self.runtime.intra_threads == 0 || self.runtime.max_concurrent == 0 {
                return Err(field(
                    "runtime".into(),
                    "intra_threads and max_concurrent must be at least 1".into(),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn minimal_config_has_defaults() {
        let c =
            Config::parse(Path::new("x.toml"), "[service]\nlisten = \"127.0.0.1:0\"\n").unwrap();
        assert!(c.models.is_empty());
        assert_eq!(c.runtime.provider, Provider::Cpu);
        assert_eq!(c.wyoming.listen.port(), 10300);
        let c = Config::parse(Path::new("x.toml"), "").unwrap();
        assert_eq!(c.service.listen.port(), 7704);
    }

    #[test]
    fn missing_role_and_bad_hash_are_named() {
        let e = Config::parse(
            Path::new("x.toml"),
            "[models.v]\nkind = \"stt\"\nfiles.encoder = { path = \"a\", sha256 = \"00\" }\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("models.v.files.decoder_joint"), "{e}");
        let e = Config::parse(
            Path::new("x.toml"),
            "[models.v]\nkind = \"vad\"\nfiles.model = { path = \"a\", sha256 = \"zz\" }\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("models.v.files.model.sha256"), "{e}");
        // the one-file shorthand (what the NixOS module renders)
        let c = Config::parse(
            Path::new("x.toml"),
            &format!(
                "[models.silero]\nkind = \"vad\"\npath = \"/m.onnx\"\nsha256 = \"{}\"\n",
                "a".repeat(64)
            ),
        )
        .unwrap();
        assert_eq!(c.models[0].name, "silero");
        assert_eq!(c.models[0].files["model"].path, Path::new("/m.onnx"));
        let e = Config::parse(Path::new("x.toml"), "[runtime]\nprovider = \"tpu\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("provider"), "{e}");
    }

    #[test]
    fn piper_scales_belong_to_tts_models_and_are_bounded() {
        let h = "a".repeat(64);
        let tts = |extra: &str| {
            format!(
                "[models.t]\nkind = \"tts\"\n{extra}\nfiles.model = {{ path = \"/m\", sha256 = \"{h}\" }}\nfiles.config = {{ path = \"/c\", sha256 = \"{h}\" }}\n"
            )
        };
        let parse = |t: &str| Config::parse(Path::new("x.toml"), t);
        let c = parse(&tts("noise_scale = 0.0\nnoise_w = 0.0\nlength_scale = 1.2")).unwrap();
        assert_eq!(c.models[0].noise_scale, Some(0.0));
        assert_eq!(c.models[0].length_scale, Some(1.2));
        let e = parse(&tts("length_scale = 0.0")).unwrap_err().to_string();
        assert!(
            e.contains("models.t.length_scale") && e.contains("above 0"),
            "{e}"
        );
        let e = parse(&tts("noise_w = -1.0")).unwrap_err().to_string();
        assert!(e.contains("models.t.noise_w"), "{e}");
        let e = parse(&format!(
            "[models.v]\nkind = \"vad\"\nnoise_scale = 0.5\npath = \"/v\"\nsha256 = \"{h}\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("models.v.noise_scale") && e.contains("only TTS"),
            "{e}"
        );
    }

    #[test]
    fn whisper_file_set_is_checked_by_family() {
        let h = "a".repeat(64);
        let file =
            |role: &str| format!("files.{role} = {{ path = \"/{role}\", sha256 = \"{h}\" }}\n");
        let whisper_files = ["encoder", "decoder", "tokenizer", "generation_config"]
            .map(file)
            .concat();
        let parse = |t: &str| Config::parse(Path::new("x.toml"), t);
        // whisper files without the family: the unknown role is named, with the hint
        let e = parse(&format!("[models.w]\nkind = \"stt\"\n{whisper_files}"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("models.w.files.decoder"), "{e}");
        assert!(e.contains("family = \"whisper\""), "{e}");
        let c = parse(&format!(
            "[models.w]\nkind = \"stt\"\nfamily = \"whisper\"\nmax_tokens = 64\n{whisper_files}"
        ))
        .unwrap();
        assert_eq!(c.models[0].stt_family(), SttFamily::Whisper);
        assert_eq!(c.models[0].max_tokens, Some(64));
        // a missing whisper file is named
        let e = parse(&format!(
            "[models.w]\nkind = \"stt\"\nfamily = \"whisper\"\n{}{}{}",
            file("encoder"),
            file("decoder"),
            file("tokenizer")
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("models.w.files.generation_config"), "{e}");
        // parakeet's decoder_joint in a whisper model
        let e = parse(&format!(
            "[models.w]\nkind = \"stt\"\nfamily = \"whisper\"\n{whisper_files}{}",
            file("decoder_joint")
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("models.w.files.decoder_joint"), "{e}");
        // family and max_tokens where they do not belong
        let e = parse(&format!(
            "[models.v]\nkind = \"vad\"\nfamily = \"whisper\"\n{}",
            file("model")
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("models.v.family"), "{e}");
        let e = parse(&format!(
            "[models.p]\nkind = \"stt\"\nmax_tokens = 5\n{}{}{}",
            file("encoder"),
            file("decoder_joint"),
            file("vocab")
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("models.p.max_tokens"), "{e}");
        let e = parse("[models.w]\nkind = \"stt\"\nfamily = \"moonshine\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("family"), "{e}");
    }

    #[test]
    fn speaker_family_is_checked_by_kind() {
        let h = "a".repeat(64);
        let file = format!("files.model = {{ path = \"/m.onnx\", sha256 = \"{h}\" }}\n");
        let parse = |t: &str| Config::parse(Path::new("x.toml"), t);
        let c = parse(&format!("[models.s]\nkind = \"speaker\"\n{file}")).unwrap();
        assert_eq!(c.models[0].speaker_family(), SpeakerFamily::Wespeaker);
        let c = parse(&format!(
            "[models.s]\nkind = \"speaker\"\nfamily = \"ge2e\"\n{file}"
        ))
        .unwrap();
        assert_eq!(c.models[0].speaker_family(), SpeakerFamily::Ge2e);
        // an stt family on a speaker model and the other way round: the key and the choices
        let e = parse(&format!(
            "[models.s]\nkind = \"speaker\"\nfamily = \"whisper\"\n{file}"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("models.s.family") && e.contains("wespeaker"),
            "{e}"
        );
        let e = parse("[models.w]\nkind = \"stt\"\nfamily = \"ge2e\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("models.w.family") && e.contains("speaker models"),
            "{e}"
        );
        // a speaker model without its file names the family it was read as
        let e = parse("[models.s]\nkind = \"speaker\"\nfamily = \"ge2e\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("models.s.files.model") && e.contains("ge2e"),
            "{e}"
        );
    }
}
