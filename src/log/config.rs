//! Topic configuration: Kafka's names and defaults at the API boundary,
//! typed inside.
//!
//! [`TOPIC_CONFIGS`] is the one table of every topic config we accept: name,
//! default, and whether Fjord enforces it. DescribeConfigs lists them all
//! with their source (clients and test suites expect every config to be
//! present); CreateTopics and AlterConfigs validate against it. [`LogConfig`]
//! is the typed view the log uses.

use std::collections::BTreeMap;

use crate::config::Settings;

/// A topic config's type, for validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Long {
        min: i64,
    },
    Int {
        min: i64,
    },
    Bool,
    /// One of the listed words (cleanup.policy takes a list of them).
    Choice(&'static [&'static str]),
    List(&'static [&'static str]),
    Double,
    Text,
}

/// One row of the table.
pub struct Def {
    pub name: &'static str,
    /// The Kafka broker setting that supplies the default, if any.
    pub broker_key: Option<&'static str>,
    pub kind: Kind,
    pub default: &'static str,
}

const fn d(
    name: &'static str,
    broker_key: Option<&'static str>,
    kind: Kind,
    default: &'static str,
) -> Def {
    Def {
        name,
        broker_key,
        kind,
        default,
    }
}

/// Every topic config, in Kafka's names, with Kafka's defaults. Those marked
/// enforced in the README are acted on; the rest are stored and described.
pub const TOPIC_CONFIGS: &[Def] = &[
    d(
        "cleanup.policy",
        Some("log.cleanup.policy"),
        Kind::List(&["delete", "compact"]),
        "delete",
    ),
    d(
        "compression.type",
        Some("compression.type"),
        Kind::Choice(&["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"]),
        "producer",
    ),
    d(
        "delete.retention.ms",
        Some("log.cleaner.delete.retention.ms"),
        Kind::Long { min: 0 },
        "86400000",
    ),
    d(
        "file.delete.delay.ms",
        Some("log.segment.delete.delay.ms"),
        Kind::Long { min: 0 },
        "60000",
    ),
    d(
        "flush.messages",
        Some("log.flush.interval.messages"),
        Kind::Long { min: 1 },
        "9223372036854775807",
    ),
    d(
        "flush.ms",
        Some("log.flush.interval.ms"),
        Kind::Long { min: 0 },
        "9223372036854775807",
    ),
    d(
        "index.interval.bytes",
        Some("log.index.interval.bytes"),
        Kind::Int { min: 0 },
        "4096",
    ),
    d(
        "local.retention.bytes",
        Some("log.local.retention.bytes"),
        Kind::Long { min: -2 },
        "-2",
    ),
    d(
        "local.retention.ms",
        Some("log.local.retention.ms"),
        Kind::Long { min: -2 },
        "-2",
    ),
    d(
        "max.compaction.lag.ms",
        Some("log.cleaner.max.compaction.lag.ms"),
        Kind::Long { min: 1 },
        "9223372036854775807",
    ),
    d(
        "max.message.bytes",
        Some("message.max.bytes"),
        Kind::Int { min: 0 },
        "1048588",
    ),
    d(
        "message.timestamp.after.max.ms",
        Some("log.message.timestamp.after.max.ms"),
        Kind::Long { min: 0 },
        "3600000",
    ),
    d(
        "message.timestamp.before.max.ms",
        Some("log.message.timestamp.before.max.ms"),
        Kind::Long { min: 0 },
        "9223372036854775807",
    ),
    d(
        "message.timestamp.type",
        Some("log.message.timestamp.type"),
        Kind::Choice(&["CreateTime", "LogAppendTime"]),
        "CreateTime",
    ),
    d(
        "min.cleanable.dirty.ratio",
        Some("log.cleaner.min.cleanable.ratio"),
        Kind::Double,
        "0.5",
    ),
    d(
        "min.compaction.lag.ms",
        Some("log.cleaner.min.compaction.lag.ms"),
        Kind::Long { min: 0 },
        "0",
    ),
    d(
        "min.insync.replicas",
        Some("min.insync.replicas"),
        Kind::Int { min: 1 },
        "1",
    ),
    d("preallocate", Some("log.preallocate"), Kind::Bool, "false"),
    d("confluent.key.schema.validation", None, Kind::Bool, "false"),
    d(
        "confluent.value.schema.validation",
        None,
        Kind::Bool,
        "false",
    ),
    d("remote.storage.enable", None, Kind::Bool, "false"),
    d(
        "retention.bytes",
        Some("log.retention.bytes"),
        Kind::Long { min: -1 },
        "-1",
    ),
    d(
        "retention.ms",
        Some("log.retention.ms"),
        Kind::Long { min: -1 },
        "604800000",
    ),
    d(
        "segment.bytes",
        Some("log.segment.bytes"),
        Kind::Int { min: 1024 },
        "1073741824",
    ),
    d(
        "segment.index.bytes",
        Some("log.index.size.max.bytes"),
        Kind::Int { min: 4 },
        "10485760",
    ),
    d(
        "segment.jitter.ms",
        Some("log.roll.jitter.ms"),
        Kind::Long { min: 0 },
        "0",
    ),
    d(
        "segment.ms",
        Some("log.roll.ms"),
        Kind::Long { min: 1 },
        "604800000",
    ),
    d(
        "unclean.leader.election.enable",
        Some("unclean.leader.election.enable"),
        Kind::Bool,
        "false",
    ),
    d(
        "message.downconversion.enable",
        Some("log.message.downconversion.enable"),
        Kind::Bool,
        "true",
    ),
];

pub fn lookup(name: &str) -> Option<&'static Def> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// Why a config value was refused; names the key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigValueError {
    #[error("unknown topic config `{0}`")]
    Unknown(String),
    #[error("invalid value `{value}` for `{name}`: {reason}")]
    Invalid {
        name: String,
        value: String,
        reason: String,
    },
}

/// Checks one (name, value) against the table.
pub fn validate(name: &str, value: &str) -> Result<(), ConfigValueError> {
    let def = lookup(name).ok_or_else(|| ConfigValueError::Unknown(name.to_string()))?;
    let invalid = |reason: &str| ConfigValueError::Invalid {
        name: name.into(),
        value: value.into(),
        reason: reason.into(),
    };
    match def.kind {
        Kind::Long { min } => {
            let v: i64 = value
                .trim()
                .parse()
                .map_err(|_| invalid("not a 64-bit integer"))?;
            if v < min {
                return Err(invalid(&format!("must be at least {min}")));
            }
        }
        Kind::Int { min } => {
            let v: i32 = value
                .trim()
                .parse()
                .map_err(|_| invalid("not a 32-bit integer"))?;
            if i64::from(v) < min {
                return Err(invalid(&format!("must be at least {min}")));
            }
        }
        Kind::Bool => {
            if !matches!(value.trim().to_ascii_lowercase().as_str(), "true" | "false") {
                return Err(invalid("must be true or false"));
            }
        }
        Kind::Choice(words) => {
            if !words.contains(&value.trim()) {
                return Err(invalid(&format!("must be one of {}", words.join(", "))));
            }
        }
        Kind::List(words) => {
            let items: Vec<&str> = value.split(',').map(str::trim).collect();
            if items.is_empty() || items.iter().any(|i| !words.contains(i)) {
                return Err(invalid(&format!("must be a list of {}", words.join(", "))));
            }
        }
        Kind::Double => {
            let v: f64 = value.trim().parse().map_err(|_| invalid("not a number"))?;
            if !(0.0..=1.0).contains(&v) {
                return Err(invalid("must be between 0 and 1"));
            }
        }
        Kind::Text => {}
    }
    Ok(())
}

/// Broker-level defaults for topic configs, from the settings.
pub fn broker_default(s: &Settings, name: &str) -> Option<String> {
    Some(match name {
        "retention.ms" => s.retention_ms.to_string(),
        "retention.bytes" => s.retention_bytes.to_string(),
        "segment.bytes" => s.segment_bytes.to_string(),
        "segment.ms" => s.segment_ms.to_string(),
        "max.message.bytes" => s.max_message_bytes.to_string(),
        _ => return None,
    })
}

/// The typed view of a topic's effective configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    pub segment_bytes: usize,
    pub segment_ms: i64,
    pub retention_ms: i64,
    pub retention_bytes: i64,
    pub max_message_bytes: usize,
    pub index_interval_bytes: usize,
    pub log_append_time: bool,
    /// cleanup.policy includes `compact`.
    pub compact: bool,
    /// cleanup.policy includes `delete` (retention applies).
    pub delete: bool,
    /// How long a tombstone stays readable once written.
    pub delete_retention_ms: i64,
    /// min.cleanable.dirty.ratio, in thousandths.
    pub min_cleanable_dirty_permille: u32,
    /// Records newer than this are not compacted.
    pub min_compaction_lag_ms: i64,
    /// confluent.key.schema.validation: keys must carry a registered id.
    pub key_schema_validation: bool,
    /// confluent.value.schema.validation: values must carry a registered id.
    pub value_schema_validation: bool,
    /// remote.storage.enable: sealed segments go to the remote tier.
    pub remote_storage: bool,
    /// local.retention.ms / .bytes, with Kafka's -2 resolved to the total's.
    pub local_retention_ms: i64,
    pub local_retention_bytes: i64,
}

impl LogConfig {
    /// Effective config: topic overrides, then broker settings, then Kafka's defaults.
    pub fn resolve(s: &Settings, overrides: &BTreeMap<String, String>) -> Self {
        let get = |name: &str| -> String {
            overrides
                .get(name)
                .cloned()
                .or_else(|| broker_default(s, name))
                .or_else(|| lookup(name).map(|d| d.default.to_string()))
                .unwrap_or_default()
        };
        let num = |name: &str, fallback: i64| get(name).trim().parse::<i64>().unwrap_or(fallback);
        Self {
            segment_bytes: usize::try_from(num("segment.bytes", 1 << 30))
                .unwrap_or(1 << 30)
                .max(1024),
            segment_ms: num("segment.ms", 604_800_000).max(1),
            retention_ms: num("retention.ms", 604_800_000),
            retention_bytes: num("retention.bytes", -1),
            max_message_bytes: usize::try_from(num("max.message.bytes", 1_048_588)).unwrap_or(0),
            index_interval_bytes: usize::try_from(num("index.interval.bytes", 4096))
                .unwrap_or(4096)
                .max(1),
            log_append_time: get("message.timestamp.type") == "LogAppendTime",
            compact: get("cleanup.policy")
                .split(',')
                .any(|p| p.trim() == "compact"),
            delete: get("cleanup.policy")
                .split(',')
                .any(|p| p.trim() == "delete"),
            delete_retention_ms: num("delete.retention.ms", 86_400_000).max(0),
            min_cleanable_dirty_permille: {
                let r = get("min.cleanable.dirty.ratio")
                    .trim()
                    .parse::<f64>()
                    .unwrap_or(0.5)
                    .clamp(0.0, 1.0);
                // In [0, 1000] after the clamp, so the cast cannot truncate.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let permille = (r * 1000.0).round() as u32;
                permille
            },
            min_compaction_lag_ms: num("min.compaction.lag.ms", 0).max(0),
            key_schema_validation: get("confluent.key.schema.validation")
                .trim()
                .eq_ignore_ascii_case("true"),
            value_schema_validation: get("confluent.value.schema.validation")
                .trim()
                .eq_ignore_ascii_case("true"),
            remote_storage: get("remote.storage.enable")
                .trim()
                .eq_ignore_ascii_case("true"),
            local_retention_ms: match num("local.retention.ms", -2) {
                -2 => num("retention.ms", 604_800_000),
                v => v,
            },
            local_retention_bytes: match num("local.retention.bytes", -2) {
                -2 => num("retention.bytes", -1),
                v => v,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_problems() {
        assert!(validate("retention.ms", "-1").is_ok());
        assert!(validate("retention.ms", "-5").is_err());
        assert!(validate("cleanup.policy", "compact,delete").is_ok());
        assert!(validate("cleanup.policy", "shred").is_err());
        assert_eq!(
            validate("nope", "1"),
            Err(ConfigValueError::Unknown("nope".into()))
        );
        assert!(validate("segment.bytes", "99999999999").is_err());
    }

    #[test]
    fn overrides_beat_broker_defaults() {
        let s = Settings::for_dir("/tmp/x".into());
        let mut o = BTreeMap::new();
        o.insert("retention.ms".to_string(), "5".to_string());
        let c = LogConfig::resolve(&s, &o);
        assert_eq!(c.retention_ms, 5);
        assert_eq!(c.segment_bytes, 1 << 30);
        assert_eq!(c.max_message_bytes, 1_048_588);
    }
}
