//! The fake's TLS + HTTP/2 server (the `h2` crate directly, for GOAWAY and RST_STREAM).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use h2::server::SendResponse;
use http::{Request, Response};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

use super::{KEY_ID, Pki, Received, Reply, State, TEAM_ID, TOPIC};

type Shared = Arc<Mutex<State>>;

fn lock(state: &Shared) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

pub(super) async fn spawn(
    pki: &Pki,
    state: Shared,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(pki.server_cert_der.clone())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.server_key_der.clone())),
        )?;
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let key = Arc::new(DecodingKey::from_ec_der(&pki.provider_public_raw));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = tcp.set_nodelay(true);
            let (acceptor, state, key) = (acceptor.clone(), state.clone(), key.clone());
            conns.spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    serve(tls, state, key).await;
                }
            });
        }
    });
    Ok((addr, task))
}

/// TLS on a free port, bytes relayed to `backend` (see `FakeApns::tls_front`).
pub(super) async fn tls_front(
    cert_der: &[u8],
    key_der: &[u8],
    backend: SocketAddr,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert_der.to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_der.to_vec())),
        )?;
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            conns.spawn(async move {
                let (Ok(mut client), Ok(mut upstream)) = (
                    acceptor.accept(tcp).await,
                    tokio::net::TcpStream::connect(backend).await,
                ) else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    Ok((addr, task))
}

async fn serve(
    tls: tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    state: Shared,
    key: Arc<DecodingKey>,
) {
    let Ok(mut conn) = h2::server::Builder::new()
        .max_concurrent_streams(1000)
        .handshake::<_, Bytes>(tls)
        .await
    else {
        return;
    };
    let (conn_id, goaway_now) = {
        let mut s = lock(&state);
        s.connections += 1;
        let goaway = s.goaway_connections > 0;
        if goaway {
            s.goaway_connections -= 1;
        }
        (s.connections, goaway)
    };
    if goaway_now {
        // last-stream-id = 0: nothing on this connection is processed.
        conn.abrupt_shutdown(h2::Reason::NO_ERROR);
    }
    let (goaway_tx, mut goaway_rx) = mpsc::unbounded_channel::<()>();
    loop {
        tokio::select! {
            next = conn.accept() => match next {
                Some(Ok((req, respond))) => {
                    let (state, key, goaway_tx) = (state.clone(), key.clone(), goaway_tx.clone());
                    tokio::spawn(handle(conn_id, req, respond, state, key, goaway_tx));
                }
                _ => break,
            },
            Some(()) = goaway_rx.recv() => conn.abrupt_shutdown(h2::Reason::NO_ERROR),
        }
    }
}

#[derive(serde::Deserialize)]
struct Claims {
    iss: String,
    iat: u64,
}

fn header(req: &Request<h2::RecvStream>, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Checks the provider token like APNs: `Err((status, reason))` when refused.
fn check_token(
    state: &Shared,
    key: &DecodingKey,
    jwt: Option<&str>,
) -> Result<Option<u64>, (u16, &'static str)> {
    let Some(jwt) = jwt else {
        return Err((403, "MissingProviderToken"));
    };
    if let Some(iat) = lock(state).verified.get(jwt) {
        return Ok(Some(*iat));
    }
    let header = jsonwebtoken::decode_header(jwt).map_err(|_| (403, "InvalidProviderToken"))?;
    if header.alg != Algorithm::ES256 || header.kid.as_deref() != Some(KEY_ID) {
        return Err((403, "InvalidProviderToken"));
    }
    let mut validation = Validation::new(Algorithm::ES256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_aud = false;
    let claims = jsonwebtoken::decode::<Claims>(jwt, key, &validation)
        .map_err(|_| (403, "InvalidProviderToken"))?
        .claims;
    if claims.iss != TEAM_ID {
        return Err((403, "InvalidProviderToken"));
    }
    let mut s = lock(state);
    if !s.verified.contains_key(jwt) {
        // A new token: Apple refuses one made less than 20 minutes after the previous.
        if let Some(newest) = s.newest_iat
            && claims.iat < newest + 20 * 60
        {
            return Err((429, "TooManyProviderTokenUpdates"));
        }
        s.newest_iat = Some(claims.iat);
        s.verified.insert(jwt.to_owned(), claims.iat);
    }
    Ok(Some(claims.iat))
}

async fn handle(
    conn: u64,
    req: Request<h2::RecvStream>,
    mut respond: SendResponse<Bytes>,
    state: Shared,
    key: Arc<DecodingKey>,
    goaway: mpsc::UnboundedSender<()>,
) {
    let device_token = req
        .uri()
        .path()
        .strip_prefix("/3/device/")
        .unwrap_or_default()
        .to_owned();
    let jwt =
        header(&req, "authorization").and_then(|a| a.strip_prefix("bearer ").map(str::to_owned));
    let mut received = Received {
        conn,
        device_token: device_token.clone(),
        apns_id: header(&req, "apns-id"),
        collapse_id: header(&req, "apns-collapse-id"),
        topic: header(&req, "apns-topic"),
        push_type: header(&req, "apns-push-type"),
        priority: header(&req, "apns-priority"),
        expiration: header(&req, "apns-expiration"),
        jwt: jwt.clone(),
        iat: None,
        payload: Vec::new(),
        answer: String::new(),
    };
    let mut body = req.into_body();
    while let Some(chunk) = body.data().await {
        let Ok(chunk) = chunk else { return };
        let _ = body.flow_control().release_capacity(chunk.len());
        received.payload.extend_from_slice(&chunk);
    }
    let checked = check_token(&state, &key, jwt.as_deref());
    let reply = match checked {
        Err((status, reason)) => Reply::reject(status, reason),
        Ok(iat) => {
            received.iat = iat;
            if received.topic.as_deref() != Some(TOPIC) {
                Reply::reject(400, "TopicDisallowed")
            } else if received.device_token.len() < 64 {
                Reply::reject(400, "BadDeviceToken")
            } else {
                lock(&state).next_reply(&device_token)
            }
        }
    };
    let apns_id = received.apns_id.clone().unwrap_or_default();
    received.answer = match &reply {
        Reply::Ok => "200".into(),
        Reply::Status { status, reason, .. } => format!("{status} {reason}"),
        Reply::Unregistered { .. } => "410 Unregistered".into(),
        Reply::RefuseStream => "refused".into(),
        Reply::Hang => "hang".into(),
        Reply::GoAwayAfterProcessing => "goaway-after".into(),
    };
    lock(&state).received.push(received);
    match reply {
        Reply::Ok => {
            let response = Response::builder()
                .status(200)
                .header("apns-id", apns_id)
                .body(())
                .expect("valid response");
            let _ = respond.send_response(response, true);
        }
        Reply::Status {
            status,
            reason,
            retry_after,
        } => {
            let body = serde_json::json!({ "reason": reason }).to_string();
            error_response(&mut respond, status, &apns_id, retry_after, body);
        }
        Reply::Unregistered { timestamp_ms } => {
            let body = serde_json::json!({ "reason": "Unregistered", "timestamp": timestamp_ms })
                .to_string();
            error_response(&mut respond, 410, &apns_id, None, body);
        }
        Reply::RefuseStream => respond.send_reset(h2::Reason::REFUSED_STREAM),
        Reply::Hang => lock(&state).parked.push(respond),
        Reply::GoAwayAfterProcessing => {
            lock(&state).parked.push(respond);
            let _ = goaway.send(());
        }
    }
}

fn error_response(
    respond: &mut SendResponse<Bytes>,
    status: u16,
    apns_id: &str,
    retry_after: Option<u64>,
    body: String,
) {
    let mut response = Response::builder()
        .status(status)
        .header("apns-id", apns_id)
        .header("content-type", "application/json");
    if let Some(secs) = retry_after {
        response = response.header("retry-after", secs.to_string());
    }
    let response = response.body(()).expect("valid response");
    if let Ok(mut stream) = respond.send_response(response, false) {
        let _ = stream.send_data(Bytes::from(body), true);
    }
}
