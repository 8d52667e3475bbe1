//! barnabee-voice: the kitchen microphone to a spoken answer, every stage timed.
//!
//! - [`audio`]: `AudioSource` / `AudioSink` traits with a cpal (ALSA) backend and a WAV/file
//!   backend driven by a clock the tests control.
//! - [`pipeline`]: the state machine idle → wake detected → capturing → endpointed →
//!   transcribing → thinking → speaking → idle, with barge-in.
//! - [`wyoming`]: a Wyoming client (wake word, VAD, STT, TTS on the beast's barnabee-inference).
//! - [`latency`]: per-request stage breakdowns, logs and metrics; [`arbitration`]: multi-device
//!   wake arbitration; [`speaker`]: speaker identification against barnabee-memory's centroids.
//!
//! ## Not built yet
//!
//! - **Local mode** (wake word and VAD with ort on the beelink CPU). It must share
//!   barnabee-inference's processing code (`vad`, `wake`), not copy it: the plan is a library
//!   dependency on those modules, then extracting them into a shared `crates/` library (the
//!   documented exception to "daemons don't depend on each other"). Only `remote` works today.
//! - `barnabee voice enroll NAME WAV...` (the CLI side of speaker enrolment).

pub mod api;
pub mod arbitration;
pub mod audio;
pub mod config;
pub mod latency;
pub mod pipeline;
pub mod speaker;
pub mod wyoming;

pub use config::Config;

use std::time::Duration;

use barnabee_service::{Check, Runtime};

use crate::audio::cpal::{CpalSink, CpalSource};
use crate::latency::VoiceMetrics;
use crate::pipeline::{Pipeline, Shared};

/// The daemon: health components, the microphone loop (retrying a missing device), the API.
pub async fn run(cfg: Config, rt: Runtime) -> anyhow::Result<()> {
    let metrics = VoiceMetrics::new(rt.metrics());
    let health = rt.health();
    let inference = health.component(
        "inference",
        if cfg.inference.wyoming.is_empty() {
            Check::fail("inference not configured ([inference] wyoming is empty)").non_critical()
        } else if cfg.inference.mode != "remote" {
            Check::fail(format!(
                "inference mode {:?} is not built; only \"remote\" works",
                cfg.inference.mode
            ))
            .non_critical()
        } else {
            Check::ok(format!(
                "Wyoming at {} (not contacted yet)",
                cfg.inference.wyoming
            ))
            .non_critical()
        },
    );
    health.component(
        "agents",
        if cfg.agents.url.is_empty() {
            Check::fail("agents not configured ([agents] url is empty)").non_critical()
        } else {
            Check::ok(cfg.agents.url.clone()).non_critical()
        },
    );
    let audio = health.component(
        "audio",
        Check::fail("no audio device: not opened yet").non_critical(),
    );
    let shared = Shared::new(
        cfg.pipeline.keep_breakdowns,
        metrics,
        Some(inference.clone()),
    );
    let arbiter = arbitration::Arbiter::new(Duration::from_millis(cfg.arbitration.window_ms));
    if !cfg.audio.enabled {
        audio.ok("disabled ([audio] enabled = false)");
    } else {
        let stop = rt.shutdown();
        let shared = shared.clone();
        let cfg = cfg.clone();
        tokio::spawn(async move {
            loop {
                let opened = tokio::task::spawn_blocking({
                    let a = cfg.audio.clone();
                    move || {
                        Ok::<_, audio::AudioError>((
                            CpalSource::open(&a.input_device)?,
                            CpalSink::open(&a.output_device)?,
                        ))
                    }
                })
                .await;
                let reason = match opened {
                    Ok(Ok((src, sink))) => {
                        audio.ok(format!(
                            "capture {:?}, playback {:?}",
                            cfg.audio.input_device, cfg.audio.output_device
                        ));
                        if cfg.inference.wyoming.is_empty() || cfg.inference.mode != "remote" {
                            // nothing to run the pipeline against; keep the device open
                            stop.wait().await;
                            return;
                        }
                        let mut p = Pipeline::new(
                            cfg.inference.clone(),
                            cfg.agents.clone(),
                            cfg.pipeline.clone(),
                            shared.clone(),
                            src,
                            sink,
                        );
                        if !cfg.arbitration.coordinator.is_empty() {
                            p.coordinator = Some(cfg.arbitration.coordinator.clone());
                        }
                        if cfg.speaker.enabled {
                            p.speaker = Some(speaker::SpeakerId::new(cfg.speaker.clone()));
                        }
                        match p.run(Some(stop.clone())).await {
                            Ok(()) => return,
                            Err(e) => e,
                        }
                    }
                    Ok(Err(e)) => e.to_string(),
                    Err(e) => e.to_string(),
                };
                log::warn!(event = "no_audio_device"; "{reason}; retrying in {} s", cfg.audio.retry.as_secs());
                audio.fail(if reason.starts_with("no audio device") {
                    reason
                } else {
                    format!("no audio device: {reason}")
                });
                tokio::select! {
                    _ = stop.wait() => return,
                    _ = tokio::time::sleep(cfg.audio.retry) => {}
                }
            }
        });
    }
    rt.status("serving");
    rt.serve(api::router(api::ApiState { shared, arbiter }))
        .await?;
    Ok(())
}
