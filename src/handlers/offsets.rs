//! OffsetCommit, OffsetFetch and OffsetDelete: committed offsets, kept by
//! the group coordinator. Commit metadata round-trips byte for byte.

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse,
    OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::Broker;
use crate::coordinator::machine::Commit;
use crate::coordinator::records::OffsetValue;
use crate::protocol::codes::{self, ErrorCode};

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn partition_exists(b: &Broker, topic: &str, p: i32) -> bool {
    b.log.topic(topic).is_some_and(|t| t.partition(p).is_some())
}

/// One partition's offset as a commit request states it.
pub(super) struct Proposed<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: &'a str,
}

/// Checks one proposed offset (the partition exists, the metadata fits)
/// and makes it a commit; shared by OffsetCommit and TxnOffsetCommit.
pub(super) fn checked_commit(
    b: &Broker,
    p: Proposed<'_>,
    max_meta: usize,
    now_ms: i64,
) -> Result<Commit, ErrorCode> {
    if !partition_exists(b, p.topic, p.partition) {
        return Err(codes::UNKNOWN_TOPIC_OR_PARTITION);
    }
    if p.metadata.len() > max_meta {
        return Err(codes::OFFSET_METADATA_TOO_LARGE);
    }
    Ok(Commit {
        topic: p.topic.to_string(),
        partition: p.partition,
        value: OffsetValue {
            offset: p.offset,
            leader_epoch: p.leader_epoch,
            metadata: p.metadata.to_string(),
            commit_ms: now_ms,
        },
    })
}

pub async fn commit(b: &Broker, req: OffsetCommitRequest, version: i16) -> OffsetCommitResponse {
    let now = b.now_ms();
    let max_meta = b.groups.read(|m| m.config().offset_metadata_max_bytes);
    // Per-partition problems first; the rest is committed as one write.
    let mut results: Vec<(usize, i32, ErrorCode)> = Vec::new();
    let mut commits = Vec::new();
    for (ti, t) in req.topics.iter().enumerate() {
        for p in &t.partitions {
            let proposed = Proposed {
                topic: &t.name,
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: if version >= 6 {
                    p.committed_leader_epoch
                } else {
                    -1
                },
                metadata: p.committed_metadata.as_deref().unwrap_or(""),
            };
            let code = match checked_commit(b, proposed, max_meta, now) {
                Ok(c) => {
                    commits.push(c);
                    codes::NONE
                }
                Err(code) => code,
            };
            results.push((ti, p.partition_index, code));
        }
    }
    let inst = if version >= 7 {
        req.group_instance_id.as_ref().map(|x| x.to_string())
    } else {
        None
    };
    let outcome = b
        .groups
        .commit(
            &req.group_id,
            req.generation_id_or_member_epoch,
            &req.member_id,
            inst.as_deref(),
            version,
            commits,
            now,
        )
        .await;
    if let Err(e) = outcome {
        // A refusal by the group applies to every partition not already refused.
        for r in results.iter_mut().filter(|r| r.2 == codes::NONE) {
            r.2 = e;
        }
    }
    let mut resp = OffsetCommitResponse::default();
    resp.topics = req
        .topics
        .iter()
        .enumerate()
        .map(|(ti, t)| {
            let mut rt = OffsetCommitResponseTopic::default();
            rt.name = t.name.clone();
            rt.partitions = results
                .iter()
                .filter(|r| r.0 == ti)
                .map(|r| {
                    let mut rp = OffsetCommitResponsePartition::default();
                    rp.partition_index = r.1;
                    rp.error_code = r.2;
                    rp
                })
                .collect();
            rt
        })
        .collect();
    resp
}

type Wanted = Option<Vec<(String, Vec<i32>)>>;

fn fetch_group(
    b: &Broker,
    group: &str,
    wanted: &Wanted,
) -> Vec<(String, i32, Option<OffsetValue>)> {
    b.groups.read(|m| m.fetch_offsets(group, wanted.as_deref()))
}

/// Groups a flat (topic, partition, value) list by topic, in order.
fn by_topic<T>(rows: Vec<(String, i32, T)>) -> Vec<(String, Vec<(i32, T)>)> {
    let mut out: Vec<(String, Vec<(i32, T)>)> = Vec::new();
    for (t, p, v) in rows {
        match out.last_mut() {
            Some((name, parts)) if *name == t => parts.push((p, v)),
            _ => out.push((t, vec![(p, v)])),
        }
    }
    out
}

pub async fn fetch(b: &Broker, req: OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
    let mut resp = OffsetFetchResponse::default();
    if version >= 8 {
        resp.groups = req
            .groups
            .iter()
            .map(|g| {
                let wanted: Wanted = g.topics.as_ref().map(|ts| {
                    ts.iter()
                        .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
                        .collect()
                });
                let rows = fetch_group(b, &g.group_id, &wanted);
                let unstable = if req.require_stable {
                    b.groups.pending_txn_offsets(&g.group_id)
                } else {
                    Vec::new()
                };
                let mut rg = OffsetFetchResponseGroup::default();
                rg.group_id = g.group_id.clone();
                rg.topics = by_topic(rows)
                    .into_iter()
                    .map(|(t, parts)| {
                        let mut rt = OffsetFetchResponseTopics::default();
                        rt.name = TopicName(s(&t));
                        rt.partitions = parts
                            .into_iter()
                            .map(|(p, v)| {
                                let mut rp = OffsetFetchResponsePartitions::default();
                                rp.partition_index = p;
                                if unstable.iter().any(|(ut, up)| *ut == t && *up == p) {
                                    rp.error_code = codes::UNSTABLE_OFFSET_COMMIT;
                                }
                                fill(
                                    &mut rp.committed_offset,
                                    &mut rp.committed_leader_epoch,
                                    &mut rp.metadata,
                                    v,
                                );
                                rp
                            })
                            .collect();
                        rt
                    })
                    .collect();
                rg
            })
            .collect();
        return resp;
    }
    let wanted: Wanted = req.topics.as_ref().map(|ts| {
        ts.iter()
            .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
            .collect()
    });
    let rows = fetch_group(b, &req.group_id, &wanted);
    let unstable = if version >= 7 && req.require_stable {
        b.groups.pending_txn_offsets(&req.group_id)
    } else {
        Vec::new()
    };
    resp.topics = by_topic(rows)
        .into_iter()
        .map(|(t, parts)| {
            let mut rt = OffsetFetchResponseTopic::default();
            rt.name = TopicName(s(&t));
            rt.partitions = parts
                .into_iter()
                .map(|(p, v)| {
                    let mut rp = OffsetFetchResponsePartition::default();
                    rp.partition_index = p;
                    if unstable.iter().any(|(ut, up)| *ut == t && *up == p) {
                        rp.error_code = codes::UNSTABLE_OFFSET_COMMIT;
                    }
                    let mut epoch = -1;
                    fill(&mut rp.committed_offset, &mut epoch, &mut rp.metadata, v);
                    if version >= 5 {
                        rp.committed_leader_epoch = epoch;
                    }
                    rp
                })
                .collect();
            rt
        })
        .collect();
    resp
}

/// No committed offset reads as offset -1, epoch -1, empty metadata.
fn fill(offset: &mut i64, epoch: &mut i32, meta: &mut Option<StrBytes>, v: Option<OffsetValue>) {
    match v {
        Some(v) => {
            *offset = v.offset;
            *epoch = v.leader_epoch;
            *meta = Some(s(&v.metadata));
        }
        None => {
            *offset = -1;
            *epoch = -1;
            *meta = Some(s(""));
        }
    }
}

pub async fn delete(b: &Broker, req: OffsetDeleteRequest, _version: i16) -> OffsetDeleteResponse {
    let wanted: Vec<(String, Vec<i32>)> = req
        .topics
        .iter()
        .map(|t| {
            (
                t.name.to_string(),
                t.partitions.iter().map(|p| p.partition_index).collect(),
            )
        })
        .collect();
    let mut resp = OffsetDeleteResponse::default();
    let result = b
        .groups
        .write(&[req.group_id.as_str()], b.now_ms(), |m| {
            match m.delete_offsets(&req.group_id, &wanted) {
                Ok((rows, fx)) => (Ok(rows), fx),
                Err(e) => (Err(e), Default::default()),
            }
        })
        .await;
    let rows = match result {
        Ok(Ok(rows)) => rows,
        Ok(Err(e)) | Err(e) => {
            resp.error_code = e;
            return resp;
        }
    };
    let rows = rows
        .into_iter()
        .map(|(t, p, code)| {
            let code = if code == codes::NONE && !partition_exists(b, &t, p) {
                codes::UNKNOWN_TOPIC_OR_PARTITION
            } else {
                code
            };
            (t, p, code)
        })
        .collect();
    resp.topics = by_topic(rows)
        .into_iter()
        .map(|(t, parts)| {
            let mut rt = OffsetDeleteResponseTopic::default();
            rt.name = TopicName(s(&t));
            rt.partitions = parts
                .into_iter()
                .map(|(p, code)| {
                    let mut rp = OffsetDeleteResponsePartition::default();
                    rp.partition_index = p;
                    rp.error_code = code;
                    rp
                })
                .collect();
            rt
        })
        .collect();
    resp
}
