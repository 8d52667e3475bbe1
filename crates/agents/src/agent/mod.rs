//! The four agents the router dispatches to. Each returns a spoken reply and what it did.

pub mod action;
pub mod instant;
pub mod interaction;
pub mod memory;
pub mod timers;

use serde::Serialize;

/// One device action, as reported in `actions[]`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ActionRecord {
    pub entity_id: String,
    pub name: String,
    /// `light.turn_on`; empty when no service was called.
    pub service: String,
    /// The device reached (or already was in) the requested state.
    pub ok: bool,
    pub state_before: String,
    pub state_after: String,
    /// done, already, moving, not_confirmed, error
    pub outcome: &'static str,
}
