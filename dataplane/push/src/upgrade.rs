//! `GET /ws`: authenticate, then upgrade to a WebSocket.

use std::sync::Arc;

use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use pushcluster_auth::AuthError;
use pushcluster_server::{Body, Resp, respond};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use crate::PushService;

/// Frames are buffered up to this many bytes before a socket write, and flushed at the end
/// of each burst: a burst of small messages is one write.
const WRITE_BUFFER: usize = 8 * 1024;

/// Parameters a client connects with.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ConnectParams {
    pub token: Option<String>,
    pub last_seq: u64,
}

/// Reads `token` and `last_seq` from the query and the bearer token from the headers.
pub fn connect_params(req: &Request<Incoming>) -> Result<ConnectParams, ParamError> {
    parse_params(req.uri().query(), req.headers())
}

/// A connect parameter that cannot be used.
#[derive(Debug, PartialEq, Eq)]
pub struct ParamError {
    pub field: &'static str,
    pub message: &'static str,
}

fn parse_params(
    query: Option<&str>,
    headers: &http::HeaderMap,
) -> Result<ConnectParams, ParamError> {
    let mut params = ConnectParams::default();
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match &*k {
            "token" => params.token = Some(v.into_owned()),
            "last_seq" => {
                params.last_seq = v.parse().map_err(|_| ParamError {
                    field: "last_seq",
                    message: "`last_seq` must be a non-negative integer",
                })?
            }
            _ => {}
        }
    }
    if params.token.is_none() {
        params.token = respond::bearer(headers).map(str::to_owned);
    }
    Ok(params)
}

fn header_has(headers: &http::HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .map(|s| s.split(',').any(|p| p.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

/// Handles `GET /ws`. Refuses before the upgrade: 400 for a non-WebSocket request or bad
/// parameters, 401 with a JSON reason for a missing, invalid or expired token, 503 while
/// draining.
pub async fn handle(mut req: Request<Incoming>, svc: Arc<PushService>) -> Resp {
    if svc.hub.is_draining() {
        return respond::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "node is draining; connect to another node",
            None,
        );
    }
    let headers = req.headers();
    let key = headers.get(header::SEC_WEBSOCKET_KEY).cloned();
    let is_ws = req.method() == http::Method::GET
        && header_has(headers, header::CONNECTION, "upgrade")
        && header_has(headers, header::UPGRADE, "websocket")
        && headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .is_some_and(|v| v == "13");
    let Some(key) = key.filter(|_| is_ws) else {
        return respond::error(
            StatusCode::BAD_REQUEST,
            "expected a WebSocket upgrade (GET with Upgrade: websocket, Sec-WebSocket-Version: 13)",
            None,
        );
    };
    let params = match connect_params(&req) {
        Ok(p) => p,
        Err(e) => return respond::error(StatusCode::BAD_REQUEST, e.message, Some(e.field)),
    };
    let user = match svc
        .verifier
        .verify(params.token.as_deref().unwrap_or(""))
        .await
    {
        Ok(user) => user,
        Err(e) => {
            svc.metrics.auth_failures.inc();
            let status = match e {
                AuthError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::UNAUTHORIZED,
            };
            let mut resp = respond::json(
                status,
                &serde_json::json!({"error": e.to_string(), "code": e.code()}),
            );
            if status == StatusCode::UNAUTHORIZED {
                resp.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            return resp;
        }
    };

    let accept = derive_accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(&mut req);
    drop(req);
    let config = WebSocketConfig::default()
        .read_buffer_size(svc.config.read_buffer)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(svc.config.max_client_frame.max(1 << 20) * 4)
        .max_message_size(Some(svc.config.max_client_frame))
        .max_frame_size(Some(svc.config.max_client_frame));
    let last_seq = params.last_seq;
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "upgrade failed");
                return;
            }
        };
        let ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config))
                .await;
        crate::conn::serve(ws, user, last_seq, svc).await;
    });

    let mut resp = Response::new(Body::default());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept).expect("accept key is base64"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_from_query_or_header_and_last_seq() {
        let mut h = http::HeaderMap::new();
        let p = parse_params(Some("token=a%2Eb&last_seq=5"), &h).unwrap();
        assert_eq!(
            p,
            ConnectParams {
                token: Some("a.b".into()),
                last_seq: 5
            }
        );
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer xyz"),
        );
        let p = parse_params(None, &h).unwrap();
        assert_eq!(p.token.as_deref(), Some("xyz"));
        let err = parse_params(Some("last_seq=-1"), &h).unwrap_err();
        assert_eq!(err.field, "last_seq");
    }
}
