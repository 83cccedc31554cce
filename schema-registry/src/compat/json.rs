//! JSON Schema compatibility by Confluent's `SchemaDiff` rules.
//!
//! Confluent decides JSON Schema compatibility by listing the differences
//! between two schemas (a type changed, a property added to an open content
//! model, a `maxLength` lowered, ...) and calling the change compatible when
//! every difference is in a fixed set of compatible kinds. Clients and tools
//! expect the same verdicts (and the same difference names), so we follow
//! those rules rather than a general "is every instance still valid" test.
//!
//! - `model` sees a JSON value as the schema classes the rules branch on;
//! - `diff` walks two schemas and lists the differences;
//! - `pattern` matches `patternProperties` keys.
//!
//! Input comes from the network: nesting is bounded at parse, `$ref`s must
//! resolve, and the comparison is bounded in depth and total work.

mod diff;
mod model;
mod pattern;

use serde_json::Value;

use model::{Doc, Node};

/// Deepest nesting of arrays and objects accepted in a schema.
pub const MAX_DEPTH: usize = 64;

/// A parsed JSON Schema and the referenced schemas its `$ref`s may name.
#[derive(Debug, Clone)]
pub struct Parsed {
    root: Value,
    references: Vec<(String, Value)>,
}

impl Parsed {
    /// The referenced schema called `name`.
    fn reference(&self, name: &str) -> Option<&Value> {
        self.references
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    fn root_node(&self) -> Node<'_> {
        let doc = Doc {
            parsed: self,
            root: &self.root,
        };
        Node::whole(doc, &self.root)
    }
}

/// Parses `text`; `references` are `(name, text)` pairs: schemas in other
/// subjects that a `$ref` may name by that exact name.
pub fn parse(text: &str, references: &[(&str, &str)]) -> Result<Parsed, String> {
    let root = parse_schema(text)?;
    let mut refs = Vec::with_capacity(references.len());
    for (name, text) in references {
        let value = parse_schema(text).map_err(|e| format!("reference {name}: {e}"))?;
        refs.push(((*name).to_string(), value));
    }
    let parsed = Parsed {
        root,
        references: refs,
    };
    check_refs(&parsed)?;
    Ok(parsed)
}

/// One schema's text: valid JSON, an object or a boolean, not too deep.
fn parse_schema(text: &str) -> Result<Value, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    if !(value.is_object() || value.is_boolean()) {
        return Err(format!(
            "a JSON Schema is an object or a boolean, not {}",
            kind_of(&value)
        ));
    }
    if depth_exceeds(&value, MAX_DEPTH) {
        return Err(format!("schema nests deeper than {MAX_DEPTH} levels"));
    }
    check_type_names(&value)?;
    Ok(value)
}

/// The type names JSON Schema defines.
const TYPE_NAMES: &[&str] = &[
    "null", "boolean", "object", "array", "number", "string", "integer",
];

/// Every `type` keyword names JSON Schema types (as Confluent's parser
/// requires). Data keywords (`enum`, `const`, `default`, `examples`) are
/// not schemas and are skipped. Depth is already bounded by the caller.
fn check_type_names(v: &Value) -> Result<(), String> {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                if matches!(k.as_str(), "enum" | "const" | "default" | "examples") {
                    continue;
                }
                if k == "type" {
                    let names: Vec<&Value> = match child {
                        Value::Array(items) => items.iter().collect(),
                        Value::String(_) => vec![child],
                        _ => Vec::new(),
                    };
                    for n in names {
                        match n.as_str() {
                            Some(t) if TYPE_NAMES.contains(&t) => {}
                            _ => return Err(format!("unknown type {n}")),
                        }
                    }
                    if !matches!(child, Value::Object(_)) {
                        continue;
                    }
                }
                check_type_names(child)?;
            }
            Ok(())
        }
        Value::Array(items) => items.iter().try_for_each(check_type_names),
        _ => Ok(()),
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Whether `value` nests more than `limit` levels (serde_json itself
/// refuses far deeper input before we see it).
fn depth_exceeds(value: &Value, limit: usize) -> bool {
    let children: Box<dyn Iterator<Item = &Value>> = match value {
        Value::Array(items) => Box::new(items.iter()),
        Value::Object(map) => Box::new(map.values()),
        _ => return false,
    };
    let mut children = children.peekable();
    if children.peek().is_none() {
        return false;
    }
    match limit.checked_sub(1) {
        None => true,
        Some(rest) => children.any(|c| depth_exceeds(c, rest)),
    }
}

/// Keywords whose values are data, not schemas, so a `$ref` in them is
/// not a reference.
const DATA_WORDS: &[&str] = &["enum", "const", "default", "examples"];

/// Every `$ref` in every document must resolve to a schema.
fn check_refs(parsed: &Parsed) -> Result<(), String> {
    let root = parsed.root_node();
    check_refs_in(root, &parsed.root)?;
    for (_, value) in &parsed.references {
        let doc = Doc {
            parsed,
            root: value,
        };
        check_refs_in(Node::whole(doc, value), value)?;
    }
    Ok(())
}

fn check_refs_in(doc_node: Node<'_>, value: &Value) -> Result<(), String> {
    match value {
        Value::Array(items) => items.iter().try_for_each(|v| check_refs_in(doc_node, v)),
        Value::Object(map) => {
            if let Some(reference) = map.get("$ref") {
                check_ref(doc_node, reference)?;
            }
            map.iter()
                .filter(|(k, _)| !DATA_WORDS.contains(&k.as_str()))
                .try_for_each(|(_, v)| check_refs_in(doc_node, v))
        }
        _ => Ok(()),
    }
}

fn check_ref(doc_node: Node<'_>, reference: &Value) -> Result<(), String> {
    let text = reference
        .as_str()
        .ok_or_else(|| "$ref must be a string".to_string())?;
    let target = doc_node
        .doc
        .resolve(text)
        .ok_or_else(|| format!("$ref {text:?} does not resolve to a schema"))?;
    let end = target
        .resolved()
        .ok_or_else(|| format!("$ref {text:?} is a cycle of references or does not resolve"))?;
    if end.value.is_object() || end.value.is_boolean() {
        Ok(())
    } else {
        Err(format!("$ref {text:?} names {}", kind_of(end.value)))
    }
}

/// The incompatible differences when `original` evolves into `update`
/// (Confluent's backward check: data valid under `original` must be valid
/// under `update`); empty when compatible. Each names the difference kind
/// and where, e.g. `PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL #/properties/foo`.
pub fn changes(original: &Parsed, update: &Parsed) -> Vec<String> {
    let mut found = Vec::new();
    for d in all_differences(original, update) {
        if !diff::is_compatible_kind(d.kind) {
            let text = d.to_string();
            if !found.contains(&text) {
                found.push(text);
            }
        }
    }
    found
}

/// Every difference, compatible or not, in Confluent's notation.
pub(crate) fn all_differences(original: &Parsed, update: &Parsed) -> Vec<diff::Difference> {
    diff::compare_roots(original.root_node(), update.root_node())
}
