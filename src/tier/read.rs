//! Reads below the local log start, for Fetch and ListOffsets.
//!
//! An offset in `[remote log start, local log start)` is the tier's: its
//! records come from the remote segments (through the chunk cache), with a
//! time limit so a slow or unreachable store answers KAFKA_STORAGE_ERROR,
//! which clients retry, instead of holding the request.

use std::time::Duration;

use bytes::Bytes;
use fjord_tiering::read::RemoteRecords;

use super::Tier;
use crate::log::{LogManager, Partition};

/// Longest a remote read may take before the request is answered with an
/// error.
const REMOTE_READ_TIMEOUT: Duration = Duration::from_secs(15);

/// Whether `offset` lies in the remote tier's part of `p`.
pub fn is_remote_offset(p: &Partition, offset: i64) -> bool {
    p.remote_log_start().is_some_and(|r| offset >= r) && offset < p.local_log_start()
}

/// What a remote read found.
pub enum Remote {
    Records(RemoteRecords),
    /// The tier holds nothing there (deleted meanwhile).
    Nothing,
    /// The store failed or was too slow.
    Unavailable(String),
}

/// Reads whole batches from `offset` (up to `max_bytes`, the first batch
/// whole) from the tier.
pub async fn read(
    tier: &Tier,
    log: &LogManager,
    p: &Partition,
    offset: i64,
    max_bytes: usize,
) -> Remote {
    let Some(topic) = log.topic(&p.topic) else {
        return Remote::Nothing;
    };
    let work = async {
        let tp = tier.partition(&topic.name, topic.id, p.index).await?;
        tp.reader.read(offset, max_bytes).await
    };
    match tokio::time::timeout(REMOTE_READ_TIMEOUT, work).await {
        Ok(Ok(Some(r))) => Remote::Records(r),
        Ok(Ok(None)) => Remote::Nothing,
        Ok(Err(e)) => Remote::Unavailable(e.to_string()),
        Err(_) => Remote::Unavailable("remote read timed out".into()),
    }
}

/// The first batch with a record at or after `ts` in the tier, if the tier
/// has one; errors count as none found there.
pub async fn batch_for_time(
    tier: &Tier,
    log: &LogManager,
    p: &Partition,
    ts: i64,
) -> Result<Option<Bytes>, String> {
    if p.remote_log_start().is_none() {
        return Ok(None);
    }
    let Some(topic) = log.topic(&p.topic) else {
        return Ok(None);
    };
    let work = async {
        let tp = tier.partition(&topic.name, topic.id, p.index).await?;
        tp.reader.batch_for_time(ts).await
    };
    match tokio::time::timeout(REMOTE_READ_TIMEOUT, work).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err("remote read timed out".into()),
    }
}

/// The last offset the tier holds (ListOffsets -5), if any.
pub async fn latest_tiered(tier: &Tier, log: &LogManager, p: &Partition) -> Option<i64> {
    let topic = log.topic(&p.topic)?;
    let tp = tier.partition(&topic.name, topic.id, p.index).await.ok()?;
    tp.remote.manifest().end_offset().map(|e| e - 1)
}
