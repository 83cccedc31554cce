//! Kafka error codes we send, by name.
//!
//! Handlers speak in these constants so that a reader never has to remember
//! that 3 means "unknown topic or partition". The values are Kafka's
//! (`org.apache.kafka.common.protocol.Errors`).

/// A Kafka error code as it goes on the wire.
pub type ErrorCode = i16;

pub const NONE: ErrorCode = 0;
pub const UNKNOWN_SERVER_ERROR: ErrorCode = -1;
pub const OFFSET_OUT_OF_RANGE: ErrorCode = 1;
pub const CORRUPT_MESSAGE: ErrorCode = 2;
pub const UNKNOWN_TOPIC_OR_PARTITION: ErrorCode = 3;
pub const INVALID_FETCH_SIZE: ErrorCode = 4;
pub const LEADER_NOT_AVAILABLE: ErrorCode = 5;
pub const NOT_LEADER_OR_FOLLOWER: ErrorCode = 6;
pub const REQUEST_TIMED_OUT: ErrorCode = 7;
pub const MESSAGE_TOO_LARGE: ErrorCode = 10;
pub const INVALID_TOPIC_EXCEPTION: ErrorCode = 17;
pub const RECORD_LIST_TOO_LARGE: ErrorCode = 18;
pub const INVALID_REQUIRED_ACKS: ErrorCode = 21;
pub const INVALID_TIMESTAMP: ErrorCode = 32;
pub const UNSUPPORTED_VERSION: ErrorCode = 35;
pub const TOPIC_ALREADY_EXISTS: ErrorCode = 36;
pub const INVALID_PARTITIONS: ErrorCode = 37;
pub const INVALID_REPLICATION_FACTOR: ErrorCode = 38;
pub const INVALID_REQUEST: ErrorCode = 42;
pub const POLICY_VIOLATION: ErrorCode = 44;
pub const INVALID_CONFIG: ErrorCode = 40;
pub const KAFKA_STORAGE_ERROR: ErrorCode = 56;
pub const LOG_DIR_NOT_FOUND: ErrorCode = 57;
pub const UNKNOWN_LEADER_EPOCH: ErrorCode = 75;
pub const FENCED_LEADER_EPOCH: ErrorCode = 74;
pub const INVALID_RECORD: ErrorCode = 87;
pub const UNKNOWN_TOPIC_ID: ErrorCode = 100;
pub const INCONSISTENT_TOPIC_ID: ErrorCode = 103;
pub const COORDINATOR_NOT_AVAILABLE: ErrorCode = 15;
pub const RESOURCE_NOT_FOUND: ErrorCode = 91;
pub const INVALID_COORDINATOR_KEY_TYPE: ErrorCode = 41;
pub const TOPIC_DELETION_DISABLED: ErrorCode = 73;
pub const OFFSET_METADATA_TOO_LARGE: ErrorCode = 12;
pub const COORDINATOR_LOAD_IN_PROGRESS: ErrorCode = 14;
pub const NOT_COORDINATOR: ErrorCode = 16;
pub const ILLEGAL_GENERATION: ErrorCode = 22;
pub const INCONSISTENT_GROUP_PROTOCOL: ErrorCode = 23;
pub const INVALID_GROUP_ID: ErrorCode = 24;
pub const UNKNOWN_MEMBER_ID: ErrorCode = 25;
pub const INVALID_SESSION_TIMEOUT: ErrorCode = 26;
pub const REBALANCE_IN_PROGRESS: ErrorCode = 27;
pub const INVALID_COMMIT_OFFSET_SIZE: ErrorCode = 28;
pub const NON_EMPTY_GROUP: ErrorCode = 68;
pub const GROUP_ID_NOT_FOUND: ErrorCode = 69;
pub const MEMBER_ID_REQUIRED: ErrorCode = 79;
pub const GROUP_MAX_SIZE_REACHED: ErrorCode = 81;
pub const FENCED_INSTANCE_ID: ErrorCode = 82;
pub const GROUP_SUBSCRIBED_TO_TOPIC: ErrorCode = 86;
pub const FENCED_MEMBER_EPOCH: ErrorCode = 110;
pub const UNRELEASED_INSTANCE_ID: ErrorCode = 111;
pub const UNSUPPORTED_ASSIGNOR: ErrorCode = 112;
pub const STALE_MEMBER_EPOCH: ErrorCode = 113;
pub const INVALID_REGULAR_EXPRESSION: ErrorCode = 128;
pub const OUT_OF_ORDER_SEQUENCE_NUMBER: ErrorCode = 45;
pub const DUPLICATE_SEQUENCE_NUMBER: ErrorCode = 46;
pub const INVALID_PRODUCER_EPOCH: ErrorCode = 47;
pub const INVALID_TXN_STATE: ErrorCode = 48;
pub const INVALID_PRODUCER_ID_MAPPING: ErrorCode = 49;
pub const INVALID_TRANSACTION_TIMEOUT: ErrorCode = 50;
pub const CONCURRENT_TRANSACTIONS: ErrorCode = 51;
pub const OPERATION_NOT_ATTEMPTED: ErrorCode = 55;
pub const UNKNOWN_PRODUCER_ID: ErrorCode = 59;
pub const PRODUCER_FENCED: ErrorCode = 90;
pub const TRANSACTIONAL_ID_NOT_FOUND: ErrorCode = 105;
pub const UNSTABLE_OFFSET_COMMIT: ErrorCode = 88;
