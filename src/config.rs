//! Configuration: typed once, at start-up.
//!
//! Sources, weakest first: built-in defaults, the TOML file named by
//! `--config`, environment variables `FJORD_*`, command-line flags. Every key
//! has the same name in all three (`--segment-bytes`, `FJORD_SEGMENT_BYTES`,
//! `segment_bytes = ...`). Invalid values stop the process with a message
//! naming the key and the reason; nothing is silently clamped.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use serde::Deserialize;

/// How `acks=all` produce requests are made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Durability {
    /// Answer `acks=all` only after the data is fsynced (group commit).
    Fsync,
    /// Answer once the data is in the page cache; a machine crash can lose
    /// the last seconds of writes (a process crash cannot).
    PageCache,
}

macro_rules! settings {
    ($( $(#[$doc:meta])* $name:ident ($env:literal) : $ty:ty = $default:expr ; )*) => {
        /// Command-line flags and `FJORD_*` environment variables.
        #[derive(Debug, Parser, Default)]
        #[command(name = "fjord", version, about = "A Kafka-compatible event streaming server")]
        pub struct Args {
            /// Optional TOML file with any of the settings below.
            #[arg(long, env = "FJORD_CONFIG")]
            pub config: Option<PathBuf>,
            $( $(#[$doc])* #[arg(long, env = $env)] pub $name: Option<$ty>, )*
        }

        /// The TOML file's keys: the flags' names with underscores.
        #[derive(Debug, Deserialize, Default)]
        #[serde(deny_unknown_fields)]
        pub struct FileConfig {
            $( pub $name: Option<$ty>, )*
        }

        /// Every setting, resolved.
        #[derive(Debug, Clone)]
        pub struct Settings {
            $( $(#[$doc])* pub $name: $ty, )*
        }

        impl Settings {
            fn merge(args: Args, file: FileConfig) -> Self {
                Self { $( $name: args.$name.or(file.$name).unwrap_or_else(|| $default), )* }
            }
        }
    };
}

settings! {
    /// Directory holding the log [./data].
    data_dir ("FJORD_DATA_DIR"): PathBuf = PathBuf::from("./data");
    /// Address to bind the Kafka listener to [127.0.0.1:9092].
    listen ("FJORD_LISTEN"): SocketAddr = SocketAddr::from(([127, 0, 0, 1], 9092));
    /// Address of the schema registry's REST listener, or `off` [127.0.0.1:8081].
    registry_listen ("FJORD_REGISTRY_LISTEN"): String = "127.0.0.1:8081".to_string();
    /// Address of the admin listener (/metrics, /healthz, /readyz), or `off` [127.0.0.1:9644].
    admin_listen ("FJORD_ADMIN_LISTEN"): String = "127.0.0.1:9644".to_string();
    /// host:port that clients are told to connect to [the listen address].
    advertise ("FJORD_ADVERTISE"): String = String::new();
    /// This broker's node id [1].
    node_id ("FJORD_NODE_ID"): i32 = 1;
    /// Partitions of an auto-created topic (Kafka's num.partitions) [1].
    num_partitions ("FJORD_NUM_PARTITIONS"): i32 = 1;
    /// Create topics named in Metadata requests (Kafka's auto.create.topics.enable) [true].
    auto_create_topics ("FJORD_AUTO_CREATE_TOPICS"): bool = true;
    /// fsync (ack acks=all after fsync, group-committed) or page-cache [fsync].
    durability ("FJORD_DURABILITY"): Durability = Durability::Fsync;
    /// Default segment.bytes [1073741824].
    segment_bytes ("FJORD_SEGMENT_BYTES"): i64 = 1_073_741_824;
    /// Default segment.ms [604800000].
    segment_ms ("FJORD_SEGMENT_MS"): i64 = 604_800_000;
    /// Default retention.ms; -1 keeps forever [604800000].
    retention_ms ("FJORD_RETENTION_MS"): i64 = 604_800_000;
    /// Default retention.bytes per partition; -1 means no limit [-1].
    retention_bytes ("FJORD_RETENTION_BYTES"): i64 = -1;
    /// Default max.message.bytes: the largest batch accepted [1048588].
    max_message_bytes ("FJORD_MAX_MESSAGE_BYTES"): i64 = 1_048_588;
    /// How often retention runs (log.retention.check.interval.ms) [300000].
    retention_check_interval_ms ("FJORD_RETENTION_CHECK_INTERVAL_MS"): u64 = 300_000;
    /// How often compacted topics are checked for cleaning (log.cleaner.backoff.ms) [15000].
    log_cleaner_interval_ms ("FJORD_LOG_CLEANER_INTERVAL_MS"): u64 = 15_000;
    /// Memory for the cleaner's key map, about 32 bytes a key (log.cleaner.dedupe.buffer.size) [134217728].
    log_cleaner_dedupe_buffer_bytes ("FJORD_LOG_CLEANER_DEDUPE_BUFFER_BYTES"): usize = 134_217_728;
    /// How often the recovery point is synced and checkpointed [10000].
    recovery_checkpoint_interval_ms ("FJORD_RECOVERY_CHECKPOINT_INTERVAL_MS"): u64 = 10_000;
    /// Largest request frame (socket.request.max.bytes) [104857600].
    max_frame_bytes ("FJORD_MAX_FRAME_BYTES"): u64 = 104_857_600;
    /// Most client connections at once; more are closed on accept [10000].
    max_connections ("FJORD_MAX_CONNECTIONS"): usize = 10_000;
    /// Requests read ahead of their responses on one connection [64].
    max_inflight_requests ("FJORD_MAX_INFLIGHT_REQUESTS"): usize = 64;
    /// Request bytes buffered per connection before reading pauses [134217728].
    max_connection_buffer_bytes ("FJORD_MAX_CONNECTION_BUFFER_BYTES"): u64 = 134_217_728;
    /// Idle connections are closed after this long (connections.max.idle.ms) [600000].
    idle_timeout_ms ("FJORD_IDLE_TIMEOUT_MS"): u64 = 600_000;
    /// Longest time a graceful shutdown waits for in-flight requests [30000].
    shutdown_timeout_ms ("FJORD_SHUTDOWN_TIMEOUT_MS"): u64 = 30_000;
    /// How long a group starting from empty waits for more members before its first rebalance (group.initial.rebalance.delay.ms) [3000].
    group_initial_rebalance_delay_ms ("FJORD_GROUP_INITIAL_REBALANCE_DELAY_MS"): u64 = 3_000;
    /// Smallest session timeout a group member may ask for (group.min.session.timeout.ms) [6000].
    group_min_session_timeout_ms ("FJORD_GROUP_MIN_SESSION_TIMEOUT_MS"): i32 = 6_000;
    /// Largest session timeout a group member may ask for (group.max.session.timeout.ms) [1800000].
    group_max_session_timeout_ms ("FJORD_GROUP_MAX_SESSION_TIMEOUT_MS"): i32 = 1_800_000;
    /// Most members in one group (group.max.size) [10000].
    group_max_size ("FJORD_GROUP_MAX_SIZE"): usize = 10_000;
    /// Committed offsets of an empty group expire after this long (offsets.retention.minutes) [10080].
    offsets_retention_minutes ("FJORD_OFFSETS_RETENTION_MINUTES"): u64 = 10_080;
    /// How often expired offsets are removed (offsets.retention.check.interval.ms) [600000].
    offsets_retention_check_interval_ms ("FJORD_OFFSETS_RETENTION_CHECK_INTERVAL_MS"): u64 = 600_000;
    /// Session timeout of KIP-848 consumer group members (group.consumer.session.timeout.ms) [45000].
    group_consumer_session_timeout_ms ("FJORD_GROUP_CONSUMER_SESSION_TIMEOUT_MS"): u64 = 45_000;
    /// Heartbeat interval told to KIP-848 consumer group members (group.consumer.heartbeat.interval.ms) [5000].
    group_consumer_heartbeat_interval_ms ("FJORD_GROUP_CONSUMER_HEARTBEAT_INTERVAL_MS"): i32 = 5_000;
    /// Longest metadata string of a committed offset (offset.metadata.max.bytes) [4096].
    offset_metadata_max_bytes ("FJORD_OFFSET_METADATA_MAX_BYTES"): usize = 4_096;
    /// Longest transaction timeout a producer may ask for (transaction.max.timeout.ms) [900000].
    transaction_max_timeout_ms ("FJORD_TRANSACTION_MAX_TIMEOUT_MS"): i32 = 900_000;
    /// How often timed-out transactions are aborted (transaction.abort.timed.out.transaction.cleanup.interval.ms) [10000].
    transaction_abort_timed_out_transaction_cleanup_interval_ms ("FJORD_TRANSACTION_ABORT_TIMED_OUT_TRANSACTION_CLEANUP_INTERVAL_MS"): u64 = 10_000;
    /// Idle transactional ids are forgotten after this long (transactional.id.expiration.ms) [604800000].
    transactional_id_expiration_ms ("FJORD_TRANSACTIONAL_ID_EXPIRATION_MS"): i64 = 604_800_000;
    /// Idle producer state is forgotten after this long (producer.id.expiration.ms) [86400000].
    producer_id_expiration_ms ("FJORD_PRODUCER_ID_EXPIRATION_MS"): i64 = 86_400_000;
    /// Remote tier for topics with remote.storage.enable: file:///dir, az://container/prefix or s3://bucket/prefix; off when empty [].
    tier_url ("FJORD_TIER_URL"): String = String::new();
    /// object_store settings for the tier, `key=value` pairs separated by commas (e.g. aws_access_key_id=…,aws_region=…); they beat the AWS_*/AZURE_* environment [].
    tier_options ("FJORD_TIER_OPTIONS"): String = String::new();
    /// How often sealed segments are uploaded and local and remote retention applied to tiered topics [1000].
    tier_interval_ms ("FJORD_TIER_INTERVAL_MS"): u64 = 1_000;
    /// Memory for cached chunks of remote segments [268435456].
    tier_cache_bytes ("FJORD_TIER_CACHE_BYTES"): usize = 268_435_456;
    /// Size of one cached chunk of a remote segment, one ranged read [4194304].
    tier_chunk_bytes ("FJORD_TIER_CHUNK_BYTES"): usize = 4_194_304;
}

/// A configuration problem, naming the key.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: `{key}`: {reason}")]
pub struct ConfigError {
    pub key: &'static str,
    pub reason: String,
}

fn bad(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        key,
        reason: reason.into(),
    }
}

/// A listener address setting: `host:port`, or `off` (or empty) for none.
fn optional_addr(key: &'static str, v: &str) -> Result<Option<SocketAddr>, ConfigError> {
    let v = v.trim();
    if v.is_empty() || v.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    v.parse()
        .map(Some)
        .map_err(|_| bad(key, "must be host:port (an IP address) or off"))
}

impl Settings {
    /// Resolves flags, environment and the optional file, then validates.
    pub fn load(args: Args) -> Result<Self, ConfigError> {
        let file = match &args.config {
            None => FileConfig::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| bad("config", format!("cannot read {}: {e}", path.display())))?;
                toml::from_str(&text)
                    .map_err(|e| bad("config", format!("{}: {e}", path.display())))?
            }
        };
        let mut s = Settings::merge(args, file);
        if s.advertise.is_empty() {
            s.advertise = s.listen.to_string();
        }
        s.validate()?;
        Ok(s)
    }

    /// Defaults with a data directory, for tests and embedding: the schema
    /// registry and the admin listener are off (many test brokers share one
    /// machine).
    pub fn for_dir(data_dir: PathBuf) -> Self {
        let mut s = Settings::merge(Args::default(), FileConfig::default());
        s.data_dir = data_dir;
        s.registry_listen = "off".to_string();
        s.admin_listen = "off".to_string();
        s.advertise = s.listen.to_string();
        s
    }

    /// Where the schema registry listens; `None` when it is off.
    pub fn registry_addr(&self) -> Result<Option<SocketAddr>, ConfigError> {
        optional_addr("registry_listen", &self.registry_listen)
    }

    /// Where the admin listener (metrics, health) listens; `None` when off.
    pub fn admin_addr(&self) -> Result<Option<SocketAddr>, ConfigError> {
        optional_addr("admin_listen", &self.admin_listen)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.registry_addr()?;
        self.admin_addr()?;
        let (host, port) = self.advertised()?;
        if host.is_empty() || port == 0 {
            return Err(bad("advertise", "must be host:port with a non-zero port"));
        }
        if self.node_id < 0 {
            return Err(bad("node_id", "must not be negative"));
        }
        if self.group_min_session_timeout_ms < 1
            || self.group_max_session_timeout_ms < self.group_min_session_timeout_ms
        {
            return Err(bad(
                "group_max_session_timeout_ms",
                "session timeout bounds must satisfy 1 <= min <= max",
            ));
        }
        if self.group_max_size < 1 {
            return Err(bad("group_max_size", "must be at least 1"));
        }
        if self.offsets_retention_check_interval_ms < 1 {
            return Err(bad(
                "offsets_retention_check_interval_ms",
                "must be at least 1",
            ));
        }
        if self.transaction_max_timeout_ms < 1 {
            return Err(bad("transaction_max_timeout_ms", "must be at least 1"));
        }
        if self.transaction_abort_timed_out_transaction_cleanup_interval_ms < 1 {
            return Err(bad(
                "transaction_abort_timed_out_transaction_cleanup_interval_ms",
                "must be at least 1",
            ));
        }
        if self.transactional_id_expiration_ms < 1 || self.producer_id_expiration_ms < 1 {
            return Err(bad(
                "transactional_id_expiration_ms",
                "expirations must be at least 1",
            ));
        }
        if !(1..=10_000).contains(&self.num_partitions) {
            return Err(bad("num_partitions", "must be between 1 and 10000"));
        }
        if self.segment_bytes < 1024 || self.segment_bytes > i64::from(i32::MAX) {
            return Err(bad("segment_bytes", "must be between 1024 and 2147483647"));
        }
        if self.segment_ms < 1 {
            return Err(bad("segment_ms", "must be at least 1"));
        }
        if self.retention_ms < -1 {
            return Err(bad("retention_ms", "must be -1 (forever) or at least 0"));
        }
        if self.retention_bytes < -1 {
            return Err(bad(
                "retention_bytes",
                "must be -1 (no limit) or at least 0",
            ));
        }
        if self.max_message_bytes < 0 || self.max_message_bytes > i64::from(i32::MAX) {
            return Err(bad("max_message_bytes", "must be between 0 and 2147483647"));
        }
        if self.max_frame_bytes < 1024 || self.max_frame_bytes > i32::MAX as u64 {
            return Err(bad(
                "max_frame_bytes",
                "must be between 1024 and 2147483647",
            ));
        }
        if self.max_connections == 0 {
            return Err(bad("max_connections", "must be at least 1"));
        }
        if !(1..=10_000).contains(&self.max_inflight_requests) {
            return Err(bad("max_inflight_requests", "must be between 1 and 10000"));
        }
        if self.max_connection_buffer_bytes < self.max_frame_bytes {
            return Err(bad(
                "max_connection_buffer_bytes",
                "must be at least max_frame_bytes",
            ));
        }
        if self.idle_timeout_ms < 240_000 {
            return Err(bad(
                "idle_timeout_ms",
                "must be at least 240000 (clients keep idle connections for up to 9 minutes)",
            ));
        }
        if self.retention_check_interval_ms < 10 {
            return Err(bad("retention_check_interval_ms", "must be at least 10"));
        }
        if self.recovery_checkpoint_interval_ms < 10 {
            return Err(bad(
                "recovery_checkpoint_interval_ms",
                "must be at least 10",
            ));
        }
        Ok(())
    }

    /// The advertised address split into host and port.
    pub fn advertised(&self) -> Result<(String, u16), ConfigError> {
        let (host, port) = self.advertise.rsplit_once(':').ok_or_else(|| {
            bad(
                "advertise",
                format!("`{}` is not host:port", self.advertise),
            )
        })?;
        let port: u16 = port
            .parse()
            .map_err(|_| bad("advertise", format!("`{port}` is not a port")))?;
        Ok((
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(argv: &[&str]) -> Result<Settings, ConfigError> {
        let mut v = vec!["fjord"];
        v.extend_from_slice(argv);
        Settings::load(Args::parse_from(v))
    }

    #[test]
    fn defaults_are_kafkas() {
        let s = parse(&[]).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:9092");
        assert_eq!(s.advertise, "127.0.0.1:9092");
        assert_eq!(s.max_frame_bytes, 104_857_600);
        assert_eq!(s.durability, Durability::Fsync);
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = parse(&["--idle-timeout-ms", "1000"]).unwrap_err();
        assert_eq!(e.key, "idle_timeout_ms");
        let e = parse(&["--advertise", "nohost"]).unwrap_err();
        assert_eq!(e.key, "advertise");
    }

    #[test]
    fn file_is_read_and_flags_win() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("fjord.toml");
        std::fs::write(&f, "num_partitions = 4\nnode_id = 7\n").unwrap();
        let s = parse(&["--config", f.to_str().unwrap(), "--node-id", "9"]).unwrap();
        assert_eq!(s.num_partitions, 4);
        assert_eq!(s.node_id, 9);
        std::fs::write(&f, "no_such_key = 1\n").unwrap();
        let e = parse(&["--config", f.to_str().unwrap()]).unwrap_err();
        assert!(e.reason.contains("no_such_key"), "{}", e.reason);
    }
}
