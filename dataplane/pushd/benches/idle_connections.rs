//! Idle-connection cost of `pushd standalone`: opens N authenticated WebSocket connections
//! (default 10,000; `PUSHD_BENCH_CONNS`) and reports the server's RSS per connection and the
//! connect rate. Three rounds, each on a fresh server; prints every round and the medians.
//!
//! Run: `make bench` (= `cargo bench -p pushd --bench idle_connections`).

use std::process::Stdio;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

const SECRET: &str = "bench-jwt-secret-0123456789";
const ROUNDS: usize = 3;
const CONCURRENCY: usize = 64;

fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("procfs");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kb * 1024
}

struct Round {
    per_conn: f64,
    connects_per_sec: f64,
}

async fn round(n: usize) -> Round {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_pushd"))
        .args(["standalone", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        // Every connection comes from 127.0.0.1, as many users: no per-IP connect rate.
        .args([
            "--admin-listen",
            "127.0.0.1:0",
            "--connect-rate-per-ip",
            "0",
        ])
        .env("PUSHD_JWT_SECRET", SECRET)
        .env("PUSHD_API_KEY", "bench-api-key-0123456789")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn pushd");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines.next_line().await.unwrap().expect("pushd started");
    let addr = line
        .trim_start_matches("pushd listening on http://")
        .to_owned();
    let pid = child.id().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_bytes(pid);

    let tokens: Vec<String> = (0..n)
        .map(|i| {
            pushcluster_auth::issue(
                SECRET.as_bytes(),
                &format!("user-{i}"),
                Duration::from_secs(3600),
            )
        })
        .collect();
    let config = WebSocketConfig::default()
        .read_buffer_size(256)
        .write_buffer_size(0);
    let start = Instant::now();
    let mut conns = Vec::with_capacity(n);
    let mut pending = FuturesUnordered::new();
    let mut next = 0;
    while conns.len() < n {
        while pending.len() < CONCURRENCY && next < n {
            let url = format!("ws://{addr}/ws?token={}", tokens[next]);
            pending.push(async move {
                let (mut ws, _) =
                    tokio_tungstenite::connect_async_with_config(url, Some(config), true)
                        .await
                        .expect("connect");
                ws.next().await.expect("welcome").expect("welcome frame");
                ws
            });
            next += 1;
        }
        conns.push(pending.next().await.unwrap());
    }
    let elapsed = start.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_bytes(pid);
    let r = Round {
        per_conn: (after.saturating_sub(before)) as f64 / n as f64,
        connects_per_sec: n as f64 / elapsed.as_secs_f64(),
    };
    println!(
        "round: {n} connections in {:.2}s ({:.0}/s); server RSS {:.1} MiB -> {:.1} MiB; {:.0} bytes/connection",
        elapsed.as_secs_f64(),
        r.connects_per_sec,
        before as f64 / 1048576.0,
        after as f64 / 1048576.0,
        r.per_conn
    );
    drop(conns);
    child.kill().await.ok();
    r
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let n: usize = std::env::var("PUSHD_BENCH_CONNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let rounds: Vec<Round> = (0..ROUNDS).map(|_| rt.block_on(round(n))).collect();
    println!(
        "median of {ROUNDS}: {:.0} bytes (= {:.2} KiB) of server RSS per idle connection, {:.0} connects/s",
        median(rounds.iter().map(|r| r.per_conn).collect()),
        median(rounds.iter().map(|r| r.per_conn).collect()) / 1024.0,
        median(rounds.iter().map(|r| r.connects_per_sec).collect()),
    );
}
