//! Audio in and out: RIFF/WAVE 16-bit PCM parsing, raw s16le, conversion to 16 kHz mono, and
//! WAV writing.

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum WavError {
    #[error("not a RIFF/WAVE file")]
    NotWav,
    #[error("WAV format {0} is not supported (16-bit PCM only)")]
    Format(String),
    #[error("WAV file is truncated (no data chunk)")]
    NoData,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pcm {
    pub rate: u32,
    pub channels: u16,
    pub samples: Vec<i16>,
}

/// Parse a 16-bit PCM WAV.
pub fn parse(bytes: &[u8]) -> Result<Pcm, WavError> {
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(WavError::NotWav);
    }
    let mut pos = 12;
    let mut fmt: Option<(u16, u16, u32, u16)> = None;
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let size = u32::from_le_bytes([
            bytes[pos + 4],
            bytes[pos + 5],
            bytes[pos + 6],
            bytes[pos + 7],
        ]) as usize;
        let body = pos + 8;
        let end = body.saturating_add(size).min(bytes.len());
        if id == b"fmt " && end >= body + 16 {
            let b = &bytes[body..end];
            fmt = Some((
                u16::from_le_bytes([b[0], b[1]]),
                u16::from_le_bytes([b[2], b[3]]),
                u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
                u16::from_le_bytes([b[14], b[15]]),
            ));
        } else if id == b"data" {
            let (tag, channels, rate, bits) = fmt.ok_or(WavError::NoData)?;
            if !(tag == 1 || tag == 0xFFFE) || bits != 16 || channels == 0 || rate == 0 {
                return Err(WavError::Format(format!(
                    "tag {tag}, {bits} bits, {channels} channels, {rate} Hz"
                )));
            }
            let samples = bytes[body..end]
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]))
                .collect();
            return Ok(Pcm {
                rate,
                channels,
                samples,
            });
        }
        pos = body + size + (size & 1);
    }
    Err(WavError::NoData)
}

/// Raw little-endian 16-bit samples.
pub fn from_s16le(bytes: &[u8]) -> Vec<i16> {
    bytes
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect()
}

pub fn to_s16le(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

/// Downmix to mono and resample (linear interpolation) to `rate`.
pub fn to_mono_rate(pcm: &Pcm, rate: u32) -> Vec<i16> {
    let ch = usize::from(pcm.channels.max(1));
    let mono: Vec<f32> = pcm
        .samples
        .chunks_exact(ch)
        .map(|f| f.iter().map(|&s| f32::from(s)).sum::<f32>() / ch as f32)
        .collect();
    if pcm.rate == rate || mono.is_empty() {
        return mono.iter().map(|&s| s as i16).collect();
    }
    let ratio = f64::from(pcm.rate) / f64::from(rate);
    let n = ((mono.len() as f64) / ratio).floor() as usize;
    (0..n)
        .map(|i| {
            let x = i as f64 * ratio;
            let j = x.floor() as usize;
            let f = (x - j as f64) as f32;
            let a = mono[j.min(mono.len() - 1)];
            let b = mono[(j + 1).min(mono.len() - 1)];
            (a + (b - a) * f) as i16
        })
        .collect()
}

/// A 16-bit mono WAV header for a stream of unknown length (RIFF and data sizes 0xFFFFFFFF,
/// which players and [`parse`] read as "until the end").
pub fn streaming_header(rate: u32) -> Vec<u8> {
    let mut h = write(&[], rate);
    h[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    h[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
    h
}

/// A 16-bit mono WAV file.
pub fn write(samples: &[i16], rate: u32) -> Vec<u8> {
    let data = to_s16le(samples);
    let mut out = Vec::with_capacity(44 + data.len());
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&data);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn round_trip_and_resample() {
        let s: Vec<i16> = (0..22050).map(|i| ((i % 100) * 100) as i16).collect();
        let w = write(&s, 22050);
        let p = parse(&w).unwrap();
        assert_eq!(p.samples, s);
        assert_eq!(p.rate, 22050);
        assert_eq!(to_mono_rate(&p, 16000).len(), 16000);
        assert_eq!(parse(b"garbage!garbage!"), Err(WavError::NotWav));
    }
}
