//! `fjord groups list|describe|delete|reset-offsets`, mirroring
//! `kafka-consumer-groups.sh`: the same options, the same tables.
//!
//! `reset-offsets` is the replay tool: it refuses a group with active
//! members (as Kafka does), prints old and new offsets, and commits only
//! with `--execute`.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{anyhow, bail};
use bytes::Buf;
use clap::{ArgGroup, Parser, Subcommand};
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, ConsumerProtocolAssignment, DeleteGroupsRequest, DeleteGroupsResponse,
    DescribeGroupsRequest, DescribeGroupsResponse, FindCoordinatorRequest, FindCoordinatorResponse,
    GroupId, ListGroupsRequest, ListGroupsResponse, ListOffsetsRequest, ListOffsetsResponse,
    MetadataRequest, MetadataResponse, OffsetCommitRequest, OffsetCommitResponse,
    OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};

use super::client::Conn;
use super::time::{parse_datetime, parse_duration};
use crate::clock::{Clock, SystemClock};

const DEFAULT_BOOTSTRAP: &str = "127.0.0.1:9092";

#[derive(Debug, Parser)]
#[command(
    name = "fjord groups",
    about = "Inspect consumer groups and reset their offsets"
)]
pub struct GroupsCli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// List the groups, one id per line.
    List {
        #[arg(long, default_value = DEFAULT_BOOTSTRAP)]
        bootstrap_server: String,
    },
    /// Members, committed offsets and lag of a group.
    Describe {
        #[arg(long, default_value = DEFAULT_BOOTSTRAP)]
        bootstrap_server: String,
        #[arg(long)]
        group: String,
    },
    /// Delete groups without active members, with their offsets.
    Delete {
        #[arg(long, default_value = DEFAULT_BOOTSTRAP)]
        bootstrap_server: String,
        #[arg(long, required = true)]
        group: Vec<String>,
    },
    /// Move a group's committed offsets (the group must be inactive).
    ResetOffsets(ResetArgs),
}

#[derive(Debug, clap::Args)]
#[command(group(ArgGroup::new("target").required(true).args([
    "to_earliest", "to_latest", "to_offset", "to_datetime", "by_duration", "shift_by"
])))]
#[command(group(ArgGroup::new("scope").required(true).args(["topic", "all_topics"])))]
struct ResetArgs {
    #[arg(long, default_value = DEFAULT_BOOTSTRAP)]
    bootstrap_server: String,
    #[arg(long)]
    group: String,
    /// TOPIC or TOPIC:P,P,... (repeatable).
    #[arg(long)]
    topic: Vec<String>,
    /// Every topic the group has committed offsets for.
    #[arg(long)]
    all_topics: bool,
    #[arg(long)]
    to_earliest: bool,
    #[arg(long)]
    to_latest: bool,
    #[arg(long, allow_negative_numbers = true)]
    to_offset: Option<i64>,
    /// ISO-8601, e.g. 2026-11-24T10:00:00.000 (UTC unless a zone is given).
    #[arg(long)]
    to_datetime: Option<String>,
    /// ISO-8601 duration back from now, e.g. PT1H or P1DT2H30M.
    #[arg(long)]
    by_duration: Option<String>,
    #[arg(long, allow_negative_numbers = true)]
    shift_by: Option<i64>,
    /// Show the new offsets without committing them (the default).
    #[arg(long, conflicts_with = "execute")]
    dry_run: bool,
    /// Commit the new offsets.
    #[arg(long)]
    execute: bool,
}

/// Runs `fjord groups ...`; `args` starts with "groups".
pub fn main(args: Vec<String>) -> std::process::ExitCode {
    let cli = match GroupsCli::try_parse_from(
        std::iter::once("fjord groups".to_string()).chain(args.into_iter().skip(1)),
    ) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return std::process::ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("Error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli.cmd)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cmd: Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::List { bootstrap_server } => list(&bootstrap_server).await,
        Cmd::Describe {
            bootstrap_server,
            group,
        } => describe(&bootstrap_server, &group).await,
        Cmd::Delete {
            bootstrap_server,
            group,
        } => delete(&bootstrap_server, &group).await,
        Cmd::ResetOffsets(a) => reset(a).await,
    }
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn code_name(code: i16) -> String {
    let name = match code {
        15 => "COORDINATOR_NOT_AVAILABLE",
        16 => "NOT_COORDINATOR",
        22 => "ILLEGAL_GENERATION",
        24 => "INVALID_GROUP_ID",
        25 => "UNKNOWN_MEMBER_ID",
        27 => "REBALANCE_IN_PROGRESS",
        3 => "UNKNOWN_TOPIC_OR_PARTITION",
        68 => "NON_EMPTY_GROUP",
        69 => "GROUP_ID_NOT_FOUND",
        _ => return format!("error code {code}"),
    };
    name.to_string()
}

/// Connects to the group's coordinator (found through the bootstrap server).
async fn coordinator(bootstrap: &str, group: &str) -> anyhow::Result<Conn> {
    let mut conn = Conn::connect(bootstrap).await?;
    let mut req = FindCoordinatorRequest::default();
    req.key = s(group);
    let resp: FindCoordinatorResponse = conn.call(ApiKey::FindCoordinator, 3, &req).await?;
    if resp.error_code != 0 {
        bail!(
            "cannot find the coordinator of group '{group}': {}",
            code_name(resp.error_code)
        );
    }
    let addr = format!("{}:{}", resp.host.as_str(), resp.port);
    if addr == bootstrap || resp.node_id == BrokerId(-1) {
        return Ok(conn);
    }
    Conn::connect(&addr).await
}

async fn list(bootstrap: &str) -> anyhow::Result<()> {
    let mut conn = Conn::connect(bootstrap).await?;
    let resp: ListGroupsResponse = conn
        .call(ApiKey::ListGroups, 4, &ListGroupsRequest::default())
        .await?;
    if resp.error_code != 0 {
        bail!("cannot list groups: {}", code_name(resp.error_code));
    }
    let ids: BTreeSet<String> = resp.groups.iter().map(|g| g.group_id.to_string()).collect();
    for id in ids {
        println!("{id}");
    }
    Ok(())
}

async fn describe_group(conn: &mut Conn, group: &str) -> anyhow::Result<DescribedGroup> {
    let mut req = DescribeGroupsRequest::default();
    req.groups = vec![GroupId(s(group))];
    let resp: DescribeGroupsResponse = conn.call(ApiKey::DescribeGroups, 5, &req).await?;
    let g = resp
        .groups
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("empty DescribeGroups response"))?;
    if g.error_code != 0 {
        bail!(
            "cannot describe group '{group}': {}",
            code_name(g.error_code)
        );
    }
    Ok(g)
}

type Tp = (String, i32);

async fn committed(conn: &mut Conn, group: &str) -> anyhow::Result<BTreeMap<Tp, i64>> {
    let mut req = OffsetFetchRequest::default();
    req.group_id = GroupId(s(group));
    req.topics = None;
    let resp: OffsetFetchResponse = conn.call(ApiKey::OffsetFetch, 7, &req).await?;
    if resp.error_code != 0 {
        bail!(
            "cannot fetch offsets of '{group}': {}",
            code_name(resp.error_code)
        );
    }
    let mut out = BTreeMap::new();
    for t in resp.topics {
        for p in t.partitions {
            if p.error_code == 0 && p.committed_offset >= 0 {
                out.insert((t.name.to_string(), p.partition_index), p.committed_offset);
            }
        }
    }
    Ok(out)
}

/// Offsets for a timestamp (-1 latest, -2 earliest) of each partition.
async fn list_offsets(conn: &mut Conn, parts: &[Tp], ts: i64) -> anyhow::Result<BTreeMap<Tp, i64>> {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in parts {
        by_topic.entry(t.as_str()).or_default().push(*p);
    }
    let mut req = ListOffsetsRequest::default();
    req.replica_id = BrokerId(-1);
    req.topics = by_topic
        .into_iter()
        .map(|(t, ps)| {
            let mut lt = ListOffsetsTopic::default();
            lt.name = TopicName(s(t));
            lt.partitions = ps
                .into_iter()
                .map(|p| {
                    let mut lp = ListOffsetsPartition::default();
                    lp.partition_index = p;
                    lp.current_leader_epoch = -1;
                    lp.timestamp = ts;
                    lp
                })
                .collect();
            lt
        })
        .collect();
    let resp: ListOffsetsResponse = conn.call(ApiKey::ListOffsets, 5, &req).await?;
    let mut out = BTreeMap::new();
    for t in resp.topics {
        for p in t.partitions {
            if p.error_code != 0 {
                bail!(
                    "cannot list offsets of {}-{}: {}",
                    t.name.as_str(),
                    p.partition_index,
                    code_name(p.error_code)
                );
            }
            out.insert((t.name.to_string(), p.partition_index), p.offset);
        }
    }
    Ok(out)
}

async fn partitions_of(conn: &mut Conn, topic: &str) -> anyhow::Result<Vec<i32>> {
    let mut req = MetadataRequest::default();
    let mut t = MetadataRequestTopic::default();
    t.name = Some(TopicName(s(topic)));
    req.topics = Some(vec![t]);
    req.allow_auto_topic_creation = false;
    let resp: MetadataResponse = conn.call(ApiKey::Metadata, 9, &req).await?;
    let t = resp
        .topics
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("no metadata for topic {topic}"))?;
    if t.error_code != 0 {
        bail!("topic {topic}: {}", code_name(t.error_code));
    }
    let mut ps: Vec<i32> = t.partitions.iter().map(|p| p.partition_index).collect();
    ps.sort_unstable();
    Ok(ps)
}

/// The partitions a member's `consumer` assignment names.
fn assigned(bytes: &bytes::Bytes) -> Vec<Tp> {
    let mut b = bytes.clone();
    if b.remaining() < 2 {
        return Vec::new();
    }
    let version = b.get_i16().clamp(0, 3);
    match ConsumerProtocolAssignment::decode(&mut b, version) {
        Ok(a) => a
            .assigned_partitions
            .into_iter()
            .flat_map(|tp| {
                let t = tp.topic.to_string();
                tp.partitions.into_iter().map(move |p| (t.clone(), p))
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Left-aligned columns, two spaces apart.
fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let out: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", out.join("  ").trim_end());
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}

fn opt(v: Option<i64>) -> String {
    v.map_or_else(|| "-".to_string(), |x| x.to_string())
}

async fn describe(bootstrap: &str, group: &str) -> anyhow::Result<()> {
    let mut conn = coordinator(bootstrap, group).await?;
    let g = describe_group(&mut conn, group).await?;
    if g.group_state.as_str() == "Dead" {
        bail!("Consumer group '{group}' does not exist.");
    }
    let offsets = committed(&mut conn, group).await?;
    // partition → (member id, host, client id)
    let mut owners: BTreeMap<Tp, (String, String, String)> = BTreeMap::new();
    if g.protocol_type.as_str() == "consumer" {
        for m in &g.members {
            for tp in assigned(&m.member_assignment) {
                owners.insert(
                    tp,
                    (
                        m.member_id.to_string(),
                        m.client_host.to_string(),
                        m.client_id.to_string(),
                    ),
                );
            }
        }
    }
    let parts: Vec<Tp> = offsets
        .keys()
        .chain(owners.keys())
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let ends = if parts.is_empty() {
        BTreeMap::new()
    } else {
        let mut data = Conn::connect(bootstrap).await?;
        list_offsets(&mut data, &parts, -1).await?
    };
    if g.members.is_empty() {
        println!("Consumer group '{group}' has no active members.");
        println!();
    }
    let rows: Vec<Vec<String>> = parts
        .iter()
        .map(|tp| {
            let cur = offsets.get(tp).copied();
            let end = ends.get(tp).copied();
            let lag = match (cur, end) {
                (Some(c), Some(e)) => Some((e - c).max(0)),
                _ => None,
            };
            let (mid, host, cid) = owners
                .get(tp)
                .cloned()
                .unwrap_or_else(|| ("-".into(), "-".into(), "-".into()));
            vec![
                group.to_string(),
                tp.0.clone(),
                tp.1.to_string(),
                opt(cur),
                opt(end),
                opt(lag),
                mid,
                host,
                cid,
            ]
        })
        .collect();
    print_table(
        &[
            "GROUP",
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "LOG-END-OFFSET",
            "LAG",
            "CONSUMER-ID",
            "HOST",
            "CLIENT-ID",
        ],
        &rows,
    );
    Ok(())
}

async fn delete(bootstrap: &str, groups: &[String]) -> anyhow::Result<()> {
    let mut failed = Vec::new();
    let mut ok = Vec::new();
    for g in groups {
        let mut conn = coordinator(bootstrap, g).await?;
        let mut req = DeleteGroupsRequest::default();
        req.groups_names = vec![GroupId(s(g))];
        let resp: DeleteGroupsResponse = conn.call(ApiKey::DeleteGroups, 2, &req).await?;
        match resp.results.first().map(|r| r.error_code) {
            Some(0) => ok.push(format!("'{g}'")),
            Some(code) => failed.push(format!("'{g}': {}", code_name(code))),
            None => failed.push(format!("'{g}': no result")),
        }
    }
    if !ok.is_empty() {
        println!(
            "Deletion of requested consumer groups ({}) was successful.",
            ok.join(", ")
        );
    }
    if !failed.is_empty() {
        bail!(
            "Deletion of some consumer groups failed: {}",
            failed.join(", ")
        );
    }
    Ok(())
}

/// TOPIC or TOPIC:P,P,...
fn parse_topic_spec(spec: &str) -> anyhow::Result<(String, Option<Vec<i32>>)> {
    match spec.split_once(':') {
        None => Ok((spec.to_string(), None)),
        Some((t, ps)) => {
            let parts = ps
                .split(',')
                .map(|p| {
                    p.trim()
                        .parse::<i32>()
                        .map_err(|_| anyhow!("bad partition `{p}` in `{spec}`"))
                })
                .collect::<anyhow::Result<Vec<i32>>>()?;
            Ok((t.to_string(), Some(parts)))
        }
    }
}

async fn reset(a: ResetArgs) -> anyhow::Result<()> {
    let group = a.group.as_str();
    let mut conn = coordinator(&a.bootstrap_server, group).await?;
    let g = describe_group(&mut conn, group).await?;
    let state = g.group_state.to_string();
    if !matches!(state.as_str(), "Empty" | "Dead") {
        bail!(
            "Assignments can only be reset if the group '{group}' is inactive, but the current state is {state}."
        );
    }
    let current = committed(&mut conn, group).await?;
    let mut data = Conn::connect(&a.bootstrap_server).await?;
    let mut parts: BTreeSet<Tp> = BTreeSet::new();
    if a.all_topics {
        parts.extend(current.keys().cloned());
    }
    for spec in &a.topic {
        let (t, ps) = parse_topic_spec(spec)?;
        let ps = match ps {
            Some(ps) => ps,
            None => partitions_of(&mut data, &t).await?,
        };
        parts.extend(ps.into_iter().map(|p| (t.clone(), p)));
    }
    let parts: Vec<Tp> = parts.into_iter().collect();
    if parts.is_empty() {
        bail!("no partitions to reset");
    }
    let earliest = list_offsets(&mut data, &parts, -2).await?;
    let latest = list_offsets(&mut data, &parts, -1).await?;
    let by_time = match (&a.to_datetime, &a.by_duration) {
        (Some(d), _) => Some(parse_datetime(d).map_err(|e| anyhow!(e))?),
        (None, Some(d)) => {
            let back = parse_duration(d).map_err(|e| anyhow!(e))?;
            Some(SystemClock.now_ms().saturating_sub(back))
        }
        _ => None,
    };
    let at_time = match by_time {
        Some(ts) => Some(list_offsets(&mut data, &parts, ts).await?),
        None => None,
    };
    let mut new = BTreeMap::new();
    for tp in &parts {
        let lo = earliest.get(tp).copied().unwrap_or(0);
        let hi = latest.get(tp).copied().unwrap_or(lo);
        let clamp = |o: i64| o.clamp(lo, hi.max(lo));
        let target = if a.to_earliest {
            lo
        } else if a.to_latest {
            hi
        } else if let Some(o) = a.to_offset {
            clamp(o)
        } else if let Some(n) = a.shift_by {
            let cur = current.get(tp).copied().ok_or_else(|| {
                anyhow!(
                    "Cannot shift offset for partition {}-{} since there is no current committed offset",
                    tp.0,
                    tp.1
                )
            })?;
            clamp(cur.saturating_add(n))
        } else if let Some(found) = &at_time {
            // No record at or after the time: the log end.
            match found.get(tp).copied() {
                Some(o) if o >= 0 => clamp(o),
                _ => hi,
            }
        } else {
            bail!("no reset target given");
        };
        new.insert(tp.clone(), target);
    }
    let rows: Vec<Vec<String>> = new
        .iter()
        .map(|(tp, n)| {
            let end = latest.get(tp).copied().unwrap_or(*n);
            vec![
                group.to_string(),
                tp.0.clone(),
                tp.1.to_string(),
                opt(current.get(tp).copied()),
                n.to_string(),
                (end - n).max(0).to_string(),
            ]
        })
        .collect();
    print_table(
        &[
            "GROUP",
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "NEW-OFFSET",
            "LAG",
        ],
        &rows,
    );
    if !a.execute {
        if !a.dry_run {
            eprintln!("WARN: No action will be performed as the --execute option is missing. Use --dry-run to show the new offsets without this warning.");
        }
        return Ok(());
    }
    commit(&mut conn, group, &new).await
}

async fn commit(conn: &mut Conn, group: &str, new: &BTreeMap<Tp, i64>) -> anyhow::Result<()> {
    let mut by_topic: BTreeMap<&str, Vec<(i32, i64)>> = BTreeMap::new();
    for ((t, p), o) in new {
        by_topic.entry(t.as_str()).or_default().push((*p, *o));
    }
    let mut req = OffsetCommitRequest::default();
    req.group_id = GroupId(s(group));
    req.generation_id_or_member_epoch = -1;
    req.topics = by_topic
        .into_iter()
        .map(|(t, ps)| {
            let mut rt = OffsetCommitRequestTopic::default();
            rt.name = TopicName(s(t));
            rt.partitions = ps
                .into_iter()
                .map(|(p, o)| {
                    let mut rp = OffsetCommitRequestPartition::default();
                    rp.partition_index = p;
                    rp.committed_offset = o;
                    rp.committed_leader_epoch = -1;
                    rp.committed_metadata = Some(s(""));
                    rp
                })
                .collect();
            rt
        })
        .collect();
    let resp: OffsetCommitResponse = conn.call(ApiKey::OffsetCommit, 8, &req).await?;
    let errors: Vec<String> = resp
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .filter(|p| p.error_code != 0)
                .map(move |p| {
                    format!(
                        "{}-{}: {}",
                        t.name.as_str(),
                        p.partition_index,
                        code_name(p.error_code)
                    )
                })
        })
        .collect();
    if !errors.is_empty() {
        bail!("committing the new offsets failed: {}", errors.join(", "));
    }
    Ok(())
}
