//! Xiaomi push (MiPush), direct: `Authorization: key=APP_SECRET` and one form-encoded
//! `POST /v3/message/regid` per device. Every message carries an `extra.jobkey` derived from
//! (message, device): the device shows only the first message of a jobkey, so a resend
//! after an unknown outcome can never show twice.
//!
//! - [`message`]: notification → the form, and Xiaomi's replies → [`Verdict`](crate::retry::Verdict).

pub mod message;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use clap::Args;

use crate::args::{Common, ConfigError, SetupError, half_configured};
use crate::http::{DirectClient, DirectConfig};
use crate::metrics::MobileMetrics;
use crate::retry::{Attempt, Verdict, drive};
use crate::secret::{Secret, read_secret_file};
use crate::sender::{MobileRequest, MobileResult, MobileSender};

const VENDOR: &str = "xiaomi";
const FORM: &str = "application/x-www-form-urlencoded;charset=UTF-8";
const DEFAULT_ENDPOINT: &str = "https://api.xmpush.xiaomi.com";

/// Xiaomi push. Disabled unless `--xiaomi-app-secret-file` is given.
#[derive(Clone, Debug, Args)]
pub struct XiaomiArgs {
    /// File holding the app secret (`Authorization: key=…`); turns Xiaomi push on.
    #[arg(long, env = "PUSHD_XIAOMI_APP_SECRET_FILE")]
    pub xiaomi_app_secret_file: Option<PathBuf>,
    /// The app's package name (`restricted_package_name`).
    #[arg(long, env = "PUSHD_XIAOMI_PACKAGE")]
    pub xiaomi_package: Option<String>,
    /// `https://HOST[:PORT]` of the MiPush API.
    #[arg(long, env = "PUSHD_XIAOMI_ENDPOINT", default_value = DEFAULT_ENDPOINT)]
    pub xiaomi_endpoint: String,
    /// Extra trusted CA certificates (PEM), added to the Mozilla roots.
    #[arg(long, env = "PUSHD_XIAOMI_CA_FILE")]
    pub xiaomi_ca_file: Option<PathBuf>,
    /// How often a request written without a response is sent again (same jobkey: the
    /// device shows it once).
    #[arg(long, env = "PUSHD_XIAOMI_UNKNOWN_RETRIES", default_value_t = 0)]
    pub xiaomi_unknown_retries: u32,
    /// Most MiPush requests in flight.
    #[arg(long, env = "PUSHD_XIAOMI_CONCURRENCY", default_value_t = 64)]
    pub xiaomi_concurrency: usize,
    /// Past this, a written request without a response is `unknown`.
    #[arg(long, env = "PUSHD_XIAOMI_REQUEST_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub xiaomi_request_timeout: Duration,
}

/// Everything a [`XiaomiSender`] needs. The secret never appears in `Debug`.
#[derive(Debug, Clone)]
pub struct XiaomiConfig {
    pub package: String,
    pub app_secret: Secret,
    pub direct: DirectConfig,
}

impl XiaomiArgs {
    /// `None` when Xiaomi push is off.
    pub fn config(&self) -> Result<Option<XiaomiConfig>, SetupError> {
        let Some(file) = &self.xiaomi_app_secret_file else {
            half_configured(
                "Xiaomi push",
                "--xiaomi-app-secret-file (PUSHD_XIAOMI_APP_SECRET_FILE)",
                &[
                    (self.xiaomi_package.is_some(), "--xiaomi-package"),
                    (
                        self.xiaomi_endpoint != DEFAULT_ENDPOINT,
                        "--xiaomi-endpoint",
                    ),
                    (self.xiaomi_ca_file.is_some(), "--xiaomi-ca-file"),
                ],
            )?;
            return Ok(None);
        };
        let package = self.xiaomi_package.clone().ok_or_else(|| {
            ConfigError::Invalid(
                "--xiaomi-package is required with --xiaomi-app-secret-file".into(),
            )
        })?;
        if package.is_empty()
            || package.len() > 255
            || !package
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_')
        {
            return Err(ConfigError::Invalid(format!(
                "--xiaomi-package {package:?} is not a package name"
            ))
            .into());
        }
        let app_secret = read_secret_file("the Xiaomi app secret", file)?;
        let direct = Common {
            prefix: "--xiaomi",
            endpoint: &self.xiaomi_endpoint,
            ca_file: self.xiaomi_ca_file.as_deref(),
            unknown_retries: self.xiaomi_unknown_retries,
            concurrency: self.xiaomi_concurrency,
            request_timeout: self.xiaomi_request_timeout,
        }
        .direct()?;
        Ok(Some(XiaomiConfig {
            package,
            app_secret,
            direct,
        }))
    }
}

/// Sends notifications to Xiaomi. Cheap to clone.
#[derive(Clone)]
pub struct XiaomiSender {
    inner: Arc<Inner>,
}

struct Inner {
    config: XiaomiConfig,
    client: DirectClient,
    /// `https://host:port/v3/message/regid`.
    send_url: String,
    /// `key=APP_SECRET`.
    auth: Secret,
    metrics: MobileMetrics,
}

impl XiaomiSender {
    /// Opens no connection yet.
    pub fn new(config: XiaomiConfig, metrics: MobileMetrics) -> Result<XiaomiSender, ConfigError> {
        let client = DirectClient::new(VENDOR, &config.direct, metrics.clone())?;
        let send_url = format!("{}/v3/message/regid", config.direct.endpoint.base());
        let auth = Secret::new(format!("key={}", config.app_secret.expose()));
        tracing::info!(package = %config.package, endpoint = %config.direct.endpoint.base(), "Xiaomi push sender ready (direct)");
        Ok(XiaomiSender {
            inner: Arc::new(Inner {
                config,
                client,
                send_url,
                auth,
                metrics,
            }),
        })
    }
}

/// One notification's requests.
struct One<'a> {
    inner: &'a Inner,
    token: &'a str,
    form: Bytes,
}

#[async_trait]
impl Attempt for One<'_> {
    async fn attempt(&self, _open: &[usize]) -> Vec<Verdict> {
        let inner = self.inner;
        let auth = Some(("authorization", inner.auth.expose()));
        let verdict = inner
            .client
            .request(
                &inner.send_url,
                FORM,
                auth,
                self.form.clone(),
                |v| v,
                |s, h, b| message::classify(s, h, b, self.token),
            )
            .await;
        vec![verdict]
    }
}

#[async_trait]
impl MobileSender for XiaomiSender {
    async fn send(&self, req: &MobileRequest) -> MobileResult {
        let inner = &*self.inner;
        let form = match message::form(req, &inner.config.package) {
            Ok(f) => f,
            Err(reason) => return MobileResult::refused(reason),
        };
        let one = One {
            inner,
            token: &req.device.token,
            form,
        };
        let mut results = drive(VENDOR, &inner.config.direct.retry, &inner.metrics, 1, &one).await;
        results
            .pop()
            .unwrap_or_else(|| MobileResult::refused("not sent"))
    }
}

#[cfg(test)]
mod tests;
