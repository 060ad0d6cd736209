//! vivo push, direct: an `authToken` from `POST /message/auth` with the documented signature
//! `md5(appId + appKey + timestamp + appSecret)` (cached for its day, replaced after 10000),
//! and one `POST /message/send` per device with a `requestId` derived from (message, device),
//! so a resend is recognised as the same request. The daily quota (10070) is surfaced in the
//! record and never retried.
//!
//! - [`message`]: notification → vivo's message, and vivo's replies → [`Verdict`](crate::retry::Verdict).

pub mod message;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use clap::Args;
use md5::{Digest, Md5};
use serde::Deserialize;

use crate::args::{Common, ConfigError, SetupError, half_configured};
use crate::http::{DirectClient, DirectConfig};
use crate::metrics::MobileMetrics;
use crate::retry::{Attempt, Verdict, drive};
use crate::secret::{Secret, read_secret_file};
use crate::sender::{MobileRequest, MobileResult, MobileSender};
use crate::token::{Fetched, TokenCache, TokenError, Used};

const VENDOR: &str = "vivo";
const DEFAULT_ENDPOINT: &str = "https://api-push.vivo.com.cn";
/// How long vivo's `authToken` lives (its documentation: one day).
const TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// vivo push. Disabled unless `--vivo-app-id` is given.
#[derive(Clone, Debug, Args)]
pub struct VivoArgs {
    /// The app id (numeric); turns vivo push on.
    #[arg(long, env = "PUSHD_VIVO_APP_ID")]
    pub vivo_app_id: Option<String>,
    /// The app key.
    #[arg(long, env = "PUSHD_VIVO_APP_KEY")]
    pub vivo_app_key: Option<String>,
    /// File holding the app secret (signs the auth request).
    #[arg(long, env = "PUSHD_VIVO_APP_SECRET_FILE")]
    pub vivo_app_secret_file: Option<PathBuf>,
    /// `https://HOST[:PORT]` of the vivo push API.
    #[arg(long, env = "PUSHD_VIVO_ENDPOINT", default_value = DEFAULT_ENDPOINT)]
    pub vivo_endpoint: String,
    /// Extra trusted CA certificates (PEM), added to the Mozilla roots.
    #[arg(long, env = "PUSHD_VIVO_CA_FILE")]
    pub vivo_ca_file: Option<PathBuf>,
    /// How often a request written without a response is sent again (same requestId).
    #[arg(long, env = "PUSHD_VIVO_UNKNOWN_RETRIES", default_value_t = 0)]
    pub vivo_unknown_retries: u32,
    /// Most vivo requests in flight.
    #[arg(long, env = "PUSHD_VIVO_CONCURRENCY", default_value_t = 64)]
    pub vivo_concurrency: usize,
    /// Past this, a written request without a response is `unknown`.
    #[arg(long, env = "PUSHD_VIVO_REQUEST_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub vivo_request_timeout: Duration,
}

/// Everything a [`VivoSender`] needs. The secret never appears in `Debug`.
#[derive(Debug, Clone)]
pub struct VivoConfig {
    pub app_id: u64,
    pub app_key: String,
    pub app_secret: Secret,
    pub direct: DirectConfig,
}

impl VivoArgs {
    /// `None` when vivo push is off.
    pub fn config(&self) -> Result<Option<VivoConfig>, SetupError> {
        let Some(app_id) = &self.vivo_app_id else {
            half_configured(
                "vivo push",
                "--vivo-app-id (PUSHD_VIVO_APP_ID)",
                &[
                    (self.vivo_app_key.is_some(), "--vivo-app-key"),
                    (
                        self.vivo_app_secret_file.is_some(),
                        "--vivo-app-secret-file",
                    ),
                    (self.vivo_endpoint != DEFAULT_ENDPOINT, "--vivo-endpoint"),
                    (self.vivo_ca_file.is_some(), "--vivo-ca-file"),
                ],
            )?;
            return Ok(None);
        };
        let invalid = |m: &str| SetupError::Config(ConfigError::Invalid(m.into()));
        let app_id: u64 = app_id
            .parse()
            .map_err(|_| invalid("--vivo-app-id must be the numeric app id"))?;
        let app_key = self
            .vivo_app_key
            .clone()
            .filter(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or_else(|| invalid("--vivo-app-key is required with --vivo-app-id"))?;
        let file = self
            .vivo_app_secret_file
            .as_ref()
            .ok_or_else(|| invalid("--vivo-app-secret-file is required with --vivo-app-id"))?;
        let app_secret = read_secret_file("the vivo app secret", file)?;
        let direct = Common {
            prefix: "--vivo",
            endpoint: &self.vivo_endpoint,
            ca_file: self.vivo_ca_file.as_deref(),
            unknown_retries: self.vivo_unknown_retries,
            concurrency: self.vivo_concurrency,
            request_timeout: self.vivo_request_timeout,
        }
        .direct()?;
        Ok(Some(VivoConfig {
            app_id,
            app_key,
            app_secret,
            direct,
        }))
    }
}

/// `md5(appId + appKey + timestamp + appSecret)`, lowercase hex: vivo's auth signature.
pub fn sign(app_id: u64, app_key: &str, timestamp_ms: u64, app_secret: &str) -> String {
    let digest = Md5::digest(format!("{app_id}{app_key}{timestamp_ms}{app_secret}").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Sends notifications to vivo. Cheap to clone.
#[derive(Clone)]
pub struct VivoSender {
    inner: Arc<Inner>,
}

struct Inner {
    config: VivoConfig,
    client: DirectClient,
    tokens: TokenCache,
    auth_url: String,
    send_url: String,
    metrics: MobileMetrics,
}

#[derive(Deserialize)]
struct AuthReply {
    result: Option<i64>,
    desc: Option<String>,
    #[serde(rename = "authToken")]
    auth_token: Option<String>,
}

impl VivoSender {
    /// Opens no connection yet; the first send fetches the token.
    pub fn new(config: VivoConfig, metrics: MobileMetrics) -> Result<VivoSender, ConfigError> {
        let client = DirectClient::new(VENDOR, &config.direct, metrics.clone())?;
        let base = config.direct.endpoint.base();
        tracing::info!(app = config.app_id, endpoint = %base, "vivo push sender ready (direct)");
        Ok(VivoSender {
            inner: Arc::new(Inner {
                tokens: TokenCache::new(VENDOR, metrics.clone()),
                auth_url: format!("{base}/message/auth"),
                send_url: format!("{base}/message/send"),
                config,
                client,
                metrics,
            }),
        })
    }

    async fn token(&self) -> Result<Secret, TokenError> {
        self.inner.tokens.get(|| self.fetch()).await
    }

    async fn fetch(&self) -> Result<Fetched, TokenError> {
        let inner = &*self.inner;
        let c = &inner.config;
        let timestamp = pushcluster_proto::delivery::now_ms();
        let body = serde_json::json!({
            "appId": c.app_id,
            "appKey": c.app_key,
            "timestamp": timestamp,
            "sign": sign(c.app_id, &c.app_key, timestamp, c.app_secret.expose()),
        });
        let refused = |detail: String| TokenError::Refused {
            vendor: VENDOR,
            detail,
        };
        let request =
            crate::http::post(&inner.auth_url, "application/json", None, body.to_string())
                .map_err(|e| refused(format!("bad auth request: {e}")))?;
        inner.client.exchange(request).await.classify(
            |v| {
                Err(TokenError::Unreachable {
                    vendor: VENDOR,
                    detail: v.reason().to_owned(),
                })
            },
            |status, _, body| {
                if status.is_server_error() {
                    return Err(TokenError::Unreachable {
                        vendor: VENDOR,
                        detail: format!("auth answered {status}"),
                    });
                }
                match serde_json::from_slice::<AuthReply>(body) {
                    Ok(AuthReply {
                        result: Some(0),
                        auth_token: Some(token),
                        ..
                    }) if !token.is_empty() => Ok(Fetched {
                        token: Secret::new(token),
                        lifetime: TOKEN_LIFETIME,
                    }),
                    Ok(r) => Err(refused(format!(
                        "{} {}",
                        r.result.unwrap_or(-1),
                        r.desc.unwrap_or_default()
                    ))),
                    Err(_) => Err(refused(format!("{status}: not a vivo auth reply"))),
                }
            },
        )
    }
}

/// One notification's requests.
struct One<'a> {
    sender: &'a VivoSender,
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
        let auth = Some(("authtoken", token.expose()));
        let verdict = inner
            .client
            .request(
                &inner.send_url,
                "application/json",
                auth,
                self.body.clone(),
                |v| v,
                message::classify,
            )
            .await;
        vec![verdict]
    }

    async fn auth_refused(&self) {
        self.used.refused(&self.sender.inner.tokens).await;
    }
}

#[async_trait]
impl MobileSender for VivoSender {
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
        if r.reason.as_deref().is_some_and(|x| x.starts_with("10070")) {
            tracing::warn!(
                app = inner.config.app_id,
                "vivo daily push quota exhausted (10070): notifications are rejected until it resets"
            );
        }
        r
    }
}

#[cfg(test)]
mod tests;
