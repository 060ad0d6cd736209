//! A fake vivo push over HTTP/1.1 and TLS.
//!
//! - `POST /message/auth` `{appId, appKey, timestamp, sign}`: `sign` must be
//!   `md5(appId + appKey + timestamp + appSecret)` (lowercase hex) of [`APP_ID`], [`APP_KEY`]
//!   and [`APP_SECRET`], `timestamp` within ten minutes; then `{"result":0,…,"authToken"}`,
//!   else vivo's refusal.
//! - `POST /message/send`: header `authToken` must be one it issued and not revoked (else
//!   10000); then the reply scripted for the `regId` ([`Reply`]), default
//!   `{"result":0,"desc":"请求成功","taskId":…}`. A `requestId` seen before is answered with
//!   its first `taskId` and not delivered again, as vivo treats a repeated request.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use md5::{Digest, Md5};
use serde_json::{Value, json};

use crate::https::{self, Answer, FakeVendor, HttpsServer, Protocols, Request, Scripts};

pub const APP_ID: u64 = 105_001_234;
pub const APP_KEY: &str = "8c3f2e1a-pushcluster-app-key";
pub const APP_SECRET: &str = "5b7d9f1e-vivo-app-s3cret-0123";

/// What the fake answers one send (after the token checked out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `result: 0`: reaches the device.
    Ok,
    /// 10070: the app's daily quota is spent.
    Quota,
    /// 10302: the regId is not valid.
    InvalidRegId,
    /// The token presented is revoked, then 10000.
    ExpireToken,
    /// HTTP 429.
    TooManyRequests { retry_after: Option<u64> },
    /// HTTP 500.
    ServerError,
    /// Reaches the device, but no response ever comes.
    Hang,
}

/// One send as the fake received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub conn: u64,
    pub reg_id: String,
    pub request_id: Option<String>,
    pub body: Value,
    pub auth_token: Option<String>,
    /// Whether this request put a notification on the device.
    pub delivered: bool,
    /// `0`, `10070`, `duplicate`, `hang`, …
    pub answer: String,
}

#[derive(Default)]
struct State {
    scripts: Scripts<Reply>,
    issued: HashSet<String>,
    revoked: HashSet<String>,
    grants: u32,
    /// requestId → taskId of what was delivered.
    seen: HashMap<String, String>,
    received: Vec<Received>,
    next: u64,
}

type Shared = Arc<Mutex<State>>;

fn lock(s: &Shared) -> MutexGuard<'_, State> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running fake vivo push on `127.0.0.1`, stopped on drop.
pub struct FakeVivo {
    server: HttpsServer,
    state: Shared,
}

impl FakeVendor for FakeVivo {
    type Received = Received;

    fn server(&self) -> &HttpsServer {
        &self.server
    }

    fn requests(&self) -> Vec<Received> {
        lock(&self.state).received.clone()
    }

    fn carries(r: &Received, reg_id: &str) -> bool {
        r.reg_id == reg_id
    }

    fn reached(r: &Received, reg_id: &str) -> bool {
        r.reg_id == reg_id && r.delivered
    }

    /// vivo drops a repeated requestId.
    fn dedupe_key(r: &Received) -> Option<String> {
        r.request_id.clone()
    }
}

impl FakeVivo {
    pub async fn start() -> FakeVivo {
        let state: Shared = Arc::default();
        let shared = state.clone();
        let server =
            HttpsServer::start(Protocols::Http1, Arc::new(move |req| handle(&shared, req))).await;
        FakeVivo { server, state }
    }

    /// Queues replies for a regId, used one per send; then `Reply::Ok`.
    pub fn script(&self, reg_id: &str, replies: impl IntoIterator<Item = Reply>) {
        lock(&self.state).scripts.add(reg_id, replies);
    }

    /// Auth tokens issued so far.
    pub fn tokens_issued(&self) -> u32 {
        lock(&self.state).grants
    }
}

/// vivo's signature.
pub fn sign(app_id: u64, app_key: &str, timestamp: u64, app_secret: &str) -> String {
    let d = Md5::digest(format!("{app_id}{app_key}{timestamp}{app_secret}").as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn handle(state: &Shared, req: Request) -> Answer {
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    match req.path.as_str() {
        "/message/auth" => auth(state, &body),
        "/message/send" => send(state, &req, body),
        _ => https::json(404, &json!({"result": 404, "desc": "not found"})),
    }
}

fn auth(state: &Shared, body: &Value) -> Answer {
    let now = pushcluster_now_ms();
    let timestamp = body["timestamp"].as_u64().unwrap_or(0);
    if body["appId"].as_u64() != Some(APP_ID) || body["appKey"].as_str() != Some(APP_KEY) {
        return https::json(
            200,
            &json!({"result": 10101, "desc": "appId或appKey不合法"}),
        );
    }
    if timestamp.abs_diff(now) > 10 * 60 * 1000 {
        return https::json(200, &json!({"result": 10202, "desc": "timestamp已过期"}));
    }
    if body["sign"].as_str() != Some(&sign(APP_ID, APP_KEY, timestamp, APP_SECRET)) {
        return https::json(200, &json!({"result": 10200, "desc": "sign校验不通过"}));
    }
    let mut s = lock(state);
    s.grants += 1;
    let token = format!("vivo-auth-{}-{timestamp}", s.grants);
    s.issued.insert(token.clone());
    https::json(
        200,
        &json!({"result": 0, "desc": "请求成功", "authToken": token}),
    )
}

fn pushcluster_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn send(state: &Shared, req: &Request, body: Value) -> Answer {
    let mut s = lock(state);
    let auth_token = req.header("authtoken").map(str::to_owned);
    let reg_id = body["regId"].as_str().unwrap_or_default().to_owned();
    let request_id = body["requestId"].as_str().map(str::to_owned);
    let mut received = Received {
        conn: req.conn,
        reg_id: reg_id.clone(),
        request_id: request_id.clone(),
        body,
        auth_token: auth_token.clone(),
        delivered: false,
        answer: String::new(),
    };
    let live = auth_token
        .as_ref()
        .is_some_and(|t| s.issued.contains(t) && !s.revoked.contains(t));
    let refused = || https::json(200, &json!({"result": 10000, "desc": "权限认证失败"}));
    let answer = if !live {
        received.answer = "10000".into();
        refused()
    } else if let Some(task) = request_id.as_ref().and_then(|r| s.seen.get(r)).cloned() {
        received.answer = "duplicate".into();
        https::json(
            200,
            &json!({"result": 0, "desc": "请求成功", "taskId": task}),
        )
    } else {
        let reply = s.scripts.next(&reg_id).unwrap_or(Reply::Ok);
        match reply {
            Reply::Ok | Reply::Hang => {
                s.next += 1;
                let task = format!("6537{:012}", s.next);
                if let Some(r) = &request_id {
                    s.seen.insert(r.clone(), task.clone());
                }
                received.delivered = true;
                if reply == Reply::Hang {
                    received.answer = "hang".into();
                    Answer::Hang
                } else {
                    received.answer = "0".into();
                    https::json(
                        200,
                        &json!({"result": 0, "desc": "请求成功", "taskId": task}),
                    )
                }
            }
            Reply::Quota => {
                received.answer = "10070".into();
                https::json(
                    200,
                    &json!({"result": 10070, "desc": "超过当天推送总数限制"}),
                )
            }
            Reply::InvalidRegId => {
                received.answer = "10302".into();
                https::json(200, &json!({"result": 10302, "desc": "regId不合法"}))
            }
            Reply::ExpireToken => {
                if let Some(t) = &auth_token {
                    s.revoked.insert(t.clone());
                }
                received.answer = "10000".into();
                refused()
            }
            Reply::TooManyRequests { retry_after } => {
                received.answer = "429".into();
                https::json_with(
                    429,
                    &json!({"result": 10252, "desc": "请求频率过高"}),
                    retry_after,
                )
            }
            Reply::ServerError => {
                received.answer = "500".into();
                https::json(500, &json!({"result": 500, "desc": "系统内部错误"}))
            }
        }
    };
    s.received.push(received);
    answer
}
