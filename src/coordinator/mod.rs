//! Coordinators: the group coordinator as a deterministic state machine
//! (`machine`, `group`), the records it persists (`records`), and the
//! runtime that writes those records to `__consumer_offsets`, answers
//! waiting requests once they are durable, runs the timers and replays the
//! partition at start-up (`runtime`). The transaction coordinator
//! (`txn`, `txn_runtime`) does the same over `__transaction_state`, and
//! writes transaction markers to the data partitions; `producer_id` hands
//! out producer ids from durable blocks.

pub mod consumer;
pub mod effects;
pub mod group;
pub mod machine;
pub mod partition_io;
pub mod producer_id;
pub mod records;
pub mod runtime;
pub mod txn;
pub mod txn_runtime;

/// The internal topic holding groups and committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Whether a topic is one of the broker's internal topics (the
/// coordinators' and the schema registry's), which clients may read but not
/// write or delete.
pub fn is_internal(topic: &str) -> bool {
    topic == OFFSETS_TOPIC
        || topic == txn_runtime::TXN_TOPIC
        || topic == crate::registry::SCHEMAS_TOPIC
}

#[cfg(test)]
mod tests;
