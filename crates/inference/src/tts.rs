//! Text to speech with a Piper voice: espeak-ng phonemes → phoneme ids (the voice's
//! `phoneme_id_map`) → the VITS model → PCM at the voice's sample rate.
//!
//! espeak-ng (GPL-3.0) runs as a subprocess (`espeak-ng -q --ipa -v VOICE`), not linked.
//! Each clause's punctuation is put back after its phonemes, as piper-phonemize does for the
//! voices' training data. Without the `,` the real en_US-joe-medium ran "Okay, turning" together
//! (1.8 s instead of piper-tts's 2.2 s), and Whisper heard "OK".
//! Model I/O: `input` i64 `[1, N]`, `input_lengths` i64 `[1]`, `scales` f32 `[3]` (noise,
//! length, noise_w), optional `sid` i64 `[1]` → f32 audio `[1, 1, samples]`.
//! Text is split into sentences and each is synthesised on its own, so the first sentence's
//! audio can leave before the rest is done (sentence-level streaming).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ort::session::Session;
use ort::value::Tensor;
use serde::Deserialize;

use crate::engine::{self, lock, output_f32};

#[derive(Debug, Deserialize)]
struct PiperConfig {
    audio: PiperAudio,
    #[serde(default)]
    espeak: Option<PiperEspeak>,
    #[serde(default)]
    inference: Option<PiperInference>,
    phoneme_id_map: BTreeMap<String, Vec<i64>>,
    #[serde(default)]
    num_speakers: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct PiperAudio {
    sample_rate: u32,
}

#[derive(Debug, Deserialize)]
struct PiperEspeak {
    voice: String,
}

#[derive(Debug, Deserialize)]
struct PiperInference {
    noise_scale: f32,
    length_scale: f32,
    noise_w: f32,
}

/// The operator's `[models.<name>]` overrides of the voice config's `inference` scales.
/// `noise_scale` and `noise_w` = 0 make a voice deterministic (the same text, the same audio),
/// which tests and listeners who find a voice's variation odd may want.
#[derive(Clone, Copy, Debug, Default)]
pub struct Scales {
    pub noise_scale: Option<f32>,
    pub length_scale: Option<f32>,
    pub noise_w: Option<f32>,
}

pub struct Tts {
    session: Mutex<Session>,
    map: BTreeMap<char, Vec<i64>>,
    pub rate: u32,
    voice: String,
    espeak: PathBuf,
    scales: [f32; 3],
    multi_speaker: bool,
}

/// One synthesised sentence.
#[derive(Debug, Clone)]
pub struct Audio {
    pub sentence: String,
    pub pcm: Vec<i16>,
    pub phonemize_ms: f64,
    pub model_ms: f64,
}

/// Split text into sentences (on `.`, `!`, `?`, `;`, `:` followed by whitespace, and newlines).
pub fn sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c == '\n' {
            if !cur.trim().is_empty() {
                out.push(cur.trim().to_owned());
            }
            cur.clear();
            continue;
        }
        cur.push(c);
        let end = matches!(c, '.' | '!' | '?' | ';' | ':')
            && chars.get(i + 1).is_none_or(|n| n.is_whitespace());
        if end && !cur.trim().is_empty() {
            out.push(cur.trim().to_owned());
            cur.clear();
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_owned());
    }
    out
}

/// The default espeak-ng executable (`BARNABEE_ESPEAK_NG` overrides the PATH lookup).
pub fn espeak_bin() -> PathBuf {
    std::env::var_os("BARNABEE_ESPEAK_NG")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("espeak-ng"))
}

/// IPA phonemes of one sentence from espeak-ng (the default executable).
pub fn phonemize(text: &str, voice: &str) -> Result<String, String> {
    phonemize_with(&espeak_bin(), text, voice)
}

/// IPA phonemes of one sentence from the given espeak-ng executable.
pub fn phonemize_with(espeak: &Path, text: &str, voice: &str) -> Result<String, String> {
    let out = std::process::Command::new(espeak)
        .args(["-q", "--ipa", "-v", voice, "--"])
        .arg(text)
        .output()
        .map_err(|e| {
            format!(
                "cannot run {} ({e}); install espeak-ng (Debian/nixpkgs espeak-ng) or set [runtime] espeak_ng",
                espeak.display()
            )
        })?;
    if !out.status.success() {
        return Err(format!(
            "espeak-ng -v {voice} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let s = String::from_utf8_lossy(&out.stdout);
    Ok(with_punctuation(text, &s))
}

/// Piper voices are trained on phonemes with the clause punctuation kept (piper-phonemize
/// appends each clause's terminator, `oʊkˈeɪ, tˈɜːnɪŋ ...`): the `,` `.` `?` ids carry the
/// pauses and the intonation. espeak-ng's `--ipa` drops them but prints one line per clause,
/// so each line gets the terminator of its clause in the text. When espeak-ng split the text
/// otherwise (a clause break we do not know), the lines are joined with spaces and only the
/// sentence's own terminator is kept.
fn with_punctuation(text: &str, ipa: &str) -> String {
    let lines: Vec<String> = ipa
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect();
    let chars: Vec<char> = text.trim_end().chars().collect();
    let terminators: Vec<char> = chars
        .iter()
        .enumerate()
        .filter(|&(i, c)| {
            matches!(c, ',' | '.' | '!' | '?' | ';' | ':')
                && chars.get(i + 1).is_none_or(|n| n.is_whitespace())
        })
        .map(|(_, &c)| c)
        .collect();
    if lines.len() == terminators.len() {
        return lines
            .iter()
            .zip(&terminators)
            .map(|(l, t)| format!("{l}{t}"))
            .collect::<Vec<_>>()
            .join(" ");
    }
    let mut joined = lines.join(" ");
    if let Some(&last) = chars.last().filter(|c| matches!(c, '.' | '!' | '?')) {
        joined.push(last);
    }
    joined
}

impl Tts {
    pub fn new(
        session: Session,
        config: &Path,
        voice: Option<String>,
        espeak: Option<PathBuf>,
        overrides: Scales,
    ) -> Result<Tts, String> {
        engine::expect_inputs(&session, &["input", "input_lengths", "scales"])?;
        let text =
            std::fs::read_to_string(config).map_err(|e| format!("{}: {e}", config.display()))?;
        let cfg: PiperConfig = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not a Piper voice config: {e}", config.display()))?;
        let mut map = BTreeMap::new();
        for (k, v) in cfg.phoneme_id_map {
            let mut it = k.chars();
            if let (Some(c), None) = (it.next(), it.next()) {
                map.insert(c, v);
            }
        }
        for need in ['^', '$', '_'] {
            if !map.contains_key(&need) {
                return Err(format!(
                    "{}: phoneme_id_map lacks {need:?}",
                    config.display()
                ));
            }
        }
        let inf = cfg.inference.unwrap_or(PiperInference {
            noise_scale: 0.667,
            length_scale: 1.0,
            noise_w: 0.8,
        });
        let multi_speaker = cfg.num_speakers.unwrap_or(1) > 1;
        if multi_speaker {
            engine::expect_inputs(&session, &["sid"])?;
        }
        Ok(Tts {
            session: Mutex::new(session),
            map,
            rate: cfg.audio.sample_rate,
            voice: voice
                .or(cfg.espeak.map(|e| e.voice))
                .unwrap_or_else(|| "en-us".into()),
            espeak: espeak.unwrap_or_else(espeak_bin),
            scales: [
                overrides.noise_scale.unwrap_or(inf.noise_scale),
                overrides.length_scale.unwrap_or(inf.length_scale),
                overrides.noise_w.unwrap_or(inf.noise_w),
            ],
            multi_speaker,
        })
    }

    /// Phoneme ids: `^ _ (p _)* $`; phonemes missing from the map are skipped.
    pub fn ids(&self, phonemes: &str) -> Vec<i64> {
        let get = |c: char| self.map.get(&c).cloned().unwrap_or_default();
        let mut ids = get('^');
        ids.extend(get('_'));
        for c in phonemes.chars() {
            if let Some(v) = self.map.get(&c) {
                ids.extend(v);
                ids.extend(get('_'));
            }
        }
        ids.extend(get('$'));
        ids
    }

    /// Synthesise one sentence.
    pub fn sentence(&self, text: &str, speaker: Option<i64>) -> Result<Audio, String> {
        let t0 = std::time::Instant::now();
        let ph = phonemize_with(&self.espeak, text, &self.voice)?;
        let ids = self.ids(&ph);
        let phonemize_ms = t0.elapsed().as_secs_f64() * 1e3;
        let t1 = std::time::Instant::now();
        let n = ids.len();
        let input = Tensor::from_array(([1usize, n], ids)).map_err(engine::ort_err)?;
        let lens = Tensor::from_array(([1usize], vec![n as i64])).map_err(engine::ort_err)?;
        let scales =
            Tensor::from_array(([3usize], self.scales.to_vec())).map_err(engine::ort_err)?;
        let mut s = lock(&self.session);
        let out_name = s
            .outputs()
            .first()
            .map(|o| o.name().to_owned())
            .unwrap_or_default();
        let out = if self.multi_speaker {
            let sid = Tensor::from_array(([1usize], vec![speaker.unwrap_or(0)])).map_err(engine::ort_err)?;
            s.run(ort::inputs!["input" => input, "input_lengths" => lens, "scales" => scales, "sid" => sid])
        } else {
            s.run(ort::inputs!["input" => input, "input_lengths" => lens, "scales" => scales])
        }
        .map_err(|e| format!("tts model: {e}"))?;
        let (_, audio) = output_f32(&out, &out_name)?;
        let pcm = audio
            .iter()
            .map(|&x| (x.clamp(-1.0, 1.0) * 32767.0) as i16)
            .collect();
        Ok(Audio {
            sentence: text.to_owned(),
            pcm,
            phonemize_ms,
            model_ms: t1.elapsed().as_secs_f64() * 1e3,
        })
    }

    pub fn warm(&self) -> Result<(), String> {
        self.sentence("ready.", None).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clause_punctuation_is_put_back() {
        assert_eq!(
            with_punctuation(
                "Okay, turning on the lights.",
                "oʊkˈeɪ\ntˈɜːnɪŋ  ɔn ðə lˈaɪts\n"
            ),
            "oʊkˈeɪ, tˈɜːnɪŋ ɔn ðə lˈaɪts."
        );
        assert_eq!(with_punctuation("lights on", "lˈaɪts ɔn\n"), "lˈaɪts ɔn");
        // espeak-ng broke a clause where the text has no terminator: only the last is kept
        assert_eq!(
            with_punctuation("Is it (really) on?", "ɪz ɪt\nɹˈiəli ɔn\n"),
            "ɪz ɪt ɹˈiəli ɔn?"
        );
    }

    #[test]
    fn sentence_split() {
        assert_eq!(
            sentences("Hello there. It is 3.5 degrees!  Really?\nyes"),
            vec!["Hello there.", "It is 3.5 degrees!", "Really?", "yes"]
        );
        assert!(sentences("  ").is_empty());
    }
}
