//! Command line: `pushbench run …` (the coordinator) and `pushbench worker` (internal).
//! Every flag of `run` is also an env var `PUSHBENCH_…`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "pushbench",
    version,
    about = "Load generator for pushcluster: WebSocket clients that ack, HTTP producers, scenarios"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Start the server under test, run scenarios against it, write one JSON file per run.
    Run(Box<RunArgs>),
    /// A worker process: holds client connections and posts messages for `run`.
    #[command(hide = true)]
    Worker,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TargetArg {
    /// `pushd standalone` (redb, in-memory routes).
    Standalone,
    /// auth, collect, dispatch replicas and push nodes, with Redis and FerretDB.
    Cluster,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Open the connections and hold them: server RSS per connection, connect rate.
    Idle,
    /// Single-recipient messages to random users: flat out, then paced.
    Unicast,
    /// Messages to many users each (the `--fanout` cases).
    Fanout,
}

/// A fan-out case: `RECIPIENTSxPAYLOAD_BYTES`, e.g. `10000x65536`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FanoutCase {
    pub recipients: u32,
    pub payload_bytes: usize,
}

impl std::str::FromStr for FanoutCase {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (r, p) = s
            .split_once('x')
            .ok_or_else(|| format!("{s:?}: expected RECIPIENTSxPAYLOAD_BYTES, e.g. 1000x100"))?;
        Ok(FanoutCase {
            recipients: r.parse().map_err(|e| format!("recipients {r:?}: {e}"))?,
            payload_bytes: p.parse().map_err(|e| format!("payload {p:?}: {e}"))?,
        })
    }
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// pushd binary to measure, `PATH` or `LABEL=PATH`. Give it twice to compare two
    /// binaries in one run (the first is the base; they alternate round by round).
    #[arg(
        long = "pushd",
        env = "PUSHBENCH_PUSHD",
        value_delimiter = ' ',
        required = true
    )]
    pub pushd: Vec<String>,
    #[arg(
        long,
        env = "PUSHBENCH_TARGET",
        value_enum,
        default_value = "standalone"
    )]
    pub target: TargetArg,
    #[arg(
        long = "scenario",
        env = "PUSHBENCH_SCENARIOS",
        value_enum,
        value_delimiter = ',',
        default_value = "idle,unicast,fanout"
    )]
    pub scenarios: Vec<Scenario>,
    /// Each scenario runs this many times per binary, each time on a fresh server.
    #[arg(long, env = "PUSHBENCH_ROUNDS", default_value_t = 1)]
    pub rounds: usize,
    /// Directory for the JSON results (and profiles).
    #[arg(long, env = "PUSHBENCH_OUT")]
    pub out: PathBuf,
    /// Connected users (one connection each).
    #[arg(long, env = "PUSHBENCH_USERS", default_value_t = 10_000)]
    pub users: u32,
    /// Worker processes holding the connections and posting (at most 19,000 connections each).
    #[arg(long, env = "PUSHBENCH_WORKERS", default_value_t = 2)]
    pub workers: usize,
    /// Connection attempts in flight per worker.
    #[arg(long, env = "PUSHBENCH_CONNECT_CONCURRENCY", default_value_t = 64)]
    pub connect_concurrency: usize,
    /// Unicast: requests in flight.
    #[arg(long, env = "PUSHBENCH_IN_FLIGHT", default_value_t = 64)]
    pub in_flight: usize,
    /// Unicast: how long each measured phase sends.
    #[arg(long, env = "PUSHBENCH_DURATION", default_value = "5s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Unicast: a flat-out phase before the measured ones, not reported.
    #[arg(long, env = "PUSHBENCH_WARMUP", default_value = "1s", value_parser = humantime::parse_duration)]
    pub warmup: Duration,
    /// Unicast: paced phases, as fractions of the measured flat-out rate.
    #[arg(
        long,
        env = "PUSHBENCH_PACED",
        value_delimiter = ',',
        default_value = "0.5"
    )]
    pub paced: Vec<f64>,
    /// Unicast: payload size in bytes (the payload JSON as posted).
    #[arg(long, env = "PUSHBENCH_PAYLOAD", default_value_t = 100)]
    pub payload: usize,
    /// Fan-out cases, `RECIPIENTSxPAYLOAD_BYTES`.
    #[arg(
        long = "fanout",
        env = "PUSHBENCH_FANOUT",
        value_delimiter = ',',
        default_value = "1000x100,10000x100,10000x65536"
    )]
    pub fanout: Vec<FanoutCase>,
    /// Fan-out: how long each case sends…
    #[arg(long, env = "PUSHBENCH_FANOUT_DURATION", default_value = "3s", value_parser = humantime::parse_duration)]
    pub fanout_duration: Duration,
    /// …and at most this many messages per case.
    #[arg(long, env = "PUSHBENCH_FANOUT_MAX", default_value_t = 50)]
    pub fanout_max: u64,
    /// Fan-out: requests in flight.
    #[arg(long, env = "PUSHBENCH_FANOUT_IN_FLIGHT", default_value_t = 1)]
    pub fanout_in_flight: usize,
    /// After the last request, how long deliveries may take to arrive before the run fails.
    #[arg(long, env = "PUSHBENCH_DRAIN", default_value = "60s", value_parser = humantime::parse_duration)]
    pub drain: Duration,
    /// Cluster: push nodes (on 127.0.0.2, .3, …).
    #[arg(long, env = "PUSHBENCH_PUSH_NODES", default_value_t = 3)]
    pub push_nodes: usize,
    /// Cluster: dispatch replicas.
    #[arg(long, env = "PUSHBENCH_DISPATCHERS", default_value_t = 2)]
    pub dispatchers: usize,
    /// How clients ack: `id` (per message, every pushd) or `seq` (cumulative, per read).
    /// Default: what each binary supports (`seq` when it has the outbox path).
    #[arg(long, env = "PUSHBENCH_ACK", value_enum)]
    pub ack: Option<crate::proto::AckMode>,
    /// Record a CPU profile of the server (`perf record`) during every measured phase.
    #[arg(long, env = "PUSHBENCH_PERF")]
    pub perf: bool,
}
