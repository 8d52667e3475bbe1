//! barnabee-inference tests: real Silero VAD and openWakeWord models on espeak-ng speech,
//! the generated stand-in STT/TTS/speaker/text models, the real Whisper tiny.en, Piper voice
//! en_US-joe-medium and GE2E speaker encoder (from dev/setup), the daemon over HTTP, and the Wyoming
//! server against the PyPI `wyoming` package's client (1.5.4, 1.7.2, 1.10.2).

#![allow(clippy::unwrap_used)]

mod common;
mod daemon;
mod gpu;
mod models;
mod real_voices;
mod whisper;
mod wyoming;
