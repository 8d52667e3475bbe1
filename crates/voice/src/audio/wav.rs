//! The file backend: a WAV source paced by a [`Clock`] and a WAV file sink.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{
    AudioError, AudioSink, AudioSource, Clock, FRAME, FRAME_SAMPLES, RATE, Resampler, downmix,
    f32_to_i16,
};

/// Read a WAV file (any rate, any channel count, 8/16/24/32-bit int or float) as 16 kHz mono.
pub fn read_16k_mono(path: &Path) -> Result<Vec<i16>, AudioError> {
    let err = |reason: String| AudioError::File {
        path: path.display().to_string(),
        reason,
    };
    let mut r = hound::WavReader::open(path).map_err(|e| err(e.to_string()))?;
    let spec = r.spec();
    let samples: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => r
            .samples::<f32>()
            .collect::<Result<_, _>>()
            .map_err(|e| err(e.to_string()))?,
        hound::SampleFormat::Int => {
            let scale = (1i64 << (spec.bits_per_sample - 1)) as f32;
            r.samples::<i32>()
                .map(|s| s.map(|v| v as f32 / scale))
                .collect::<Result<_, _>>()
                .map_err(|e| err(e.to_string()))?
        }
    };
    let mono = downmix(&samples, spec.channels as usize);
    let out = Resampler::new(spec.sample_rate, RATE).push(&mono);
    Ok(out.into_iter().map(f32_to_i16).collect())
}

/// Write mono i16 PCM as a WAV file.
pub fn write_wav(path: &Path, rate: u32, pcm: &[i16]) -> Result<(), AudioError> {
    let err = |e: hound::Error| AudioError::File {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).map_err(err)?;
    for s in pcm {
        w.write_sample(*s).map_err(err)?;
    }
    w.finalize().map_err(err)
}

/// Plays PCM (from a WAV file or memory) as frames, paced by a clock, then `trailing` of
/// silence, then ends.
pub struct WavSource {
    pcm: Vec<i16>,
    pos: usize,
    frames: u64,
    clock: Clock,
    start: Option<tokio::time::Instant>,
}

impl WavSource {
    pub fn open(path: &Path, clock: Clock, trailing: Duration) -> Result<WavSource, AudioError> {
        Ok(WavSource::from_pcm(read_16k_mono(path)?, clock, trailing))
    }
    pub fn from_pcm(mut pcm: Vec<i16>, clock: Clock, trailing: Duration) -> WavSource {
        pcm.extend(std::iter::repeat_n(
            0i16,
            (trailing.as_secs_f64() * RATE as f64) as usize,
        ));
        WavSource {
            pcm,
            pos: 0,
            frames: 0,
            clock,
            start: None,
        }
    }
}

impl AudioSource for WavSource {
    async fn read_frame(&mut self) -> Result<Option<Vec<i16>>, AudioError> {
        if self.pos >= self.pcm.len() {
            return Ok(None);
        }
        // frame k is available once the clock has passed its end
        let due = FRAME * (self.frames as u32 + 1);
        match &self.clock {
            Clock::System => {
                let start = *self.start.get_or_insert_with(tokio::time::Instant::now);
                tokio::time::sleep_until(start + due).await;
            }
            Clock::Manual(c) => c.until(due).await,
        }
        let end = (self.pos + FRAME_SAMPLES).min(self.pcm.len());
        let mut f = self.pcm[self.pos..end].to_vec();
        f.resize(FRAME_SAMPLES, 0);
        self.pos = end;
        self.frames += 1;
        Ok(Some(f))
    }
}

/// What a [`WavFileSink`] has played, for tests to inspect.
#[derive(Debug, Default, Clone)]
pub struct Played {
    /// One entry per utterance: (rate, samples, stopped early by barge-in).
    pub utterances: Vec<(u32, Vec<i16>, bool)>,
}

/// Writes each utterance to `dir/utterance-N.wav` and keeps a copy in memory.
#[derive(Clone)]
pub struct WavFileSink {
    dir: PathBuf,
    cur: Option<(u32, Vec<i16>)>,
    played: Arc<Mutex<Played>>,
}

impl WavFileSink {
    pub fn new(dir: &Path) -> WavFileSink {
        WavFileSink {
            dir: dir.to_path_buf(),
            cur: None,
            played: Arc::default(),
        }
    }
    pub fn played(&self) -> Played {
        self.played
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
    fn close(&mut self, stopped: bool) -> Result<(), AudioError> {
        if let Some((rate, pcm)) = self.cur.take() {
            let mut p = self.played.lock().unwrap_or_else(|e| e.into_inner());
            let path = self
                .dir
                .join(format!("utterance-{}.wav", p.utterances.len() + 1));
            write_wav(&path, rate, &pcm)?;
            p.utterances.push((rate, pcm, stopped));
        }
        Ok(())
    }
}

impl AudioSink for WavFileSink {
    fn start(&mut self, rate: u32) -> Result<(), AudioError> {
        self.close(false)?;
        self.cur = Some((rate, Vec::new()));
        Ok(())
    }
    fn write(&mut self, pcm: &[i16]) -> Result<(), AudioError> {
        if let Some((_, buf)) = self.cur.as_mut() {
            buf.extend_from_slice(pcm);
        }
        Ok(())
    }
    fn finish(&mut self) -> Result<(), AudioError> {
        self.close(false)
    }
    fn stop(&mut self) {
        let _ = self.close(true);
    }
}

/// Keeps each utterance in memory (rate, samples, stopped early): the speaker of
/// `POST /v1/say`, whose answer carries the reply as a WAV and writes no file (a daemon writes
/// only in its state directory, and this audio belongs to the caller).
#[derive(Debug, Default)]
pub struct MemorySink {
    cur: Option<(u32, Vec<i16>)>,
    played: Played,
}

impl MemorySink {
    pub fn played(&self) -> &Played {
        &self.played
    }
    fn close(&mut self, stopped: bool) {
        if let Some((rate, pcm)) = self.cur.take() {
            self.played.utterances.push((rate, pcm, stopped));
        }
    }
}

impl AudioSink for MemorySink {
    fn start(&mut self, rate: u32) -> Result<(), AudioError> {
        self.close(false);
        self.cur = Some((rate, Vec::new()));
        Ok(())
    }
    fn write(&mut self, pcm: &[i16]) -> Result<(), AudioError> {
        if let Some((_, buf)) = self.cur.as_mut() {
            buf.extend_from_slice(pcm);
        }
        Ok(())
    }
    fn finish(&mut self) -> Result<(), AudioError> {
        self.close(false);
        Ok(())
    }
    fn stop(&mut self) {
        self.close(true);
    }
}

/// Mono i16 PCM at `rate` as the bytes of a 16-bit WAV file.
pub fn wav_bytes(rate: u32, pcm: &[i16]) -> Vec<u8> {
    let data_len = (pcm.len() * 2) as u32;
    let mut b = Vec::with_capacity(44 + pcm.len() * 2);
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data_len).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes()); // PCM
    b.extend_from_slice(&1u16.to_le_bytes()); // mono
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * 2).to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data_len.to_le_bytes());
    for s in pcm {
        b.extend_from_slice(&s.to_le_bytes());
    }
    b
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::audio::ManualClock;

    #[test]
    fn wav_round_trip_resamples_to_16k_mono() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 22_050,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&p, spec).unwrap();
        for i in 0..22_050 {
            let v = ((i as f32 * 0.05).sin() * 10_000.0) as i16;
            w.write_sample(v).unwrap();
            w.write_sample(v).unwrap();
        }
        w.finalize().unwrap();
        let pcm = read_16k_mono(&p).unwrap();
        assert!((pcm.len() as i64 - 16_000).abs() <= 2, "{}", pcm.len());
        let max = pcm.iter().map(|x| x.unsigned_abs()).max().unwrap();
        assert!((9_000..=10_001).contains(&max), "{max}");
    }

    #[test]
    fn missing_wav_names_the_path() {
        let e = read_16k_mono(Path::new("/nonexistent/x.wav")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/x.wav"), "{e}");
    }

    #[tokio::test]
    async fn source_follows_the_manual_clock_and_ends() {
        let clock = ManualClock::new();
        let mut s = WavSource::from_pcm(
            vec![7; FRAME_SAMPLES + 10],
            Clock::Manual(clock.clone()),
            Duration::ZERO,
        );
        // nothing before the clock moves
        assert!(
            tokio::time::timeout(Duration::from_millis(30), s.read_frame())
                .await
                .is_err()
        );
        clock.advance(FRAME);
        let f = s.read_frame().await.unwrap().unwrap();
        assert_eq!(f.len(), FRAME_SAMPLES);
        clock.advance(FRAME);
        let f = s.read_frame().await.unwrap().unwrap();
        assert_eq!(&f[..10], &[7; 10]);
        assert_eq!(f[10], 0, "the last frame is padded with silence");
        assert!(s.read_frame().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn sink_writes_each_utterance_and_marks_barge_in() {
        let dir = tempfile::tempdir().unwrap();
        let mut k = WavFileSink::new(dir.path());
        k.start(22_050).unwrap();
        k.write(&[1, 2, 3]).unwrap();
        k.finish().unwrap();
        k.start(22_050).unwrap();
        k.write(&[4]).unwrap();
        k.stop();
        let p = k.played();
        assert_eq!(p.utterances.len(), 2);
        assert!(!p.utterances[0].2 && p.utterances[1].2);
        let back = hound::WavReader::open(dir.path().join("utterance-1.wav")).unwrap();
        assert_eq!(back.spec().sample_rate, 22_050);
        assert_eq!(back.len(), 3);
    }
}
