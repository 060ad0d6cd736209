//! The channel internal callers (collect → dispatch, dispatch → push, push → auth) use: every
//! call carries the internal token, and with [`Tls`] configured the connection is mutual TLS
//! (the client presents its certificate and verifies the server's).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Uri;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tower_service::Service;

use super::tls::{ClientIo, Io, Tls};
use crate::Secrets;

/// A channel to another role, with the internal token on every call.
pub type InternalChannel = InterceptedService<Channel, BearerToken>;

/// Why a channel cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{name:?} is not a valid TLS server name: {reason}")]
    ServerName { name: String, reason: String },
    #[error("failed to connect: {0}")]
    Connect(#[from] tonic::transport::Error),
}

/// Adds `authorization: Bearer <internal token>` to every call.
#[derive(Clone)]
pub struct BearerToken(Arc<Secrets>);

impl Interceptor for BearerToken {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let value = MetadataValue::try_from(format!("Bearer {}", self.0.outgoing()))
            .map_err(|_| tonic::Status::internal("the internal token is not a valid header"))?;
        req.metadata_mut().insert("authorization", value);
        Ok(req)
    }
}

/// How this process calls the other roles.
#[derive(Clone, Debug)]
pub struct InternalClient {
    token: Arc<Secrets>,
    tls: Option<Arc<Tls>>,
    /// `--tls-server-name`: the name every server's certificate must carry, instead of the
    /// host of the address dialed.
    server_name: Option<String>,
}

impl InternalClient {
    pub fn new(token: Arc<Secrets>, tls: Option<Arc<Tls>>, server_name: Option<String>) -> Self {
        InternalClient {
            token,
            tls,
            server_name,
        }
    }

    /// Whether connections are mutual TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    fn connector(&self, endpoint: &Endpoint, name: Option<&str>) -> Result<Connector, ClientError> {
        let name = match &self.tls {
            None => None,
            Some(_) => {
                let name = self
                    .server_name
                    .as_deref()
                    .or(name)
                    .or(endpoint.uri().host())
                    .unwrap_or_default()
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned();
                Some(
                    ServerName::try_from(name.clone()).map_err(|e| ClientError::ServerName {
                        name,
                        reason: e.to_string(),
                    })?,
                )
            }
        };
        Ok(Connector {
            tls: self.tls.clone(),
            name,
        })
    }

    fn wrap(&self, channel: Channel) -> InternalChannel {
        InterceptedService::new(channel, BearerToken(self.token.clone()))
    }

    /// A channel that connects on first use and reconnects by itself. `name`: the name the
    /// server's certificate must carry (default: the endpoint's host).
    pub fn connect_lazy(
        &self,
        endpoint: Endpoint,
        name: Option<&str>,
    ) -> Result<InternalChannel, ClientError> {
        let connector = self.connector(&endpoint, name)?;
        Ok(self.wrap(endpoint.connect_with_connector_lazy(connector)))
    }

    /// Connects now (an unreachable or refusing server is an error now).
    pub async fn connect(
        &self,
        endpoint: Endpoint,
        name: Option<&str>,
    ) -> Result<InternalChannel, ClientError> {
        let connector = self.connector(&endpoint, name)?;
        Ok(self.wrap(endpoint.connect_with_connector(connector).await?))
    }
}

/// TCP, then TLS when configured.
#[derive(Clone)]
struct Connector {
    tls: Option<Arc<Tls>>,
    /// The server name to verify (set whenever `tls` is).
    name: Option<ServerName<'static>>,
}

impl Service<Uri> for Connector {
    type Response = TokioIo<ClientIo>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let (tls, name) = (self.tls.clone(), self.name.clone());
        Box::pin(async move {
            let invalid = |m: &str| io::Error::new(io::ErrorKind::InvalidInput, m.to_owned());
            let host = uri
                .host()
                .ok_or_else(|| invalid("address without a host"))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let port = uri
                .port_u16()
                .unwrap_or(if uri.scheme_str() == Some("https") {
                    443
                } else {
                    80
                });
            let tcp = TcpStream::connect((host, port)).await?;
            tcp.set_nodelay(true)?;
            let Some(tls) = tls else {
                return Ok(TokioIo::new(Io::Plain(tcp)));
            };
            let name = name.ok_or_else(|| invalid("no valid TLS server name"))?;
            let stream = tokio_rustls::TlsConnector::from(tls.client_config())
                .connect(name, tcp)
                .await?;
            Ok(TokioIo::new(Io::Tls(Box::new(stream))))
        })
    }
}
