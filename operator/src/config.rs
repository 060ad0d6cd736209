//! Command line of `pushcluster-operator`; every flag is also an env var `PUSHCLUSTER_…`.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{ArgAction, Args, Parser, ValueEnum};

use crate::leader::LeaseConfig;

/// The image the chart and the Dockerfile build: it holds `pushd` and the operator.
pub const DEFAULT_IMAGE: &str = "ghcr.io/pushcluster/pushcluster:0.1.0";

/// Runs PushClusters: Deployments, Services, a ConfigMap and a PodDisruptionBudget per cluster.
#[derive(Debug, Parser)]
#[command(name = "pushcluster-operator", version)]
pub struct Config {
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, env = "PUSHCLUSTER_ADMIN_LISTEN", default_value = "0.0.0.0:8090")]
    pub admin_listen: SocketAddr,
    /// Watch PushClusters in this namespace only (default: every namespace).
    #[arg(long, env = "PUSHCLUSTER_WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,
    /// pushd image of PushClusters that name none.
    #[arg(long, env = "PUSHCLUSTER_PUSHD_IMAGE", default_value = DEFAULT_IMAGE)]
    pub pushd_image: String,
    #[command(flatten)]
    pub leader: LeaderArgs,
    /// Log format on stderr (filter with RUST_LOG, default info).
    #[arg(long, env = "PUSHCLUSTER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Plain)]
    pub log_format: LogFormat,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Plain,
    Json,
}

impl LogFormat {
    pub fn telemetry(self) -> pushcluster_telemetry::LogFormat {
        match self {
            LogFormat::Plain => pushcluster_telemetry::LogFormat::Plain,
            LogFormat::Json => pushcluster_telemetry::LogFormat::Json,
        }
    }
}

/// Leader election on a Lease.
#[derive(Debug, Clone, Args)]
pub struct LeaderArgs {
    /// Reconcile only while holding the Lease (turn off only for a single replica).
    #[arg(long = "leader-elect", env = "PUSHCLUSTER_LEADER_ELECT", default_value_t = true, action = ArgAction::Set)]
    pub enabled: bool,
    /// Name of the Lease.
    #[arg(
        long,
        env = "PUSHCLUSTER_LEASE_NAME",
        default_value = "pushcluster-operator"
    )]
    pub lease_name: String,
    /// Namespace of the Lease (the chart passes the operator's own).
    #[arg(long, env = "PUSHCLUSTER_LEASE_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,
    /// This replica's identity in the Lease (default: $HOSTNAME, i.e. the pod name, and the pid).
    #[arg(long = "lease-identity", env = "PUSHCLUSTER_LEASE_IDENTITY")]
    pub identity: Option<String>,
    /// How long a Lease is valid without renewal.
    #[arg(long, env = "PUSHCLUSTER_LEASE_DURATION", default_value = "15s", value_parser = humantime::parse_duration)]
    pub lease_duration: Duration,
    /// The leader steps down when it could not renew for this long.
    #[arg(long = "lease-renew-deadline", env = "PUSHCLUSTER_LEASE_RENEW_DEADLINE", default_value = "10s", value_parser = humantime::parse_duration)]
    pub renew_deadline: Duration,
    /// How often the leader renews and a standby retries.
    #[arg(long = "lease-retry-period", env = "PUSHCLUSTER_LEASE_RETRY_PERIOD", default_value = "2s", value_parser = humantime::parse_duration)]
    pub retry_period: Duration,
}

/// A flag combination that cannot work.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

impl LeaderArgs {
    /// The Lease settings, checked: retry period < renew deadline < lease duration.
    pub fn lease(&self) -> Result<LeaseConfig, ConfigError> {
        if !(self.retry_period < self.renew_deadline && self.renew_deadline < self.lease_duration) {
            return Err(ConfigError(format!(
                "need --lease-retry-period ({:?}) < --lease-renew-deadline ({:?}) < --lease-duration ({:?})",
                self.retry_period, self.renew_deadline, self.lease_duration
            )));
        }
        if self.lease_duration < Duration::from_secs(1) {
            return Err(ConfigError("--lease-duration must be at least 1s".into()));
        }
        let identity = self.identity.clone().unwrap_or_else(|| {
            let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "pushcluster-operator".into());
            format!("{host}_{}", std::process::id())
        });
        Ok(LeaseConfig {
            name: self.lease_name.clone(),
            namespace: self.lease_namespace.clone(),
            identity,
            lease_duration: self.lease_duration,
            renew_deadline: self.renew_deadline,
            retry_period: self.retry_period,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let c = Config::try_parse_from(["pushcluster-operator"]).unwrap();
        assert!(c.leader.enabled);
        assert_eq!(c.pushd_image, DEFAULT_IMAGE);
        let lease = c.leader.lease().unwrap();
        assert_eq!(lease.lease_duration, Duration::from_secs(15));
    }

    #[test]
    fn lease_timing_is_checked() {
        let c = Config::try_parse_from([
            "pushcluster-operator",
            "--lease-duration=5s",
            "--lease-renew-deadline=10s",
        ])
        .unwrap();
        let e = c.leader.lease().unwrap_err();
        assert!(e.0.contains("--lease-renew-deadline"), "{e}");
        let c = Config::try_parse_from(["pushcluster-operator", "--leader-elect=false"]).unwrap();
        assert!(!c.leader.enabled);
    }
}
