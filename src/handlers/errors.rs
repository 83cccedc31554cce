//! The one place domain errors become Kafka error codes.

use crate::log::config::ConfigValueError;
use crate::log::manager::TopicError;
use crate::log::producer_state::ProducerError;
use crate::log::LogError;
use crate::protocol::batch::BatchError;
use crate::protocol::codes::{self, ErrorCode};

pub fn log_error(e: &LogError) -> ErrorCode {
    match e {
        LogError::OffsetOutOfRange { .. } => codes::OFFSET_OUT_OF_RANGE,
        LogError::Corrupt(b) => batch_error(b),
        LogError::TooLarge { .. } => codes::MESSAGE_TOO_LARGE,
        LogError::Io(_) => codes::KAFKA_STORAGE_ERROR,
        LogError::Invalid(_) => codes::INVALID_REQUEST,
        LogError::InvalidRecords { .. } => codes::INVALID_RECORD,
        LogError::Producer(p) => producer_error(p),
        LogError::Unverified(code) => *code,
    }
}

pub fn producer_error(e: &ProducerError) -> ErrorCode {
    match e {
        ProducerError::Fenced { .. } => codes::INVALID_PRODUCER_EPOCH,
        ProducerError::OutOfOrder { .. } => codes::OUT_OF_ORDER_SEQUENCE_NUMBER,
        ProducerError::InvalidTxnState { .. } => codes::INVALID_TXN_STATE,
    }
}

pub fn batch_error(e: &BatchError) -> ErrorCode {
    match e {
        BatchError::BadCrc { .. } | BatchError::Truncated { .. } | BatchError::BadLength(_) => {
            codes::CORRUPT_MESSAGE
        }
        BatchError::BadMagic(_) => codes::UNSUPPORTED_VERSION,
        BatchError::BadCount { .. } | BatchError::ControlBatch => codes::INVALID_RECORD,
        BatchError::BadCodec(_) | BatchError::BadRecord { .. } => codes::CORRUPT_MESSAGE,
    }
}

pub fn topic_error(e: &TopicError) -> ErrorCode {
    match e {
        TopicError::Exists(_) => codes::TOPIC_ALREADY_EXISTS,
        TopicError::Unknown(_) => codes::UNKNOWN_TOPIC_OR_PARTITION,
        TopicError::InvalidName(..) => codes::INVALID_TOPIC_EXCEPTION,
        TopicError::InvalidPartitions(_) => codes::INVALID_PARTITIONS,
        TopicError::InvalidReplication(_) => codes::INVALID_REPLICATION_FACTOR,
        TopicError::Config(c) => config_error(c),
        TopicError::Io(_) => codes::KAFKA_STORAGE_ERROR,
    }
}

pub fn config_error(_: &ConfigValueError) -> ErrorCode {
    codes::INVALID_CONFIG
}

/// A client's `current_leader_epoch` against ours: newer than ours means we
/// have not caught up (UNKNOWN_LEADER_EPOCH), older means the client is
/// stale (FENCED_LEADER_EPOCH). A negative epoch means "not known": no check.
pub fn leader_epoch_error(requested: i32, ours: i32) -> Option<ErrorCode> {
    match requested {
        r if r < 0 => None,
        r if r > ours => Some(codes::UNKNOWN_LEADER_EPOCH),
        r if r < ours => Some(codes::FENCED_LEADER_EPOCH),
        _ => None,
    }
}
