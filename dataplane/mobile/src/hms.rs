//! Huawei Push Kit (HMS), direct: an OAuth client-credentials token (cached, refreshed before
//! it expires and after 80200003), and `POST /v1/{appId}/messages:send` with up to 1,000
//! tokens per request. Notifications of one message that arrive within a short linger are
//! sent together ([`batch`]); a partial success (80100000) resends only the failed tokens.
//!
//! - [`message`]: notification → HMS message, and HMS's replies → one verdict per token.
//! - [`batch`]: the per-message batcher.

pub mod batch;
pub mod message;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use clap::Args;

use crate::args::{Common, ConfigError, SetupError, half_configured};
use crate::http::{DirectClient, DirectConfig, Endpoint};
use crate::metrics::MobileMetrics;
use crate::secret::{Secret, read_secret_file};
use crate::sender::{MobileRequest, MobileResult, MobileSender};
use crate::token::{Fetched, TokenCache, TokenError};

const VENDOR: &str = "hms";
const DEFAULT_ENDPOINT: &str = "https://push-api.cloud.huawei.com";
const DEFAULT_OAUTH: &str = "https://oauth-login.cloud.huawei.com";
/// Most tokens in one request (Push Kit's limit).
pub const MAX_BATCH: usize = 1000;

/// Huawei Push Kit. Disabled unless `--hms-app-id` is given.
#[derive(Clone, Debug, Args)]
pub struct HmsArgs {
    /// The app id (AppGallery Connect); turns Huawei push on.
    #[arg(long, env = "PUSHD_HMS_APP_ID")]
    pub hms_app_id: Option<String>,
    /// File holding the app's client secret (OAuth `client_secret`).
    #[arg(long, env = "PUSHD_HMS_CLIENT_SECRET_FILE")]
    pub hms_client_secret_file: Option<PathBuf>,
    /// OAuth `client_id` (default: the app id).
    #[arg(long, env = "PUSHD_HMS_CLIENT_ID")]
    pub hms_client_id: Option<String>,
    /// `https://HOST[:PORT]` of the Push Kit API.
    #[arg(long, env = "PUSHD_HMS_ENDPOINT", default_value = DEFAULT_ENDPOINT)]
    pub hms_endpoint: String,
    /// `https://HOST[:PORT]` of Huawei's OAuth server (`/oauth2/v3/token`).
    #[arg(long, env = "PUSHD_HMS_OAUTH_ENDPOINT", default_value = DEFAULT_OAUTH)]
    pub hms_oauth_endpoint: String,
    /// Extra trusted CA certificates (PEM), added to the Mozilla roots.
    #[arg(long, env = "PUSHD_HMS_CA_FILE")]
    pub hms_ca_file: Option<PathBuf>,
    /// How often a request written without a response is sent again (same tag).
    #[arg(long, env = "PUSHD_HMS_UNKNOWN_RETRIES", default_value_t = 0)]
    pub hms_unknown_retries: u32,
    /// Most Push Kit requests in flight.
    #[arg(long, env = "PUSHD_HMS_CONCURRENCY", default_value_t = 256)]
    pub hms_concurrency: usize,
    /// Past this, a written request without a response is `unknown`.
    #[arg(long, env = "PUSHD_HMS_REQUEST_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub hms_request_timeout: Duration,
    /// How long the first notification of a message waits for others to share its request.
    #[arg(long, env = "PUSHD_HMS_BATCH_LINGER", default_value = "10ms", value_parser = humantime::parse_duration)]
    pub hms_batch_linger: Duration,
}

/// Everything an [`HmsSender`] needs. The secret never appears in `Debug`.
#[derive(Debug, Clone)]
pub struct HmsConfig {
    pub app_id: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub oauth: Endpoint,
    pub direct: DirectConfig,
    pub linger: Duration,
    /// Most tokens per request (≤ [`MAX_BATCH`]).
    pub max_batch: usize,
}

fn id_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

impl HmsArgs {
    /// `None` when Huawei push is off.
    pub fn config(&self) -> Result<Option<HmsConfig>, SetupError> {
        let Some(app_id) = &self.hms_app_id else {
            half_configured(
                "Huawei push",
                "--hms-app-id (PUSHD_HMS_APP_ID)",
                &[
                    (
                        self.hms_client_secret_file.is_some(),
                        "--hms-client-secret-file",
                    ),
                    (self.hms_client_id.is_some(), "--hms-client-id"),
                    (self.hms_endpoint != DEFAULT_ENDPOINT, "--hms-endpoint"),
                    (
                        self.hms_oauth_endpoint != DEFAULT_OAUTH,
                        "--hms-oauth-endpoint",
                    ),
                    (self.hms_ca_file.is_some(), "--hms-ca-file"),
                ],
            )?;
            return Ok(None);
        };
        let client_id = self.hms_client_id.clone().unwrap_or_else(|| app_id.clone());
        if !id_ok(app_id) || !id_ok(&client_id) {
            return Err(ConfigError::Invalid(
                "--hms-app-id and --hms-client-id must be the numeric ids of the app".into(),
            )
            .into());
        }
        let secret_file = self.hms_client_secret_file.as_ref().ok_or_else(|| {
            ConfigError::Invalid("--hms-client-secret-file is required with --hms-app-id".into())
        })?;
        let client_secret = read_secret_file("the Huawei client secret", secret_file)?;
        let oauth: Endpoint = self.hms_oauth_endpoint.parse().map_err(|_| {
            ConfigError::Invalid("--hms-oauth-endpoint must be https://HOST[:PORT]".into())
        })?;
        let direct = Common {
            prefix: "--hms",
            endpoint: &self.hms_endpoint,
            ca_file: self.hms_ca_file.as_deref(),
            unknown_retries: self.hms_unknown_retries,
            concurrency: self.hms_concurrency,
            request_timeout: self.hms_request_timeout,
        }
        .direct()?;
        Ok(Some(HmsConfig {
            app_id: app_id.clone(),
            client_id,
            client_secret,
            oauth,
            direct,
            linger: self.hms_batch_linger,
            max_batch: MAX_BATCH,
        }))
    }
}

/// Sends notifications to Huawei Push Kit. Cheap to clone.
#[derive(Clone)]
pub struct HmsSender {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: HmsConfig,
    pub(crate) client: DirectClient,
    pub(crate) tokens: TokenCache,
    /// `https://host:port/v1/{appId}/messages:send`.
    pub(crate) send_url: String,
    token_url: String,
    pub(crate) metrics: MobileMetrics,
    pub(crate) batches: batch::Batches,
}

impl HmsSender {
    /// Opens no connection yet; the first send fetches the token.
    pub fn new(config: HmsConfig, metrics: MobileMetrics) -> Result<HmsSender, ConfigError> {
        let client = DirectClient::new(VENDOR, &config.direct, metrics.clone())?;
        let send_url = format!(
            "{}/v1/{}/messages:send",
            config.direct.endpoint.base(),
            config.app_id
        );
        let token_url = format!("{}/oauth2/v3/token", config.oauth.base());
        tracing::info!(app = %config.app_id, endpoint = %config.direct.endpoint.base(), "Huawei push sender ready (direct)");
        Ok(HmsSender {
            inner: Arc::new(Inner {
                tokens: TokenCache::new(VENDOR, metrics.clone()),
                config,
                client,
                send_url,
                token_url,
                metrics,
                batches: batch::Batches::default(),
            }),
        })
    }

    /// The current OAuth access token.
    pub(crate) async fn token(&self) -> Result<Secret, TokenError> {
        let inner = &*self.inner;
        inner.tokens.get(|| self.fetch()).await
    }

    async fn fetch(&self) -> Result<Fetched, TokenError> {
        let inner = &*self.inner;
        let c = &inner.config;
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("client_id", &c.client_id)
            .append_pair("client_secret", c.client_secret.expose())
            .finish();
        let request = crate::http::post(
            &inner.token_url,
            "application/x-www-form-urlencoded",
            None,
            form,
        )
        .map_err(|e| TokenError::Refused {
            vendor: VENDOR,
            detail: format!("bad token request: {e}"),
        })?;
        crate::token::oauth_reply(inner.client.exchange(request).await, VENDOR)
    }
}

#[async_trait]
impl MobileSender for HmsSender {
    async fn send(&self, req: &MobileRequest) -> MobileResult {
        if let Err(reason) = message::check(req) {
            return MobileResult::refused(reason);
        }
        batch::enqueue(self, req.clone()).await
    }
}

#[cfg(test)]
mod tests;
