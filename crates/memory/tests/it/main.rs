//! Integration tests: the real `barnabee-memory` binary over HTTP and on the command line.
//! One test binary (so it links once); one module per area.
#![allow(clippy::unwrap_used)]
#![allow(clippy::disallowed_methods)] // tests build their own HTTP clients (clippy.toml)

#[path = "../common/mod.rs"]
mod common;

mod api;
mod compat;
mod crash;
mod import;
mod replication;
mod verify;
mod verify_faults;
