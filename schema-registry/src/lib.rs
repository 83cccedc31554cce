//! Fjord's Confluent-compatible schema registry.
//!
//! In progress (issue 5). Here today: the registry state machine
//! (`registry`: subjects, versions, content-addressed ids, soft and
//! permanent deletes, references, configs and modes, with the records it
//! writes to `_schemas` and their replay), its values (`model`) and its
//! errors with Confluent's codes (`error`). Still to come: the REST API
//! (axum), the Avro and JSON Schema compatibility checkers behind
//! `registry::CompatChecker`, the store over the broker's log, and
//! broker-side validation. Nothing is served yet.

pub mod compat;
pub mod error;
pub mod model;
pub mod registry;

#[cfg(test)]
mod tests;
