//! Shared by the APNs integration tests and the benchmark: a fake APNs server, optionally
//! behind a real squid (basic auth, ACL allowing only the fake's port), and senders for it.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use prometheus_client::registry::Registry;
use pushcluster_apns::{
    ApnsConfig, ApnsMetrics, ApnsSender, DeviceToken, Endpoint, ManualClock, Notification,
    ProxyConfig, ProxyCredentials, SigningKey,
};
use pushcluster_test_support::apns::FakeApns;
use pushcluster_test_support::squid::Squid;
use uuid::Uuid;

pub const PROXY_USER: &str = "apns";
pub const PROXY_PASSWORD: &str = "pr0xy-s3cret";

/// 10:01:00 UTC on 2026-03-01: one minute into a 30-minute token period.
pub fn origin() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_772_359_200 + 60)
}

pub struct Harness {
    pub apns: FakeApns,
    pub squid: Option<Squid>,
    pub clock: Arc<ManualClock>,
}

impl Harness {
    /// The fake alone (direct connections).
    pub async fn direct() -> Harness {
        Harness {
            apns: FakeApns::start().await,
            squid: None,
            clock: Arc::new(ManualClock::new(origin())),
        }
    }

    /// The fake behind squid; `None` (skip) when squid is missing and not required.
    pub async fn via_squid() -> Option<Harness> {
        let apns = FakeApns::start().await;
        let squid = Squid::start(PROXY_USER, PROXY_PASSWORD, &[apns.port()]).await?;
        Some(Harness {
            apns,
            squid: Some(squid),
            clock: Arc::new(ManualClock::new(origin())),
        })
    }

    /// A config for the fake: its CA trusted, through squid if there is one, short timeouts.
    pub fn config(&self) -> ApnsConfig {
        let key = SigningKey::from_pem(self.apns.key_pem.as_bytes()).expect("test key");
        let endpoint: Endpoint = self.apns.url().parse().expect("endpoint");
        let mut config = ApnsConfig::new(
            key,
            &self.apns.key_id,
            &self.apns.team_id,
            &self.apns.topic,
            endpoint,
        );
        config
            .add_roots_pem(self.apns.ca_pem.as_bytes())
            .expect("test CA");
        if let Some(squid) = &self.squid {
            config.proxy = Some(ProxyConfig {
                host: "127.0.0.1".into(),
                port: squid.port,
                credentials: Some(ProxyCredentials::Inline {
                    user: PROXY_USER.into(),
                    password: PROXY_PASSWORD.into(),
                }),
                tls: false,
            });
        }
        config.request_timeout = Duration::from_secs(1);
        config.connect_timeout = Duration::from_secs(5);
        config.reconnect_delay = Duration::from_millis(50);
        config.retry.backoff_base = Duration::from_millis(20);
        config.retry.backoff_max = Duration::from_millis(200);
        config
    }

    /// A sender on the manual clock, its metrics in a fresh registry.
    pub fn sender(&self, config: ApnsConfig) -> (ApnsSender, Registry) {
        let mut registry = Registry::default();
        let metrics = ApnsMetrics::new(&mut registry);
        let sender = ApnsSender::builder(config)
            .metrics(metrics)
            .clock(self.clock.clone())
            .build()
            .expect("sender");
        (sender, registry)
    }

    /// squid's access-log lines for tunnels to the fake, once squid has logged `at_least`
    /// of them (squid logs a tunnel when it closes).
    pub async fn tunnel_log(&self, at_least: usize) -> Vec<String> {
        let squid = self.squid.as_ref().expect("squid");
        let target = format!("CONNECT 127.0.0.1:{}", self.apns.port());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let lines: Vec<String> = squid
                .access_log()
                .into_iter()
                .filter(|l| l.contains(&target))
                .collect();
            if lines.len() >= at_least || tokio::time::Instant::now() > deadline {
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A device token (64 hex digits) numbered `n`.
pub fn device(n: u32) -> String {
    format!("{n:064x}")
}

/// An alert for device `n` with a fresh apns-id.
pub fn notification(n: u32) -> Notification {
    let token = DeviceToken::parse(&device(n)).expect("device token");
    Notification::new(
        token,
        Uuid::now_v7(),
        Bytes::from_static(br#"{"aps":{"alert":{"title":"hi","body":"there"}}}"#),
    )
}

/// The Prometheus text of a registry.
pub fn metrics_text(registry: &Registry) -> String {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry).expect("encode");
    out
}
