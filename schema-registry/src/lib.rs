//! Fjord's Confluent-compatible schema registry.
//!
//! Not implemented yet: issue 5 fills this crate (REST API over axum, Avro and
//! JSON Schema compatibility, state in the broker's `_schemas` topic). It is
//! an empty crate today so that the workspace layout is fixed from the start;
//! nothing here pretends to work.
