//! A fake FCM (HTTP v1) with its OAuth token endpoint, over HTTP/2 and TLS.
//!
//! - `POST /token`: Google's JWT-bearer grant. The assertion must be RS256, signed by the
//!   service-account key of [`FakeFcm::service_account_json`], with `kid` = its
//!   `private_key_id`, `iss` = its `client_email`, the `firebase.messaging` scope, `aud` =
//!   the token URI and `exp` at most an hour after `iat`; then an access token that lives
//!   [`FakeFcm::set_token_lifetime`] (default 3599 s). Refusals carry Google's bodies
//!   (`invalid_grant`, `invalid_scope`).
//! - `POST /v1/projects/{project}/messages:send`: the bearer must be a live token it issued
//!   (else 401 UNAUTHENTICATED, Google's body); then the reply scripted for the device token
//!   ([`Reply`], FCM's real bodies), default 200 `{"name": …}`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rsa::RsaPublicKey;
use rsa::pkcs8::DecodePublicKey;
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};

use crate::https::{self, Answer, FakeVendor, HttpsServer, Protocols, Request, Scripts};

pub const PROJECT: &str = "pushcluster-test";
pub const CLIENT_EMAIL: &str = "pushd@pushcluster-test.iam.gserviceaccount.com";
pub const KEY_ID: &str = "5f0c3a1e9d2b4c6a8e7f1b3d5c7a9e0f2b4d6c8a";
pub const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
/// The service-account key (test-only, see `fixtures/README.md`).
pub const KEY_PEM: &str = include_str!("../fixtures/fcm-service-account.key.pem");
const PUBLIC_PEM: &str = include_str!("../fixtures/fcm-service-account.pub.pem");

/// What the fake answers one send (after the access token checked out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// 200 `{"name": "projects/…/messages/0:…"}`: reaches the device.
    Ok,
    /// 404 NOT_FOUND / UNREGISTERED.
    Unregistered,
    /// 400 INVALID_ARGUMENT with a field violation on `message.token`.
    InvalidToken,
    /// 400 INVALID_ARGUMENT on another field (`message.android.ttl`).
    InvalidArgument,
    /// 403 PERMISSION_DENIED / SENDER_ID_MISMATCH.
    SenderIdMismatch,
    /// 429 RESOURCE_EXHAUSTED / QUOTA_EXCEEDED.
    Quota { retry_after: Option<u64> },
    /// 503 UNAVAILABLE.
    Unavailable { retry_after: Option<u64> },
    /// 500 INTERNAL.
    Internal,
    /// The access token presented is revoked, then 401 UNAUTHENTICATED.
    ExpireToken,
    /// Reaches the device, but no response ever comes.
    Hang,
}

/// What the token endpoint answers next (default: a token).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenReply {
    Ok,
    /// 503.
    Unavailable,
    /// 400 invalid_grant (as for a revoked or wrong key).
    InvalidGrant,
}

/// One send as the fake received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub conn: u64,
    /// The device token (`message.token`).
    pub token: String,
    /// The bearer presented.
    pub access_token: Option<String>,
    /// The `message` object.
    pub message: Value,
    /// `200`, `404 UNREGISTERED`, `hang`, …
    pub answer: String,
}

impl Received {
    /// `message.android.notification.tag`: what replaces a copy on the device.
    pub fn tag(&self) -> Option<String> {
        self.message["android"]["notification"]["tag"]
            .as_str()
            .map(str::to_owned)
    }
}

struct State {
    scripts: Scripts<Reply>,
    token_replies: VecDeque<TokenReply>,
    lifetime: Duration,
    issued: HashMap<String, Instant>,
    revoked: HashSet<String>,
    grants: u32,
    received: Vec<Received>,
    next: u64,
    key: DecodingKey,
    /// `https://127.0.0.1:PORT/token`: the `aud` a grant must name.
    token_uri: String,
}

type Shared = Arc<Mutex<State>>;

fn lock(s: &Shared) -> MutexGuard<'_, State> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running fake FCM on `127.0.0.1`, stopped on drop.
pub struct FakeFcm {
    server: HttpsServer,
    state: Shared,
}

impl FakeVendor for FakeFcm {
    type Received = Received;

    fn server(&self) -> &HttpsServer {
        &self.server
    }

    fn requests(&self) -> Vec<Received> {
        lock(&self.state).received.clone()
    }

    fn carries(r: &Received, token: &str) -> bool {
        r.token == token
    }

    fn reached(r: &Received, token: &str) -> bool {
        r.token == token && matches!(r.answer.as_str(), "200" | "hang")
    }

    fn dedupe_key(r: &Received) -> Option<String> {
        r.tag()
    }
}

impl FakeFcm {
    pub async fn start() -> FakeFcm {
        let public = RsaPublicKey::from_public_key_pem(PUBLIC_PEM).expect("fixture public key");
        let key = DecodingKey::from_rsa_raw_components(
            &public.n().to_bytes_be(),
            &public.e().to_bytes_be(),
        );
        let state = Arc::new(Mutex::new(State {
            scripts: Scripts::default(),
            token_replies: VecDeque::new(),
            lifetime: Duration::from_secs(3599),
            issued: HashMap::new(),
            revoked: HashSet::new(),
            grants: 0,
            received: Vec::new(),
            next: 0,
            key,
            token_uri: String::new(),
        }));
        let shared = state.clone();
        let server =
            HttpsServer::start(Protocols::H2, Arc::new(move |req| handle(&shared, req))).await;
        lock(&state).token_uri = format!("{}/token", server.url());
        FakeFcm { server, state }
    }

    /// A service-account key file for this fake (its `token_uri` points here).
    pub fn service_account_json(&self) -> String {
        json!({
            "type": "service_account",
            "project_id": PROJECT,
            "private_key_id": KEY_ID,
            "private_key": KEY_PEM,
            "client_email": CLIENT_EMAIL,
            "client_id": "113000000000000000000",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": format!("{}/token", self.url()),
        })
        .to_string()
    }

    /// Queues replies for a device token, used one per send; then `Reply::Ok`.
    pub fn script(&self, token: &str, replies: impl IntoIterator<Item = Reply>) {
        lock(&self.state).scripts.add(token, replies);
    }

    /// Queues answers of the token endpoint; then tokens.
    pub fn script_token_endpoint(&self, replies: impl IntoIterator<Item = TokenReply>) {
        lock(&self.state).token_replies.extend(replies);
    }

    /// How long the access tokens issued from now on live.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        lock(&self.state).lifetime = lifetime;
    }

    /// Access tokens issued so far.
    pub fn tokens_issued(&self) -> u32 {
        lock(&self.state).grants
    }
}

#[derive(serde::Deserialize)]
struct Grant {
    iss: String,
    scope: String,
    aud: String,
    iat: u64,
    exp: u64,
}

fn google_error(
    status: u16,
    s: &str,
    message: &str,
    code: Option<&str>,
    extra: Option<Value>,
) -> Value {
    let mut details = Vec::new();
    if let Some(code) = code {
        details.push(json!({"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}));
    }
    if let Some(extra) = extra {
        details.push(extra);
    }
    let mut error = json!({"code": status, "message": message, "status": s});
    if !details.is_empty() {
        error["details"] = Value::Array(details);
    }
    json!({ "error": error })
}

fn handle(state: &Shared, req: Request) -> Answer {
    if req.path == "/token" {
        return token(state, &req);
    }
    if req.path != format!("/v1/projects/{PROJECT}/messages:send") {
        return https::json(
            404,
            &google_error(
                404,
                "NOT_FOUND",
                "Requested entity was not found.",
                None,
                None,
            ),
        );
    }
    send(state, req)
}

fn token(state: &Shared, req: &Request) -> Answer {
    let mut s = lock(state);
    match s.token_replies.pop_front() {
        Some(TokenReply::Unavailable) => {
            return https::json(503, &json!({"error": "internal_failure"}));
        }
        Some(TokenReply::InvalidGrant) => {
            return https::json(
                400,
                &json!({"error": "invalid_grant", "error_description": "Invalid JWT Signature."}),
            );
        }
        Some(TokenReply::Ok) | None => {}
    }
    let form = https::form(&req.body);
    if https::field(&form, "grant_type") != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
        return https::json(
            400,
            &json!({"error": "unsupported_grant_type", "error_description": "Invalid grant_type: "}),
        );
    }
    let Some(jwt) = https::field(&form, "assertion") else {
        return https::json(
            400,
            &json!({"error": "invalid_request", "error_description": "Missing required parameter: assertion"}),
        );
    };
    let bad_sig = || {
        https::json(
            400,
            &json!({"error": "invalid_grant", "error_description": "Invalid JWT Signature."}),
        )
    };
    let Ok(header) = jsonwebtoken::decode_header(jwt) else {
        return bad_sig();
    };
    if header.alg != Algorithm::RS256 || header.kid.as_deref() != Some(KEY_ID) {
        return bad_sig();
    }
    let mut validation = Validation::new(Algorithm::RS256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_aud = false;
    let Ok(grant) = jsonwebtoken::decode::<Grant>(jwt, &s.key, &validation) else {
        return bad_sig();
    };
    let grant = grant.claims;
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if grant.iss != CLIENT_EMAIL
        || grant.aud != s.token_uri
        || grant.exp < now
        || grant.exp > grant.iat + 3600
        || grant.iat > now + 60
    {
        return https::json(
            400,
            &json!({"error": "invalid_grant", "error_description": "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim."}),
        );
    }
    if !grant.scope.split(' ').any(|sc| sc == SCOPE) {
        return https::json(
            400,
            &json!({"error": "invalid_scope", "error_description": "Invalid OAuth scope or ID token audience provided."}),
        );
    }
    s.grants += 1;
    let token = format!("ya29.c.fake-{}-{}", s.grants, now);
    let lifetime = s.lifetime;
    s.issued.insert(token.clone(), Instant::now() + lifetime);
    https::json(
        200,
        &json!({"access_token": token, "expires_in": lifetime.as_secs(), "token_type": "Bearer"}),
    )
}

fn send(state: &Shared, req: Request) -> Answer {
    let mut s = lock(state);
    let bearer = req
        .header("authorization")
        .and_then(|a| a.strip_prefix("Bearer "))
        .map(str::to_owned);
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let message = body["message"].clone();
    let token = message["token"].as_str().unwrap_or_default().to_owned();
    let mut received = Received {
        conn: req.conn,
        token: token.clone(),
        access_token: bearer.clone(),
        message,
        answer: String::new(),
    };
    let live = bearer.as_ref().is_some_and(|b| {
        !s.revoked.contains(b) && s.issued.get(b).is_some_and(|until| Instant::now() < *until)
    });
    let unauthenticated = || {
        https::json(
            401,
            &google_error(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
                None,
                None,
            ),
        )
    };
    if !live {
        received.answer = "401 UNAUTHENTICATED".into();
        s.received.push(received);
        return unauthenticated();
    }
    let reply = s.scripts.next(&token).unwrap_or(Reply::Ok);
    let (answer, label) = match reply {
        Reply::Ok => {
            s.next += 1;
            let name = format!(
                "projects/{PROJECT}/messages/0:{}%{:x}",
                1_700_000_000_000u64 + s.next,
                s.next
            );
            (https::json(200, &json!({ "name": name })), "200".to_owned())
        }
        Reply::Unregistered => (
            https::json(
                404,
                &google_error(
                    404,
                    "NOT_FOUND",
                    "Requested entity was not found.",
                    Some("UNREGISTERED"),
                    None,
                ),
            ),
            "404 UNREGISTERED".into(),
        ),
        Reply::InvalidToken => (
            https::json(
                400,
                &google_error(
                    400,
                    "INVALID_ARGUMENT",
                    "The registration token is not a valid FCM registration token",
                    Some("INVALID_ARGUMENT"),
                    Some(
                        json!({"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [{"field": "message.token", "description": "Invalid registration token"}]}),
                    ),
                ),
            ),
            "400 INVALID_ARGUMENT token".into(),
        ),
        Reply::InvalidArgument => (
            https::json(
                400,
                &google_error(
                    400,
                    "INVALID_ARGUMENT",
                    "Invalid value at 'message.android.ttl' (type.googleapis.com/google.protobuf.Duration), Field 'ttl', Illegal duration format; duration must end with 's'",
                    Some("INVALID_ARGUMENT"),
                    Some(
                        json!({"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [{"field": "message.android.ttl", "description": "Illegal duration format"}]}),
                    ),
                ),
            ),
            "400 INVALID_ARGUMENT".into(),
        ),
        Reply::SenderIdMismatch => (
            https::json(
                403,
                &google_error(
                    403,
                    "PERMISSION_DENIED",
                    "SenderId mismatch",
                    Some("SENDER_ID_MISMATCH"),
                    None,
                ),
            ),
            "403 SENDER_ID_MISMATCH".into(),
        ),
        Reply::Quota { retry_after } => (
            https::json_with(
                429,
                &google_error(
                    429,
                    "RESOURCE_EXHAUSTED",
                    "Quota exceeded for quota metric 'Send requests' and limit 'Send requests per minute per project'",
                    Some("QUOTA_EXCEEDED"),
                    None,
                ),
                retry_after,
            ),
            "429 QUOTA_EXCEEDED".into(),
        ),
        Reply::Unavailable { retry_after } => (
            https::json_with(
                503,
                &google_error(
                    503,
                    "UNAVAILABLE",
                    "The service is currently unavailable.",
                    Some("UNAVAILABLE"),
                    None,
                ),
                retry_after,
            ),
            "503 UNAVAILABLE".into(),
        ),
        Reply::Internal => (
            https::json(
                500,
                &google_error(
                    500,
                    "INTERNAL",
                    "Internal error encountered.",
                    Some("INTERNAL"),
                    None,
                ),
            ),
            "500 INTERNAL".into(),
        ),
        Reply::ExpireToken => {
            if let Some(b) = &bearer {
                s.revoked.insert(b.clone());
            }
            (unauthenticated(), "401 UNAUTHENTICATED".into())
        }
        Reply::Hang => (Answer::Hang, "hang".into()),
    };
    received.answer = label;
    s.received.push(received);
    answer
}
