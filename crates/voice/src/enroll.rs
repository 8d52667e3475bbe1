//! Enrolment requests (`POST /v1/speakers/{name}/enroll`, sent by `barnabee voice enroll`):
//! checking the name and decoding the WAV files (converted to 16 kHz mono when needed) before
//! anything is sent to the inference or memory daemons. Every refusal names what was wrong: the field, or the utterance by its
//! 1-based number and file name, with what was found and what is expected.

use std::io::Cursor;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::audio::RATE;

/// At most this many utterances in one request.
pub const MAX_UTTERANCES: usize = 20;
/// Each utterance must last at least this long (the speaker model needs some speech)...
pub const MIN_SECONDS: f64 = 0.5;
/// ...and at most this long (an enrolment phrase, not a recording session).
pub const MAX_SECONDS: f64 = 30.0;

/// The request body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    pub utterances: Vec<Utterance>,
    /// Add these utterances to the existing profile (its centroid weighted by its sample count)
    /// instead of replacing it; with no profile yet it is a first enrolment.
    #[serde(default)]
    pub add: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Utterance {
    /// The file's name as the operator gave it (only for error messages).
    #[serde(default)]
    pub file: String,
    /// The WAV file's bytes, standard base64.
    pub wav_base64: String,
}

/// The response body: the profile as barnabee-memory stored it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnrollResponse {
    pub name: String,
    /// Utterances embedded for this enrolment.
    pub utterances: usize,
    /// The stored profile's sample count and centroid dimension.
    pub sample_count: i64,
    pub embedding_dim: usize,
    /// The inference daemon's speaker model (identification skips profiles of another model).
    pub embedding_model: String,
    pub updated_at: i64,
    /// The utterances that were not 16 kHz mono 16-bit and how each was converted.
    #[serde(default)]
    pub converted: Vec<String>,
}

/// Why a request is refused: the field (`name`, `utterances`, `utterances[2]`) and a message
/// that names it in words ("utterance 2 (phone.wav): 44100 Hz, 2 channels, ...").
#[derive(Debug, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    pub field: String,
    pub message: String,
}

/// A refusal whose message starts with the field's name.
fn refuse(field: &str, reason: impl std::fmt::Display) -> Refusal {
    Refusal {
        field: field.to_owned(),
        message: format!("{field}: {reason}"),
    }
}

/// A member's name: 1 to 64 letters, digits, `-`, `_` or `.`, not starting with `.`, and
/// not "guest" (what identification answers for an unknown voice).
pub fn check_name(name: &str) -> Result<(), Refusal> {
    let n = name.chars().count();
    if n == 0 || n > 64 {
        return Err(refuse("name", "must be 1 to 64 characters"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(refuse(
            "name",
            format!("{c:?} is not allowed (letters, digits, '-', '_', '.')"),
        ));
    }
    if name.starts_with('.') {
        return Err(refuse("name", "must not start with '.'"));
    }
    if name.eq_ignore_ascii_case(crate::speaker::GUEST) {
        return Err(refuse(
            "name",
            "\"guest\" is what an unknown voice is called; pick another name",
        ));
    }
    Ok(())
}

/// One decoded utterance: 16 kHz mono PCM, and what was converted to get it (for the
/// response: "utterance 2 (phone.wav): 44100 Hz, 2 channels → 16000 Hz mono").
#[derive(Debug)]
pub struct Decoded {
    pub pcm: Vec<i16>,
    pub converted: Option<String>,
}

/// Decode every utterance to 16 kHz mono i16 PCM, or say which one is wrong and why.
pub fn decode(req: &EnrollRequest) -> Result<Vec<Decoded>, Refusal> {
    if req.utterances.is_empty() {
        return Err(refuse("utterances", "at least one WAV file is needed"));
    }
    if req.utterances.len() > MAX_UTTERANCES {
        return Err(refuse(
            "utterances",
            format!(
                "{} files; at most {MAX_UTTERANCES} per enrolment",
                req.utterances.len()
            ),
        ));
    }
    req.utterances
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let label = if u.file.is_empty() {
                format!("utterance {}", i + 1)
            } else {
                format!("utterance {} ({})", i + 1, u.file)
            };
            let (pcm, converted) = decode_one(u).map_err(|reason| Refusal {
                field: format!("utterances[{}]", i + 1),
                message: format!("{label}: {reason}"),
            })?;
            Ok(Decoded {
                pcm,
                converted: converted.map(|c| format!("{label}: {c}")),
            })
        })
        .collect()
}

/// Any PCM WAV (8 to 32-bit integer or 32-bit float, any channel count) at 16 kHz or more is
/// downmixed and resampled to 16 kHz mono with the same code live capture uses
/// ([`crate::audio::downmix`], [`crate::audio::Resampler`]), so a phone's 44.1 kHz stereo or
/// espeak-ng's 22.05 kHz works as is. Lower rates are refused: upsampled 8 kHz telephone
/// audio lacks the upper half of the band the speaker model sees in live capture.
fn decode_one(u: &Utterance) -> Result<(Vec<i16>, Option<String>), String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(u.wav_base64.trim())
        .map_err(|e| format!("wav_base64 is not base64: {e}"))?;
    decode_wav(&bytes, MIN_SECONDS, MAX_SECONDS)
}

/// One WAV file's bytes to 16 kHz mono i16 PCM (the rules of [`decode_one`]), lasting
/// `min_s` to `max_s` seconds; also what `POST /v1/say` decodes its microphone recording
/// with. `Err`: what is wrong, in words ("not a WAV file: ...", "8000 Hz, 2 channels, ...").
pub fn decode_wav(
    bytes: &[u8],
    min_s: f64,
    max_s: f64,
) -> Result<(Vec<i16>, Option<String>), String> {
    let mut reader =
        hound::WavReader::new(Cursor::new(bytes)).map_err(|e| format!("not a WAV file: {e}"))?;
    let spec = reader.spec();
    let channels = spec.channels.max(1);
    let format = match spec.sample_format {
        hound::SampleFormat::Int => format!("{}-bit integer", spec.bits_per_sample),
        hound::SampleFormat::Float => format!("{}-bit float", spec.bits_per_sample),
    };
    let described = format!(
        "{} Hz, {channels} channel{}, {format}",
        spec.sample_rate,
        if channels == 1 { "" } else { "s" },
    );
    if spec.sample_rate < RATE {
        return Err(format!(
            "{described}; at least {RATE} Hz is needed (record again at {RATE} Hz or more)"
        ));
    }
    let seconds = reader.duration() as f64 / spec.sample_rate as f64;
    if seconds < min_s {
        return Err(format!(
            "{seconds:.2} s of audio; at least {min_s} s is needed"
        ));
    }
    if seconds > max_s {
        return Err(format!(
            "{seconds:.1} s of audio; at most {max_s} s per utterance"
        ));
    }
    let corrupt = |e: hound::Error| format!("{described}: truncated or corrupt WAV data: {e}");
    let native = spec.sample_rate == RATE
        && channels == 1
        && spec.bits_per_sample == 16
        && spec.sample_format == hound::SampleFormat::Int;
    if native {
        let pcm = reader
            .samples::<i16>()
            .collect::<Result<Vec<i16>, _>>()
            .map_err(corrupt)?;
        return Ok((pcm, None));
    }
    let samples: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => reader
            .samples::<f32>()
            .collect::<Result<_, _>>()
            .map_err(corrupt)?,
        hound::SampleFormat::Int => {
            let scale = (1i64 << (spec.bits_per_sample.clamp(1, 32) - 1)) as f32;
            reader
                .samples::<i32>()
                .map(|s| s.map(|v| v as f32 / scale))
                .collect::<Result<_, _>>()
                .map_err(corrupt)?
        }
    };
    let mono = crate::audio::downmix(&samples, channels as usize);
    let pcm = crate::audio::Resampler::new(spec.sample_rate, RATE)
        .push(&mono)
        .into_iter()
        .map(crate::audio::f32_to_i16)
        .collect();
    Ok((pcm, Some(format!("{described} → {RATE} Hz mono 16-bit"))))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn wav(rate: u32, channels: u16, bits: u16, frames: usize) -> String {
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: bits,
            sample_format: hound::SampleFormat::Int,
        };
        let mut buf = Cursor::new(Vec::new());
        let mut w = hound::WavWriter::new(&mut buf, spec).unwrap();
        for i in 0..frames * channels as usize {
            let scale = if bits == 8 { 1 } else { 100 };
            w.write_sample(((i % 100) as i32 - 50) * scale).unwrap();
        }
        w.finalize().unwrap();
        base64::engine::general_purpose::STANDARD.encode(buf.into_inner())
    }

    fn req(files: &[(&str, String)]) -> EnrollRequest {
        EnrollRequest {
            utterances: files
                .iter()
                .map(|(f, b)| Utterance {
                    file: (*f).into(),
                    wav_base64: b.clone(),
                })
                .collect(),
            add: false,
        }
    }

    #[test]
    fn native_wavs_decode_unchanged() {
        let d = decode(&req(&[
            ("a.wav", wav(16_000, 1, 16, 16_000)),
            ("b.wav", wav(16_000, 1, 16, 8_000)),
        ]))
        .unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].pcm.len(), 16_000);
        assert_eq!(d[1].pcm.len(), 8_000);
        assert_eq!(d[0].pcm[1], -4900);
        assert!(d[0].converted.is_none() && d[1].converted.is_none());
    }

    #[test]
    fn other_rates_and_channels_are_converted_and_said_so() {
        let d = decode(&req(&[
            ("phone.wav", wav(44_100, 2, 16, 44_100)),
            ("espeak.wav", wav(22_050, 1, 16, 22_050)),
            ("eight.wav", wav(16_000, 1, 8, 16_000)),
        ]))
        .unwrap();
        for x in &d {
            assert!((x.pcm.len() as i64 - 16_000).abs() <= 2, "{}", x.pcm.len());
        }
        assert_eq!(
            d[0].converted.as_deref(),
            Some(
                "utterance 1 (phone.wav): 44100 Hz, 2 channels, 16-bit integer → 16000 Hz mono 16-bit"
            )
        );
        assert!(
            d[1].converted
                .as_deref()
                .unwrap()
                .contains("22050 Hz, 1 channel,")
        );
        assert!(d[2].converted.as_deref().unwrap().contains("8-bit integer"));
    }

    #[test]
    fn low_rate_names_the_file_and_its_format() {
        let e = decode(&req(&[
            ("a.wav", wav(16_000, 1, 16, 16_000)),
            ("call.wav", wav(8_000, 2, 16, 8_000)),
        ]))
        .unwrap_err();
        assert_eq!(e.field, "utterances[2]");
        assert!(
            e.message.starts_with(
                "utterance 2 (call.wav): 8000 Hz, 2 channels, 16-bit integer; at least 16000 Hz is needed"
            ),
            "{e}"
        );
    }

    #[test]
    fn garbage_short_long_and_counts_are_refused() {
        let e = decode(&req(&[(
            "notes.txt",
            base64::engine::general_purpose::STANDARD.encode("hello"),
        )]))
        .unwrap_err();
        assert!(
            e.message
                .starts_with("utterance 1 (notes.txt): not a WAV file"),
            "{e}"
        );
        let e = decode(&req(&[("a", "***".into())])).unwrap_err();
        assert!(e.message.contains("not base64"), "{e}");
        let e = decode(&req(&[("short.wav", wav(16_000, 1, 16, 1_000))])).unwrap_err();
        assert!(e.message.contains("0.06 s of audio; at least 0.5 s"), "{e}");
        let e = decode(&req(&[("", wav(48_000, 1, 16, 48_000 * 31))])).unwrap_err();
        assert!(
            e.message
                .starts_with("utterance 1: 31.0 s of audio; at most 30 s"),
            "{e}"
        );
        assert_eq!(decode(&req(&[])).unwrap_err().field, "utterances");
        let many: Vec<(&str, String)> = (0..21).map(|_| ("a", String::new())).collect();
        assert!(
            decode(&req(&many))
                .unwrap_err()
                .message
                .contains("at most 20")
        );
        // WAVs cut short inside their data chunk, native and converted
        for rate in [16_000, 44_100] {
            let mut bytes = base64::engine::general_purpose::STANDARD
                .decode(wav(rate, 1, 16, rate as usize))
                .unwrap();
            bytes.truncate(bytes.len() / 2);
            let cut = base64::engine::general_purpose::STANDARD.encode(bytes);
            let e = decode(&req(&[("cut.wav", cut)])).unwrap_err();
            assert!(e.message.starts_with("utterance 1 (cut.wav): "), "{e}");
            assert!(e.message.contains("truncated or corrupt"), "{e}");
        }
    }

    #[test]
    fn names() {
        assert!(check_name("alice").is_ok());
        assert!(check_name("Zoë-2.b_c").is_ok());
        assert_eq!(check_name("").unwrap_err().field, "name");
        assert!(
            check_name("a/b")
                .unwrap_err()
                .message
                .contains("'/' is not allowed")
        );
        assert!(check_name("a b").is_err());
        assert!(check_name(".hidden").is_err());
        assert!(
            check_name("Guest")
                .unwrap_err()
                .message
                .contains("unknown voice")
        );
        assert!(check_name(&"x".repeat(65)).is_err());
    }
}
