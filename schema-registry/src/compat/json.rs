//! JSON Schema compatibility by Confluent's `SchemaDiff` rules.
//!
//! Placeholder: every JSON object or boolean is a valid schema and every
//! change is compatible, until the SchemaDiff rules land.

use serde_json::Value;

/// A parsed JSON Schema.
#[derive(Debug, Clone)]
pub struct Parsed {
    #[allow(dead_code)]
    root: Value,
}

/// Parses `text`; `references` are `(name, text)` pairs a `$ref` may name.
pub fn parse(text: &str, _references: &[(&str, &str)]) -> Result<Parsed, String> {
    let root: Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    match root {
        Value::Object(_) | Value::Bool(_) => Ok(Parsed { root }),
        _ => Err("a JSON Schema is an object or a boolean".into()),
    }
}

/// The incompatible differences when `original` evolves into `update`
/// (Confluent's backward check: data valid under `original` must be valid
/// under `update`); empty when compatible.
pub fn changes(_original: &Parsed, _update: &Parsed) -> Vec<String> {
    Vec::new()
}
