//! Gauges read at scrape time: per-partition offsets and sizes, live
//! connections, consumer-group lag and tier upload lag.
//!
//! They are written straight into the Prometheus text (not registered), so
//! what a scrape shows is exactly what exists now: a deleted topic or group
//! drops out at the next scrape. Each family is capped at
//! [`MAX_SERIES_PER_FAMILY`] lines, so a scrape's size is bounded however
//! many partitions or groups there are.

use std::fmt::Write;
use std::sync::Arc;

use crate::handlers::Broker;
use crate::log::Partition;
use crate::server::Live;

/// Lines one gauge family may produce in one scrape.
pub const MAX_SERIES_PER_FAMILY: usize = 100_000;

/// One gauge per partition: name, help, how it is read.
type PartitionGauge = (&'static str, &'static str, fn(&Partition) -> i128);

const PARTITION_GAUGES: [PartitionGauge; 3] = [
    (
        "fjord_partition_log_end_offset",
        "Offset after the last record of the partition.",
        |p| i128::from(p.high_watermark()),
    ),
    (
        "fjord_partition_log_start_offset",
        "First offset a consumer can fetch (remote tier included).",
        |p| i128::from(p.log_start_offset()),
    ),
    (
        "fjord_partition_size_bytes",
        "Bytes of the partition's local segments.",
        |p| i128::from(p.size_bytes()),
    ),
];

/// What the state gauges are read from.
pub struct State {
    pub broker: Arc<Broker>,
    pub live: Arc<Live>,
}

/// Escapes a label value (Prometheus text format: backslash, quote, newline).
fn esc(v: &str) -> std::borrow::Cow<'_, str> {
    if !v.contains(['\\', '"', '\n']) {
        return v.into();
    }
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
        .into()
}

/// One gauge family: HELP and TYPE lines, then at most
/// [`MAX_SERIES_PER_FAMILY`] series.
struct Family<'a> {
    out: &'a mut String,
    name: &'static str,
    lines: usize,
}

impl<'a> Family<'a> {
    fn new(out: &'a mut String, name: &'static str, help: &str) -> Self {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        Self {
            out,
            name,
            lines: 0,
        }
    }

    /// Adds `name{labels} value`; `labels` are (name, value) pairs.
    fn line(&mut self, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        if self.lines >= MAX_SERIES_PER_FAMILY {
            return;
        }
        self.lines += 1;
        let _ = write!(self.out, "{}", self.name);
        for (i, (k, v)) in labels.iter().enumerate() {
            let sep = if i == 0 { '{' } else { ',' };
            let _ = write!(self.out, "{sep}{k}=\"{}\"", esc(v));
        }
        if !labels.is_empty() {
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

impl State {
    /// Appends every state gauge to `out`.
    pub fn render(&self, out: &mut String) {
        let b = &self.broker;
        Family::new(out, "fjord_connections", "Open Kafka client connections.")
            .line(&[], self.live.count());

        let topics = b.log.topics();
        let parts: Vec<_> = topics
            .iter()
            .flat_map(|t| {
                t.partitions()
                    .iter()
                    .map(|p| (t.clone(), p.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        for (name, help, value) in PARTITION_GAUGES {
            let mut family = Family::new(out, name, help);
            for (t, p) in &parts {
                family.line(
                    &[("topic", &t.name), ("partition", &p.index.to_string())],
                    value(p),
                );
            }
        }

        let committed: Vec<(String, String, i32, i64)> = b.groups.read(|m| {
            m.committed_offsets()
                .take(MAX_SERIES_PER_FAMILY)
                .map(|(g, t, p, o)| (g.to_string(), t.to_string(), p, o))
                .collect()
        });
        let mut lag = Family::new(
            out,
            "fjord_consumer_group_lag",
            "Records between a group's committed offset and the log end.",
        );
        for (g, t, p, o) in &committed {
            let Some(part) = b.log.topic(t).and_then(|tp| tp.partition(*p)) else {
                continue;
            };
            let behind = part.high_watermark().saturating_sub(*o).max(0);
            lag.line(
                &[("group", g), ("topic", t), ("partition", &p.to_string())],
                behind,
            );
        }

        if let Some(tier) = &b.tier {
            let mut up = Family::new(
                out,
                "fjord_tier_upload_lag_bytes",
                "Bytes of sealed local segments of tiered topics not yet in the remote tier.",
            );
            for (t, p) in parts.iter().filter(|(t, _)| t.config().remote_storage) {
                if let Some(bytes) = tier.upload_lag_bytes(t.id, p) {
                    up.line(
                        &[("topic", &t.name), ("partition", &p.index.to_string())],
                        bytes,
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(esc("plain-topic.1"), "plain-topic.1");
        assert_eq!(esc("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn families_are_capped() {
        let mut out = String::new();
        let mut f = Family::new(&mut out, "x", "help");
        for i in 0..MAX_SERIES_PER_FAMILY + 5 {
            f.line(&[("i", &i.to_string())], 1);
        }
        f.line(&[], 1);
        assert_eq!(out.lines().count(), MAX_SERIES_PER_FAMILY + 2);
        assert!(out.starts_with("# HELP x help\n# TYPE x gauge\nx{i=\"0\"} 1\n"));
    }
}
