//! The cpal backend (ALSA on Linux). Each stream lives on its own thread (cpal streams are
//! not guaranteed `Send`); dropping the source or sink stops the thread and the stream.
//!
//! Capture asks for the device's default config (rate, channels, i16 or f32) and converts to
//! 16 kHz mono here, so any card works. Playback opens the device at the TTS rate when it can,
//! else at its default rate with resampling.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};

use super::{
    AudioError, AudioSink, AudioSource, FRAME_SAMPLES, Framer, RATE, Resampler, downmix, f32_to_i16,
};

fn device_name(d: &cpal::Device) -> String {
    d.id()
        .map(|i| i.id().to_owned())
        .or_else(|_| d.description().map(|x| x.name().to_owned()))
        .unwrap_or_else(|_| "?".into())
}

/// Names of the devices able to capture (`input`) or play.
pub fn list_devices(input: bool) -> Vec<String> {
    let host = cpal::default_host();
    let devs = if input {
        host.input_devices().map(|d| d.collect::<Vec<_>>())
    } else {
        host.output_devices().map(|d| d.collect::<Vec<_>>())
    };
    devs.map(|v| v.iter().map(device_name).collect())
        .unwrap_or_default()
}

fn no_device(input: bool, device: &str, reason: String) -> AudioError {
    let available = list_devices(input);
    AudioError::NoDevice {
        direction: if input { "input" } else { "output" },
        device: device.to_owned(),
        reason,
        available: if available.is_empty() {
            "none".into()
        } else {
            available.join(", ")
        },
    }
}

/// Find a device by its ALSA id (`default`, `hw:CARD=…`, `null`) or its description.
fn find(input: bool, name: &str) -> Result<cpal::Device, AudioError> {
    let host = cpal::default_host();
    let devs = if input {
        host.input_devices()
    } else {
        host.output_devices()
    }
    .map_err(|e| no_device(input, name, e.to_string()))?;
    for d in devs {
        let id = d.id().map(|i| i.id().to_owned()).unwrap_or_default();
        let desc = d
            .description()
            .map(|x| x.name().to_owned())
            .unwrap_or_default();
        if id == name || desc == name {
            return Ok(d);
        }
    }
    Err(no_device(input, name, "no such device".into()))
}

/// Runs `open` on a dedicated thread that keeps the stream alive until the guard drops.
struct StreamThread {
    _stop: std::sync::mpsc::Sender<()>,
}

fn spawn_stream<F>(open: F) -> Result<StreamThread, AudioError>
where
    F: FnOnce() -> Result<cpal::Stream, AudioError> + Send + 'static,
{
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("barnabee-audio".into())
        .spawn(move || match open() {
            Ok(stream) => {
                let _ = ready_tx.send(Ok(()));
                let _ = stop_rx.recv(); // until the guard drops
                drop(stream);
            }
            Err(e) => {
                let _ = ready_tx.send(Err(e));
            }
        })
        .map_err(|e| AudioError::Stream {
            device: "?".into(),
            reason: format!("cannot start the audio thread: {e}"),
        })?;
    ready_rx.recv().map_err(|_| AudioError::Stream {
        device: "?".into(),
        reason: "audio thread ended before opening the stream".into(),
    })??;
    Ok(StreamThread { _stop: stop_tx })
}

/// Microphone capture as 16 kHz mono frames.
pub struct CpalSource {
    rx: tokio::sync::mpsc::Receiver<Vec<i16>>,
    device: String,
    _thread: StreamThread,
}

impl CpalSource {
    pub fn open(name: &str) -> Result<CpalSource, AudioError> {
        // ~10 s of frames; the callback drops frames rather than block when the pipeline lags
        let (tx, rx) = tokio::sync::mpsc::channel::<Vec<i16>>(128);
        let dev_name = name.to_owned();
        let thread = spawn_stream(move || {
            let dev = find(true, &dev_name)?;
            let cfg = dev
                .default_input_config()
                .map_err(|e| no_device(true, &dev_name, e.to_string()))?;
            let channels = cfg.channels() as usize;
            let rate = cfg.sample_rate();
            let format = cfg.sample_format();
            let stream_cfg = cfg.config();
            let state = Arc::new(Mutex::new((Resampler::new(rate, RATE), Framer::default())));
            let deliver = move |mono: Vec<f32>| {
                let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
                let (rs, fr) = &mut *st;
                let pcm: Vec<i16> = rs.push(&mono).into_iter().map(f32_to_i16).collect();
                for f in fr.push(&pcm) {
                    let _ = tx.try_send(f);
                }
            };
            let err_name = dev_name.clone();
            let on_err = move |e: cpal::Error| log::warn!(device = err_name.as_str(); "audio capture error on {err_name}: {e}");
            let stream = match format {
                cpal::SampleFormat::I16 => dev.build_input_stream::<i16, _, _>(
                    stream_cfg,
                    move |d: &[i16], _| {
                        let f: Vec<f32> = d.iter().map(|x| *x as f32 / 32768.0).collect();
                        deliver(downmix(&f, channels))
                    },
                    on_err,
                    None,
                ),
                cpal::SampleFormat::F32 => dev.build_input_stream::<f32, _, _>(
                    stream_cfg,
                    move |d: &[f32], _| deliver(downmix(d, channels)),
                    on_err,
                    None,
                ),
                other => {
                    return Err(AudioError::Stream {
                        device: dev_name,
                        reason: format!("unsupported sample format {other:?} (i16 or f32 only)"),
                    });
                }
            }
            .map_err(|e| no_device(true, &dev_name, e.to_string()))?;
            stream.play().map_err(|e| AudioError::Stream {
                device: dev_name.clone(),
                reason: e.to_string(),
            })?;
            log::info!(device = dev_name.as_str(), rate = rate, channels = channels; "capturing from {dev_name} at {rate} Hz, {channels} ch, {format:?}");
            Ok(stream)
        })?;
        Ok(CpalSource {
            rx,
            device: name.to_owned(),
            _thread: thread,
        })
    }
}

impl AudioSource for CpalSource {
    async fn read_frame(&mut self) -> Result<Option<Vec<i16>>, AudioError> {
        match self.rx.recv().await {
            Some(f) => {
                debug_assert_eq!(f.len(), FRAME_SAMPLES);
                Ok(Some(f))
            }
            None => Err(AudioError::Stream {
                device: self.device.clone(),
                reason: "capture stream ended".into(),
            }),
        }
    }
    fn discard_pending(&mut self) {
        while self.rx.try_recv().is_ok() {}
    }
}

/// Speaker playback. The stream is (re)opened per utterance rate.
pub struct CpalSink {
    device: String,
    queue: Arc<Mutex<VecDeque<f32>>>,
    open_rate: Option<(u32, u32)>, // (tts rate, device rate)
    resampler: Resampler,
    thread: Option<StreamThread>,
}

impl CpalSink {
    /// Check the device exists now (a clear error at start-up); the stream opens on `start`.
    pub fn open(name: &str) -> Result<CpalSink, AudioError> {
        let dev = find(false, name)?;
        dev.default_output_config()
            .map_err(|e| no_device(false, name, e.to_string()))?;
        Ok(CpalSink {
            device: name.to_owned(),
            queue: Arc::default(),
            open_rate: None,
            resampler: Resampler::new(RATE, RATE),
            thread: None,
        })
    }

    fn open_stream(&mut self, tts_rate: u32) -> Result<(), AudioError> {
        let name = self.device.clone();
        let queue = self.queue.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = spawn_stream(move || {
            let dev = find(false, &name)?;
            let def = dev
                .default_output_config()
                .map_err(|e| no_device(false, &name, e.to_string()))?;
            // prefer the TTS rate (no resampling); else the device default
            let rate = dev
                .supported_output_configs()
                .ok()
                .and_then(|mut it| {
                    it.find(|r| {
                        r.sample_format() == cpal::SampleFormat::F32
                            && r.min_sample_rate() <= tts_rate
                            && r.max_sample_rate() >= tts_rate
                    })
                })
                .map(|_| tts_rate)
                .unwrap_or(def.sample_rate());
            let channels = def.channels() as usize;
            let cfg = cpal::StreamConfig {
                channels: def.channels(),
                sample_rate: rate,
                buffer_size: cpal::BufferSize::Default,
            };
            let _ = tx.send(rate);
            let err_name = name.clone();
            let stream = dev
                .build_output_stream::<f32, _, _>(
                    cfg,
                    move |out: &mut [f32], _| {
                        let mut q = queue.lock().unwrap_or_else(|e| e.into_inner());
                        for frame in out.chunks_mut(channels) {
                            let v = q.pop_front().unwrap_or(0.0);
                            frame.fill(v);
                        }
                    },
                    move |e| log::warn!("audio playback error on {err_name}: {e}"),
                    None,
                )
                .map_err(|e| no_device(false, &name, e.to_string()))?;
            stream.play().map_err(|e| AudioError::Stream {
                device: name.clone(),
                reason: e.to_string(),
            })?;
            Ok(stream)
        })?;
        let dev_rate = rx.recv().unwrap_or(tts_rate);
        self.thread = Some(thread);
        self.open_rate = Some((tts_rate, dev_rate));
        self.resampler = Resampler::new(tts_rate, dev_rate);
        Ok(())
    }
}

impl AudioSink for CpalSink {
    fn start(&mut self, rate: u32) -> Result<(), AudioError> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).clear();
        match self.open_rate {
            Some((r, dev)) if r == rate => {
                self.resampler = Resampler::new(r, dev);
                Ok(())
            }
            _ => {
                self.thread = None;
                self.open_stream(rate)
            }
        }
    }
    fn write(&mut self, pcm: &[i16]) -> Result<(), AudioError> {
        let f: Vec<f32> = pcm.iter().map(|x| *x as f32 / 32768.0).collect();
        let out = self.resampler.push(&f);
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(out);
        Ok(())
    }
    fn finish(&mut self) -> Result<(), AudioError> {
        Ok(())
    }
    fn stop(&mut self) {
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}
