//! The coordinator (`pushbench run`): for every round, binary and scenario it starts a fresh
//! server ([`target`]), spawns the worker processes ([`workers`]), opens the connections,
//! runs the scenario's phases ([`phase`], [`scenario`]) and writes one JSON result. With two
//! binaries the order alternates round by round (A B, B A, …) so that drift of the shared
//! machine hits both alike.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::cli::{RunArgs, Scenario, TargetArg};
use crate::proto::AckMode;
use crate::results::{self, RunResult};

pub mod perf;
pub mod phase;
pub mod scenario;
pub mod scrape;
pub mod target;
pub mod workers;

/// A pushd binary under test.
#[derive(Debug, Clone)]
pub struct Binary {
    pub label: String,
    pub path: PathBuf,
    /// How its clients ack ([`ack_mode`] unless `--ack` says).
    pub ack: AckMode,
    /// Whether it has the edge layer (`--admin-listen`, the internal token, admission
    /// limits); older binaries take none of those flags.
    pub edge: bool,
}

/// `pushd standalone --help`: what the binary supports is read from its flags.
fn standalone_help(pushd: &Path) -> anyhow::Result<String> {
    let out = std::process::Command::new(pushd)
        .args(["standalone", "--help"])
        .output()
        .with_context(|| format!("{} standalone --help", pushd.display()))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// What the binary's client protocol supports: cumulative `seq` acks came with the outbox
/// path, whose `pushd standalone` has `--outbox-lease`; older binaries ack by id.
fn ack_mode(help: &str) -> AckMode {
    if help.contains("--outbox-lease") {
        AckMode::Seq
    } else {
        AckMode::Id
    }
}

fn binaries(args: &RunArgs) -> anyhow::Result<Vec<Binary>> {
    let list: Vec<Binary> = args
        .pushd
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let (label, path) = match spec.split_once('=') {
                Some((l, p)) => (l.to_owned(), p.to_owned()),
                None => (
                    ["base", "new"].get(i).unwrap_or(&"other").to_string(),
                    spec.clone(),
                ),
            };
            let path = std::fs::canonicalize(&path).with_context(|| format!("pushd {path}"))?;
            let help = standalone_help(&path)?;
            let ack = args.ack.unwrap_or_else(|| ack_mode(&help));
            let edge = help.contains("--admin-listen");
            Ok(Binary {
                label,
                path,
                ack,
                edge,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    if list.len() == 1 && !args.pushd[0].contains('=') {
        return Ok(vec![Binary {
            label: "pushd".into(),
            ..list[0].clone()
        }]);
    }
    Ok(list)
}

/// Runs every scenario; fails (after writing every result) if any run failed a check.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let bins = binaries(&args)?;
    let users_per_worker = args.users.div_ceil(args.workers.max(1) as u32);
    if users_per_worker > 19_000 {
        bail!(
            "{} users on {} workers is {users_per_worker} connections per process: over the \
             20,000 open files a process may have here; add --workers",
            args.users,
            args.workers
        );
    }
    let mut failures = Vec::new();
    for round in 1..=args.rounds {
        let mut order: Vec<&Binary> = bins.iter().collect();
        if round % 2 == 0 {
            order.reverse();
        }
        for scenario in &args.scenarios {
            for bin in &order {
                let result = scenario::run(&args, bin, *scenario, round).await?;
                let path = results::write(&args.out, &result)?;
                print_summary(&result, &path);
                if let Some(f) = &result.failure {
                    failures.push(format!("{}: {f}", path.display()));
                }
            }
        }
    }
    if !failures.is_empty() {
        bail!("FAILED checks:\n  {}", failures.join("\n  "));
    }
    Ok(())
}

fn print_summary(r: &RunResult, path: &std::path::Path) {
    let c = &r.connect;
    println!(
        "{} {} [{}] round {}: {} connections in {:.2} s ({:.0}/s), {:.0} bytes RSS/conn -> {}",
        r.target,
        r.scenario,
        r.label,
        r.round,
        c.connections,
        c.secs,
        c.connects_per_s,
        c.rss_per_conn_bytes,
        path.display()
    );
    for p in r.phases.iter().filter(|p| !p.warmup) {
        println!(
            "  {:<18} {:>9.0} msgs/s {:>10.0} deliveries/s  p50 {:>8.2} ms  p99 {:>8.2} ms  \
             server {:>7.1} µs/msg {:>6.2} µs/delivery  generator {:>5.1} µs/msg{}",
            p.name,
            p.msgs_per_s,
            p.deliveries_per_s,
            p.latency.p50_ms,
            p.latency.p99_ms,
            p.server_cpu_us_per_msg,
            p.server_cpu_us_per_delivery,
            p.gen_cpu_us_per_msg,
            p.mongo_commands_per_msg
                .map(|m| format!("  mongo {m:.2} cmds/msg"))
                .unwrap_or_default()
        );
    }
    if let Some(f) = &r.failure {
        eprintln!("*** FAILED: {f}");
    }
}

impl TargetArg {
    pub fn name(self) -> &'static str {
        match self {
            TargetArg::Standalone => "standalone",
            TargetArg::Cluster => "cluster",
        }
    }
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Idle => "idle",
            Scenario::Unicast => "unicast",
            Scenario::Fanout => "fanout",
        }
    }
}
