//! Coordinator ↔ worker messages: one JSON line each, commands on the worker's stdin,
//! replies on its stdout (one reply per command, in order).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::hist::Pairs;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Command {
    Connect(ConnectSpec),
    Send(SendSpec),
    /// The full counts of a phase (histograms included).
    Stats {
        phase: u32,
    },
    /// Just the delivery count of a phase and the closed connections (cheap, for polling).
    Count {
        phase: u32,
    },
    Quit,
}

/// Open `count` connections for users `first_user..first_user + count`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnectSpec {
    /// Push nodes; user `u` connects to `nodes[u % nodes.len()]`.
    pub nodes: Vec<SocketAddr>,
    pub first_user: u32,
    pub count: u32,
    /// This worker's index: it picks the source addresses `127.1.{worker}.*`.
    pub worker: u32,
    /// HS256 secret the tokens are signed with.
    pub secret: String,
    /// Connection attempts in flight.
    pub concurrency: usize,
    /// How the clients ack.
    pub ack: AckMode,
}

/// How a client acks what it receives (what the server under test understands).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum AckMode {
    /// `{"type":"ack","id":…}` for every message (every pushd version).
    Id,
    /// One cumulative `{"type":"ack","seq":N}` per read, N the highest seq of the read
    /// (the outbox path's protocol and how its clients are meant to ack).
    Seq,
}

/// How fast a sender goes.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Pace {
    /// As fast as `in_flight` requests allow.
    Flat,
    /// This many requests per second (the timestamp is the scheduled time, so a late
    /// request counts its wait: no coordinated omission).
    Rate(f64),
}

/// Post messages for a while.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendSpec {
    pub phase: u32,
    pub collect: SocketAddr,
    pub api_key: String,
    pub pace: Pace,
    pub in_flight: usize,
    pub duration_ms: u64,
    /// Stop after this many messages (from this worker).
    pub max_messages: Option<u64>,
    /// 1: unicast to a random connected user; more: fan-out to that many consecutive users.
    pub recipients: u32,
    /// Users `0..total_users` are connected.
    pub total_users: u32,
    pub payload_bytes: usize,
    /// Distinguishes the workers' random streams and message indexes.
    pub worker: u32,
    pub workers: u32,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    Connected(Connected),
    Sent(Sent),
    Stats(Stats),
    Count { delivered: u64, closed: u64 },
    Failed { error: String },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Connected {
    pub ok: u32,
    pub failed: u32,
    pub secs: f64,
    pub first_error: Option<String>,
    /// This process's CPU time so far (user + system), µs.
    pub cpu_us: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Sent {
    /// 202 answers.
    pub accepted: u64,
    /// Other statuses.
    pub rejected: u64,
    /// Requests without an answer (connection errors).
    pub errors: u64,
    pub first_error: Option<String>,
    /// Request → response times, µs.
    pub accept_us: Pairs,
    /// Wall clock of the first and last request, µs.
    pub first_us: u64,
    pub last_us: u64,
    pub cpu_us: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Stats {
    /// First deliveries of this phase's messages.
    pub delivered: u64,
    /// Deliveries of a seq a connection had already seen.
    pub duplicates: u64,
    /// First deliveries that came after a higher seq of the same user (the server does
    /// not keep per-user order).
    pub out_of_order: u64,
    /// Frames that needed a full JSON parse.
    pub slow_parses: u64,
    /// Delivery latencies (receive − send), µs.
    pub latency_us: Pairs,
    /// Wall clock of the first and last delivery, µs (0: none).
    pub first_us: u64,
    pub last_us: u64,
    /// Per message index (fan-out): `[index, deliveries, latest latency µs]`.
    pub per_msg: Vec<[u64; 3]>,
    /// Connections the server closed, since the start (any phase).
    pub closed: u64,
    /// The first few close codes and reasons / errors.
    pub close_reasons: Vec<String>,
    /// `error` frames received, since the start.
    pub error_frames: u64,
    pub error_samples: Vec<String>,
    pub cpu_us: u64,
}
