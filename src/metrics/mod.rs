//! Metrics: what operators scrape from the admin listener's `/metrics`.
//!
//! Two kinds, kept apart so that the hot path pays only for events:
//! - events (requests and their latency per API key, bytes and records in
//!   and out per topic, fsync latency, connections accepted) go through
//!   `metrics` handles registered once and then held, so recording one is
//!   an atomic add, with no lookup by name and no allocation;
//! - state (log end offset, start offset and size per partition, live
//!   connections, consumer-group lag, tier upload lag) is read when scraped
//!   (see `state`): nothing is updated per append, and a deleted topic or
//!   group leaves no stale series behind.
//!
//! Each broker owns its recorder (no process-global one), so brokers run
//! in-process by tests keep their figures apart.

pub mod http;
mod state;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Instant;

use metrics::{Counter, Histogram, Key, Label, Level, Metadata, Recorder};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use crate::handlers::APIS;

pub use state::State;

/// Latency buckets in seconds: 100 µs to 10 s.
const SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Topics with their own byte and record counters; past this many, further
/// topics share the `topic="_other"` series (a bound on the registry).
const MAX_TOPIC_SERIES: usize = 10_000;

/// Counters of one API key.
pub struct ApiMetrics {
    requests: Counter,
    seconds: Histogram,
}

/// Counters of one topic.
pub struct TopicMetrics {
    pub bytes_in: Counter,
    pub records_in: Counter,
    pub bytes_out: Counter,
    pub records_out: Counter,
}

/// The broker's metrics: held by `Broker`, rendered by the admin listener.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// Indexed like [`APIS`].
    apis: Vec<ApiMetrics>,
    topics: RwLock<HashMap<String, Arc<TopicMetrics>>>,
    /// Shared by the topics past [`MAX_TOPIC_SERIES`], made on first need.
    other_topics: OnceLock<Arc<TopicMetrics>>,
    /// Duration of one group-commit round's fsyncs.
    pub sync_seconds: Histogram,
    pub connections_accepted: Counter,
}

static META: Metadata<'static> = Metadata::new("fjord", Level::INFO, Some(module_path!()));

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
            .map(PrometheusBuilder::build_recorder)
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        let handle = recorder.handle();
        let counter = |name: &'static str, labels: Vec<Label>| {
            recorder.register_counter(&Key::from_parts(name, labels), &META)
        };
        let histogram = |name: &'static str, labels: Vec<Label>| {
            recorder.register_histogram(&Key::from_parts(name, labels), &META)
        };
        let apis = APIS
            .iter()
            .map(|a| {
                let label = || vec![Label::new("api", format!("{:?}", a.key))];
                ApiMetrics {
                    requests: counter("fjord_requests_total", label()),
                    seconds: histogram("fjord_request_duration_seconds", label()),
                }
            })
            .collect();
        let sync_seconds = histogram("fjord_log_sync_duration_seconds", vec![]);
        let connections_accepted = counter("fjord_connections_accepted_total", vec![]);
        Self {
            other_topics: OnceLock::new(),
            recorder,
            handle,
            apis,
            topics: RwLock::new(HashMap::new()),
            sync_seconds,
            connections_accepted,
        }
    }

    /// One request of API `key` was answered; it was read at `started`.
    pub fn request_done(&self, key: i16, started: Instant) {
        if let Some(a) = APIS
            .iter()
            .position(|a| a.key as i16 == key)
            .and_then(|i| self.apis.get(i))
        {
            a.requests.increment(1);
            a.seconds.record(started.elapsed().as_secs_f64());
        }
    }

    /// The counters of `topic` (registered on first use).
    pub fn topic(&self, topic: &str) -> Arc<TopicMetrics> {
        if let Some(t) = self
            .topics
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(topic)
        {
            return t.clone();
        }
        let mut w = self.topics.write().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = w.get(topic) {
            return t.clone();
        }
        if w.len() >= MAX_TOPIC_SERIES {
            return self
                .other_topics
                .get_or_init(|| Arc::new(topic_metrics(&self.recorder, "_other")))
                .clone();
        }
        let t = Arc::new(topic_metrics(&self.recorder, topic));
        w.insert(topic.to_string(), t.clone());
        t
    }

    /// The event metrics in Prometheus text format.
    pub fn render_events(&self) -> String {
        self.handle.render()
    }

    /// Drains recorded histogram samples into their buckets; without it
    /// they pile up between scrapes. Runs every few seconds.
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }
}

fn topic_metrics(recorder: &PrometheusRecorder, topic: &str) -> TopicMetrics {
    let c = |name: &'static str| {
        let labels = vec![Label::new("topic", topic.to_string())];
        recorder.register_counter(&Key::from_parts(name, labels), &META)
    };
    TopicMetrics {
        bytes_in: c("fjord_topic_bytes_in_total"),
        records_in: c("fjord_topic_records_in_total"),
        bytes_out: c("fjord_topic_bytes_out_total"),
        records_out: c("fjord_topic_records_out_total"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_render_in_prometheus_format() {
        let m = Metrics::new();
        m.request_done(0, Instant::now());
        m.request_done(999, Instant::now()); // unknown keys are ignored
        let t = m.topic("orders");
        t.bytes_in.increment(1024);
        t.records_in.increment(3);
        m.sync_seconds.record(0.002);
        let text = m.render_events();
        assert!(
            text.contains("fjord_requests_total{api=\"Produce\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("fjord_request_duration_seconds_bucket{api=\"Produce\""),
            "{text}"
        );
        assert!(
            text.contains("fjord_topic_bytes_in_total{topic=\"orders\"} 1024"),
            "{text}"
        );
        assert!(
            text.contains("fjord_topic_records_in_total{topic=\"orders\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("fjord_log_sync_duration_seconds_count 1"),
            "{text}"
        );
        assert!(Arc::ptr_eq(&t, &m.topic("orders")));
    }

    #[test]
    fn topic_series_are_bounded() {
        let m = Metrics::new();
        let first = m.topic("first");
        {
            let mut w = m.topics.write().unwrap();
            for i in 1..MAX_TOPIC_SERIES {
                w.insert(format!("t{i}"), first.clone());
            }
        }
        let over = m.topic("one-too-many");
        assert!(Arc::ptr_eq(&over, &m.topic("another")));
        over.bytes_in.increment(5);
        assert!(m
            .render_events()
            .contains("fjord_topic_bytes_in_total{topic=\"_other\"} 5"));
    }
}
