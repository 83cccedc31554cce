//! Compatibility checkers behind `registry::CompatChecker`.
//!
//! `avro` implements Apache Avro's Java rules. JSON Schema (Confluent's
//! `SchemaDiff` rules) is still to come: JSON schemas are accepted
//! unchecked for now, and so are schemas with references (their named
//! types live in other subjects, which the checker is not yet given).

pub mod avro;

use crate::model::{Compatibility, Schema, SchemaType};
use crate::registry::CompatChecker;

/// The registry's checker.
pub struct Rules;

/// One direction of a check: can `reader` read data written by `writer`?
fn avro_pair(reader: &Schema, writer: &Schema) -> Vec<String> {
    let (r, w) = match (
        avro::parse(&reader.text, &[]),
        avro::parse(&writer.text, &[]),
    ) {
        (Ok(r), Ok(w)) => (r, w),
        (Err(e), _) | (_, Err(e)) => return vec![format!("cannot parse schema: {e}")],
    };
    avro::incompatibilities(&r, &w)
}

impl CompatChecker for Rules {
    fn check(&self, level: Compatibility, new: &Schema, existing: &[&Schema]) -> Vec<String> {
        if new.schema_type != SchemaType::Avro
            || !new.references.is_empty()
            || existing
                .iter()
                .any(|e| e.schema_type != SchemaType::Avro || !e.references.is_empty())
        {
            return Vec::new();
        }
        let backward = matches!(
            level,
            Compatibility::Backward
                | Compatibility::BackwardTransitive
                | Compatibility::Full
                | Compatibility::FullTransitive
        );
        let forward = matches!(
            level,
            Compatibility::Forward
                | Compatibility::ForwardTransitive
                | Compatibility::Full
                | Compatibility::FullTransitive
        );
        let mut problems = Vec::new();
        for old in existing {
            if backward {
                problems.extend(avro_pair(new, old));
            }
            if forward {
                problems.extend(avro_pair(old, new));
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests;
