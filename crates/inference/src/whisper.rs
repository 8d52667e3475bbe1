//! Speech to text with OpenAI Whisper, in the ONNX layout of a Hugging Face / optimum export:
//!
//! - `encoder` (`encoder_model.onnx`): `input_features` f32 `[1, n_mels, 3000]` →
//!   `last_hidden_state` f32 `[1, 1500, d]`; features from [`crate::features::WhisperMel`]
//!   (`n_mels` read from the input's shape, 80 when it is dynamic);
//! - `decoder` (`decoder_model.onnx`, the decoder without past key values): `input_ids` i64
//!   `[1, T]`, `encoder_hidden_states` → `logits` f32 `[1, T, vocab]`. Each step runs the whole
//!   prefix again (no KV cache): for commands of a few dozen tokens that costs little, and it
//!   keeps to the one decoder file every export has. A decoder with other inputs (the merged
//!   or with-past variants) is refused at load, naming the input;
//! - `tokenizer` (`tokenizer.json`): the GPT-2 byte-level BPE vocabulary and Whisper's special
//!   tokens, used here only to turn tokens into text;
//! - `generation_config` (`generation_config.json`): start, end and no-timestamps tokens,
//!   `suppress_tokens`, `begin_suppress_tokens`, `is_multilingual`, `lang_to_id`,
//!   `task_to_id`, `max_length` (what the tokenizer's special tokens cannot say).
//!
//! Greedy decoding without timestamps, one 30 s window: the prompt is
//! `<|startoftranscript|><|notimestamps|>` for an English-only model and
//! `<|startoftranscript|><|xx|><|transcribe|><|notimestamps|>` for a multilingual one (the
//! request's language, else the model's first configured language, else `en`);
//! `suppress_tokens` are never chosen, `begin_suppress_tokens` (the blank and the end token)
//! not as the first token; decoding stops at the end token or after `max_tokens`. The text is
//! the byte-level decoding of the non-special tokens, trimmed.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use ort::session::Session;
use ort::value::Tensor;

use crate::engine::{self, lock, output_f32};
use crate::features::{WHISPER_FRAMES, WHISPER_SAMPLES, WhisperMel};
use crate::stt::Transcript;

/// The length bound when the config gives none.
pub const DEFAULT_MAX_TOKENS: usize = 128;

pub struct Whisper {
    encoder: Mutex<Session>,
    decoder: Mutex<Session>,
    mel: WhisperMel,
    tokenizer: Tokenizer,
    generation: Generation,
    /// Decoding language of a multilingual model when the request names none.
    pub language: String,
    pub max_tokens: usize,
}

/// What decoding needs from `generation_config.json` and the tokenizer's special tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    pub start: i64,
    pub end: i64,
    pub no_timestamps: i64,
    pub transcribe: Option<i64>,
    pub multilingual: bool,
    pub languages: BTreeMap<String, i64>,
    pub suppress: Vec<usize>,
    pub begin_suppress: Vec<usize>,
    /// The decoder's context (prompt + generated tokens).
    pub max_length: usize,
}

#[derive(serde::Deserialize)]
struct GenerationFile {
    decoder_start_token_id: Option<i64>,
    eos_token_id: Option<serde_json::Value>,
    no_timestamps_token_id: Option<i64>,
    #[serde(default)]
    suppress_tokens: Vec<i64>,
    #[serde(default)]
    begin_suppress_tokens: Vec<i64>,
    is_multilingual: Option<bool>,
    #[serde(default)]
    lang_to_id: BTreeMap<String, i64>,
    #[serde(default)]
    task_to_id: BTreeMap<String, i64>,
    max_length: Option<usize>,
}

/// The decoding half of a byte-level BPE tokenizer: token id → bytes, and which ids are special.
#[derive(Debug, Default)]
pub struct Tokenizer {
    bytes: Vec<Option<Vec<u8>>>,
    special: Vec<bool>,
    /// Added tokens by content (`<|endoftext|>` → 50256).
    pub specials: BTreeMap<String, i64>,
}

/// GPT-2's `bytes_to_unicode`, inverted: the printable character standing for each byte.
fn byte_decoder() -> BTreeMap<char, u8> {
    let mut printable: Vec<u32> = (u32::from('!')..=u32::from('~'))
        .chain(u32::from('¡')..=u32::from('¬'))
        .chain(u32::from('®')..=u32::from('ÿ'))
        .collect();
    let mut chars = printable.clone();
    let mut extra = 0;
    for b in 0..256u32 {
        if !printable.contains(&b) {
            printable.push(b);
            chars.push(256 + extra);
            extra += 1;
        }
    }
    printable
        .iter()
        .zip(&chars)
        .filter_map(|(&b, &c)| Some((char::from_u32(c)?, u8::try_from(b).ok()?)))
        .collect()
}

impl Tokenizer {
    /// Parse a Hugging Face `tokenizer.json` (BPE `model.vocab` + `added_tokens`).
    pub fn parse(text: &str) -> Result<Tokenizer, String> {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let vocab = v
            .pointer("/model/vocab")
            .and_then(|x| x.as_object())
            .ok_or("no model.vocab object (expected a BPE tokenizer.json)")?;
        let dec = byte_decoder();
        let mut t = Tokenizer::default();
        let put = |t: &mut Tokenizer, id: i64, bytes: Option<Vec<u8>>, special: bool| {
            let Ok(i) = usize::try_from(id) else { return };
            if t.bytes.len() <= i {
                t.bytes.resize(i + 1, None);
                t.special.resize(i + 1, false);
            }
            t.bytes[i] = bytes;
            t.special[i] = special;
        };
        for (tok, id) in vocab {
            let id = id
                .as_i64()
                .ok_or_else(|| format!("model.vocab[{tok:?}] is not an id"))?;
            let mut b = Vec::with_capacity(tok.len());
            for c in tok.chars() {
                match dec.get(&c) {
                    Some(&x) => b.push(x),
                    None => b.extend(c.to_string().as_bytes()),
                }
            }
            put(&mut t, id, Some(b), false);
        }
        for a in v
            .get("added_tokens")
            .and_then(|x| x.as_array())
            .into_iter()
            .flatten()
        {
            let (Some(id), Some(content)) = (
                a.get("id").and_then(|x| x.as_i64()),
                a.get("content").and_then(|x| x.as_str()),
            ) else {
                return Err(format!("added_tokens entry {a} lacks id or content"));
            };
            let special = a.get("special").and_then(|x| x.as_bool()).unwrap_or(true);
            put(&mut t, id, Some(content.as_bytes().to_vec()), special);
            t.specials.insert(content.to_owned(), id);
        }
        Ok(t)
    }

    /// The text of `tokens`: special tokens and ids the vocabulary lacks (timestamps) skipped,
    /// bytes decoded as UTF-8 (invalid sequences replaced), trimmed.
    pub fn decode(&self, tokens: &[i64]) -> String {
        let mut out = Vec::new();
        for &t in tokens {
            let Ok(i) = usize::try_from(t) else { continue };
            if self.special.get(i).copied().unwrap_or(true) {
                continue;
            }
            if let Some(Some(b)) = self.bytes.get(i) {
                out.extend_from_slice(b);
            }
        }
        String::from_utf8_lossy(&out).trim().to_owned()
    }
}

fn to_ids(v: &[i64], vocab: usize, what: &str) -> Result<Vec<usize>, String> {
    v.iter()
        .map(|&t| {
            usize::try_from(t)
                .ok()
                .filter(|&i| i < vocab)
                .ok_or_else(|| {
                    format!("generation_config: {what} has token {t} outside 0..{vocab}")
                })
        })
        .collect()
}

impl Generation {
    /// From `generation_config.json`, with the tokenizer's special tokens filling what it omits.
    pub fn parse(text: &str, tok: &Tokenizer, vocab: usize) -> Result<Generation, String> {
        let g: GenerationFile =
            serde_json::from_str(text).map_err(|e| format!("generation_config: {e}"))?;
        let special = |name: &str| tok.specials.get(name).copied();
        let need = |v: Option<i64>, key: &str, token: &str| {
            v.or_else(|| special(token)).ok_or_else(|| {
                format!("generation_config has no {key} and the tokenizer no {token}")
            })
        };
        let end = g
            .eos_token_id
            .as_ref()
            .and_then(|e| e.as_i64().or_else(|| e.get(0)?.as_i64()));
        let mut languages: BTreeMap<String, i64> = g
            .lang_to_id
            .iter()
            .map(|(k, &v)| (k.trim_matches(['<', '|', '>']).to_owned(), v))
            .collect();
        let multilingual = g.is_multilingual.unwrap_or(vocab >= 51865);
        if multilingual && languages.is_empty() {
            // the language tokens sit between <|startoftranscript|> and <|translate|>
            if let (Some(s), Some(t)) = (special("<|startoftranscript|>"), special("<|translate|>"))
            {
                for (name, &id) in &tok.specials {
                    if id > s && id < t {
                        languages.insert(name.trim_matches(['<', '|', '>']).to_owned(), id);
                    }
                }
            }
        }
        let generation = Generation {
            start: need(
                g.decoder_start_token_id,
                "decoder_start_token_id",
                "<|startoftranscript|>",
            )?,
            end: need(end, "eos_token_id", "<|endoftext|>")?,
            no_timestamps: need(
                g.no_timestamps_token_id,
                "no_timestamps_token_id",
                "<|notimestamps|>",
            )?,
            transcribe: g
                .task_to_id
                .get("transcribe")
                .copied()
                .or_else(|| special("<|transcribe|>")),
            multilingual,
            languages,
            suppress: to_ids(&g.suppress_tokens, vocab, "suppress_tokens")?,
            begin_suppress: to_ids(&g.begin_suppress_tokens, vocab, "begin_suppress_tokens")?,
            max_length: g.max_length.unwrap_or(448),
        };
        if generation.multilingual && generation.transcribe.is_none() {
            return Err("multilingual model without a <|transcribe|> task token".into());
        }
        for (what, id) in [
            ("decoder_start_token_id", generation.start),
            ("eos_token_id", generation.end),
            ("no_timestamps_token_id", generation.no_timestamps),
        ] {
            if usize::try_from(id).map_or(true, |i| i >= vocab) {
                return Err(format!(
                    "generation_config: {what} {id} is outside the model's vocabulary of {vocab}"
                ));
            }
        }
        Ok(generation)
    }

    /// The decoder prompt for `language` (ignored by an English-only model).
    pub fn prompt(&self, language: &str) -> Result<Vec<i64>, String> {
        if !self.multilingual {
            return Ok(vec![self.start, self.no_timestamps]);
        }
        // "en-US" / "en_GB" → "en"
        let code = language
            .split(['-', '_'])
            .next()
            .unwrap_or(language)
            .to_lowercase();
        let lang = self.languages.get(&code).ok_or_else(|| {
            format!(
                "language {language:?} is not one of this Whisper model's {} languages",
                self.languages.len()
            )
        })?;
        Ok(vec![
            self.start,
            *lang,
            self.transcribe.unwrap_or_default(),
            self.no_timestamps,
        ])
    }

    /// The next token from the last position's logits: suppressed tokens out, the
    /// begin-suppressed ones too at the first step, then the best.
    pub fn pick(&self, logits: &mut [f32], step: usize) -> i64 {
        for &i in &self.suppress {
            if let Some(l) = logits.get_mut(i) {
                *l = f32::NEG_INFINITY;
            }
        }
        if step == 0 {
            for &i in &self.begin_suppress {
                if let Some(l) = logits.get_mut(i) {
                    *l = f32::NEG_INFINITY;
                }
            }
        }
        logits
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or(self.end, |(i, _)| i as i64)
    }
}

impl Whisper {
    /// Check the sessions' inputs and read the tokenizer and generation config.
    pub fn new(
        encoder: Session,
        decoder: Session,
        tokenizer: &Path,
        generation_config: &Path,
        language: Option<&str>,
        max_tokens: Option<usize>,
    ) -> Result<Whisper, String> {
        engine::expect_inputs(&encoder, &["input_features"])
            .map_err(|e| format!("encoder: {e}"))?;
        engine::expect_inputs(&decoder, &["input_ids", "encoder_hidden_states"])
            .map_err(|e| format!("decoder: {e}"))?;
        if let Some(other) = decoder
            .inputs()
            .iter()
            .map(|i| i.name())
            .find(|n| *n != "input_ids" && *n != "encoder_hidden_states")
        {
            return Err(format!(
                "decoder: input `{other}` is not supported (give decoder_model.onnx, the decoder without past key values)"
            ));
        }
        if !engine::output_names(&decoder).iter().any(|n| n == "logits") {
            return Err("decoder: model has no output `logits`".into());
        }
        if !engine::output_names(&encoder)
            .iter()
            .any(|n| n == "last_hidden_state")
        {
            return Err("encoder: model has no output `last_hidden_state`".into());
        }
        let n_mels = engine::input_shape(&encoder, 0)
            .and_then(|s| s.get(1).copied())
            .and_then(|d| usize::try_from(d).ok())
            .unwrap_or(80);
        let read =
            |p: &Path| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
        let tok = Tokenizer::parse(&read(tokenizer)?)
            .map_err(|e| format!("tokenizer {}: {e}", tokenizer.display()))?;
        let vocab = decoder_vocab(&decoder).unwrap_or(tok.bytes.len());
        let generation = Generation::parse(&read(generation_config)?, &tok, vocab)
            .map_err(|e| format!("{}: {e}", generation_config.display()))?;
        let language = language.unwrap_or("en").to_owned();
        let prompt = generation.prompt(&language)?;
        let room = generation.max_length.saturating_sub(prompt.len());
        let max_tokens = max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
        if max_tokens > room {
            return Err(format!(
                "max_tokens {max_tokens} exceeds the decoder's context ({} positions, {} for the prompt)",
                generation.max_length,
                prompt.len()
            ));
        }
        Ok(Whisper {
            encoder: Mutex::new(encoder),
            decoder: Mutex::new(decoder),
            mel: WhisperMel::new(n_mels),
            tokenizer: tok,
            generation,
            language,
            max_tokens,
        })
    }

    /// `Err` naming the language when a request's language has no token in this model.
    pub fn check_language(&self, language: &str) -> Result<(), String> {
        self.generation.prompt(language).map(|_| ())
    }

    pub fn multilingual(&self) -> bool {
        self.generation.multilingual
    }

    fn encode(&self, features: Vec<f32>) -> Result<(Vec<i64>, Vec<f32>), String> {
        let mut s = lock(&self.encoder);
        let x = Tensor::from_array(([1usize, self.mel.n_mels(), WHISPER_FRAMES], features))
            .map_err(engine::ort_err)?;
        let out = s
            .run(ort::inputs!["input_features" => x])
            .map_err(|e| format!("encoder: {e}"))?;
        let (shape, data) = output_f32(&out, "last_hidden_state")?;
        if shape.len() != 3 || shape[0] != 1 {
            return Err(format!(
                "encoder: expected last_hidden_state [1, frames, d], got {shape:?}"
            ));
        }
        Ok((shape, data))
    }

    /// One decoder run over `ids`; the last position's logits.
    fn step(
        &self,
        dec: &mut Session,
        ids: &[i64],
        shape: &[i64],
        hidden: &[f32],
    ) -> Result<Vec<f32>, String> {
        let x = Tensor::from_array(([1usize, ids.len()], ids.to_vec())).map_err(engine::ort_err)?;
        let h = Tensor::from_array((
            [1usize, shape[1] as usize, shape[2] as usize],
            hidden.to_vec(),
        ))
        .map_err(engine::ort_err)?;
        let out = dec
            .run(ort::inputs!["input_ids" => x, "encoder_hidden_states" => h])
            .map_err(|e| format!("decoder: {e}"))?;
        let v = out
            .get("logits")
            .ok_or("decoder: model produced no output `logits`")?;
        let (s, data) = v
            .try_extract_tensor::<f32>()
            .map_err(|e| format!("decoder: logits: {e}"))?;
        let vocab = s.last().copied().unwrap_or(0).max(0) as usize;
        if s.len() != 3 || vocab == 0 || data.len() < ids.len() * vocab {
            return Err(format!(
                "decoder: expected logits [1, {}, vocab], got {:?}",
                ids.len(),
                &s[..]
            ));
        }
        Ok(data[(ids.len() - 1) * vocab..ids.len() * vocab].to_vec())
    }

    /// Transcribe 16 kHz mono samples in [-1, 1] (the first 30 s) in `language` (a
    /// multilingual model; default the model's language).
    pub fn transcribe(
        &self,
        samples: &[f32],
        language: Option<&str>,
    ) -> Result<Transcript, String> {
        let prompt = self.generation.prompt(language.unwrap_or(&self.language))?;
        if samples.len() > WHISPER_SAMPLES {
            log::warn!(
                "Whisper hears the first 30 s of {:.1} s of audio",
                samples.len() as f64 / 16_000.0
            );
        }
        let t0 = std::time::Instant::now();
        let features = self.mel.compute(samples);
        let features_ms = t0.elapsed().as_secs_f64() * 1e3;
        let t1 = std::time::Instant::now();
        let (shape, hidden) = self.encode(features)?;
        let encoder_ms = t1.elapsed().as_secs_f64() * 1e3;
        let t2 = std::time::Instant::now();
        let mut ids = prompt.clone();
        let mut dec = lock(&self.decoder);
        for step in 0..self.max_tokens {
            let mut logits = self.step(&mut dec, &ids, &shape, &hidden)?;
            let next = self.generation.pick(&mut logits, step);
            if next == self.generation.end {
                break;
            }
            ids.push(next);
        }
        drop(dec);
        let tokens: Vec<i64> = ids[prompt.len()..].to_vec();
        Ok(Transcript {
            text: self.tokenizer.decode(&tokens),
            tokens: tokens.iter().map(|&t| t as usize).collect(),
            frames: Vec::new(),
            features_ms,
            encoder_ms,
            decoder_ms: t2.elapsed().as_secs_f64() * 1e3,
        })
    }

    /// One encoder run and one decoder step (a full transcription of silence could run to
    /// `max_tokens`).
    pub fn warm(&self) -> Result<(), String> {
        let (shape, hidden) = self.encode(self.mel.compute(&[0.0; 16_000]))?;
        let prompt = self.generation.prompt(&self.language)?;
        let mut dec = lock(&self.decoder);
        self.step(&mut dec, &prompt, &shape, &hidden).map(|_| ())
    }
}

/// The vocabulary size the decoder declares (the logits' last dimension), when it is fixed.
fn decoder_vocab(decoder: &Session) -> Option<usize> {
    let o = decoder.outputs().iter().find(|o| o.name() == "logits")?;
    let shape = o.dtype().tensor_shape()?;
    usize::try_from(*shape.last()?).ok().filter(|&v| v > 0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    // a tiny tokenizer.json: "Ġ" is the space byte, "Ã©" the two bytes of "é"
    const TOKENIZER: &str = r#"{"model": {"type": "BPE", "vocab": {"Ġturn": 0, "Ġon": 1, "!": 2, "Ġcaf": 3, "Ã©": 4}},
        "added_tokens": [
            {"id": 5, "content": "<|endoftext|>", "special": true},
            {"id": 6, "content": "<|startoftranscript|>", "special": true},
            {"id": 7, "content": "<|en|>", "special": true},
            {"id": 8, "content": "<|de|>", "special": true},
            {"id": 9, "content": "<|translate|>", "special": true},
            {"id": 10, "content": "<|transcribe|>", "special": true},
            {"id": 11, "content": "<|notimestamps|>", "special": true}]}"#;

    #[test]
    fn byte_level_decoding_skips_special_and_unknown_tokens() {
        let t = Tokenizer::parse(TOKENIZER).unwrap();
        assert_eq!(t.decode(&[6, 11, 0, 1, 2, 12, 5]), "turn on!");
        assert_eq!(t.decode(&[3, 4]), "café");
        assert_eq!(byte_decoder().len(), 256);
        assert_eq!(byte_decoder()[&'Ġ'], b' ');
        assert!(Tokenizer::parse("{}").is_err());
    }

    #[test]
    fn prompts_and_suppression() {
        let t = Tokenizer::parse(TOKENIZER).unwrap();
        // English-only: the start and no-timestamps tokens from the file
        let en = Generation::parse(
            r#"{"decoder_start_token_id": 6, "eos_token_id": 5, "no_timestamps_token_id": 11,
                "suppress_tokens": [2], "begin_suppress_tokens": [0, 5], "is_multilingual": false}"#,
            &t,
            12,
        )
        .unwrap();
        assert_eq!(en.prompt("de").unwrap(), vec![6, 11]);
        let mut logits = vec![0.0, 0.5, 9.0, 0.1, 0.0, 3.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        // token 2 is always suppressed, 5 (the end) only at the first step
        assert_eq!(en.pick(&mut logits.clone(), 0), 1);
        assert_eq!(en.pick(&mut logits, 1), 5);
        // multilingual, with only the special tokens to go by
        let ml = Generation::parse(r#"{"is_multilingual": true}"#, &t, 12).unwrap();
        assert_eq!(ml.prompt("en").unwrap(), vec![6, 7, 10, 11]);
        assert_eq!(ml.prompt("de-DE").unwrap(), vec![6, 8, 10, 11]);
        assert!(ml.prompt("fr").unwrap_err().contains("\"fr\""));
        // token ids outside the vocabulary are refused
        let e = Generation::parse(r#"{"suppress_tokens": [99]}"#, &t, 12).unwrap_err();
        assert!(e.contains("suppress_tokens"), "{e}");
    }
}
