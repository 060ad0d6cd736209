//! A fake Xiaomi push (MiPush) over HTTP/1.1 and TLS.
//!
//! `POST /v3/message/regid` (form): `Authorization: key=APP_SECRET` must match
//! [`APP_SECRET`] (else code 21301 "Authentication failed", like MiPush, as HTTP 200), the
//! `restricted_package_name` [`PACKAGE`], and `extra.jobkey` must be MiPush's format
//! (`[0-9A-Za-z_-]`, at most 20, not starting with `_`). Then the reply scripted for the
//! `registration_id` ([`Reply`]), default `{"result":"ok","code":0,"data":{"id":…}}`. The
//! device shows only the first message of a jobkey ([`FakeXiaomi::shown_on`]).

use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::json;

use crate::https::{self, Answer, FakeVendor, HttpsServer, Protocols, Request, Scripts};

pub const APP_SECRET: &str = "xm-app-s3cret-0123456789ABCDEFGH==";
pub const PACKAGE: &str = "com.example.pushcluster";

/// What the fake answers one send (after the key and package checked out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `result: ok`: reaches the device.
    Ok,
    /// Code 20301 "No valid targets!": the regId is not (or no longer) valid.
    InvalidRegId,
    /// `result: ok` with the regId listed in `data.bad_regids`.
    BadRegId,
    /// Code 200002: the app's daily quota is spent.
    Quota,
    /// HTTP 429 (too many requests).
    TooManyRequests { retry_after: Option<u64> },
    /// HTTP 503.
    ServerError,
    /// Reaches the device, but no response ever comes.
    Hang,
}

/// One send as the fake received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub conn: u64,
    pub regid: String,
    pub form: Vec<(String, String)>,
    pub authorization: Option<String>,
    /// `ok`, `20301`, `21301`, `hang`, …
    pub answer: String,
}

impl Received {
    pub fn field(&self, key: &str) -> Option<&str> {
        https::field(&self.form, key)
    }

    pub fn jobkey(&self) -> Option<&str> {
        self.field("extra.jobkey")
    }
}

#[derive(Default)]
struct State {
    scripts: Scripts<Reply>,
    received: Vec<Received>,
    next: u64,
}

type Shared = Arc<Mutex<State>>;

fn lock(s: &Shared) -> MutexGuard<'_, State> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running fake MiPush on `127.0.0.1`, stopped on drop.
pub struct FakeXiaomi {
    server: HttpsServer,
    state: Shared,
}

impl FakeVendor for FakeXiaomi {
    type Received = Received;

    fn server(&self) -> &HttpsServer {
        &self.server
    }

    fn requests(&self) -> Vec<Received> {
        lock(&self.state).received.clone()
    }

    fn carries(r: &Received, regid: &str) -> bool {
        r.regid == regid
    }

    fn reached(r: &Received, regid: &str) -> bool {
        r.regid == regid && matches!(r.answer.as_str(), "ok" | "hang")
    }

    /// The device shows only the first message of a jobkey.
    fn dedupe_key(r: &Received) -> Option<String> {
        r.jobkey().map(str::to_owned)
    }
}

impl FakeXiaomi {
    pub async fn start() -> FakeXiaomi {
        let state: Shared = Arc::default();
        let shared = state.clone();
        let server =
            HttpsServer::start(Protocols::Http1, Arc::new(move |req| handle(&shared, req))).await;
        FakeXiaomi { server, state }
    }

    /// Queues replies for a regId, used one per send; then `Reply::Ok`.
    pub fn script(&self, regid: &str, replies: impl IntoIterator<Item = Reply>) {
        lock(&self.state).scripts.add(regid, replies);
    }
}

fn jobkey_ok(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 20
        && !k.starts_with('_')
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn handle(state: &Shared, req: Request) -> Answer {
    if req.path != "/v3/message/regid" {
        return https::json(
            404,
            &json!({"result": "error", "code": 404, "reason": "Not Found"}),
        );
    }
    let mut s = lock(state);
    s.next += 1;
    let trace = format!("Xlm{:08}fake", s.next);
    let form = https::form(&req.body);
    let regid = https::field(&form, "registration_id")
        .unwrap_or_default()
        .to_owned();
    let authorization = req.header("authorization").map(str::to_owned);
    let mut received = Received {
        conn: req.conn,
        regid: regid.clone(),
        form: form.clone(),
        authorization: authorization.clone(),
        answer: String::new(),
    };
    let error = |code: u32, reason: &str, description: &str| json!({"result": "error", "reason": reason, "trace_id": trace, "code": code, "description": description});
    let (answer, label) = if authorization.as_deref() != Some(&format!("key={APP_SECRET}")) {
        (
            https::json(200, &error(21301, "Authentication failed", "认证失败")),
            "21301".to_owned(),
        )
    } else if https::field(&form, "restricted_package_name") != Some(PACKAGE) {
        (
            https::json(200, &error(22022, "Invalid package name", "发送消息失败")),
            "22022".into(),
        )
    } else if !https::field(&form, "extra.jobkey").is_some_and(jobkey_ok) {
        (
            https::json(
                200,
                &error(10017, "Invalid parameter: extra.jobkey", "参数错误"),
            ),
            "10017".into(),
        )
    } else {
        let reply = s.scripts.next(&regid).unwrap_or(Reply::Ok);
        let id = format!("scm01b{:08}fake", s.next);
        let ok = |data: serde_json::Value| json!({"result": "ok", "trace_id": trace, "code": 0, "data": data, "description": "成功", "info": "Received push messages for 1 REGID"});
        match reply {
            Reply::Ok => (https::json(200, &ok(json!({"id": id}))), "ok".into()),
            Reply::BadRegId => (
                https::json(200, &ok(json!({"id": id, "bad_regids": regid}))),
                "bad_regids".into(),
            ),
            Reply::InvalidRegId => (
                https::json(200, &error(20301, "No valid targets!", "发送消息失败")),
                "20301".into(),
            ),
            Reply::Quota => (
                https::json(
                    200,
                    &error(
                        200002,
                        "The number of messages exceeds the daily quota",
                        "超过每日推送配额",
                    ),
                ),
                "200002".into(),
            ),
            Reply::TooManyRequests { retry_after } => (
                https::json_with(
                    429,
                    &error(429, "Too Many Requests", "请求过于频繁"),
                    retry_after,
                ),
                "429".into(),
            ),
            Reply::ServerError => (
                https::json(503, &error(503, "Service Unavailable", "服务暂不可用")),
                "503".into(),
            ),
            Reply::Hang => (Answer::Hang, "hang".into()),
        }
    };
    received.answer = label;
    s.received.push(received);
    answer
}
