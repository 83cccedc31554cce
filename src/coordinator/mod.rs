//! Coordinators: the group coordinator as a deterministic state machine
//! (`machine`, `group`), the records it persists (`records`), and the
//! runtime that writes those records to `__consumer_offsets`, answers
//! waiting requests once they are durable, runs the timers and replays the
//! partition at start-up (`runtime`).

pub mod consumer;
pub mod effects;
pub mod group;
pub mod machine;
pub mod records;
pub mod runtime;

/// The internal topic holding groups and committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

#[cfg(test)]
mod tests;
