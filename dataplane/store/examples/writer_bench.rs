//! The embedded store on its own, the way standalone unicast uses it: `in_flight` tasks each
//! submit one message to a random user of `users`, clear its outbox batch and ack it, for
//! `secs` seconds. Prints messages/s and CPU per message of the process and of the store's
//! writer thread (the steadiest figure on a shared machine). No network, no HTTP: what the
//! store's layout and commits cost.
//!
//! `cargo run --release -p pushcluster-store --example writer_bench -- [secs] [users] [in_flight]`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pushcluster_proto::api::{Mobile, NewMessage};
use pushcluster_store::MessageStore;
use pushcluster_store::redb::RedbStore;

/// Linux's clock ticks per second (`getconf CLK_TCK`).
const TICKS_PER_SEC: f64 = 100.0;

/// utime + stime of a `/proc/.../stat` line.
fn ticks(stat: &str) -> u64 {
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

/// CPU ticks of this process and of its `store-writer` thread.
fn cpu() -> (u64, u64) {
    let process = ticks(&std::fs::read_to_string("/proc/self/stat").unwrap_or_default());
    let mut writer = 0;
    for task in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() == "store-writer" {
            writer = ticks(&std::fs::read_to_string(task.path().join("stat")).unwrap_or_default());
        }
    }
    (process, writer)
}

fn arg(n: usize, default: u64) -> u64 {
    std::env::args()
        .nth(n)
        .map(|a| {
            a.parse()
                .expect("arguments are numbers: secs users in_flight")
        })
        .unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let (secs, users, in_flight) = (arg(1, 5), arg(2, 2000), arg(3, 64));
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = Arc::new(RedbStore::open(dir.path()).expect("open the store"));
    let done = Arc::new(AtomicU64::new(0));
    let stop = Instant::now() + Duration::from_secs(secs);
    let (start, cpu_before) = (Instant::now(), cpu());
    let payload = serde_json::value::RawValue::from_string(format!("\"{}\"", "x".repeat(98)))
        .expect("a JSON string");
    let tasks: Vec<_> = (0..in_flight)
        .map(|t| {
            let (store, done, payload) = (store.clone(), done.clone(), payload.clone());
            tokio::spawn(async move {
                let mut x = 0x9E37_79B9_7F4A_7C15 ^ (t + 1);
                while Instant::now() < stop {
                    // xorshift: a random user without a dependency
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let user = format!("user-{}", x % users);
                    let m = NewMessage {
                        to: vec![user.clone()],
                        payload: payload.clone(),
                        ttl_secs: 3600,
                        idempotency_key: None,
                        notification: None,
                        mobile: Mobile::default(),
                    };
                    let batch = store.submit(vec![m]).await.expect("submit").batch;
                    let batch = batch.expect("a new message has a batch");
                    let seq = batch.messages[0].recipients[0].1;
                    store.complete_outbox(&[batch.id]).await.expect("clear");
                    store.ack(&user, seq).await.expect("ack");
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("a task panicked");
    }
    let (elapsed, cpu_after) = (start.elapsed().as_secs_f64(), cpu());
    let n = done.load(Ordering::Relaxed) as f64;
    let per_msg = |ticks: u64| ticks as f64 / TICKS_PER_SEC * 1e6 / n;
    println!(
        "messages {n} rate {:.0}/s process {:.1} µs/msg writer {:.1} µs/msg",
        n / elapsed,
        per_msg(cpu_after.0 - cpu_before.0),
        per_msg(cpu_after.1 - cpu_before.1),
    );
}
