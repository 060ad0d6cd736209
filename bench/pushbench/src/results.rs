//! The JSON result of one scenario run (one file each under the run's results directory),
//! and the provenance it records: git commit, machine, parameters.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::coord::scrape::StageDelta;
use crate::hist::Summary;
use crate::procstat::Machine;

#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    pub scenario: String,
    /// `standalone` or `cluster`.
    pub target: String,
    /// Which pushd binary (`base`, `new`, a commit…).
    pub label: String,
    pub round: usize,
    pub pushd: String,
    /// The commit of the checkout pushbench ran from (`-dirty` with uncommitted changes).
    pub commit: String,
    pub unix_time: u64,
    pub machine: Machine,
    /// 1-minute load average when the run started (the machine is shared).
    pub loadavg: f64,
    /// Where messages are stored (`redb`, `ferretdb-postgresql`, …).
    pub store: String,
    pub params: serde_json::Value,
    pub connect: ConnectResult,
    pub phases: Vec<PhaseResult>,
    /// False when a check failed (see `failure`): the numbers are not to be trusted.
    pub complete: bool,
    pub failure: Option<String>,
}

/// Opening the clients (the `idle` scenario's figures).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ConnectResult {
    pub connections: u64,
    pub failed: u64,
    pub secs: f64,
    pub connects_per_s: f64,
    /// Resident memory of the processes holding the connections, before and 1 s after.
    pub rss_before: u64,
    pub rss_after: u64,
    pub rss_per_conn_bytes: f64,
    pub server_cpu_us_per_conn: f64,
    pub gen_cpu_us_per_conn: f64,
    /// Server CPU while the connections sat idle (`idle` scenario), per connection per minute.
    pub idle_server_cpu_us_per_conn_min: Option<f64>,
}

/// One phase: messages sent one way for a while, then drained.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PhaseResult {
    pub name: String,
    /// Not to be reported (warms caches and connections).
    pub warmup: bool,
    /// `flat` or `paced`.
    pub pace: String,
    /// Messages per second asked for (paced phases).
    pub offered_rate: Option<f64>,
    pub in_flight: usize,
    pub recipients: u32,
    pub payload_bytes: usize,
    /// How long messages were sent, s.
    pub send_secs: f64,
    /// First request → last delivery, s.
    pub elapsed_secs: f64,
    pub accepted: u64,
    pub rejected: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub expected_deliveries: u64,
    pub delivered: u64,
    pub duplicates: u64,
    /// First deliveries below a seq the connection had already seen (order not kept).
    pub out_of_order: u64,
    pub slow_parses: u64,
    /// Accepted messages per second of sending.
    pub accepted_per_s: f64,
    /// Accepted messages per second, first request → last delivery (end to end).
    pub msgs_per_s: f64,
    pub deliveries_per_s: f64,
    /// Send → receipt at the client.
    pub latency: Summary,
    /// Request → 202.
    pub accept_latency: Summary,
    /// Fan-out: per message, send → receipt by its last recipient.
    pub last_delivery: Option<Summary>,
    pub server_cpu_s: f64,
    pub server_cpu_by_process: BTreeMap<String, f64>,
    pub server_cpu_us_per_msg: f64,
    pub server_cpu_us_per_delivery: f64,
    /// As `server_cpu_us_per_*`, counting only the pushd processes (not Redis, FerretDB,
    /// PostgreSQL): the same as the server figures standalone.
    pub pushd_cpu_us_per_msg: f64,
    pub pushd_cpu_us_per_delivery: f64,
    /// The server's CPU use in cores (CPU seconds per second).
    pub server_cores: f64,
    pub gen_cpu_s: f64,
    pub gen_cpu_us_per_msg: f64,
    pub gen_cpu_us_per_delivery: f64,
    pub mongo_commands: BTreeMap<String, u64>,
    /// The same by command and collection (`"insert msgs"`; pushd that labels them).
    pub mongo_commands_by_collection: BTreeMap<String, u64>,
    pub mongo_commands_per_msg: Option<f64>,
    /// Commands FerretDB received during the phase (any pushd version; the driver's
    /// monitoring heartbeats included), by name and per accepted message.
    pub store_commands: BTreeMap<String, u64>,
    pub store_commands_per_msg: Option<f64>,
    pub stages: BTreeMap<String, StageDelta>,
    /// The server's hottest functions, when profiled: `[share of samples %, symbol]`.
    pub profile: Vec<(f64, String)>,
    /// A failed check (deliveries missing, connections closed): the run stops here.
    pub failure: Option<String>,
}

/// The commit of the current checkout, with `-dirty` if it has uncommitted changes.
pub fn git_commit() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let Some(head) = git(&["rev-parse", "--short=12", "HEAD"]) else {
        return "unknown".into();
    };
    match git(&["status", "--porcelain", "--untracked-files=no"]) {
        Some(s) if !s.is_empty() => format!("{head}-dirty"),
        _ => head,
    }
}

/// Writes `result` as `DIR/{target}-{scenario}-{label}-r{round}.json`.
pub fn write(dir: &Path, result: &RunResult) -> anyhow::Result<std::path::PathBuf> {
    std::fs::create_dir_all(dir)?;
    // Cluster runs on several stores share a directory (`make bench-cluster`).
    let target = match result.target.as_str() {
        "cluster" => format!("cluster-{}", result.store),
        other => other.to_owned(),
    };
    let path = dir.join(format!(
        "{target}-{}-{}-r{}.json",
        result.scenario, result.label, result.round
    ));
    std::fs::write(&path, serde_json::to_vec_pretty(result)?)?;
    Ok(path)
}
