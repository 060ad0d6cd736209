//! Test helpers: start the real `pushd standalone` binary, talk to it over real sockets.
#![allow(dead_code)]

pub mod cluster;

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
/// Generous bound for anything the tests wait on; never a performance assertion.
pub const WAIT: Duration = Duration::from_secs(15);

pub struct Server {
    pub addr: SocketAddr,
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
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("pushd did not start in time")
            .unwrap()
            .expect("pushd exited before listening");
        let addr = line
            .strip_prefix("pushd listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line: {line}"))
            .parse()
            .unwrap();
        Server {
            addr,
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

/// One HTTP request to any pushd HTTP address.
pub async fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<String>,
    api_key: &str,
) -> (u16, Bytes) {
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
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, bytes)
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
    pub http: SocketAddr,
    pub grpc: SocketAddr,
    pub child: Child,
}

impl Role {
    pub async fn spawn(role: &str, args: &[String]) -> Role {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pushd"))
            .arg(role)
            .args(args)
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
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut next = async || {
            tokio::time::timeout(Duration::from_secs(60), lines.next_line())
                .await
                .unwrap_or_else(|_| panic!("pushd {role} did not start"))
                .unwrap()
                .unwrap_or_else(|| panic!("pushd {role} exited before listening"))
        };
        let http = next().await;
        let grpc = next().await;
        let http = http
            .strip_prefix("pushd listening on http://")
            .unwrap_or_else(|| panic!("{http}"))
            .parse()
            .unwrap();
        let grpc = grpc
            .strip_prefix("pushd grpc on ")
            .unwrap_or_else(|| panic!("{grpc}"))
            .parse()
            .unwrap();
        Role { http, grpc, child }
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
