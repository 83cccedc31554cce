//! The tier's errors, in one place. The broker maps them to Kafka codes
//! (a store that cannot be reached is retriable for a reader; a damaged
//! object is reported, never trusted).

use crate::manifest::TransitionError;

#[derive(Debug, thiserror::Error)]
pub enum TierError {
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    /// Another writer stored this manifest version first.
    #[error("manifest version {0} was written by someone else")]
    Conflict(u64),
    #[error("damaged remote data: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error("invalid tier URL {url:?}: {why}")]
    Url { url: String, why: String },
    #[error("timed out after {0} ms")]
    Timeout(u64),
}

pub type TierResult<T> = Result<T, TierError>;
