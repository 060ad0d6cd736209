//! `GET /ws`: authenticate, then upgrade to a WebSocket.

use std::sync::Arc;

use axum::extract::{Request, State};
use http::{HeaderValue, StatusCode, header};
use hyper_util::rt::TokioIo;
use pushcluster_auth::AuthError;
use pushcluster_server::http::Peer;
use pushcluster_server::{Resp, respond};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use crate::PushService;
use crate::admission::Refused;

/// Frames are buffered up to this many bytes before a socket write, and flushed at the end
/// of each burst: a burst of small messages is one write.
const WRITE_BUFFER: usize = 8 * 1024;

/// Parameters a client connects with.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ConnectParams {
    pub token: Option<String>,
    pub last_seq: u64,
}

/// A connect parameter that cannot be used.
#[derive(Debug, PartialEq, Eq)]
pub struct ParamError {
    pub field: &'static str,
    pub message: &'static str,
}

/// Reads `token` and `last_seq` from the query, else the token from `Authorization: Bearer`.
pub fn parse_params(
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

/// `GET /ws`. Refuses before the upgrade, with a JSON reason: 400 for a non-WebSocket request
/// or bad parameters; 429 + `Retry-After` when the source connects too often; 503 +
/// `Retry-After` while draining or when the node is full; 401 for a missing, invalid or expired
/// token; 429 when the user has its maximum of connections here.
pub async fn handle(State(svc): State<Arc<PushService>>, mut req: Request) -> Resp {
    if svc.hub.is_draining() {
        return respond::retry_later(
            StatusCode::SERVICE_UNAVAILABLE,
            "node is draining; connect to another node",
            1,
        );
    }
    let headers = req.headers();
    let key = headers.get(header::SEC_WEBSOCKET_KEY).cloned();
    let is_ws = header_has(headers, header::CONNECTION, "upgrade")
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
    let params = match parse_params(req.uri().query(), req.headers()) {
        Ok(p) => p,
        Err(e) => return respond::error(StatusCode::BAD_REQUEST, e.message, Some(e.field)),
    };
    let peer = req.extensions().get::<Peer>().map(|p| p.0.ip());
    if let Err(why) = svc.admission.precheck(peer) {
        return refused(why);
    }
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
    let slot = match svc.admission.admit(&user) {
        Ok(slot) => slot,
        Err(why) => return refused(why),
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
        // Held for the connection's life: its place on this node and in its user's count.
        let _slot = slot;
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

    let mut resp = respond::empty(StatusCode::SWITCHING_PROTOCOLS);
    let h = resp.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept).expect("accept key is base64"),
    );
    resp
}

/// The answer to a refused admission.
fn refused(why: Refused) -> Resp {
    match why {
        Refused::Rate { retry_after } => respond::retry_later(
            StatusCode::TOO_MANY_REQUESTS,
            "too many connects from this address; retry later",
            retry_after.as_secs_f64().ceil() as u64,
        ),
        Refused::NodeFull { max } => respond::retry_later(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("node is full ({max} connections); retry later or connect to another node"),
            5,
        ),
        Refused::UserFull { max } => respond::error(
            StatusCode::TOO_MANY_REQUESTS,
            format!("this user already has {max} connections on this node; close one first"),
            None,
        ),
    }
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
