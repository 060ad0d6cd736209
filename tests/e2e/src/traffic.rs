//! Clients outside the cluster, and the ledger of what they saw.
//!
//! - Devices: one WebSocket each through the push Service's NodePort (kube-proxy picks the
//!   pod). A device acks every message, and when its connection ends (1001 from a draining
//!   pod, a reset from a killed one) reconnects with `last_seq`, as a real client does.
//! - The producer: posts through the collect Service's NodePort, each user's messages one
//!   after the other (so their order is defined), retrying with the same idempotency key on a
//!   5xx or a broken connection until it gets its 202.
//! - The ledger: per step, what collect accepted (202) for each user, and what each device
//!   received; [`Fleet::step`] fails on any difference.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use pushcluster_proto::frame::decode_message;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

mod report;
use report::seq_inversions;
pub use report::{DeviceReport, StepReport};

/// How a device's connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// A close frame with this code.
    Code(u16),
    /// The connection broke without a close frame.
    Broken,
    /// The device closed it itself (asked to reconnect).
    Client,
}

#[derive(Debug, Clone, Default)]
struct Device {
    user: String,
    /// The push node of the current connection (from its welcome frame), if connected.
    node: Option<String>,
    /// (step, k, id, seq, connection number) of every message frame, in arrival order.
    deliveries: Vec<(u32, u64, String, u64, u32)>,
    /// (step, how) of every connection end.
    ends: Vec<(u32, End)>,
    connects: u32,
}

#[derive(Default)]
struct Ledger {
    step: u32,
    /// (step, user) → (k, id) of each accepted message, in posting order.
    accepted: BTreeMap<(u32, String), Vec<(u64, String)>>,
    /// Posts given up on after every retry, by step.
    given_up: BTreeMap<u32, Vec<String>>,
    /// Retried posts (5xx, broken connections), by step.
    retries: BTreeMap<u32, usize>,
    devices: Vec<Device>,
}

/// The push and collect Services as the test process reaches them.
#[derive(Debug, Clone, Copy)]
pub struct Endpoints {
    pub push: SocketAddr,
    pub collect: SocketAddr,
}

/// The devices, the producer and the ledger.
pub struct Fleet {
    ledger: Arc<Mutex<Ledger>>,
    reconnect: watch::Sender<u64>,
    tasks: Vec<JoinHandle<()>>,
    users: Vec<String>,
    endpoints: Endpoints,
    api_key: String,
    http: HttpClient<HttpConnector, Full<Bytes>>,
}

impl Fleet {
    /// Connects devices for `users` users (`user-0` …); every `second_every`-th user has a
    /// second device. Tokens are HS256 with `jwt_secret`.
    pub fn start(
        endpoints: Endpoints,
        jwt_secret: &str,
        api_key: &str,
        users: usize,
        second_every: usize,
    ) -> Fleet {
        let ledger: Arc<Mutex<Ledger>> = Arc::default();
        let (reconnect, _) = watch::channel(0u64);
        let mut tasks = Vec::new();
        let users: Vec<String> = (0..users).map(|u| format!("user-{u}")).collect();
        for (u, user) in users.iter().enumerate() {
            let copies = if u % second_every == 0 { 2 } else { 1 };
            for _ in 0..copies {
                let dev = {
                    let mut l = ledger.lock().expect("ledger");
                    l.devices.push(Device {
                        user: user.clone(),
                        ..Device::default()
                    });
                    l.devices.len() - 1
                };
                let token =
                    pushcluster_auth::issue(jwt_secret.as_bytes(), user, Duration::from_secs(7200));
                tasks.push(tokio::spawn(device(
                    dev,
                    format!("ws://{}/ws?token={token}", endpoints.push),
                    ledger.clone(),
                    reconnect.subscribe(),
                )));
            }
        }
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(3)));
        let http = HttpClient::builder(TokioExecutor::new())
            // Short-lived pooled connections: new ones spread over the collect pods.
            .pool_idle_timeout(Duration::from_secs(2))
            .build(connector);
        Fleet {
            ledger,
            reconnect,
            tasks,
            users,
            endpoints,
            api_key: api_key.to_owned(),
            http,
        }
    }

    /// Number of devices.
    pub fn devices(&self) -> usize {
        self.ledger.lock().expect("ledger").devices.len()
    }

    /// (device, user, push node) of every device that is connected now.
    pub fn connections(&self) -> Vec<(usize, String, String)> {
        let l = self.ledger.lock().expect("ledger");
        l.devices
            .iter()
            .enumerate()
            .filter_map(|(dev, d)| Some((dev, d.user.clone(), d.node.clone()?)))
            .collect()
    }

    /// Waits until every device is connected (has its welcome frame).
    pub async fn wait_connected(&self, secs: u64) -> anyhow::Result<()> {
        let total = self.devices();
        pushcluster_test_support::wait_ready(
            "every device connected",
            Duration::from_secs(secs),
            || {
                let n = self.connections().len();
                async move {
                    anyhow::ensure!(n == total, "{n} of {total} devices connected");
                    Ok(())
                }
            },
        )
        .await
    }

    /// Makes every device close its connection and connect again (kube-proxy spreads the new
    /// connections over the push pods there are now).
    pub fn reconnect_all(&self) {
        // Forget the current connections first, so that `wait_connected` waits for the new
        // ones: a device still on its old connection right after the request would count as
        // connected, and one between its close and its next welcome as on no pod at all.
        for d in &mut self.ledger.lock().expect("ledger").devices {
            d.node = None;
        }
        self.reconnect.send_modify(|n| *n += 1);
    }

    /// Runs step `n`: messages flow (about `rate` per second) from a second before `action`
    /// until a second after it; then waits until every device has every message its user was
    /// accepted, and reports.
    pub async fn step<F>(&self, n: u32, name: &str, rate: u32, action: F) -> StepReport
    where
        F: std::future::Future<Output = anyhow::Result<()>>,
    {
        self.ledger.lock().expect("ledger").step = n;
        let started = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let workers = 8usize;
        let pause = Duration::from_secs_f64(workers as f64 / f64::from(rate.max(1)));
        let mut producers = Vec::new();
        for w in 0..workers {
            let users: Vec<String> = self
                .users
                .iter()
                .skip(w)
                .step_by(workers)
                .cloned()
                .collect();
            producers.push(tokio::spawn(produce(
                n,
                users,
                pause,
                stop.clone(),
                self.ledger.clone(),
                self.http.clone(),
                self.endpoints.collect,
                self.api_key.clone(),
            )));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let action = action.await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        stop.store(true, Ordering::SeqCst);
        for p in producers {
            p.await.expect("producer task");
        }
        let posted = started.elapsed();
        if let Err(e) = action {
            panic!("step {n} ({name}): {e:#}");
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let report = self.report(n, name, posted);
            if report.missing() == 0 || Instant::now() > deadline {
                return report;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn report(&self, step: u32, name: &str, posted: Duration) -> StepReport {
        let l = self.ledger.lock().expect("ledger");
        let mut devices = Vec::new();
        for (dev, d) in l.devices.iter().enumerate() {
            let expected: Vec<u64> = l
                .accepted
                .get(&(step, d.user.clone()))
                .map(|v| v.iter().map(|(k, _)| *k).collect())
                .unwrap_or_default();
            let mut seen = BTreeSet::new();
            let mut order = Vec::new();
            let mut arrivals = Vec::new();
            let mut duplicates = 0;
            for (s, k, id, seq, conn) in &d.deliveries {
                if *s != step {
                    continue;
                }
                arrivals.push((*k, *seq, *conn));
                if seen.insert(id.clone()) {
                    order.push(*k);
                } else {
                    duplicates += 1;
                }
            }
            let got: BTreeSet<u64> = order.iter().copied().collect();
            let want: BTreeSet<u64> = expected.iter().copied().collect();
            devices.push(DeviceReport {
                dev,
                user: d.user.clone(),
                accepted: expected.len(),
                delivered: order.len(),
                duplicates,
                missing: want.difference(&got).copied().collect(),
                unexpected: got.difference(&want).copied().collect(),
                in_order: order == expected,
                seq_inversions: seq_inversions(&arrivals),
                arrivals,
                going_away: d
                    .ends
                    .iter()
                    .filter(|(s, e)| *s == step && *e == End::Code(1001))
                    .count(),
                broken: d
                    .ends
                    .iter()
                    .filter(|(s, e)| *s == step && *e == End::Broken)
                    .count(),
                ends: d
                    .ends
                    .iter()
                    .filter(|(s, _)| *s == step)
                    .map(|(_, e)| *e)
                    .collect(),
            });
        }
        StepReport {
            step,
            name: name.to_owned(),
            posted,
            given_up: l.given_up.get(&step).cloned().unwrap_or_default(),
            retries: l.retries.get(&step).copied().unwrap_or(0),
            devices,
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn device(
    dev: usize,
    url: String,
    ledger: Arc<Mutex<Ledger>>,
    mut reconnect: watch::Receiver<u64>,
) {
    let mut last_seq = 0u64;
    loop {
        let connect = tokio_tungstenite::connect_async(format!("{url}&last_seq={last_seq}"));
        let Ok(Ok((mut ws, _))) = tokio::time::timeout(Duration::from_secs(5), connect).await
        else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        reconnect.mark_unchanged();
        let end = loop {
            tokio::select! {
                frame = ws.next() => match frame {
                    Some(Ok(Message::Text(t))) => {
                        if let Some(m) = decode_message(&t) {
                            let _ = ws
                                .send(Message::text(json!({"type": "ack", "id": m.id}).to_string()))
                                .await;
                            last_seq = last_seq.max(m.seq);
                            let step = m.payload["step"].as_u64().unwrap_or(0) as u32;
                            let k = m.payload["k"].as_u64().unwrap_or(u64::MAX);
                            let mut l = ledger.lock().expect("ledger");
                            let d = &mut l.devices[dev];
                            let conn = d.connects;
                            d.deliveries.push((step, k, m.id, m.seq, conn));
                        } else if let Ok(v) = serde_json::from_str::<Value>(&t)
                            && v["type"] == "welcome"
                        {
                            let mut l = ledger.lock().expect("ledger");
                            let d = &mut l.devices[dev];
                            d.node = v["node"].as_str().map(str::to_owned);
                            d.connects += 1;
                        }
                    }
                    Some(Ok(Message::Close(frame))) => {
                        break frame.map(|f| End::Code(f.code.into())).unwrap_or(End::Broken);
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => break End::Broken,
                },
                _ = reconnect.changed() => {
                    let _ = ws.close(None).await;
                    break End::Client;
                }
            }
        };
        {
            let mut l = ledger.lock().expect("ledger");
            let step = l.step;
            let d = &mut l.devices[dev];
            d.node = None;
            d.ends.push((step, end));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[allow(clippy::too_many_arguments)]
async fn produce(
    step: u32,
    users: Vec<String>,
    pause: Duration,
    stop: Arc<AtomicBool>,
    ledger: Arc<Mutex<Ledger>>,
    http: HttpClient<HttpConnector, Full<Bytes>>,
    collect: SocketAddr,
    api_key: String,
) {
    let mut k = 0u64;
    while !stop.load(Ordering::SeqCst) {
        for user in &users {
            let key = format!("e2e-{step}-{user}-{k}");
            let body =
                json!({"to": [user], "payload": {"step": step, "k": k}, "idempotency_key": key});
            match post(&http, collect, &api_key, &body, step, &ledger).await {
                Ok(id) => ledger
                    .lock()
                    .expect("ledger")
                    .accepted
                    .entry((step, user.clone()))
                    .or_default()
                    .push((k, id)),
                Err(e) => ledger
                    .lock()
                    .expect("ledger")
                    .given_up
                    .entry(step)
                    .or_default()
                    .push(format!("{key}: {e}")),
            }
            tokio::time::sleep(pause).await;
        }
        k += 1;
    }
}

/// Posts until a 202 (its id): a 5xx or a broken connection is retried with the same
/// idempotency key for up to a minute; any other answer is an error.
async fn post(
    http: &HttpClient<HttpConnector, Full<Bytes>>,
    collect: SocketAddr,
    api_key: &str,
    body: &Value,
    step: u32,
    ledger: &Mutex<Ledger>,
) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    while Instant::now() < deadline {
        let req = http::Request::post(format!("http://{collect}/v1/messages"))
            .header("authorization", format!("Bearer {api_key}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| e.to_string())?;
        let attempt = async {
            let resp = http.request(req).await.map_err(|e| format!("{e:?}"))?;
            let status = resp.status().as_u16();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok::<_, String>((status, String::from_utf8_lossy(&bytes).into_owned()))
        };
        match tokio::time::timeout(Duration::from_secs(10), attempt).await {
            Ok(Ok((202, text))) => {
                let v: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
                return v["id"]
                    .as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("202 without an id: {text}"));
            }
            Ok(Ok((status, text))) if status >= 500 => last = format!("{status} {text}"),
            Ok(Ok((status, text))) => return Err(format!("{status} {text}")),
            Ok(Err(e)) => last = e,
            Err(_) => last = "no answer in 10 s".into(),
        }
        *ledger
            .lock()
            .expect("ledger")
            .retries
            .entry(step)
            .or_default() += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!("gave up after a minute: {last}"))
}
