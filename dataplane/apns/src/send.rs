//! [`ApnsSender`]: one request per call of [`ApnsSender::send`], over the pooled connections,
//! under the concurrency limit. The retry driver ([`ApnsSender::deliver`]) builds on it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::clock::{Clock, SystemClock};
use crate::config::{ApnsConfig, ConfigError};
use crate::connect::Connector;
use crate::metrics::ApnsMetrics;
use crate::notification::Notification;
use crate::pool::{Conn, Pool};
use crate::response::{self, ConnFate, Outcome, Reason, RetryCause};
use crate::retry::RetryPolicy;
use crate::tls::{self, TlsError};
use crate::token::{ProviderToken, ProviderTokens};

/// The sender could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// Builds an [`ApnsSender`] with optional metrics and clock.
pub struct ApnsSenderBuilder {
    config: ApnsConfig,
    metrics: ApnsMetrics,
    clock: Arc<dyn Clock>,
}

impl ApnsSenderBuilder {
    /// Metrics registered by the caller (default: unregistered).
    pub fn metrics(mut self, metrics: ApnsMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// The wall clock of provider tokens (default: the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Validates the configuration; opens no connection yet (the first send does).
    pub fn build(self) -> Result<ApnsSender, BuildError> {
        let config = self.config;
        config.validate()?;
        let tls = tls::client_config(&config.extra_roots)?;
        let proxy_tls = match &config.proxy {
            Some(p) if p.tls => Some(tls::proxy_config(&config.extra_roots)?),
            _ => None,
        };
        let connector = Connector::new(&config, tls, proxy_tls)?;
        let base = format!("https://{}/", config.endpoint.authority());
        base.parse::<Uri>()
            .map_err(|_| ConfigError::Invalid("bad APNs endpoint".into()))?;
        let topic = HeaderValue::from_str(&config.topic)
            .map_err(|_| ConfigError::Invalid("--apns-topic is not a valid header value".into()))?;
        tracing::info!(
            apns = connector.authority(),
            proxy = config.proxy.as_ref().map(|p| p.redacted_url()),
            connections = config.connections,
            concurrency = config.concurrency,
            "APNs sender ready"
        );
        Ok(ApnsSender {
            inner: Arc::new(Inner {
                pool: Pool::new(
                    connector,
                    config.connections,
                    config.reconnect_delay,
                    self.metrics.clone(),
                ),
                tokens: ProviderTokens::new(
                    &config.key,
                    &config.key_id,
                    &config.team_id,
                    config.token_period,
                    self.clock,
                    self.metrics.clone(),
                ),
                limit: Semaphore::new(config.concurrency),
                base,
                topic,
                request_timeout: config.request_timeout,
                retry: config.retry.clone(),
                metrics: self.metrics,
            }),
        })
    }
}

/// Sends notifications to APNs. Cheap to clone; clones share connections and the token.
#[derive(Clone)]
pub struct ApnsSender {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pool: Pool,
    pub(crate) tokens: ProviderTokens,
    limit: Semaphore,
    /// `https://host:port/`.
    base: String,
    topic: HeaderValue,
    request_timeout: Duration,
    pub(crate) retry: RetryPolicy,
    pub(crate) metrics: ApnsMetrics,
}

/// Largest error body read from APNs.
const MAX_RESPONSE_BODY: usize = 16 * 1024;

impl ApnsSender {
    /// A sender with unregistered metrics and the system clock.
    pub fn new(config: ApnsConfig) -> Result<ApnsSender, BuildError> {
        ApnsSender::builder(config).build()
    }

    pub fn builder(config: ApnsConfig) -> ApnsSenderBuilder {
        ApnsSenderBuilder {
            config,
            metrics: ApnsMetrics::default(),
            clock: Arc::new(SystemClock),
        }
    }

    /// The shared provider token.
    pub fn tokens(&self) -> &ProviderTokens {
        &self.inner.tokens
    }

    /// Sends one request with the current provider token. No retries: see
    /// [`ApnsSender::deliver`].
    pub async fn send(&self, n: &Notification) -> Outcome {
        match self.inner.tokens.current() {
            Ok(token) => self.send_with(n, &token).await,
            Err(e) => Outcome::Retryable {
                cause: RetryCause::Connect(e.to_string()),
                retry_after: None,
            },
        }
    }

    /// Sends one request with `token`.
    pub(crate) async fn send_with(&self, n: &Notification, token: &ProviderToken) -> Outcome {
        let inner = &*self.inner;
        let Ok(_permit) = inner.limit.acquire().await else {
            unreachable!("the semaphore is never closed");
        };
        inner.metrics.in_flight.inc();
        let outcome = self.attempt(n, token).await;
        inner.metrics.in_flight.dec();
        let (result, reason) = outcome.labels();
        inner
            .metrics
            .attempts
            .get_or_create(&crate::metrics::ResultLabels {
                result: result.into(),
                reason: reason.clone(),
            })
            .inc();
        tracing::debug!(
            apns_id = %n.apns_id,
            device = %n.device_token,
            result,
            reason,
            "APNs attempt"
        );
        outcome
    }

    async fn attempt(&self, n: &Notification, token: &ProviderToken) -> Outcome {
        let inner = &*self.inner;
        let conn = match inner.pool.get().await {
            Ok(conn) => conn,
            Err(e) => return response::from_connect(&e),
        };
        let request = match self.request(n, token) {
            Ok(r) => r,
            Err(e) => {
                return Outcome::Rejected {
                    status: 400,
                    reason: Reason(format!("InvalidRequest: {e}")),
                    timestamp: None,
                };
            }
        };
        let mut send = conn.send.clone();
        let started = Instant::now();
        let exchange = async {
            let response = send.send_request(request).await?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_RESPONSE_BODY)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            Ok::<_, hyper::Error>((parts, body))
        };
        match tokio::time::timeout(inner.request_timeout, exchange).await {
            Ok(Ok((parts, body))) => {
                inner
                    .metrics
                    .request_duration
                    .observe(started.elapsed().as_secs_f64());
                let outcome =
                    response::from_response(parts.status, &parts.headers, &body, n.apns_id);
                if let Outcome::Retryable {
                    cause: RetryCause::Status { reason, .. },
                    ..
                } = &outcome
                    && reason.is(Reason::SHUTDOWN)
                {
                    self.replace(&conn, "503 Shutdown");
                }
                outcome
            }
            Ok(Err(e)) => {
                let (outcome, fate) = response::from_error(&e);
                if fate == ConnFate::Replace {
                    self.replace(&conn, "stream error");
                }
                outcome
            }
            Err(_) => Outcome::Unknown {
                cause: format!("timeout: no response within {:?}", inner.request_timeout),
            },
        }
    }

    fn replace(&self, conn: &Conn, why: &'static str) {
        tracing::info!(conn_id = conn.id, why, "replacing the APNs connection");
        self.inner.pool.discard(conn);
    }

    fn request(
        &self,
        n: &Notification,
        token: &ProviderToken,
    ) -> Result<Request<Full<Bytes>>, http::Error> {
        let inner = &*self.inner;
        let uri = format!("{}3/device/{}", inner.base, n.device_token.as_str());
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(http::header::AUTHORIZATION, bearer(token)?)
            .header("apns-topic", inner.topic.clone())
            .header("apns-id", n.apns_id.hyphenated().to_string())
            .header("apns-push-type", n.push_type.as_str())
            .header("apns-priority", n.priority.as_str())
            .header("apns-collapse-id", n.collapse_id());
        if let Some(exp) = n.expiration {
            builder = builder.header("apns-expiration", exp.to_string());
        }
        builder.body(Full::new(n.payload.clone()))
    }
}

fn bearer(token: &ProviderToken) -> Result<HeaderValue, http::Error> {
    let mut v = HeaderValue::from_str(&format!("bearer {}", token.jwt()))?;
    v.set_sensitive(true);
    Ok(v)
}
