//! barnabee-inference tests: real Silero VAD and openWakeWord models on espeak-ng speech,
//! the generated stand-in STT/TTS/speaker/text models, the real Whisper tiny.en (converted by
//! dev/setup), the daemon over HTTP, and the Wyoming
//! server against the PyPI `wyoming` package's client (1.5.4, 1.7.2, 1.10.2).

#![allow(clippy::unwrap_used)]

mod common;
mod daemon;
mod gpu;
mod models;
mod whisper;
mod wyoming;
