//! Test helpers: start the real `pushd standalone` binary, talk to it over real sockets.
#![allow(dead_code)]

pub mod cluster;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use pushcluster_proto::frame::{MessageFrame, decode_message};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const SECRET: &str = "test-jwt-secret-0123456789";
pub const API_KEY: &str = "test-api-key-0123456789";
/// The internal token every cluster role of the tests shares.
pub const INTERNAL_TOKEN: &str = "test-internal-token-0123456789";
/// Generous bound for anything the tests wait on; never a performance assertion.
pub const WAIT: Duration = Duration::from_secs(15);

pub struct Server {
    /// Clients, the API, the demo page.
    pub addr: SocketAddr,
    /// `/metrics`, `/healthz`, `/readyz`.
    pub admin: SocketAddr,
    pub child: Child,
    pub data_dir: PathBuf,
    args: Vec<String>,
    envs: Vec<(String, String)>,
}

impl Server {
    pub async fn start(data_dir: &Path, args: &[&str]) -> Server {
        Self::start_with_env(data_dir, args, &[]).await
    }

    /// With extra environment variables (e.g. `HTTPS_PROXY`, which pushd must ignore).
    pub async fn start_with_env(data_dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Server {
        let envs: Vec<(String, String)> = envs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Self::start_on(data_dir, "127.0.0.1:0", args, envs).await
    }

    async fn start_on(
        data_dir: &Path,
        listen: &str,
        args: &[&str],
        envs: Vec<(String, String)>,
    ) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pushd"))
            .arg("standalone")
            .arg("--listen")
            .arg(listen)
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--admin-listen=127.0.0.1:0")
            .args(args)
            .env("PUSHD_JWT_SECRET", SECRET)
            .env("PUSHD_API_KEY", API_KEY)
            .env("RUST_LOG", "warn")
            .envs(envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn pushd");
        let stdout = child.stdout.take().unwrap();
        let announced = announced(stdout, "standalone").await;
        Server {
            addr: announced.http.expect("standalone serves clients"),
            admin: announced.admin,
            child,
            data_dir: data_dir.to_owned(),
            args: args.iter().map(|s| s.to_string()).collect(),
            envs,
        }
    }

    /// Kills the process (SIGKILL) and starts it again on the same data dir and port.
    pub async fn crash_and_restart(mut self) -> Server {
        self.child.kill().await.unwrap();
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let listen = self.addr.to_string();
        // The port may linger briefly; retry.
        for _ in 0..50 {
            if std::net::TcpListener::bind(self.addr).is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Server::start_on(&self.data_dir, &listen, &args, self.envs.clone()).await
    }

    pub fn sigterm(&self) {
        let pid = self.child.id().expect("running") as i32;
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub fn ws_url(&self, token: &str, last_seq: Option<u64>) -> String {
        match last_seq {
            Some(s) => format!("ws://{}/ws?token={token}&last_seq={s}", self.addr),
            None => format!("ws://{}/ws?token={token}", self.addr),
        }
    }

    pub async fn connect(&self, user: &str) -> Client {
        self.connect_from(user, None).await
    }

    pub async fn connect_from(&self, user: &str, last_seq: Option<u64>) -> Client {
        let url = self.ws_url(&token(user), last_seq);
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("ws connect");
        let mut c = Client { ws };
        // The welcome frame means the connection is routed.
        let first = c.next_frame().await.expect("welcome");
        assert_eq!(first["type"], "welcome", "{first}");
        assert_eq!(first["user"], user);
        c
    }

    /// Connects `user` through a socket with a tiny receive buffer, and reads the welcome: a
    /// client that reads nothing more is slow at once.
    pub async fn connect_slow(&self, user: &str) -> Client {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let tcp = socket.connect(self.addr).await.unwrap();
        let url = self.ws_url(&token(user), None);
        let (ws, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(tcp))
            .await
            .expect("ws connect");
        let mut c = Client { ws };
        let first = c.next_frame().await.expect("welcome");
        assert_eq!(first["type"], "welcome", "{first}");
        c
    }

    /// Connects `user` and receives, acking each, until `n` distinct messages arrived.
    pub async fn receive_all(&self, user: &str, n: usize) -> BTreeSet<String> {
        let mut c = self.connect(user).await;
        let mut ids = BTreeSet::new();
        while ids.len() < n {
            let m = c.next_message().await;
            c.ack(&m.id).await;
            ids.insert(m.id);
        }
        ids
    }

    pub async fn post(&self, body: Value) -> (u16, Value) {
        self.request("POST", "/v1/messages", Some(body.to_string()), API_KEY)
            .await
    }

    /// Posts a message and returns its id.
    pub async fn send(&self, to: &[&str], payload: Value) -> String {
        let (status, body) = self.post(json!({"to": to, "payload": payload})).await;
        assert_eq!(status, 202, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    pub async fn status(&self, id: &str) -> Value {
        let (status, body) = self
            .request("GET", &format!("/v1/messages/{id}"), None, API_KEY)
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<String>,
        api_key: &str,
    ) -> (u16, Value) {
        let (status, bytes) = self.raw_request(method, path, body, api_key).await;
        let v = serde_json::from_slice(&bytes)
            .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, v)
    }

    pub async fn raw_request(
        &self,
        method: &str,
        path: &str,
        body: Option<String>,
        api_key: &str,
    ) -> (u16, Bytes) {
        http_request(self.addr, method, path, body, api_key).await
    }
}

/// The addresses a pushd process announced on stdout.
pub struct Announced {
    pub http: Option<SocketAddr>,
    pub grpc: Option<SocketAddr>,
    pub admin: SocketAddr,
}

/// Reads `pushd listening on http://…`, `pushd grpc on …` and `pushd admin on http://…` (the
/// last line) from a starting pushd's stdout.
pub async fn announced(stdout: tokio::process::ChildStdout, what: &str) -> Announced {
    let mut lines = BufReader::new(stdout).lines();
    let (mut http, mut grpc) = (None, None);
    loop {
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("pushd {what} did not start in time"))
            .unwrap()
            .unwrap_or_else(|| panic!("pushd {what} exited before listening"));
        if let Some(a) = line.strip_prefix("pushd listening on http://") {
            http = Some(a.parse().unwrap());
        } else if let Some(a) = line.strip_prefix("pushd grpc on ") {
            grpc = Some(a.parse().unwrap());
        } else if let Some(a) = line.strip_prefix("pushd admin on http://") {
            // Keep draining stdout so the process never blocks on a full pipe.
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            return Announced {
                http,
                grpc,
                admin: a.parse().unwrap(),
            };
        } else {
            panic!("pushd {what}: unexpected line on stdout: {line}");
        }
    }
}

/// The text of `/metrics` at an admin address.
pub async fn metrics(admin: SocketAddr) -> String {
    let (status, body) = http_request(admin, "GET", "/metrics", None, "").await;
    assert_eq!(status, 200, "/metrics at {admin}");
    String::from_utf8(body.to_vec()).unwrap()
}

/// The value of a metric sample (`name{labels}` exactly as exported), 0 if absent.
pub fn sample(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0.0)
}

/// One HTTP request to any pushd HTTP address.
pub async fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<String>,
    api_key: &str,
) -> (u16, Bytes) {
    let (status, _, bytes) = http_response(addr, method, path, body, api_key).await;
    (status, bytes)
}

/// One HTTP request; the status, headers and body of the answer.
pub async fn http_response(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<String>,
    api_key: &str,
) -> (u16, http::HeaderMap, Bytes) {
    let req = http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .header("authorization", format!("Bearer {api_key}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .unwrap();
    let client = HttpClient::builder(TokioExecutor::new()).build_http();
    let resp = tokio::time::timeout(WAIT, client.request(req))
        .await
        .expect("http timeout")
        .expect("http request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, bytes)
}

/// POSTs a message body to `/v1/messages` at `addr`.
pub async fn post_message(addr: SocketAddr, body: &Value) -> (u16, Value) {
    let (status, bytes) = http_request(
        addr,
        "POST",
        "/v1/messages",
        Some(body.to_string()),
        API_KEY,
    )
    .await;
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

pub fn token(user: &str) -> String {
    pushcluster_auth::issue(SECRET.as_bytes(), user, Duration::from_secs(3600))
}

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// What a client saw when its connection ended.
#[derive(Debug)]
pub enum Ended {
    Closed(Option<CloseFrame>),
    Eof,
}

impl Client {
    /// The next JSON text frame, or the end of the connection.
    pub async fn next_frame_or_end(&mut self) -> Result<Value, Ended> {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("timed out waiting for a frame");
            match msg {
                Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(&t).unwrap()),
                Some(Ok(Message::Close(f))) => return Err(Ended::Closed(f)),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Err(Ended::Eof),
            }
        }
    }

    pub async fn next_frame(&mut self) -> Option<Value> {
        self.next_frame_or_end().await.ok()
    }

    /// The next `message` frame, skipping other frame types.
    pub async fn next_message(&mut self) -> MessageFrame {
        loop {
            let v = self.next_frame().await.expect("connection ended");
            if let Some(m) = decode_message(&v.to_string()) {
                return m;
            }
        }
    }

    pub async fn ack(&mut self, id: &str) {
        self.ws
            .send(Message::text(json!({"type":"ack","id": id}).to_string()))
            .await
            .unwrap();
    }

    /// Receives `n` messages, acking each.
    pub async fn receive_and_ack(&mut self, n: usize) -> Vec<MessageFrame> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let m = self.next_message().await;
            self.ack(&m.id).await;
            out.push(m);
        }
        out
    }

    /// The ids of the messages received until the connection ends, and how it ended.
    pub async fn ids_until_end(&mut self) -> (BTreeSet<String>, Ended) {
        let mut ids = BTreeSet::new();
        loop {
            match self.next_frame_or_end().await {
                Ok(v) if v["type"] == "message" => {
                    ids.insert(v["id"].as_str().unwrap().to_owned());
                }
                Ok(_) => {}
                Err(end) => return (ids, end),
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
        while let Some(Ok(_)) = self.ws.next().await {}
    }
}

/// Polls `f` until it returns `Some`, up to [`WAIT`].
pub async fn eventually<T, F, Fut>(mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met in time"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A cluster role process (`pushd auth|collect|dispatch|push`), killed on drop.
pub struct Role {
    /// The public surface (push: clients; collect: the API); none for dispatch and auth.
    pub http: Option<SocketAddr>,
    pub grpc: SocketAddr,
    pub admin: SocketAddr,
    pub child: Child,
}

impl Role {
    /// Starts a role with the tests' secrets (API key, internal token) and `--admin-listen`
    /// on a free port.
    pub async fn spawn(role: &str, args: &[String]) -> Role {
        Self::spawn_with_env(role, args, &[("PUSHD_INTERNAL_TOKEN", INTERNAL_TOKEN)]).await
    }

    /// Starts a role with these env vars (and the JWT secret and API key).
    pub async fn spawn_with_env(role: &str, args: &[String], env: &[(&str, &str)]) -> Role {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pushd"))
            .arg(role)
            .arg("--admin-listen=127.0.0.1:0")
            .args(args)
            .envs(env.iter().copied())
            .env("PUSHD_JWT_SECRET", SECRET)
            .env("PUSHD_API_KEY", API_KEY)
            .env(
                "RUST_LOG",
                std::env::var("PUSHD_E2E_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn pushd role");
        let a = announced(child.stdout.take().unwrap(), role).await;
        Role {
            http: a.http,
            grpc: a
                .grpc
                .unwrap_or_else(|| panic!("pushd {role} announced no gRPC address")),
            admin: a.admin,
            child,
        }
    }

    /// The public surface's address (push and collect).
    pub fn http(&self) -> SocketAddr {
        self.http.expect("this role has no public HTTP listener")
    }

    /// SIGTERM, as a pod being stopped.
    pub fn sigterm(&self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
    }

    /// SIGKILL, as a crashed pod.
    pub fn sigkill(&self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}
