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
    /// same schema (and get the same id).
    pub fn canonical(&self) -> RegistryResult<String> {
        let v: serde_json::Value = serde_json::from_str(&self.text)
            .map_err(|e| RegistryError::InvalidSchema(format!("not valid JSON: {e}")))?;
        let text =
            serde_json::to_string(&v).map_err(|e| RegistryError::InvalidSchema(e.to_string()))?;
        let mut refs = self.references.clone();
        refs.sort();
        let refs = serde_json::to_string(&refs).unwrap_or_default();
        Ok(format!("{}\u{0}{text}\u{0}{refs}", self.schema_type.name()))
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
