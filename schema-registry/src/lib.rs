//! Fjord's Confluent-compatible schema registry.
//!
//! `registry` is the state machine (subjects, versions, content-addressed
//! ids, deletes, references, configs, modes) with the records it writes to
//! `_schemas` and their replay; `compat` validates schemas and checks
//! compatibility (Avro by Apache Avro's Java rules, JSON Schema by
//! Confluent's SchemaDiff); `service` puts the state machine behind a lock
//! over a durable `store`; `http` is the Confluent REST API (axum). The
//! crate knows nothing of the broker: the broker supplies a `Store` over
//! its log and serves `http::router`.

pub mod compat;
pub mod error;
pub mod http;
pub mod model;
pub mod registry;
pub mod service;
pub mod store;

#[cfg(test)]
mod tests;
