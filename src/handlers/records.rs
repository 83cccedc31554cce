//! DeleteRecords, DescribeLogDirs, OffsetForLeaderEpoch.

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{
    DeleteRecordsRequest, DeleteRecordsResponse, DescribeLogDirsRequest, DescribeLogDirsResponse,
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::{errors, Broker};
use crate::protocol::codes;

pub async fn delete_records(
    b: &Broker,
    req: DeleteRecordsRequest,
    _version: i16,
) -> DeleteRecordsResponse {
    let mut resp = DeleteRecordsResponse::default();
    for t in req.topics {
        let topic = b.log.topic(&t.name);
        let mut tr = DeleteRecordsTopicResult::default();
        tr.name = t.name.clone();
        for p in t.partitions {
            let mut r = DeleteRecordsPartitionResult::default();
            r.partition_index = p.partition_index;
            r.low_watermark = -1;
            match topic.as_ref().and_then(|t| t.partition(p.partition_index)) {
                None => r.error_code = codes::UNKNOWN_TOPIC_OR_PARTITION,
                Some(part) => match part.delete_records(p.offset) {
                    Ok(low) => r.low_watermark = low,
                    Err(e) => r.error_code = errors::log_error(&e),
                },
            }
            tr.partitions.push(r);
        }
        resp.topics.push(tr);
    }
    resp
}

/// (total, usable) bytes of the filesystem holding `path`.
fn fs_space(path: &std::path::Path) -> (i64, i64) {
    #[allow(unsafe_code)]
    fn statvfs(p: &std::ffi::CStr) -> Option<libc::statvfs> {
        let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
        // SAFETY: p is a valid NUL-terminated path; st is written by the call before it is read.
        let rc = unsafe { libc::statvfs(p.as_ptr(), st.as_mut_ptr()) };
        // SAFETY: rc == 0 means statvfs filled the struct.
        (rc == 0).then(|| unsafe { st.assume_init() })
    }
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return (-1, -1);
    };
    match statvfs(&c) {
        Some(st) => {
            let frsize = i64::try_from(st.f_frsize).unwrap_or(0);
            let total = i64::try_from(st.f_blocks)
                .unwrap_or(0)
                .saturating_mul(frsize);
            let avail = i64::try_from(st.f_bavail)
                .unwrap_or(0)
                .saturating_mul(frsize);
            (total, avail)
        }
        None => (-1, -1),
    }
}

pub async fn describe_log_dirs(
    b: &Broker,
    req: DescribeLogDirsRequest,
    _version: i16,
) -> DescribeLogDirsResponse {
    let mut dir = DescribeLogDirsResult::default();
    let path = b
        .log
        .data_dir()
        .canonicalize()
        .unwrap_or_else(|_| b.log.data_dir().to_path_buf());
    dir.log_dir = StrBytes::from_string(path.display().to_string());
    (dir.total_bytes, dir.usable_bytes) = fs_space(&path);
    let wanted: Option<Vec<(String, Vec<i32>)>> = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.topic.0.to_string(), t.partitions))
            .collect()
    });
    for t in b.log.topics() {
        let parts: Option<&Vec<i32>> = match &wanted {
            None => None,
            Some(w) => match w.iter().find(|(n, _)| *n == t.name) {
                Some((_, p)) => Some(p),
                None => continue,
            },
        };
        let mut dt = DescribeLogDirsTopic::default();
        dt.name = TopicName(StrBytes::from_string(t.name.clone()));
        for p in t.partitions().iter() {
            if parts.is_some_and(|ps| !ps.contains(&p.index)) {
                continue;
            }
            let mut dp = DescribeLogDirsPartition::default();
            dp.partition_index = p.index;
            dp.partition_size = i64::try_from(p.size_bytes()).unwrap_or(i64::MAX);
            dp.offset_lag = 0;
            dt.partitions.push(dp);
        }
        dir.topics.push(dt);
    }
    let mut resp = DescribeLogDirsResponse::default();
    resp.results = vec![dir];
    resp
}

/// A single node never changes leader, so each partition has one epoch,
/// persisted with its topic; it ends at the log end offset.
pub async fn offset_for_leader_epoch(
    b: &Broker,
    req: OffsetForLeaderEpochRequest,
    _version: i16,
) -> OffsetForLeaderEpochResponse {
    let mut resp = OffsetForLeaderEpochResponse::default();
    for t in req.topics {
        let topic = b.log.topic(&t.topic);
        let mut tr = OffsetForLeaderTopicResult::default();
        tr.topic = t.topic.clone();
        for p in t.partitions {
            let mut r = EpochEndOffset::default();
            r.partition = p.partition;
            r.leader_epoch = -1;
            r.end_offset = -1;
            match topic.as_ref().and_then(|t| t.partition(p.partition)) {
                None => r.error_code = codes::UNKNOWN_TOPIC_OR_PARTITION,
                Some(part) => {
                    let epoch = part.leader_epoch();
                    if let Some(code) = errors::leader_epoch_error(p.current_leader_epoch, epoch) {
                        r.error_code = code;
                    } else if p.leader_epoch >= epoch {
                        r.leader_epoch = epoch;
                        r.end_offset = part.high_watermark();
                    }
                }
            }
            tr.partitions.push(r);
        }
        resp.topics.push(tr);
    }
    resp
}
