//! The direct HTTPS client of FCM, Huawei, Xiaomi and vivo: hyper-util's pooled client over
//! [`connect::DirectConnector`] (HTTP/2 when the vendor offers it, else HTTP/1.1 with
//! keep-alive), bounded in-flight requests, and every exchange reduced to what the retry
//! rules need ([`Exchange`]): an answer, provably not sent, or written without an answer.
//!
//! Direct by construction: there is no proxy setting here at all, and nothing reads
//! `HTTP(S)_PROXY`. Only the APNs client (`pushcluster-apns`) can tunnel.

mod connect;

use std::str::FromStr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio::sync::Semaphore;

use crate::args::ConfigError;
use crate::metrics::MobileMetrics;
use crate::retry::{RetryPolicy, Verdict};

/// `https://HOST[:PORT]` of a vendor's API (default port 443), for tests and private relays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    /// `https://host:port` (IPv6 hosts in brackets), without a trailing slash.
    pub fn base(&self) -> String {
        if self.host.contains(':') {
            format!("https://[{}]:{}", self.host, self.port)
        } else {
            format!("https://{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for Endpoint {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Endpoint, ConfigError> {
        let bad = || ConfigError::Invalid(format!("endpoint {s:?} must be https://HOST[:PORT]"));
        let uri: http::Uri = s.parse().map_err(|_| bad())?;
        if uri.scheme_str() != Some("https") || uri.path().len() > 1 || uri.query().is_some() {
            return Err(bad());
        }
        let host = uri
            .host()
            .ok_or_else(bad)?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        Ok(Endpoint {
            host,
            port: uri.port_u16().unwrap_or(443),
        })
    }
}

/// How to reach one direct vendor and how hard to try.
#[derive(Debug, Clone)]
pub struct DirectConfig {
    /// Where notifications are sent.
    pub endpoint: Endpoint,
    /// Extra trusted roots (PEM CA file), on top of the Mozilla roots.
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// Most requests in flight.
    pub concurrency: usize,
    /// From writing a request to its complete response; past it the outcome is unknown.
    pub request_timeout: Duration,
    /// TCP connect plus TLS handshake.
    pub connect_timeout: Duration,
    pub retry: RetryPolicy,
}

impl DirectConfig {
    /// Defaults for everything but the endpoint.
    pub fn new(endpoint: Endpoint) -> DirectConfig {
        DirectConfig {
            endpoint,
            extra_roots: Vec::new(),
            concurrency: 256,
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
        }
    }

    /// Adds the certificates of a PEM text to the trusted roots.
    pub fn add_roots_pem(&mut self, pem: &[u8]) -> Result<(), ConfigError> {
        let before = self.extra_roots.len();
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| ConfigError::Invalid(format!("CA file: {e}")))?;
            self.extra_roots.push(cert);
        }
        if self.extra_roots.len() == before {
            return Err(ConfigError::Invalid(
                "the CA file holds no certificate".into(),
            ));
        }
        Ok(())
    }
}

/// What became of one request.
#[derive(Debug)]
pub enum Exchange {
    /// A complete response.
    Answered {
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
    },
    /// Provably not processed: connecting failed, the stream was refused, or a GOAWAY came
    /// before our stream. Safe to send again at once.
    NotSent(String),
    /// Written, then no (complete) answer: the vendor may have it.
    NoAnswer(String),
}

impl Exchange {
    /// What the exchange means: `answered` classifies a response; not sent is a retry at
    /// once, no answer is unknown — `failed` turns those into the caller's shape.
    pub fn classify<T>(
        self,
        failed: impl FnOnce(Verdict) -> T,
        answered: impl FnOnce(StatusCode, &HeaderMap, &[u8]) -> T,
    ) -> T {
        match self {
            Exchange::Answered {
                status,
                headers,
                body,
            } => answered(status, &headers, &body),
            Exchange::NotSent(reason) => failed(Verdict::Retry {
                reason,
                after: None,
                now: true,
            }),
            Exchange::NoAnswer(reason) => failed(Verdict::Unknown { reason }),
        }
    }
}

/// Largest response body read from a vendor.
const MAX_RESPONSE_BODY: usize = 64 * 1024;

/// A vendor's pooled HTTPS client. Cheap to clone.
#[derive(Clone)]
pub struct DirectClient {
    vendor: &'static str,
    client: Client<connect::DirectConnector, Full<Bytes>>,
    limit: std::sync::Arc<Semaphore>,
    request_timeout: Duration,
    metrics: MobileMetrics,
}

impl DirectClient {
    pub fn new(
        vendor: &'static str,
        config: &DirectConfig,
        metrics: MobileMetrics,
    ) -> Result<DirectClient, ConfigError> {
        let tls = pushcluster_apns::tls::direct_config(&config.extra_roots)
            .map_err(|e| ConfigError::Invalid(format!("{vendor} TLS: {e}")))?;
        let connector = connect::DirectConnector::new(tls, config.connect_timeout);
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .http2_keep_alive_interval(Duration::from_secs(60))
            .http2_keep_alive_timeout(Duration::from_secs(20))
            .http2_keep_alive_while_idle(true)
            .build(connector);
        Ok(DirectClient {
            vendor,
            client,
            limit: std::sync::Arc::new(Semaphore::new(config.concurrency.max(1))),
            request_timeout: config.request_timeout,
            metrics,
        })
    }

    /// Sends one request and reads its response (bounded), under the concurrency limit.
    pub async fn exchange(&self, request: Request<Full<Bytes>>) -> Exchange {
        let Ok(_permit) = self.limit.acquire().await else {
            return Exchange::NotSent("the client is shut down".into());
        };
        let started = Instant::now();
        let exchange = async {
            let response = self.client.request(request).await?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_RESPONSE_BODY).collect().await;
            Ok::<_, hyper_util::client::legacy::Error>((parts, body))
        };
        match tokio::time::timeout(self.request_timeout, exchange).await {
            Ok(Ok((parts, Ok(body)))) => {
                self.metrics
                    .latency(self.vendor, started.elapsed().as_secs_f64());
                Exchange::Answered {
                    status: parts.status,
                    headers: parts.headers,
                    body: body.to_bytes(),
                }
            }
            Ok(Ok((parts, Err(e)))) => Exchange::NoAnswer(format!(
                "{} answered {} but its body failed: {e}",
                self.vendor, parts.status
            )),
            Ok(Err(e)) => classify_error(self.vendor, &e),
            Err(_) => Exchange::NoAnswer(format!(
                "timeout: no response within {:?}",
                self.request_timeout
            )),
        }
    }
}

impl DirectClient {
    /// POSTs `body` to `url` (see [`post`]) and classifies what came back: `answered` for a
    /// response; `failed` shapes the verdict of a request that could not be built, was not
    /// sent or got no answer.
    pub async fn request<T>(
        &self,
        url: &str,
        content_type: &'static str,
        auth: Option<(&'static str, &str)>,
        body: Bytes,
        failed: impl Fn(Verdict) -> T,
        answered: impl FnOnce(StatusCode, &HeaderMap, &[u8]) -> T,
    ) -> T {
        match post(url, content_type, auth, body) {
            Ok(request) => self.exchange(request).await.classify(failed, answered),
            Err(e) => failed(Verdict::Rejected {
                reason: format!("InvalidRequest: {e}"),
                dead: false,
            }),
        }
    }
}

/// Connect failures, REFUSED_STREAM and a remote GOAWAY above our stream were not
/// processed; anything else after the request went out may have been.
fn classify_error(vendor: &str, e: &hyper_util::client::legacy::Error) -> Exchange {
    if e.is_connect() {
        return Exchange::NotSent(format!("failed to connect to {vendor}: {}", chain(e)));
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(h2) = s.downcast_ref::<h2::Error>() {
            if h2.is_remote() && h2.is_go_away() {
                return Exchange::NotSent(format!("{vendor} sent GOAWAY before our stream"));
            }
            if h2.is_remote() && h2.reason() == Some(h2::Reason::REFUSED_STREAM) {
                return Exchange::NotSent(format!("{vendor} refused the stream"));
            }
        }
        if let Some(hyper) = s.downcast_ref::<hyper::Error>()
            && hyper.is_canceled()
        {
            return Exchange::NotSent(format!("the connection to {vendor} closed first"));
        }
        source = s.source();
    }
    Exchange::NoAnswer(format!(
        "connection to {vendor} failed after the request: {}",
        chain(e)
    ))
}

/// An error and its causes, `: `-separated.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// `Retry-After` in seconds, if the vendor sent one.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// A POST of `body` as `content_type`, with an `auth` header (name, value) marked sensitive
/// so hyper and `http` never print it.
pub fn post(
    uri: &str,
    content_type: &'static str,
    auth: Option<(&'static str, &str)>,
    body: impl Into<Bytes>,
) -> Result<Request<Full<Bytes>>, http::Error> {
    let mut builder = Request::builder()
        .method(http::Method::POST)
        .uri(uri)
        .header(http::header::CONTENT_TYPE, content_type);
    if let Some((name, value)) = auth {
        let mut value = http::HeaderValue::from_str(value)?;
        value.set_sensitive(true);
        builder = builder.header(name, value);
    }
    builder.body(Full::new(body.into()))
}

#[cfg(test)]
mod tests;
