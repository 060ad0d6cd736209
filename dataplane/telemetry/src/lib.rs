//! Telemetry shared by every role.
//!
//! - [`init`]: the tracing subscriber (plain or JSON, filter from `RUST_LOG`, default `info`).
//! - [`Metrics`]: the data plane's Prometheus metrics, registered in one [`Registry`] that
//!   `/metrics` encodes.
#![forbid(unsafe_code)]

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tracing_subscriber::EnvFilter;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Plain,
    Json,
}

/// Installs the global tracing subscriber. Logs go to stderr; stdout is for program output.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Plain => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    // A second init (tests) keeps the first subscriber.
    drop(result);
}

/// Labels of `pushd_store_errors_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub kind: String,
}

/// Labels of `pushd_stage_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabels {
    pub stage: &'static str,
}

/// A histogram per pipeline stage (see [`Metrics::stage_seconds`]).
pub type StageFamily = Family<StageLabels, Histogram, fn() -> Histogram>;

fn stage_histogram() -> Histogram {
    // 50 µs … ~6.5 s.
    Histogram::new(exponential_buckets(0.00005, 2.0, 18))
}

/// Data-plane metrics. Cheap to clone (every metric is an `Arc` inside).
#[derive(Clone)]
pub struct Metrics {
    /// Open client WebSocket connections.
    pub connections: Gauge,
    /// Connections refused before the upgrade (bad token).
    pub auth_failures: Counter,
    /// Messages durably accepted (202, not counting idempotent repeats).
    pub messages_accepted: Counter,
    /// Message frames written to a client socket (one per device).
    pub messages_delivered: Counter,
    /// Acks that moved a user's acked-through watermark.
    pub messages_acked: Counter,
    /// Messages purged after their retention.
    pub messages_expired: Counter,
    /// Connections closed because their send queue overflowed.
    pub queue_overflows: Counter,
    /// Live deliveries dropped because the store has no such message for the user (a node
    /// never moves a connection past what the store has).
    pub untrusted_deliveries: Counter,
    /// Times a connection held messages behind a missing seq (a row still being stored), and
    /// times it gave up waiting and sent them out of the reorder window.
    pub reorder_holds: Counter,
    pub reorder_gave_up: Counter,
    /// Seconds from acceptance to the socket write, per device.
    pub delivery_latency: Histogram,
    /// Storage failures by kind.
    pub store_errors: Family<ErrorLabels, Counter>,
    /// Seconds spent per pipeline stage: `store` (collect: durable submit), `handoff`
    /// (collect: dispatch call), `route_lookup` and `forward` (dispatch: Redis lookup, node
    /// stream round trip), `replay` (push: one store page) and `socket_write` (push).
    pub stage_seconds: StageFamily,
}

impl Metrics {
    /// Creates the metrics and registers them under `pushd_`.
    pub fn new(registry: &mut Registry) -> Metrics {
        let m = Metrics {
            connections: Gauge::default(),
            auth_failures: Counter::default(),
            messages_accepted: Counter::default(),
            messages_delivered: Counter::default(),
            messages_acked: Counter::default(),
            messages_expired: Counter::default(),
            queue_overflows: Counter::default(),
            untrusted_deliveries: Counter::default(),
            reorder_holds: Counter::default(),
            reorder_gave_up: Counter::default(),
            delivery_latency: Histogram::new(exponential_buckets(0.0005, 2.0, 18)),
            store_errors: Family::default(),
            stage_seconds: Family::new_with_constructor(stage_histogram),
        };
        let r = registry.sub_registry_with_prefix("pushd");
        r.register(
            "connections",
            "Open client WebSocket connections",
            m.connections.clone(),
        );
        r.register(
            "auth_failures",
            "Connections refused before the upgrade",
            m.auth_failures.clone(),
        );
        r.register(
            "messages_accepted",
            "Messages durably accepted",
            m.messages_accepted.clone(),
        );
        r.register(
            "messages_delivered",
            "Message frames written to client sockets",
            m.messages_delivered.clone(),
        );
        r.register(
            "messages_acked",
            "Acks that moved a user's acked-through watermark",
            m.messages_acked.clone(),
        );
        r.register(
            "messages_expired",
            "Messages purged after their retention",
            m.messages_expired.clone(),
        );
        r.register(
            "untrusted_deliveries",
            "Live deliveries dropped because the store has no such message for the user",
            m.untrusted_deliveries.clone(),
        );
        r.register(
            "reorder_holds",
            "Times a connection held messages behind a missing seq that may still be being stored",
            m.reorder_holds.clone(),
        );
        r.register(
            "reorder_gave_up",
            "Times a missing seq did not turn up within the reorder window and later messages were sent",
            m.reorder_gave_up.clone(),
        );
        r.register(
            "queue_overflows",
            "Connections closed because their send queue overflowed",
            m.queue_overflows.clone(),
        );
        r.register(
            "delivery_latency_seconds",
            "Time from acceptance to the socket write",
            m.delivery_latency.clone(),
        );
        r.register(
            "store_errors",
            "Message store failures",
            m.store_errors.clone(),
        );
        r.register(
            "stage_seconds",
            "Time spent per pipeline stage",
            m.stage_seconds.clone(),
        );
        m
    }

    /// Records the time since `start` under `stage` (see [`Metrics::stage_seconds`]).
    pub fn observe_stage(&self, stage: &'static str, start: std::time::Instant) {
        self.stage_seconds
            .get_or_create(&StageLabels { stage })
            .observe(start.elapsed().as_secs_f64());
    }

    /// Counts a storage failure.
    pub fn store_error(&self, kind: &str) {
        self.store_errors
            .get_or_create(&ErrorLabels { kind: kind.into() })
            .inc();
    }
}

/// Encodes the registry in the Prometheus text format.
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry).expect("writing to a String");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_exported_with_prefix() {
        let mut registry = Registry::default();
        let m = Metrics::new(&mut registry);
        m.messages_accepted.inc();
        m.store_error("backend");
        m.delivery_latency.observe(0.01);
        let text = encode(&registry);
        assert!(text.contains("pushd_messages_accepted_total 1"), "{text}");
        assert!(
            text.contains("pushd_store_errors_total{kind=\"backend\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("pushd_delivery_latency_seconds_count 1"),
            "{text}"
        );
    }
}
