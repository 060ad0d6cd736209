//! [`MobileArgs`]: every vendor's flags (each also `PUSHD_…`), for a role to flatten, and
//! [`mobile_push`], which turns the validated [`MobileConfig`] into a [`MobilePush`] with a
//! sender per configured vendor. A vendor is off unless its enabling flag is given; any of
//! its other flags without that one is an error (half-configured), as is a bad file.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use prometheus_client::registry::Registry;
use pushcluster_apns::{ApnsArgs, ApnsConfig};
use pushcluster_proto::api::Platform;
use pushcluster_store::MessageStore;

use crate::http::{DirectConfig, Endpoint};
use crate::metrics::MobileMetrics;
use crate::push::MobilePush;
use crate::router::Router;
use crate::{apns, fcm, hms, vivo, xiaomi};

/// A configuration value that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid mobile push configuration: {0}")]
    Invalid(String),
    #[error("failed to read {what} from {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Mobile push could not be set up from the flags.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("{vendor} is half-configured: {flags} given without {enable}")]
    HalfConfigured {
        vendor: &'static str,
        flags: String,
        enable: &'static str,
    },
    #[error(transparent)]
    Apns(#[from] pushcluster_apns::ConfigError),
    #[error("failed to build the APNs sender: {0}")]
    ApnsBuild(#[from] pushcluster_apns::BuildError),
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Every vendor's flags.
#[derive(Clone, Debug, Args)]
pub struct MobileArgs {
    #[command(flatten)]
    pub apns: ApnsArgs,
    #[command(flatten)]
    pub fcm: fcm::FcmArgs,
    #[command(flatten)]
    pub hms: hms::HmsArgs,
    #[command(flatten)]
    pub xiaomi: xiaomi::XiaomiArgs,
    #[command(flatten)]
    pub vivo: vivo::VivoArgs,
}

/// The validated configuration of every vendor that is on.
#[derive(Debug, Clone, Default)]
pub struct MobileConfig {
    pub apns: Option<ApnsConfig>,
    pub fcm: Option<fcm::FcmConfig>,
    pub hms: Option<hms::HmsConfig>,
    pub xiaomi: Option<xiaomi::XiaomiConfig>,
    pub vivo: Option<vivo::VivoConfig>,
}

impl MobileConfig {
    /// True when at least one vendor is configured.
    pub fn is_enabled(&self) -> bool {
        self.apns.is_some()
            || self.fcm.is_some()
            || self.hms.is_some()
            || self.xiaomi.is_some()
            || self.vivo.is_some()
    }
}

/// Fails when flags of a vendor are given without its enabling flag.
pub(crate) fn half_configured(
    vendor: &'static str,
    enable: &'static str,
    given: &[(bool, &'static str)],
) -> Result<(), SetupError> {
    let flags: Vec<&str> = given
        .iter()
        .filter_map(|(set, flag)| set.then_some(*flag))
        .collect();
    if flags.is_empty() {
        return Ok(());
    }
    Err(SetupError::HalfConfigured {
        vendor,
        flags: flags.join(", "),
        enable,
    })
}

impl MobileArgs {
    /// Reads the files and validates every vendor's flags, before any socket is opened.
    pub fn config(&self) -> Result<MobileConfig, SetupError> {
        Ok(MobileConfig {
            apns: apns::config(&self.apns)?,
            fcm: self.fcm.config()?,
            hms: self.hms.config()?,
            xiaomi: self.xiaomi.config()?,
            vivo: self.vivo.config()?,
        })
    }
}

/// The flags every direct vendor has, as given.
pub(crate) struct Common<'a> {
    /// e.g. `--fcm`.
    pub prefix: &'static str,
    pub endpoint: &'a str,
    pub ca_file: Option<&'a Path>,
    pub unknown_retries: u32,
    pub concurrency: usize,
    pub request_timeout: Duration,
}

impl Common<'_> {
    /// The [`DirectConfig`] of these flags.
    pub(crate) fn direct(&self) -> Result<DirectConfig, ConfigError> {
        let endpoint: Endpoint = self.endpoint.parse().map_err(|_| {
            ConfigError::Invalid(format!(
                "{}-endpoint {:?} must be https://HOST[:PORT]",
                self.prefix, self.endpoint
            ))
        })?;
        let mut config = DirectConfig::new(endpoint);
        if let Some(ca) = self.ca_file {
            let pem = std::fs::read(ca).map_err(|source| ConfigError::Read {
                what: "a CA file",
                path: ca.to_owned(),
                source,
            })?;
            config.add_roots_pem(&pem)?;
        }
        if self.concurrency == 0 || self.request_timeout.is_zero() {
            return Err(ConfigError::Invalid(format!(
                "{p}-concurrency and {p}-request-timeout must be positive",
                p = self.prefix
            )));
        }
        config.concurrency = self.concurrency;
        config.request_timeout = self.request_timeout;
        config.retry.unknown_retries = self.unknown_retries;
        Ok(config)
    }
}

/// The dispatcher's mobile push with a sender per configured vendor, its metrics in
/// `registry`; `None` when no vendor is configured.
pub fn mobile_push(
    config: MobileConfig,
    store: Arc<dyn MessageStore>,
    registry: &mut Registry,
) -> Result<Option<MobilePush>, SetupError> {
    if !config.is_enabled() {
        tracing::info!("no push vendor configured: no mobile push");
        return Ok(None);
    }
    let metrics = MobileMetrics::new(registry);
    let mut router = Router::default();
    let mut concurrency = 1;
    if let Some(c) = config.apns {
        concurrency = concurrency.max(c.concurrency);
        router = router.with(
            Platform::Apns,
            Arc::new(apns::ApnsMobile::new(c, registry)?),
        );
    }
    if let Some(c) = config.fcm {
        concurrency = concurrency.max(c.direct.concurrency);
        router = router.with(
            Platform::Fcm,
            Arc::new(fcm::FcmSender::new(c, metrics.clone())?),
        );
    }
    if let Some(c) = config.hms {
        concurrency = concurrency.max(c.direct.concurrency);
        router = router.with(
            Platform::Hms,
            Arc::new(hms::HmsSender::new(c, metrics.clone())?),
        );
    }
    if let Some(c) = config.xiaomi {
        concurrency = concurrency.max(c.direct.concurrency);
        router = router.with(
            Platform::Xiaomi,
            Arc::new(xiaomi::XiaomiSender::new(c, metrics.clone())?),
        );
    }
    if let Some(c) = config.vivo {
        concurrency = concurrency.max(c.direct.concurrency);
        router = router.with(
            Platform::Vivo,
            Arc::new(vivo::VivoSender::new(c, metrics.clone())?),
        );
    }
    let platforms: Vec<&str> = router.platforms().iter().map(|p| p.as_str()).collect();
    tracing::info!(vendors = ?platforms, "mobile push on");
    Ok(Some(
        MobilePush::new(store, Arc::new(router), concurrency).with_metrics(metrics),
    ))
}

/// How often dispatch looks for notifications left pending by an unreachable vendor or proxy.
const RETRY_SWEEP: Duration = Duration::from_secs(60);

/// Sends again, in the background until `stop`, what a vendor or the proxy could not take.
pub fn spawn_retries(
    mobile: MobilePush,
    stop: impl Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move { mobile.sweep_every(RETRY_SWEEP, stop).await })
}

#[cfg(test)]
mod tests;
