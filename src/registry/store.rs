//! The registry's `Store` over the broker's log: one partition of the
//! compacted `_schemas` topic, written as the coordinators write theirs
//! (one uncompressed batch per change, synced like acks=all data before
//! the change is answered) and read back from its start at start-up.
//!
//! Keys and values are Confluent's JSON; a record whose key or value is not
//! UTF-8 is handed on as undecodable (the registry skips and counts it).

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use fjord_schema_registry::registry::Record;
use fjord_schema_registry::store::{Store, StoreFuture};

use super::SCHEMAS_TOPIC;
use crate::clock::Clock;
use crate::coordinator::partition_io::{self, Replayed};
use crate::coordinator::records;
use crate::log::partition::Partition;
use crate::log::sync::Syncer;
use crate::log::LogManager;
use crate::protocol::batch;

pub struct LogStore {
    log: Arc<LogManager>,
    syncer: Syncer,
    fsync: bool,
    clock: Arc<dyn Clock>,
}

impl LogStore {
    /// Creates `_schemas` (compacted, one partition) if it does not exist.
    pub async fn open(
        log: Arc<LogManager>,
        syncer: Syncer,
        fsync: bool,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        if log.topic(SCHEMAS_TOPIC).is_none() {
            let configs = BTreeMap::from([
                ("cleanup.policy".to_string(), "compact".to_string()),
                ("segment.bytes".to_string(), "104857600".to_string()),
            ]);
            log.create_topic(SCHEMAS_TOPIC, 1, configs, false, clock.now_ms())
                .await
                .map_err(|e| anyhow::anyhow!("cannot create {SCHEMAS_TOPIC}: {e}"))?;
        }
        Ok(Self {
            log,
            syncer,
            fsync,
            clock,
        })
    }

    fn partition(&self) -> Result<(Arc<crate::log::topic::Topic>, Arc<Partition>), String> {
        let topic = self
            .log
            .topic(SCHEMAS_TOPIC)
            .ok_or_else(|| format!("{SCHEMAS_TOPIC} is missing"))?;
        let part = topic
            .partition(0)
            .ok_or_else(|| format!("{SCHEMAS_TOPIC} has no partition 0"))?;
        Ok((topic, part))
    }
}

impl Store for LogStore {
    fn append<'a>(&'a self, recs: &'a [Record]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let (topic, part) = self.partition()?;
            let encoded: Vec<records::Record> = recs
                .iter()
                .map(|r| records::Record {
                    key: Bytes::copy_from_slice(r.key.as_bytes()),
                    value: r
                        .value
                        .as_ref()
                        .map(|v| Bytes::copy_from_slice(v.as_bytes())),
                })
                .collect();
            let now = self.clock.now_ms();
            let bytes = partition_io::encode(&encoded, now, batch::build::Producer::NONE);
            let appended = part
                .append(&bytes, &topic.config(), now)
                .map_err(|e| format!("cannot append to {SCHEMAS_TOPIC}: {e}"))?;
            if self.fsync && !appended.files.is_empty() {
                self.syncer
                    .submit(appended.files)
                    .await
                    .unwrap_or_else(|_| Err("syncer stopped".into()))
                    .map_err(|e| format!("cannot sync {SCHEMAS_TOPIC}: {e}"))?;
            }
            Ok(())
        })
    }

    fn load(&self) -> Result<Vec<Record>, String> {
        let (_, part) = self.partition()?;
        let mut out = Vec::new();
        partition_io::replay(&part, |b| {
            if let Replayed::Records { records, .. } = b {
                for r in records {
                    // Not UTF-8: an empty key, which the registry skips.
                    let key = String::from_utf8(r.key.to_vec()).unwrap_or_default();
                    let value = r
                        .value
                        .map(|v| String::from_utf8(v.to_vec()).unwrap_or_default());
                    out.push(Record { key, value });
                }
            }
        });
        Ok(out)
    }
}
