//! The connector of the direct clients: TCP straight to the request's host (no proxy of any
//! kind; nothing reads `HTTP(S)_PROXY`), then TLS with the rustls config of the APNs crate
//! (ring, Mozilla roots plus a CA file, ALPN `h2` then `http/1.1`). The negotiated protocol
//! tells hyper-util's pool whether to speak HTTP/2 (one multiplexed connection) or HTTP/1.1.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tower_service::Service;

/// Opens TLS connections directly to the host of each request URI (`https` only).
#[derive(Clone)]
pub(crate) struct DirectConnector {
    tls: TlsConnector,
    timeout: Duration,
}

impl DirectConnector {
    pub(crate) fn new(tls: Arc<ClientConfig>, timeout: Duration) -> DirectConnector {
        DirectConnector {
            tls: TlsConnector::from(tls),
            timeout,
        }
    }
}

/// A TLS connection, telling hyper-util which protocol ALPN chose.
pub(crate) struct TlsConn {
    io: TokioIo<TlsStream<TcpStream>>,
    h2: bool,
}

impl Connection for TlsConn {
    fn connected(&self) -> Connected {
        let connected = Connected::new();
        if self.h2 {
            connected.negotiated_h2()
        } else {
            connected
        }
    }
}

impl hyper::rt::Read for TlsConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for TlsConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

fn error(kind: io::ErrorKind, msg: String) -> io::Error {
    io::Error::new(kind, msg)
}

impl Service<Uri> for DirectConnector {
    type Response = TlsConn;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<TlsConn>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let (tls, timeout) = (self.tls.clone(), self.timeout);
        Box::pin(async move {
            if uri.scheme_str() != Some("https") {
                return Err(error(
                    io::ErrorKind::InvalidInput,
                    format!("not https: {uri}"),
                ));
            }
            let host = uri
                .host()
                .ok_or_else(|| error(io::ErrorKind::InvalidInput, "no host".into()))?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let port = uri.port_u16().unwrap_or(443);
            let name = ServerName::try_from(host.clone())
                .map_err(|_| error(io::ErrorKind::InvalidInput, format!("bad host {host}")))?;
            let connecting = async {
                let tcp = TcpStream::connect((host.as_str(), port)).await?;
                tcp.set_nodelay(true)?;
                tls.connect(name, tcp).await
            };
            let stream = tokio::time::timeout(timeout, connecting)
                .await
                .map_err(|_| {
                    error(
                        io::ErrorKind::TimedOut,
                        format!("connecting to {host}:{port} timed out after {timeout:?}"),
                    )
                })??;
            let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
            Ok(TlsConn {
                io: TokioIo::new(stream),
                h2,
            })
        })
    }
}
