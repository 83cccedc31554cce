//! Values of the registry: schema types, references, compatibility levels
//! and modes, with the names the REST API and `_schemas` records use.

use serde::{Deserialize, Serialize};

use crate::error::{RegistryError, RegistryResult};

/// A schema's language. Protobuf is not supported (issue 5 scope).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SchemaType {
    Avro,
    Json,
}

impl SchemaType {
    /// Parses the `schemaType` field; absent means AVRO, as in Confluent.
    pub fn parse(s: Option<&str>) -> RegistryResult<Self> {
        match s.map(str::to_ascii_uppercase).as_deref() {
            None | Some("AVRO") => Ok(Self::Avro),
            Some("JSON") => Ok(Self::Json),
            Some(other) => Err(RegistryError::InvalidSchema(format!(
                "unknown schema type {other}"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Avro => "AVRO",
            Self::Json => "JSON",
        }
    }
}

/// A reference from one schema to a named schema in another subject.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Reference {
    pub name: String,
    pub subject: String,
    pub version: i32,
}

/// A schema as registered: its type, text and references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    pub schema_type: SchemaType,
    pub text: String,
    pub references: Vec<Reference>,
}

impl Schema {
    /// The form that decides identity: the text parsed as JSON and printed
    /// with sorted keys and no whitespace, plus type and references. Two
    /// registrations that differ only in whitespace or key order are the
    /// same schema (and get the same id); so are Avro schemas that differ
    /// only in spelling (`{"type":"string"}` for `"string"`, a namespace
    /// attribute for a full name), as Confluent compares parsed Avro.
    pub fn canonical(&self) -> RegistryResult<String> {
        let mut v: serde_json::Value = serde_json::from_str(&self.text)
            .map_err(|e| RegistryError::InvalidSchema(format!("not valid JSON: {e}")))?;
        if self.schema_type == SchemaType::Avro {
            v = avro_spelling(v, "", 0);
        }
        let text =
            serde_json::to_string(&v).map_err(|e| RegistryError::InvalidSchema(e.to_string()))?;
        let mut refs = self.references.clone();
        refs.sort();
        let refs = serde_json::to_string(&refs).unwrap_or_default();
        Ok(format!("{}\u{0}{text}\u{0}{refs}", self.schema_type.name()))
    }
}

const AVRO_PRIMITIVES: &[&str] = &[
    "null", "boolean", "int", "long", "float", "double", "bytes", "string",
];

/// Deeper than this, Avro spelling is left as written (identity only gets
/// stricter, never wrong).
const MAX_SPELLING_DEPTH: usize = 256;

/// One Avro spelling for equivalent schema JSON: a primitive's object form
/// with nothing else becomes its name; named types carry their full name
/// and no `namespace`; names used without a namespace inside one are
/// qualified with it. `ns` is the enclosing namespace.
fn avro_spelling(v: serde_json::Value, ns: &str, depth: usize) -> serde_json::Value {
    use serde_json::Value;
    if depth > MAX_SPELLING_DEPTH {
        return v;
    }
    let next = depth.saturating_add(1);
    let qualify = |name: &str, ns: &str| {
        if name.contains('.') || ns.is_empty() {
            name.to_string()
        } else {
            format!("{ns}.{name}")
        }
    };
    match v {
        Value::String(name) if !AVRO_PRIMITIVES.contains(&name.as_str()) => {
            Value::String(qualify(&name, ns))
        }
        Value::Array(branches) => Value::Array(
            branches
                .into_iter()
                .map(|b| avro_spelling(b, ns, next))
                .collect(),
        ),
        Value::Object(mut map) => {
            let kind = map.get("type").and_then(Value::as_str).map(str::to_string);
            match kind.as_deref() {
                Some(p) if map.len() == 1 && AVRO_PRIMITIVES.contains(&p) => {
                    Value::String(p.to_string())
                }
                Some("record" | "error" | "enum" | "fixed") => {
                    let own_ns = match map.remove("namespace") {
                        Some(Value::String(n)) => n,
                        Some(Value::Null) => String::new(),
                        Some(other) => {
                            // Not a string: leave it for validation to refuse.
                            map.insert("namespace".into(), other);
                            ns.to_string()
                        }
                        None => ns.to_string(),
                    };
                    let full = match map.get("name").and_then(Value::as_str) {
                        Some(name) => qualify(name, &own_ns),
                        None => return Value::Object(map),
                    };
                    let inner_ns = full.rsplit_once('.').map_or("", |(n, _)| n).to_string();
                    map.insert("name".into(), Value::String(full));
                    if let Some(Value::Array(fields)) = map.remove("fields") {
                        let fields = fields
                            .into_iter()
                            .map(|f| match f {
                                Value::Object(mut fm) => {
                                    if let Some(t) = fm.remove("type") {
                                        fm.insert("type".into(), avro_spelling(t, &inner_ns, next));
                                    }
                                    Value::Object(fm)
                                }
                                other => other,
                            })
                            .collect();
                        map.insert("fields".into(), Value::Array(fields));
                    }
                    Value::Object(map)
                }
                Some("array") | Some("map") => {
                    for key in ["items", "values"] {
                        if let Some(t) = map.remove(key) {
                            map.insert(key.into(), avro_spelling(t, ns, next));
                        }
                    }
                    Value::Object(map)
                }
                _ => {
                    if let Some(t) = map.remove("type") {
                        let t = avro_spelling(t, ns, next);
                        // `{"type": "n.F"}` is the name itself.
                        if map.is_empty() && t.is_string() {
                            return t;
                        }
                        map.insert("type".into(), t);
                    }
                    Value::Object(map)
                }
            }
        }
        other => other,
    }
}

/// The seven compatibility levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Compatibility {
    None,
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

impl Compatibility {
    pub fn parse(s: &str) -> RegistryResult<Self> {
        Ok(match s.to_ascii_uppercase().as_str() {
            "NONE" => Self::None,
            "BACKWARD" => Self::Backward,
            "BACKWARD_TRANSITIVE" => Self::BackwardTransitive,
            "FORWARD" => Self::Forward,
            "FORWARD_TRANSITIVE" => Self::ForwardTransitive,
            "FULL" => Self::Full,
            "FULL_TRANSITIVE" => Self::FullTransitive,
            _ => return Err(RegistryError::InvalidCompatibilityLevel),
        })
    }

    /// Checked against every live version, or only the latest.
    pub fn transitive(self) -> bool {
        matches!(
            self,
            Self::BackwardTransitive | Self::ForwardTransitive | Self::FullTransitive
        )
    }
}

/// What a subject (or the registry) accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Mode {
    Readwrite,
    Readonly,
    Import,
}

impl Mode {
    pub fn parse(s: &str) -> RegistryResult<Self> {
        Ok(match s.to_ascii_uppercase().as_str() {
            "READWRITE" => Self::Readwrite,
            "READONLY" => Self::Readonly,
            "IMPORT" => Self::Import,
            _ => return Err(RegistryError::InvalidMode),
        })
    }
}

/// Which version a request names: a number, or `latest` / -1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionRef {
    Latest,
    Number(i32),
}

impl VersionRef {
    /// Parses a path segment; anything but 1..=2^31-1, `latest` and -1 is
    /// INVALID_VERSION (42202).
    pub fn parse(s: &str) -> RegistryResult<Self> {
        if s.eq_ignore_ascii_case("latest") || s == "-1" {
            return Ok(Self::Latest);
        }
        match s.parse::<i32>() {
            Ok(n) if n >= 1 => Ok(Self::Number(n)),
            _ => Err(RegistryError::InvalidVersion(s.to_string())),
        }
    }
}
