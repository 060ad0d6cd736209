//! The HTTPS server under the fake push vendors (FCM, Huawei, Xiaomi, vivo): TLS with a CA
//! made per run (the certificate is for `127.0.0.1` and `localhost`), HTTP/2 and/or HTTP/1.1
//! chosen by ALPN like the real vendors, each request read whole and handed to the vendor's
//! handler, which answers or never does ([`Answer::Hang`]). It counts the TCP connections
//! it accepted and their peers: a client that went through a proxy would show up as the
//! proxy's connection (and in the proxy's log).

use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, Method, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::apns::Pki;

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct Request {
    /// Which connection (1, 2, …) carried it.
    pub conn: u64,
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// What the handler does with a request.
pub enum Answer {
    Reply(Response<Full<Bytes>>),
    /// Read it, never answer (the vendor may have acted on it).
    Hang,
}

/// A JSON answer.
pub fn json(status: u16, body: &serde_json::Value) -> Answer {
    json_with(status, body, None)
}

/// A JSON answer with a `Retry-After` (seconds).
pub fn json_with(status: u16, body: &serde_json::Value, retry_after: Option<u64>) -> Answer {
    let mut r = Response::builder()
        .status(StatusCode::from_u16(status).expect("status"))
        .header("content-type", "application/json; charset=UTF-8");
    if let Some(s) = retry_after {
        r = r.header("retry-after", s.to_string());
    }
    Answer::Reply(
        r.body(Full::new(Bytes::from(body.to_string())))
            .expect("response"),
    )
}

/// Which protocols the server offers by ALPN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocols {
    /// `h2` only (FCM, Huawei).
    H2,
    /// `http/1.1` only.
    Http1,
}

/// The vendor's request handler (called with the fake's state locked by the vendor).
pub type Handler = Arc<dyn Fn(Request) -> Answer + Send + Sync>;

/// A running HTTPS server on `127.0.0.1`, stopped on drop.
pub struct HttpsServer {
    pub addr: SocketAddr,
    /// Trust this CA (PEM) to reach the server.
    pub ca_pem: String,
    peers: Arc<Mutex<Vec<SocketAddr>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HttpsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HttpsServer {
    /// Starts on a free port with a fresh CA.
    pub async fn start(protocols: Protocols, handler: Handler) -> HttpsServer {
        let pki = Pki::generate().expect("generating test certificates");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(pki.server_cert_der.clone())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.server_key_der.clone())),
            )
            .expect("TLS certificate");
        tls.alpn_protocols = match protocols {
            Protocols::H2 => vec![b"h2".to_vec()],
            Protocols::Http1 => vec![b"http/1.1".to_vec()],
        };
        let acceptor = TlsAcceptor::from(Arc::new(tls));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let peers = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn(accept(listener, acceptor, handler, peers.clone()));
        HttpsServer {
            addr,
            ca_pem: pki.ca_pem,
            peers,
            task,
        }
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.addr.port())
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.peers.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// The peer address of every connection accepted so far.
    pub fn peers(&self) -> Vec<SocketAddr> {
        self.peers.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

async fn accept(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    handler: Handler,
    peers: Arc<Mutex<Vec<SocketAddr>>>,
) {
    let mut conns = tokio::task::JoinSet::new();
    while let Ok((tcp, peer)) = listener.accept().await {
        let _ = tcp.set_nodelay(true);
        let conn = {
            let mut p = peers.lock().unwrap_or_else(|e| e.into_inner());
            p.push(peer);
            p.len() as u64
        };
        let (acceptor, handler) = (acceptor.clone(), handler.clone());
        conns.spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
            let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let handler = handler.clone();
                async move {
                    let (parts, body) = req.into_parts();
                    let body = body
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    let request = Request {
                        conn,
                        method: parts.method,
                        path: parts.uri.path().to_owned(),
                        headers: parts.headers,
                        body,
                    };
                    match handler(request) {
                        Answer::Reply(r) => Ok::<_, Infallible>(r),
                        Answer::Hang => std::future::pending().await,
                    }
                }
            });
            let io = TokioIo::new(tls);
            if h2 {
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .max_concurrent_streams(1000)
                    .serve_connection(io, service)
                    .await;
            } else {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            }
        });
    }
}

/// A form body (`a=1&b=2`) as pairs.
pub fn form(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The value of `key` in a form.
pub fn field<'a>(form: &'a [(String, String)], key: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Scripted replies per device token, used one per request.
pub struct Scripts<R>(HashMap<String, VecDeque<R>>);

impl<R> Default for Scripts<R> {
    fn default() -> Self {
        Scripts(HashMap::new())
    }
}

impl<R> Scripts<R> {
    pub fn add(&mut self, token: &str, replies: impl IntoIterator<Item = R>) {
        self.0.entry(token.to_owned()).or_default().extend(replies);
    }

    /// The next reply scripted for `token`, if any.
    pub fn next(&mut self, token: &str) -> Option<R> {
        self.0.get_mut(token).and_then(VecDeque::pop_front)
    }
}

/// What every fake vendor offers: where it listens, what it received, what reached a device.
pub trait FakeVendor {
    /// One request as the fake received it.
    type Received: Clone;

    fn server(&self) -> &HttpsServer;
    /// Every request received so far, in order.
    fn requests(&self) -> Vec<Self::Received>;
    /// Whether `r` carried `token`.
    fn carries(r: &Self::Received, token: &str) -> bool;
    /// Whether `r` put a copy of its notification on `token`'s device.
    fn reached(r: &Self::Received, token: &str) -> bool;
    /// What makes a device show two copies as one (tag, jobkey, requestId).
    fn dedupe_key(r: &Self::Received) -> Option<String>;

    /// `https://127.0.0.1:PORT`.
    fn url(&self) -> String {
        self.server().url()
    }

    /// The CA (PEM) to trust.
    fn ca_pem(&self) -> &str {
        &self.server().ca_pem
    }

    fn port(&self) -> u16 {
        self.server().addr.port()
    }

    /// TCP connections accepted so far.
    fn connections(&self) -> usize {
        self.server().connections()
    }

    fn peers(&self) -> Vec<SocketAddr> {
        self.server().peers()
    }

    /// Requests that carried `token`.
    fn requests_for(&self, token: &str) -> Vec<Self::Received> {
        let mut all = self.requests();
        all.retain(|r| Self::carries(r, token));
        all
    }

    /// Copies that reached `token`'s device.
    fn delivered_to(&self, token: &str) -> Vec<Self::Received> {
        let mut all = self.requests();
        all.retain(|r| Self::reached(r, token));
        all
    }

    /// Notifications the device shows: delivered copies with distinct dedupe keys.
    fn shown_on(&self, token: &str) -> usize {
        let keys: HashSet<Option<String>> = self
            .delivered_to(token)
            .iter()
            .map(Self::dedupe_key)
            .collect();
        keys.len()
    }
}
