//! pushbench: the load generator of pushcluster's benchmarks.
//!
//! A coordinator ([`coord`], `pushbench run`) starts the server under test from a given
//! `pushd` binary — standalone, or the local cluster with Redis and FerretDB — and worker
//! processes of itself ([`worker`], `pushbench worker`) that open the client connections from
//! many loopback source addresses, ack every message like a real client, and post messages.
//! It measures latency (the sender's timestamp travels in the payload), accepted against
//! delivered counts, the server's and its own CPU time, and the server's counters, and writes
//! one JSON result per scenario run ([`results`]).
//!
//! - [`wire`]: the generator's own WebSocket and HTTP/1.1 clients, built for low cost.
//! - [`message`]: the payload it sends and the frame scan that reads it back.
//! - [`proto`]: coordinator ↔ worker messages.
//! - [`hist`]: HDR histograms, shipped between processes as value/count pairs.
//! - [`procstat`]: CPU time, memory and machine facts from `/proc`.

pub mod cli;
pub mod coord;
pub mod hist;
pub mod message;
pub mod procstat;
pub mod proto;
pub mod results;
pub mod wire;
pub mod worker;

/// The name of connected user `i`.
pub fn user_name(i: u32) -> String {
    format!("u{i}")
}
