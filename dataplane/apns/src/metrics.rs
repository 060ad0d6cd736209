//! Prometheus metrics of the APNs sender, registered under `pushd_apns_`. Labels carry kinds
//! and Apple's reasons, never tokens, hosts or credentials.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of per-attempt and per-delivery counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// `accepted`, `rejected`, `retryable`, `unknown`, `proxy_error`.
    pub result: String,
    /// Apple's reason, or the kind of failure (`refused_stream`, `goaway`, `timeout`, …).
    pub reason: String,
}

/// Labels of `pushd_apns_connects_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectLabels {
    /// `ok`, or the failing step: `tcp`, `proxy_auth`, `proxy_unreachable`, `proxy_refused`,
    /// `proxy_protocol`, `tls`, `h2`.
    pub result: String,
}

/// APNs metrics. Cheap to clone. `ApnsMetrics::default()` is unregistered (tests, tools).
#[derive(Clone)]
pub struct ApnsMetrics {
    /// One per HTTP request (attempt), by result.
    pub attempts: Family<ResultLabels, Counter>,
    /// One per notification handed to the retry driver, by final result.
    pub deliveries: Family<ResultLabels, Counter>,
    /// Connection attempts (TCP, CONNECT, TLS, HTTP/2), by result.
    pub connects: Family<ConnectLabels, Counter>,
    /// Seconds from sending a request to its response (answered requests only).
    pub request_duration: Histogram,
    /// Provider tokens made.
    pub token_refreshes: Counter,
    /// Requests in flight.
    pub in_flight: Gauge,
}

impl Default for ApnsMetrics {
    fn default() -> Self {
        ApnsMetrics {
            attempts: Family::default(),
            deliveries: Family::default(),
            connects: Family::default(),
            request_duration: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            token_refreshes: Counter::default(),
            in_flight: Gauge::default(),
        }
    }
}

impl ApnsMetrics {
    /// Creates the metrics and registers them under `pushd_apns`.
    pub fn new(registry: &mut Registry) -> ApnsMetrics {
        let m = ApnsMetrics::default();
        let r = registry.sub_registry_with_prefix("pushd_apns");
        r.register("attempts", "APNs requests by result", m.attempts.clone());
        r.register(
            "deliveries",
            "Notifications by final result after retries",
            m.deliveries.clone(),
        );
        r.register(
            "connects",
            "Connections to APNs (through the proxy if any) by result",
            m.connects.clone(),
        );
        r.register(
            "request_duration_seconds",
            "Time from sending an APNs request to its response",
            m.request_duration.clone(),
        );
        r.register(
            "token_refreshes",
            "Provider tokens made",
            m.token_refreshes.clone(),
        );
        r.register("in_flight", "APNs requests in flight", m.in_flight.clone());
        m
    }

    pub(crate) fn connect(&self, result: &str) {
        self.connects
            .get_or_create(&ConnectLabels {
                result: result.into(),
            })
            .inc();
    }
}
