//! The default model set as `barnabee up` serves it: the same pins as the beast's NixOS
//! default (`nixos-modules/default-models.json`, declared once), loaded from the files
//! `dev/setup` (dev/setup.d/70-inference.sh) downloaded and converted into the cache. A model
//! whose files are not there is left out and named, so inference starts and says what to run.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;

const MANIFEST: &str = include_str!("../../../nixos-modules/default-models.json");

/// ONNX Runtime as dev/setup unpacks it from the PyPI wheel.
const ORT: &str = "onnxruntime-1.22.1/libonnxruntime.so";

#[derive(Deserialize)]
struct Manifest {
    models: BTreeMap<String, Pin>,
}

#[derive(Deserialize)]
struct Pin {
    kind: String,
    family: Option<String>,
    threshold: Option<f64>,
    /// Directory under `<cache>/models/`.
    cache: String,
    files: BTreeMap<String, FilePin>,
}

#[derive(Deserialize)]
struct FilePin {
    name: String,
    sha256: String,
}

/// `$BARNABEE_INFERENCE_CACHE`, else `<dev/setup's cache>/inference` (`$BARNABEE_CACHE`, else
/// `$XDG_CACHE_HOME/barnabee`, else `~/.cache/barnabee`), as dev/lib.sh and the tests resolve it.
pub fn inference_cache() -> Option<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(p) = var("BARNABEE_INFERENCE_CACHE") {
        return Some(p);
    }
    let base = var("BARNABEE_CACHE").or_else(|| {
        var("XDG_CACHE_HOME")
            .or_else(|| var("HOME").map(|h| h.join(".cache")))
            .map(|c| c.join("barnabee"))
    })?;
    Some(base.join("inference"))
}

/// What the inference daemon's dev config gets from the cache.
pub struct DevInference {
    /// `[runtime]` and `[models.*]` tables (TOML), or comments saying what is missing.
    pub toml: String,
    /// Models left out (their files are not in the cache), and the ORT library if absent.
    pub missing: Vec<String>,
}

/// The `[runtime]` and `[models.*]` of `barnabee up`'s inference config for `cache`.
pub fn dev_inference(cache: Option<&Path>) -> DevInference {
    let mut toml = String::new();
    let mut missing = Vec::new();
    let manifest: Manifest = match serde_json::from_str(MANIFEST) {
        Ok(m) => m,
        // The file is compiled in and parsed by a unit test: unreachable in a tested build.
        Err(e) => {
            return DevInference {
                toml: format!("# default-models.json unreadable: {e}\n"),
                missing: vec!["every model (default-models.json unreadable)".into()],
            };
        }
    };
    let Some(cache) = cache else {
        return DevInference {
            toml: "# no cache directory (no $HOME): no models\n".into(),
            missing: vec!["every model (no cache directory)".into()],
        };
    };
    let ort = cache.join(ORT);
    if ort.exists() {
        let _ = writeln!(
            toml,
            "[runtime]\nlibrary = \"{}\"\nprovider = \"cpu\"\n",
            escape(&ort)
        );
    } else {
        toml.push_str("[runtime]\nprovider = \"cpu\"\n\n");
        missing.push(format!("ONNX Runtime ({})", ort.display()));
    }
    for (name, pin) in &manifest.models {
        let dir = cache.join("models").join(&pin.cache);
        let absent: Vec<String> = pin
            .files
            .values()
            .map(|f| dir.join(&f.name))
            .filter(|p| !p.exists())
            .map(|p| p.display().to_string())
            .collect();
        if !absent.is_empty() {
            let _ = writeln!(
                toml,
                "# [models.\"{name}\"] left out: missing {}\n",
                absent.join(", ")
            );
            missing.push(name.clone());
            continue;
        }
        let _ = writeln!(toml, "[models.\"{name}\"]\nkind = \"{}\"", pin.kind);
        if let Some(f) = &pin.family {
            let _ = writeln!(toml, "family = \"{f}\"");
        }
        if let Some(t) = pin.threshold {
            let _ = writeln!(toml, "threshold = {t:?}");
        }
        for (role, f) in &pin.files {
            let _ = writeln!(
                toml,
                "files.{role} = {{ path = \"{}\", sha256 = \"{}\" }}",
                escape(&dir.join(&f.name)),
                f.sha256
            );
        }
        toml.push('\n');
    }
    DevInference { toml, missing }
}

fn escape(p: &Path) -> String {
    crate::daemons::toml_escape(&p.display().to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_manifest_parses_and_every_model_has_files() {
        let m: Manifest = serde_json::from_str(MANIFEST).unwrap();
        assert_eq!(m.models.len(), 6);
        for (name, p) in &m.models {
            assert!(!p.files.is_empty(), "{name}");
            assert!(
                p.files.values().all(|f| f.sha256.len() == 64),
                "{name}: {:?}",
                p.files.values().map(|f| &f.sha256).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn present_models_render_pinned_absent_ones_are_named() {
        let dir = tempfile::tempdir().unwrap();
        // Only Silero is "set up".
        let silero = dir.path().join("models/silero-vad-6.2.3");
        std::fs::create_dir_all(&silero).unwrap();
        std::fs::write(silero.join("silero_vad.onnx"), b"x").unwrap();
        let d = dev_inference(Some(dir.path()));
        let t: toml::Table = toml::from_str(&d.toml).unwrap();
        let models = t["models"].as_table().unwrap();
        assert_eq!(models.keys().collect::<Vec<_>>(), ["silero"]);
        assert_eq!(
            models["silero"]["files"]["model"]["sha256"].as_str(),
            Some("1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3")
        );
        assert_eq!(models["silero"]["threshold"].as_float(), Some(0.5));
        assert!(
            d.missing.iter().any(|m| m == "whisper-tiny.en"),
            "{:?}",
            d.missing
        );
        assert!(d.missing.iter().any(|m| m.starts_with("ONNX Runtime")));
        assert!(
            d.toml
                .contains("# [models.\"whisper-tiny.en\"] left out: missing")
        );
    }
}
