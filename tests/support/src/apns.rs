//! A fake APNs server for tests: HTTP/2 over TLS (a CA generated per run), checking the
//! provider token's ES256 signature, `kid` and `iss`, and the `apns-topic`, with scripted
//! replies per device token — including the HTTP/2-level ones (GOAWAY, REFUSED_STREAM) and a
//! response that never comes.
//!
//! ```no_run
//! # async fn demo() {
//! use pushcluster_test_support::apns::{FakeApns, Reply};
//! let apns = FakeApns::start().await;
//! apns.script(&"ab".repeat(32), [Reply::reject(400, "BadDeviceToken")]);
//! // point the sender at apns.url() trusting apns.ca_pem, signing with apns.key_pem …
//! assert_eq!(apns.requests().len(), 0);
//! # }
//! ```

mod pki;
mod server;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

pub use pki::Pki;

/// The team id the fake expects in `iss`.
pub const TEAM_ID: &str = "TEAM123456";
/// The key id the fake expects in `kid`.
pub const KEY_ID: &str = "KEY1234567";
/// The topic the fake expects in `apns-topic`.
pub const TOPIC: &str = "com.example.pushcluster";

/// What the fake does with one request (after the token and topic checks pass).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// 200 with the `apns-id`: the notification reaches the device.
    Ok,
    /// Any status with `{"reason": …}` (and `Retry-After` if given).
    Status {
        status: u16,
        reason: String,
        retry_after: Option<u64>,
    },
    /// 410 Unregistered with Apple's `timestamp` (ms).
    Unregistered { timestamp_ms: u64 },
    /// RST_STREAM(REFUSED_STREAM): not processed.
    RefuseStream,
    /// The notification reaches the device but no response ever comes.
    Hang,
    /// GOAWAY covering this stream (last-stream-id ≥ ours), then the connection closes
    /// without a response: the request may have been processed.
    GoAwayAfterProcessing,
}

impl Reply {
    pub fn reject(status: u16, reason: &str) -> Reply {
        Reply::Status {
            status,
            reason: reason.to_owned(),
            retry_after: None,
        }
    }
}

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub conn: u64,
    pub device_token: String,
    pub apns_id: Option<String>,
    pub collapse_id: Option<String>,
    pub topic: Option<String>,
    pub push_type: Option<String>,
    pub priority: Option<String>,
    pub expiration: Option<String>,
    /// The bearer token, if any.
    pub jwt: Option<String>,
    /// `iat` of a token whose signature verified.
    pub iat: Option<u64>,
    pub payload: Vec<u8>,
    /// What the fake answered: `200`, `403 InvalidProviderToken`, `refused`, `hang`, …
    pub answer: String,
}

#[derive(Default)]
pub(crate) struct State {
    scripts: HashMap<String, VecDeque<Reply>>,
    pub(crate) goaway_connections: usize,
    pub(crate) connections: u64,
    pub(crate) received: Vec<Received>,
    /// Tokens whose signature verified, with their `iat` (verified once, like Apple).
    pub(crate) verified: HashMap<String, u64>,
    /// `iat` of the newest token seen, to enforce Apple's 20-minute refresh floor.
    pub(crate) newest_iat: Option<u64>,
    /// Responses held open forever (`Reply::Hang`).
    pub(crate) parked: Vec<h2::server::SendResponse<bytes::Bytes>>,
}

impl State {
    pub(crate) fn next_reply(&mut self, device_token: &str) -> Reply {
        self.scripts
            .get_mut(device_token)
            .and_then(VecDeque::pop_front)
            .unwrap_or(Reply::Ok)
    }
}

/// A running fake APNs server on `127.0.0.1`, stopped on drop.
pub struct FakeApns {
    pub addr: SocketAddr,
    /// Trust this CA (PEM) to reach the fake.
    pub ca_pem: String,
    /// The provider key (PKCS#8 PEM) whose tokens the fake accepts.
    pub key_pem: String,
    pub key_id: String,
    pub team_id: String,
    pub topic: String,
    /// The certificate (for `127.0.0.1`/`localhost`, from `ca_pem`) and key, DER.
    cert_der: Vec<u8>,
    key_der: Vec<u8>,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeApns {
    fn drop(&mut self) {
        self.task.abort();
        self.lock().parked.clear();
    }
}

impl FakeApns {
    /// Starts the fake on a free port.
    pub async fn start() -> FakeApns {
        let pki = Pki::generate().expect("generating test certificates");
        let state = Arc::new(Mutex::new(State::default()));
        let (addr, task) = server::spawn(&pki, state.clone())
            .await
            .expect("starting the fake APNs server");
        FakeApns {
            addr,
            ca_pem: pki.ca_pem.clone(),
            key_pem: pki.provider_key_pem.clone(),
            key_id: KEY_ID.into(),
            team_id: TEAM_ID.into(),
            topic: TOPIC.into(),
            cert_der: pki.server_cert_der.clone(),
            key_der: pki.server_key_der.clone(),
            state,
            task,
        }
    }

    /// A TLS terminator on `127.0.0.1` in front of `backend` (say squid), with a certificate
    /// from this fake's CA: `https://127.0.0.1:PORT` is then an HTTPS proxy a client that
    /// trusts `ca_pem` can use. Stops when the handle is aborted or dropped with the runtime.
    pub async fn tls_front(
        &self,
        backend: SocketAddr,
    ) -> (SocketAddr, tokio::task::JoinHandle<()>) {
        server::tls_front(&self.cert_der, &self.key_der, backend)
            .await
            .expect("starting a TLS front")
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `https://127.0.0.1:PORT` (the certificate is valid for `127.0.0.1` and `localhost`).
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.addr.port())
    }

    /// Writes the signing key and the CA to `dir`; the `pushd --apns-…` flags that send here.
    pub fn flags(&self, dir: &std::path::Path) -> Vec<String> {
        let key = dir.join("AuthKey.p8");
        let ca = dir.join("apns-ca.pem");
        std::fs::write(&key, &self.key_pem).expect("writing the APNs key");
        std::fs::write(&ca, &self.ca_pem).expect("writing the APNs CA");
        vec![
            format!("--apns-key-file={}", key.display()),
            format!("--apns-key-id={}", self.key_id),
            format!("--apns-team-id={}", self.team_id),
            format!("--apns-topic={}", self.topic),
            format!("--apns-endpoint={}", self.url()),
            format!("--apns-ca-file={}", ca.display()),
            "--apns-request-timeout=5s".into(),
        ]
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues replies for a device token, used one per request; then `Reply::Ok`.
    pub fn script(&self, device_token: &str, replies: impl IntoIterator<Item = Reply>) {
        self.lock()
            .scripts
            .entry(device_token.to_ascii_lowercase())
            .or_default()
            .extend(replies);
    }

    /// The next `n` connections send GOAWAY(last-stream-id 0) before reading any request:
    /// every request on them was provably not processed.
    pub fn goaway_next_connections(&self, n: usize) {
        self.lock().goaway_connections += n;
    }

    /// TLS connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.lock().connections
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Received> {
        self.lock().received.clone()
    }

    /// Requests for one device token.
    pub fn requests_for(&self, device_token: &str) -> Vec<Received> {
        self.requests()
            .into_iter()
            .filter(|r| r.device_token == device_token)
            .collect()
    }

    /// Copies that reached the device (answered 200, or processed without an answer).
    pub fn delivered_to(&self, device_token: &str) -> Vec<Received> {
        self.requests_for(device_token)
            .into_iter()
            .filter(|r| matches!(r.answer.as_str(), "200" | "hang" | "goaway-after"))
            .collect()
    }

    /// Distinct bearer tokens seen, in order of first use.
    pub fn tokens_seen(&self) -> Vec<String> {
        let mut seen = Vec::new();
        for r in self.requests() {
            if let Some(jwt) = r.jwt
                && !seen.contains(&jwt)
            {
                seen.push(jwt);
            }
        }
        seen
    }
}
