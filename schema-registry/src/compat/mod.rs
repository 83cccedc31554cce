//! Validation and compatibility checkers behind `registry::CompatChecker`,
//! one per schema language.
//!
//! `avro` implements Apache Avro's Java `SchemaCompatibility` rules, which
//! Confluent uses; `json` implements Confluent's `SchemaDiff` rules for
//! JSON Schema. Referenced schemas come resolved (`Resolved::refs`), so
//! named types and `$ref`s that live in other subjects are checked too.

pub mod avro;
pub mod json;

use crate::model::{Compatibility, SchemaType};
use crate::registry::{CompatChecker, Resolved};

/// The registry's checker.
pub struct Rules;

fn avro_parse(s: &Resolved) -> Result<avro::Parsed, String> {
    let refs: Vec<&str> = s.refs.iter().map(|(_, text)| text.as_str()).collect();
    avro::parse(&s.schema.text, &refs)
}

fn json_parse(s: &Resolved) -> Result<json::Parsed, String> {
    let refs: Vec<(&str, &str)> = s
        .refs
        .iter()
        .map(|(name, text)| (name.as_str(), text.as_str()))
        .collect();
    json::parse(&s.schema.text, &refs)
}

/// Can data written with `old` be read with `new` (backward), in the
/// language of both? Reasons it cannot.
fn backward(new: &Resolved, old: &Resolved) -> Vec<String> {
    match (new.schema.schema_type, old.schema.schema_type) {
        (SchemaType::Avro, SchemaType::Avro) => match (avro_parse(new), avro_parse(old)) {
            (Ok(r), Ok(w)) => avro::incompatibilities(&r, &w),
            (Err(e), _) | (_, Err(e)) => vec![format!("cannot parse schema: {e}")],
        },
        (SchemaType::Json, SchemaType::Json) => match (json_parse(old), json_parse(new)) {
            (Ok(original), Ok(update)) => json::changes(&original, &update),
            (Err(e), _) | (_, Err(e)) => vec![format!("cannot parse schema: {e}")],
        },
        (a, b) => vec![format!(
            "schema type {} cannot evolve into {}",
            b.name(),
            a.name()
        )],
    }
}

impl CompatChecker for Rules {
    fn validate(&self, schema: &Resolved) -> Result<(), String> {
        match schema.schema.schema_type {
            SchemaType::Avro => avro_parse(schema).map(|_| ()),
            SchemaType::Json => json_parse(schema).map(|_| ()),
        }
    }

    fn check(&self, level: Compatibility, new: &Resolved, existing: &[Resolved]) -> Vec<String> {
        let backward_too = matches!(
            level,
            Compatibility::Backward
                | Compatibility::BackwardTransitive
                | Compatibility::Full
                | Compatibility::FullTransitive
        );
        let forward_too = matches!(
            level,
            Compatibility::Forward
                | Compatibility::ForwardTransitive
                | Compatibility::Full
                | Compatibility::FullTransitive
        );
        let mut problems = Vec::new();
        for old in existing {
            if backward_too {
                problems.extend(backward(new, old));
            }
            if forward_too {
                problems.extend(backward(old, new));
            }
        }
        problems
    }
}

#[cfg(test)]
mod json_tests;
#[cfg(test)]
mod levels_tests;
#[cfg(test)]
mod tests;

#[cfg(test)]
mod avro_corpus_tests;
