//! Prometheus metrics of mobile push, registered under `pushd_mobile_`, labelled by vendor
//! (`apns`, `fcm`, `hms`, `xiaomi`, `vivo`). Labels carry kinds and vendor codes, never
//! tokens, hosts or credentials. APNs keeps its own detailed `pushd_apns_*` as well.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use pushcluster_proto::api::{MobileState, Platform};

/// `{vendor}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VendorLabel {
    pub vendor: String,
}

/// `{vendor, outcome}`: one notification's final state, or one request's classification.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub vendor: String,
    /// Sends: `accepted`, `rejected`, `unknown`, `pending`. Requests: `accepted`,
    /// `rejected`, `auth_refused`, `retry`, `later`, `unknown`. Token refreshes: `ok`,
    /// `failed`.
    pub outcome: String,
}

fn histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Mobile push metrics. Cheap to clone; `MobileMetrics::default()` is unregistered.
#[derive(Clone)]
pub struct MobileMetrics {
    /// Notifications by vendor and final state (after every retry of one round).
    pub sends: Family<OutcomeLabels, Counter>,
    /// Device tokens the vendor called dead.
    pub dead_tokens: Family<VendorLabel, Counter>,
    /// HTTP requests to a direct vendor, by how they were classified.
    pub requests: Family<OutcomeLabels, Counter>,
    /// Seconds from sending a request to a vendor to its complete response.
    pub request_duration: Family<VendorLabel, Histogram, fn() -> Histogram>,
    /// Access tokens fetched (FCM, HMS OAuth; vivo auth), by result.
    pub token_refreshes: Family<OutcomeLabels, Counter>,
}

impl Default for MobileMetrics {
    fn default() -> Self {
        MobileMetrics {
            sends: Family::default(),
            dead_tokens: Family::default(),
            requests: Family::default(),
            request_duration: Family::new_with_constructor(histogram),
            token_refreshes: Family::default(),
        }
    }
}

fn labels(vendor: &str, outcome: &str) -> OutcomeLabels {
    OutcomeLabels {
        vendor: vendor.into(),
        outcome: outcome.into(),
    }
}

impl MobileMetrics {
    /// Creates the metrics and registers them under `pushd_mobile`.
    pub fn new(registry: &mut Registry) -> MobileMetrics {
        let m = MobileMetrics::default();
        let r = registry.sub_registry_with_prefix("pushd_mobile");
        r.register(
            "sends",
            "Mobile notifications by vendor and final state",
            m.sends.clone(),
        );
        r.register(
            "dead_tokens",
            "Device tokens a vendor reported dead (devices marked dead)",
            m.dead_tokens.clone(),
        );
        r.register(
            "requests",
            "Requests to a direct push vendor by classification",
            m.requests.clone(),
        );
        r.register(
            "request_duration_seconds",
            "Time from sending a request to a push vendor to its response",
            m.request_duration.clone(),
        );
        r.register(
            "token_refreshes",
            "Vendor access tokens fetched, by result",
            m.token_refreshes.clone(),
        );
        m
    }

    pub(crate) fn sent(&self, platform: Platform, state: MobileState) {
        let outcome = match state {
            MobileState::Accepted => "accepted",
            MobileState::Rejected => "rejected",
            MobileState::Unknown => "unknown",
            MobileState::Pending => "pending",
        };
        self.sends
            .get_or_create(&labels(platform.as_str(), outcome))
            .inc();
    }

    pub(crate) fn dead_token(&self, platform: Platform) {
        self.dead_tokens
            .get_or_create(&VendorLabel {
                vendor: platform.as_str().into(),
            })
            .inc();
    }

    pub(crate) fn request(&self, vendor: &str, outcome: &str) {
        self.requests.get_or_create(&labels(vendor, outcome)).inc();
    }

    pub(crate) fn latency(&self, vendor: &str, seconds: f64) {
        self.request_duration
            .get_or_create(&VendorLabel {
                vendor: vendor.into(),
            })
            .observe(seconds);
    }

    pub(crate) fn token_refresh(&self, vendor: &str, ok: bool) {
        let outcome = if ok { "ok" } else { "failed" };
        self.token_refreshes
            .get_or_create(&labels(vendor, outcome))
            .inc();
    }
}
