//! A fake Huawei Push Kit with its OAuth server, over HTTP/2 and TLS.
//!
//! - `POST /oauth2/v3/token`: client credentials (`client_id` = [`APP_ID`], `client_secret` =
//!   [`CLIENT_SECRET`]) → an access token of [`FakeHms::set_token_lifetime`] (3600 s);
//!   else Huawei's `{"error":1101,…,"error_description":"invalid client"}`.
//! - `POST /v1/{APP_ID}/messages:send` with up to 1,000 tokens: the bearer must be a live
//!   token it issued (else 80200001; a revoked or expired one 80200003, HTTP 401). Then the
//!   reply scripted for the first scripted token of the request ([`Reply`]), default success,
//!   computed per token like Push Kit: tokens marked invalid ([`FakeHms::invalidate`], or
//!   once with [`FakeHms::fail_once`]) make 80100000 partial success with `illegal_tokens`
//!   (the others are delivered), or 80300007 when every token is invalid.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::https::{self, Answer, FakeVendor, HttpsServer, Protocols, Request, Scripts};

pub const APP_ID: &str = "104523456";
pub const CLIENT_SECRET: &str = "hms-cl1ent-s3cret-0123456789abcdef";

/// What the fake does with one request (after the token checked out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Per token: 80000000, 80100000 or 80300007 (see the module doc).
    Ok,
    /// The access token presented is revoked: 401 80200003.
    ExpireToken,
    /// HTTP 429 (flow control) with Huawei's body.
    RateLimited { retry_after: Option<u64> },
    /// HTTP 503 81000001 internal error.
    Overloaded,
    /// 80300008: the message body is too large.
    TooLarge,
    /// Delivered to every token, but no response ever comes.
    Hang,
}

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub conn: u64,
    pub tokens: Vec<String>,
    pub access_token: Option<String>,
    pub message: Value,
    /// The tokens this request reached.
    pub delivered: Vec<String>,
    /// `80000000`, `80100000`, `hang`, …
    pub answer: String,
}

#[derive(Default)]
struct State {
    scripts: Scripts<Reply>,
    invalid: HashSet<String>,
    fail_once: HashSet<String>,
    lifetime: Option<Duration>,
    issued: HashMap<String, Instant>,
    revoked: HashSet<String>,
    grants: u32,
    received: Vec<Received>,
    next: u64,
}

type Shared = Arc<Mutex<State>>;

fn lock(s: &Shared) -> MutexGuard<'_, State> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running fake Push Kit on `127.0.0.1`, stopped on drop.
pub struct FakeHms {
    server: HttpsServer,
    state: Shared,
}

impl FakeVendor for FakeHms {
    type Received = Received;

    fn server(&self) -> &HttpsServer {
        &self.server
    }

    fn requests(&self) -> Vec<Received> {
        lock(&self.state).received.clone()
    }

    fn carries(r: &Received, token: &str) -> bool {
        r.tokens.iter().any(|t| t == token)
    }

    fn reached(r: &Received, token: &str) -> bool {
        r.delivered.iter().any(|t| t == token)
    }

    fn dedupe_key(r: &Received) -> Option<String> {
        r.message["android"]["notification"]["tag"]
            .as_str()
            .map(str::to_owned)
    }
}

impl FakeHms {
    pub async fn start() -> FakeHms {
        let state: Shared = Arc::default();
        let shared = state.clone();
        let server =
            HttpsServer::start(Protocols::H2, Arc::new(move |req| handle(&shared, req))).await;
        FakeHms { server, state }
    }

    /// Queues request-level replies for requests carrying `token`; then `Reply::Ok`.
    pub fn script(&self, token: &str, replies: impl IntoIterator<Item = Reply>) {
        lock(&self.state).scripts.add(token, replies);
    }

    /// `token` is invalid from now on (an uninstalled app).
    pub fn invalidate(&self, token: &str) {
        lock(&self.state).invalid.insert(token.to_owned());
    }

    /// `token` fails in the next request that carries it, then works.
    pub fn fail_once(&self, token: &str) {
        lock(&self.state).fail_once.insert(token.to_owned());
    }

    pub fn set_token_lifetime(&self, lifetime: Duration) {
        lock(&self.state).lifetime = Some(lifetime);
    }

    /// Access tokens issued so far.
    pub fn tokens_issued(&self) -> u32 {
        lock(&self.state).grants
    }
}

fn handle(state: &Shared, req: Request) -> Answer {
    if req.path == "/oauth2/v3/token" {
        return token(state, &req);
    }
    if req.path != format!("/v1/{APP_ID}/messages:send") {
        return https::json(
            404,
            &json!({"code": "80100002", "msg": "Illegal request URL"}),
        );
    }
    send(state, req)
}

fn token(state: &Shared, req: &Request) -> Answer {
    let form = https::form(&req.body);
    let ok = https::field(&form, "grant_type") == Some("client_credentials")
        && https::field(&form, "client_id") == Some(APP_ID)
        && https::field(&form, "client_secret") == Some(CLIENT_SECRET);
    if !ok {
        return https::json(
            400,
            &json!({"error": 1101, "sub_error": 20001, "error_description": "invalid client"}),
        );
    }
    let mut s = lock(state);
    s.grants += 1;
    let lifetime = s.lifetime.unwrap_or(Duration::from_secs(3600));
    let token = format!("DQEBAGZ{}fake{}", s.grants, lifetime.as_secs());
    s.issued.insert(token.clone(), Instant::now() + lifetime);
    https::json(
        200,
        &json!({"access_token": token, "expires_in": lifetime.as_secs(), "token_type": "Bearer"}),
    )
}

fn send(state: &Shared, req: Request) -> Answer {
    let mut s = lock(state);
    s.next += 1;
    let request_id = format!("17347639873582063100{:04}", s.next);
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let message = body["message"].clone();
    let tokens: Vec<String> = message["token"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let bearer = req
        .header("authorization")
        .and_then(|a| a.strip_prefix("Bearer "))
        .map(str::to_owned);
    let mut received = Received {
        conn: req.conn,
        tokens: tokens.clone(),
        access_token: bearer.clone(),
        message,
        delivered: Vec::new(),
        answer: String::new(),
    };
    let reply_with =
        |code: &str, msg: &str| json!({"code": code, "msg": msg, "requestId": request_id});
    let known = bearer.as_ref().and_then(|b| s.issued.get(b).copied());
    let revoked = bearer.as_ref().is_some_and(|b| s.revoked.contains(b));
    let answer = match known {
        None => {
            received.answer = "80200001".into();
            https::json(401, &reply_with("80200001", "Oauth authentication error"))
        }
        Some(until) if revoked || Instant::now() >= until => {
            received.answer = "80200003".into();
            https::json(401, &reply_with("80200003", "Request OAuth token expired"))
        }
        Some(_) => {
            let reply = tokens
                .iter()
                .find_map(|t| s.scripts.next(t))
                .unwrap_or(Reply::Ok);
            match reply {
                Reply::Ok => {
                    let illegal: Vec<String> = tokens
                        .iter()
                        .filter(|t| s.invalid.contains(*t) || s.fail_once.remove(*t))
                        .cloned()
                        .collect();
                    received.delivered = tokens
                        .iter()
                        .filter(|t| !illegal.contains(t))
                        .cloned()
                        .collect();
                    if illegal.is_empty() {
                        received.answer = "80000000".into();
                        https::json(200, &reply_with("80000000", "Success"))
                    } else if received.delivered.is_empty() {
                        received.answer = "80300007".into();
                        https::json(200, &reply_with("80300007", "All the tokens are invalid"))
                    } else {
                        received.answer = "80100000".into();
                        let msg = json!({
                            "success": received.delivered.len(),
                            "failure": illegal.len(),
                            "illegal_tokens": illegal,
                        });
                        https::json(200, &reply_with("80100000", &msg.to_string()))
                    }
                }
                Reply::ExpireToken => {
                    if let Some(b) = &bearer {
                        s.revoked.insert(b.clone());
                    }
                    received.answer = "80200003".into();
                    https::json(401, &reply_with("80200003", "Request OAuth token expired"))
                }
                Reply::RateLimited { retry_after } => {
                    received.answer = "429".into();
                    https::json_with(
                        429,
                        &reply_with(
                            "80300010",
                            "The number of requests exceeds the flow control limit",
                        ),
                        retry_after,
                    )
                }
                Reply::Overloaded => {
                    received.answer = "81000001".into();
                    https::json(503, &reply_with("81000001", "System inner error"))
                }
                Reply::TooLarge => {
                    received.answer = "80300008".into();
                    https::json(
                        200,
                        &reply_with(
                            "80300008",
                            "The message body size exceeds the default value",
                        ),
                    )
                }
                Reply::Hang => {
                    received.delivered = tokens.clone();
                    received.answer = "hang".into();
                    Answer::Hang
                }
            }
        }
    };
    s.received.push(received);
    answer
}
