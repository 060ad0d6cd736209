//! Prometheus metrics of the operator, registered under `pushcluster_operator_`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::error::Error;

/// Labels of `pushcluster_operator_reconcile_failures_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub error: &'static str,
}

/// Counters and histograms of the reconciler and the leader election.
#[derive(Clone)]
pub struct Metrics {
    pub reconciles: Counter,
    pub failures: Family<ErrorLabels, Counter>,
    pub duration: Histogram,
    /// 1 while this replica holds the Lease (or runs without leader election).
    pub leader: Gauge,
}

impl Metrics {
    pub fn new(registry: &mut Registry) -> Metrics {
        let m = Metrics {
            reconciles: Counter::default(),
            failures: Family::default(),
            duration: Histogram::new(exponential_buckets(0.005, 2.0, 12)),
            leader: Gauge::default(),
        };
        let r = registry.sub_registry_with_prefix("pushcluster_operator");
        r.register(
            "reconciles",
            "Reconciles of PushClusters",
            m.reconciles.clone(),
        );
        r.register(
            "reconcile_failures",
            "Reconciles that failed, by error",
            m.failures.clone(),
        );
        r.register(
            "reconcile_duration_seconds",
            "Time one reconcile took",
            m.duration.clone(),
        );
        r.register(
            "leader",
            "1 while this replica holds the leader Lease",
            m.leader.clone(),
        );
        m
    }

    pub fn failure(&self, e: &Error) {
        self.failures
            .get_or_create(&ErrorLabels {
                error: e.metric_label(),
            })
            .inc();
    }
}
