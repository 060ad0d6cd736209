//! Opening one connection to APNs: TCP (directly, or to the proxy — over TLS for an `https://`
//! proxy — and through an HTTP CONNECT tunnel with `Proxy-Authorization`), then TLS to the
//! APNs host with ALPN `h2`, then the HTTP/2 handshake. The tunnel only carries bytes; TLS is
//! verified against the APNs name (and, for an `https://` proxy, the proxy's against its name).
//!
//! Nothing here reads `HTTP(S)_PROXY`: only a configured proxy is used.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::{HeaderValue, Uri};
use http_body_util::Full;
use hyper::client::conn::http2;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tower_service::Service;

use crate::config::{ApnsConfig, ConfigError, ProxyConfig, ProxyCredentials};

/// The cause behind a connect error (cloneable, so a failed slot can report it again).
pub type Cause = Arc<dyn std::error::Error + Send + Sync>;

/// Which step of opening a connection failed. Nothing was sent to APNs in any case, so a
/// request that met one of these may be sent again at once.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConnectError {
    #[error("failed to connect to APNs at {authority}: {cause}")]
    Tcp { authority: String, cause: Cause },
    #[error("APNs proxy {proxy} refused our credentials (407 Proxy Authentication Required)")]
    ProxyAuth { proxy: String },
    #[error("APNs proxy {proxy} is unreachable: {cause}")]
    ProxyUnreachable { proxy: String, cause: Cause },
    #[error("APNs proxy {proxy} refused the tunnel to {authority} (CONNECT not answered with 200)")]
    ProxyRefused { proxy: String, authority: String },
    #[error("APNs proxy {proxy} broke the CONNECT exchange: {detail}")]
    ProxyProtocol { proxy: String, detail: String },
    #[error("failed to read the APNs proxy credentials: {detail}")]
    ProxyCredentials { detail: String },
    #[error("TLS handshake with APNs at {authority} failed: {cause}")]
    Tls { authority: String, cause: Cause },
    #[error("APNs at {authority} did not negotiate HTTP/2 (ALPN h2)")]
    NoH2 { authority: String },
    #[error("HTTP/2 handshake with APNs failed: {cause}")]
    H2 { cause: Cause },
    #[error("connecting to APNs at {authority}: {step} timed out after {after:?}")]
    Timeout {
        authority: String,
        step: &'static str,
        after: Duration,
    },
}

impl ConnectError {
    /// The `result` label of `pushd_apns_connects_total`.
    pub fn metric_label(&self) -> &'static str {
        match self {
            ConnectError::Tcp { .. } => "tcp",
            ConnectError::ProxyAuth { .. } | ConnectError::ProxyCredentials { .. } => "proxy_auth",
            ConnectError::ProxyUnreachable { .. } => "proxy_unreachable",
            ConnectError::ProxyRefused { .. } => "proxy_refused",
            ConnectError::ProxyProtocol { .. } => "proxy_protocol",
            ConnectError::Tls { .. } | ConnectError::NoH2 { .. } => "tls",
            ConnectError::H2 { .. } => "h2",
            ConnectError::Timeout { step, .. } => match *step {
                "proxy CONNECT" => "proxy_unreachable",
                "TLS handshake" => "tls",
                _ => "tcp",
            },
        }
    }

    /// True when the proxy (not APNs) failed.
    pub fn is_proxy(&self) -> bool {
        matches!(
            self,
            ConnectError::ProxyAuth { .. }
                | ConnectError::ProxyUnreachable { .. }
                | ConnectError::ProxyRefused { .. }
                | ConnectError::ProxyProtocol { .. }
                | ConnectError::ProxyCredentials { .. }
        ) || matches!(
            self,
            ConnectError::Timeout {
                step: "proxy CONNECT",
                ..
            }
        )
    }
}

/// The byte stream under the TLS session to APNs: TCP, or a tunnel through a proxy (itself
/// over TCP or TLS).
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}
type BoxStream = Box<dyn Stream>;

/// TCP, then TLS to an `https://` proxy (verified against its name): what the CONNECT
/// tunnel runs over.
#[derive(Clone)]
struct ProxyTls {
    http: HttpConnector,
    tls: TlsConnector,
    name: ServerName<'static>,
}

type ProxyTlsStream = TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;

impl Service<Uri> for ProxyTls {
    type Response = ProxyTlsStream;
    type Error = Cause;
    type Future = Pin<Box<dyn Future<Output = Result<ProxyTlsStream, Cause>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Cause>> {
        self.http.poll_ready(cx).map_err(|e| Arc::new(e) as Cause)
    }

    fn call(&mut self, proxy: Uri) -> Self::Future {
        let connecting = self.http.call(proxy);
        let (tls, name) = (self.tls.clone(), self.name.clone());
        Box::pin(async move {
            let tcp = connecting.await.map_err(|e| Arc::new(e) as Cause)?;
            let stream = tls
                .connect(name, tcp.into_inner())
                .await
                .map_err(|e| Arc::new(e) as Cause)?;
            Ok(TokioIo::new(stream))
        })
    }
}

/// An open HTTP/2 connection (its driver task runs until it closes).
pub(crate) type H2Sender = http2::SendRequest<Full<Bytes>>;

/// Opens connections to one APNs endpoint.
pub(crate) struct Connector {
    /// `https://host:port` of APNs: the CONNECT target.
    target: Uri,
    authority: String,
    server_name: ServerName<'static>,
    tls: TlsConnector,
    proxy: Option<ProxyConfig>,
    /// TLS to an `https://` proxy.
    proxy_tls: Option<TlsConnector>,
    connect_timeout: Duration,
    keepalive_interval: Duration,
    keepalive_timeout: Duration,
}

impl Connector {
    pub(crate) fn new(
        config: &ApnsConfig,
        tls: Arc<ClientConfig>,
        proxy_tls: Option<Arc<ClientConfig>>,
    ) -> Result<Connector, ConfigError> {
        let authority = config.endpoint.authority();
        let target: Uri = format!("https://{authority}")
            .parse()
            .map_err(|_| ConfigError::Invalid(format!("bad APNs endpoint {authority}")))?;
        let server_name =
            ServerName::try_from(config.endpoint.host().to_owned()).map_err(|_| {
                ConfigError::Invalid(format!("bad APNs host {}", config.endpoint.host()))
            })?;
        Ok(Connector {
            target,
            authority,
            server_name,
            tls: TlsConnector::from(tls),
            proxy: config.proxy.clone(),
            proxy_tls: proxy_tls.map(TlsConnector::from),
            connect_timeout: config.connect_timeout,
            keepalive_interval: config.keepalive_interval,
            keepalive_timeout: config.keepalive_timeout,
        })
    }

    /// `host:port` of APNs.
    pub(crate) fn authority(&self) -> &str {
        &self.authority
    }

    /// TCP (+ tunnel) + TLS + HTTP/2 handshake.
    pub(crate) async fn connect(&self, conn_id: u64) -> Result<H2Sender, ConnectError> {
        let stream: BoxStream = match &self.proxy {
            None => Box::new(self.tcp_direct().await?),
            Some(proxy) => self.tunnel(proxy).await?,
        };
        let tls = self.tls_handshake(stream).await?;
        let (send, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            // Apple allows one stream until the first valid request; its SETTINGS raise this.
            .initial_max_send_streams(1)
            .keep_alive_interval(self.keepalive_interval)
            .keep_alive_timeout(self.keepalive_timeout)
            .keep_alive_while_idle(true)
            .handshake(TokioIo::new(tls))
            .await
            .map_err(|e| ConnectError::H2 { cause: Arc::new(e) })?;
        tokio::spawn(async move {
            match conn.await {
                Ok(()) => tracing::debug!(conn_id, "APNs connection closed"),
                Err(e) => {
                    tracing::info!(conn_id, error = %e, "APNs connection closed with an error")
                }
            }
        });
        Ok(send)
    }

    fn http_connector(&self) -> HttpConnector {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(self.connect_timeout));
        http
    }

    async fn tcp_direct(&self) -> Result<TcpStream, ConnectError> {
        let mut http = self.http_connector();
        let io = http
            .call(self.target.clone())
            .await
            .map_err(|e| ConnectError::Tcp {
                authority: self.authority.clone(),
                cause: Arc::new(e),
            })?;
        Ok(io.into_inner())
    }

    /// Opens the CONNECT tunnel to APNs through `proxy` (over TLS for an `https://` one).
    async fn tunnel(&self, proxy: &ProxyConfig) -> Result<BoxStream, ConnectError> {
        match &self.proxy_tls {
            Some(tls) if proxy.tls => {
                let name = ServerName::try_from(proxy.host.clone()).map_err(|_| {
                    ConnectError::ProxyProtocol {
                        proxy: proxy.redacted_url(),
                        detail: "bad proxy host name".into(),
                    }
                })?;
                let connector = ProxyTls {
                    http: self.http_connector(),
                    tls: tls.clone(),
                    name,
                };
                let io = self.tunnel_through(proxy, connector).await?;
                Ok(Box::new(io.into_inner()))
            }
            _ => {
                let io = self.tunnel_through(proxy, self.http_connector()).await?;
                Ok(Box::new(io.into_inner()))
            }
        }
    }

    async fn tunnel_through<C>(
        &self,
        proxy: &ProxyConfig,
        connector: C,
    ) -> Result<C::Response, ConnectError>
    where
        C: Service<Uri>,
        C::Future: Send + 'static,
        C::Response: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
        C::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let proxy_url = proxy.redacted_url();
        let proxy_uri: Uri = proxy_url.parse().map_err(|_| ConnectError::ProxyProtocol {
            proxy: proxy_url.clone(),
            detail: "bad proxy address".into(),
        })?;
        let mut tunnel = Tunnel::new(proxy_uri, connector);
        if let Some(credentials) = &proxy.credentials {
            tunnel = tunnel.with_auth(basic_auth(credentials)?);
        }
        std::future::poll_fn(|cx| tunnel.poll_ready(cx))
            .await
            .map_err(|e| tunnel_error(e, &proxy_url, &self.authority))?;
        tokio::time::timeout(self.connect_timeout * 2, tunnel.call(self.target.clone()))
            .await
            .map_err(|_| ConnectError::Timeout {
                authority: self.authority.clone(),
                step: "proxy CONNECT",
                after: self.connect_timeout * 2,
            })?
            .map_err(|e| tunnel_error(e, &proxy_url, &self.authority))
    }

    async fn tls_handshake(
        &self,
        stream: BoxStream,
    ) -> Result<tokio_rustls::client::TlsStream<BoxStream>, ConnectError> {
        let tls = tokio::time::timeout(
            self.connect_timeout,
            self.tls.connect(self.server_name.clone(), stream),
        )
        .await
        .map_err(|_| ConnectError::Timeout {
            authority: self.authority.clone(),
            step: "TLS handshake",
            after: self.connect_timeout,
        })?
        .map_err(|e| ConnectError::Tls {
            authority: self.authority.clone(),
            cause: Arc::new(e),
        })?;
        if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
            return Err(ConnectError::NoH2 {
                authority: self.authority.clone(),
            });
        }
        Ok(tls)
    }
}

/// `Basic base64(user:password)`, marked sensitive (never logged by hyper/http).
fn basic_auth(credentials: &ProxyCredentials) -> Result<HeaderValue, ConnectError> {
    let (user, password) = match credentials {
        ProxyCredentials::Inline { user, password } => (user.clone(), password.clone()),
        ProxyCredentials::File(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| ConnectError::ProxyCredentials {
                    detail: format!("{}: {e}", path.display()),
                })?;
            match ProxyCredentials::parse(&text) {
                Ok(ProxyCredentials::Inline { user, password }) => (user, password),
                _ => {
                    return Err(ConnectError::ProxyCredentials {
                        detail: format!("{} does not hold `user:password`", path.display()),
                    });
                }
            }
        }
    };
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let mut value = HeaderValue::from_str(&format!("Basic {encoded}")).map_err(|_| {
        ConnectError::ProxyCredentials {
            detail: "credentials are not a valid header value".into(),
        }
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// Maps hyper-util's tunnel error, whose type is not exported: its variant is read from
/// `Debug` (pinned by this module's tests against real proxies' answers).
fn tunnel_error<E>(e: E, proxy: &str, authority: &str) -> ConnectError
where
    E: std::error::Error + Send + Sync + 'static,
{
    let proxy = proxy.to_owned();
    let variant = format!("{e:?}");
    let variant = variant.split(['(', ' ', '{']).next().unwrap_or_default();
    match variant {
        "ProxyAuthRequired" => ConnectError::ProxyAuth { proxy },
        "ConnectFailed" | "Io" => ConnectError::ProxyUnreachable {
            proxy,
            cause: Arc::new(e),
        },
        "TunnelUnsuccessful" => ConnectError::ProxyRefused {
            proxy,
            authority: authority.to_owned(),
        },
        _ => ConnectError::ProxyProtocol {
            proxy,
            detail: e.to_string(),
        },
    }
}

#[cfg(test)]
mod tests;
