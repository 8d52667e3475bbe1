//! barnabee-voice: the kitchen microphone to a spoken answer, every stage timed.
//!
//! - [`audio`]: `AudioSource` / `AudioSink` traits with a cpal (ALSA) backend and a WAV/file
//!   backend driven by a clock the tests control.
//! - [`pipeline`]: the state machine idle → wake detected → capturing → endpointed →
//!   transcribing → thinking → speaking → idle, with barge-in.
//! - [`wyoming`]: a Wyoming client (wake word, VAD, STT, TTS on the beast's barnabee-inference).
//! - [`latency`]: per-request stage breakdowns, logs and metrics; [`arbitration`]: multi-device
//!   wake arbitration; [`speaker`]: speaker identification against barnabee-memory's centroids;
//!   [`enroll`]: checking enrolment requests (`POST /v1/speakers/{name}/enroll`, sent by
//!   `barnabee voice enroll NAME WAV...`); [`say`]: `POST /v1/say`, a WAV file as the
//!   microphone and the answer as a WAV (`barnabee say request.wav`, for a machine with no
//!   sound card).
//!
//! ## Not built yet
//!
//! - A shared signal-processing library. **Local mode** (`[inference] mode = "local"`: wake
//!   word and VAD with ort on the beelink CPU; STT/TTS stay remote) uses barnabee-inference's
//!   own `registry`/`vad`/`wake` code through a library dependency ([`local`]): shared, not
//!   copied. That is the documented exception to "daemons don't depend on each other"; the
//!   planned follow-up is extracting those modules into a shared `crates/` library.

pub mod announce;
pub mod api;
pub mod arbitration;
pub mod audio;
pub mod config;
pub mod enroll;
pub mod latency;
pub mod local;
pub mod pipeline;
pub mod say;
pub mod speaker;
pub mod wyoming;

pub use config::Config;

use std::time::Duration;

use barnabee_service::{Check, Runtime};

use crate::audio::cpal::{CpalSink, CpalSource};
use crate::latency::VoiceMetrics;
use crate::pipeline::{Pipeline, Shared};

/// The daemon: health components, the microphone loop (retrying a missing device), the API.
pub async fn run(cfg: Config, config_dir: std::path::PathBuf, rt: Runtime) -> anyhow::Result<()> {
    let metrics = VoiceMetrics::new(rt.metrics());
    let health = rt.health();
    let inference = health.component(
        "inference",
        if cfg.inference.wyoming.is_empty() {
            Check::fail("inference not configured ([inference] wyoming is empty)").non_critical()
        } else if cfg.inference.mode != "remote" && cfg.inference.mode != "local" {
            Check::fail(format!(
                "inference mode {:?} is unknown (\"remote\" or \"local\")",
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
    // local wake word + VAD: load before serving (a failure is reported, the daemon stays up)
    let local_models = health.component(
        "local_models",
        Check::ok("not used (remote mode)").non_critical(),
    );
    let mut local_loaded: Option<local::Local> = None;
    if cfg.inference.mode == "local" {
        match &cfg.inference.local {
            None => local_models.fail("mode = \"local\" but [inference.local] is missing"),
            Some(lc) => {
                rt.extend_timeout(Duration::from_secs(60));
                let base = config_dir.clone();
                let names = cfg.inference.wake_words.clone();
                match tokio::task::block_in_place(|| local::Local::load(lc, &base, names)) {
                    Ok(l) => {
                        local_models.ok("wake word and VAD loaded on the CPU");
                        local_loaded = Some(l);
                    }
                    Err(e) => {
                        log::error!(event = "incident"; "{e}");
                        local_models.fail(e);
                    }
                }
            }
        }
    }
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
                        let mode_ok = cfg.inference.mode == "remote"
                            || (cfg.inference.mode == "local" && local_loaded.is_some());
                        if cfg.inference.wyoming.is_empty() || !mode_ok {
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
                        // the local models move into the pipeline and back when it stops
                        p.local = local_loaded.take();
                        if !cfg.arbitration.coordinator.is_empty() {
                            p.coordinator = Some(cfg.arbitration.coordinator.clone());
                        }
                        if cfg.speaker.enabled {
                            p.speaker = Some(speaker::SpeakerId::new(cfg.speaker.clone()));
                        }
                        let r = p.run(Some(stop.clone())).await;
                        local_loaded = p.local.take();
                        match r {
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
    let routes = api::router(api::ApiState {
        shared: shared.clone(),
        arbiter,
        device_id: cfg.pipeline.device_id.clone(),
    })
    .merge(api::enroll_router(cfg.speaker.clone()))
    .merge(say::router(say::SayState::new(&cfg, shared)));
    rt.serve(routes).await?;
    Ok(())
}
