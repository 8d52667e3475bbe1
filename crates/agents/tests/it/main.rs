//! Integration tests: the real barnabee-agents binary against real or test peers.
//! One test binary so everything links once.

mod api;
mod common;
mod credentials;
mod guard;
mod ha;
mod llm;
mod memory;
mod replication;
mod wyoming;
