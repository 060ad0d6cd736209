//! Firebase Cloud Messaging (HTTP v1), direct: a service-account key signs an RS256 JWT
//! grant for an OAuth access token (cached, refreshed before it expires and after a 401), and
//! each notification is one `POST /v1/projects/{project}/messages:send` over a pooled
//! HTTP/2 connection.
//!
//! - [`auth`]: the service-account file and the token grant.
//! - [`message`]: notification → FCM message, and FCM's replies → [`Verdict`](crate::retry::Verdict).

pub mod auth;
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
use crate::secret::Secret;
use crate::sender::{MobileRequest, MobileResult, MobileSender};
use crate::token::{TokenCache, Used};

const VENDOR: &str = "fcm";
const JSON: &str = "application/json";
const DEFAULT_ENDPOINT: &str = "https://fcm.googleapis.com";

/// FCM (Android). Disabled unless `--fcm-credentials-file` is given.
#[derive(Clone, Debug, Args)]
pub struct FcmArgs {
    /// The Firebase service-account key (JSON, as the console hands it out); turns FCM on.
    #[arg(long, env = "PUSHD_FCM_CREDENTIALS_FILE")]
    pub fcm_credentials_file: Option<PathBuf>,
    /// The Firebase project id (default: the key's `project_id`).
    #[arg(long, env = "PUSHD_FCM_PROJECT_ID")]
    pub fcm_project_id: Option<String>,
    /// `https://HOST[:PORT]` of the FCM API (the key's `token_uri` is used for tokens).
    #[arg(long, env = "PUSHD_FCM_ENDPOINT", default_value = DEFAULT_ENDPOINT)]
    pub fcm_endpoint: String,
    /// Extra trusted CA certificates (PEM), added to the Mozilla roots.
    #[arg(long, env = "PUSHD_FCM_CA_FILE")]
    pub fcm_ca_file: Option<PathBuf>,
    /// How often a request written without a response is sent again (same tag, so a
    /// duplicate replaces the first copy on the device).
    #[arg(long, env = "PUSHD_FCM_UNKNOWN_RETRIES", default_value_t = 0)]
    pub fcm_unknown_retries: u32,
    /// Most FCM requests in flight.
    #[arg(long, env = "PUSHD_FCM_CONCURRENCY", default_value_t = 256)]
    pub fcm_concurrency: usize,
    /// Past this, a written request without a response is `unknown`.
    #[arg(long, env = "PUSHD_FCM_REQUEST_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub fcm_request_timeout: Duration,
}

/// Everything an [`FcmSender`] needs. The key never appears in `Debug`.
#[derive(Debug, Clone)]
pub struct FcmConfig {
    pub project_id: String,
    pub account: auth::ServiceAccount,
    pub direct: DirectConfig,
    /// The least wait after 429 QUOTA_EXCEEDED without a `Retry-After` (FCM asks ≥ 1 min).
    pub quota_backoff: Duration,
}

impl FcmArgs {
    /// `None` when FCM is off.
    pub fn config(&self) -> Result<Option<FcmConfig>, SetupError> {
        let Some(file) = &self.fcm_credentials_file else {
            half_configured(
                "FCM",
                "--fcm-credentials-file (PUSHD_FCM_CREDENTIALS_FILE)",
                &[
                    (self.fcm_project_id.is_some(), "--fcm-project-id"),
                    (self.fcm_endpoint != DEFAULT_ENDPOINT, "--fcm-endpoint"),
                    (self.fcm_ca_file.is_some(), "--fcm-ca-file"),
                ],
            )?;
            return Ok(None);
        };
        let text = std::fs::read(file).map_err(|source| ConfigError::Read {
            what: "the FCM service-account key",
            path: file.clone(),
            source,
        })?;
        let account = auth::ServiceAccount::from_json(&text)?;
        let project_id = self
            .fcm_project_id
            .clone()
            .unwrap_or_else(|| account.project_id.clone());
        if project_id.is_empty()
            || !project_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b':' || b == b'.')
        {
            return Err(ConfigError::Invalid(format!("bad FCM project id {project_id:?}")).into());
        }
        let direct = Common {
            prefix: "--fcm",
            endpoint: &self.fcm_endpoint,
            ca_file: self.fcm_ca_file.as_deref(),
            unknown_retries: self.fcm_unknown_retries,
            concurrency: self.fcm_concurrency,
            request_timeout: self.fcm_request_timeout,
        }
        .direct()?;
        Ok(Some(FcmConfig {
            project_id,
            account,
            direct,
            quota_backoff: Duration::from_secs(60),
        }))
    }
}

/// Sends notifications to FCM. Cheap to clone.
#[derive(Clone)]
pub struct FcmSender {
    inner: Arc<Inner>,
}

struct Inner {
    config: FcmConfig,
    client: DirectClient,
    tokens: TokenCache,
    /// `https://host:port/v1/projects/{project}/messages:send`.
    send_url: String,
    metrics: MobileMetrics,
}

impl FcmSender {
    /// Opens no connection yet; the first send fetches the token.
    pub fn new(config: FcmConfig, metrics: MobileMetrics) -> Result<FcmSender, ConfigError> {
        let client = DirectClient::new(VENDOR, &config.direct, metrics.clone())?;
        let send_url = format!(
            "{}/v1/projects/{}/messages:send",
            config.direct.endpoint.base(),
            config.project_id
        );
        tracing::info!(project = %config.project_id, endpoint = %config.direct.endpoint.base(), "FCM sender ready (direct)");
        Ok(FcmSender {
            inner: Arc::new(Inner {
                tokens: TokenCache::new(VENDOR, metrics.clone()),
                config,
                client,
                send_url,
                metrics,
            }),
        })
    }

    async fn token(&self) -> Result<Secret, crate::token::TokenError> {
        let inner = &*self.inner;
        inner
            .tokens
            .get(|| auth::fetch(&inner.client, &inner.config.account))
            .await
    }
}

/// One notification's requests.
struct One<'a> {
    sender: &'a FcmSender,
    body: Bytes,
    used: Used,
}

#[async_trait]
impl Attempt for One<'_> {
    async fn attempt(&self, _open: &[usize]) -> Vec<Verdict> {
        let inner = &*self.sender.inner;
        let token = match self.sender.token().await {
            Ok(t) => t,
            Err(e) => return vec![e.verdict()],
        };
        self.used.set(&token);
        let bearer = format!("Bearer {}", token.expose());
        let auth = Some(("authorization", bearer.as_str()));
        let quota = inner.config.quota_backoff;
        let verdict = inner
            .client
            .request(
                &inner.send_url,
                JSON,
                auth,
                self.body.clone(),
                |v| v,
                |s, h, b| message::classify(s, h, b, quota),
            )
            .await;
        vec![verdict]
    }

    async fn auth_refused(&self) {
        self.used.refused(&self.sender.inner.tokens).await;
    }
}

#[async_trait]
impl MobileSender for FcmSender {
    async fn send(&self, req: &MobileRequest) -> MobileResult {
        let body = match message::body(req) {
            Ok(b) => b,
            Err(reason) => return MobileResult::refused(reason),
        };
        let one = One {
            sender: self,
            body,
            used: Used::default(),
        };
        let inner = &*self.inner;
        let mut results = drive(VENDOR, &inner.config.direct.retry, &inner.metrics, 1, &one).await;
        let r = results
            .pop()
            .unwrap_or_else(|| MobileResult::refused("not sent"));
        tracing::debug!(device = %crate::push::short(&req.device.token), state = ?r.state, attempts = r.attempts, "FCM delivery");
        r
    }
}

#[cfg(test)]
mod tests;
