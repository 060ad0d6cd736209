//! One scenario run on a fresh server: connect every client (the `idle` figures), then the
//! scenario's phases. `idle` holds the connections; `unicast` runs a warm-up, a flat-out
//! phase and paced phases at fractions of the flat-out rate; `fanout` runs each `--fanout`
//! case.

use std::time::Duration;

use anyhow::bail;
use serde_json::json;

use super::Binary;
use super::phase::{Bench, PhaseSpec};
use super::target::{JWT_SECRET, Target, Topology};
use super::workers::Workers;
use crate::cli::{RunArgs, Scenario, TargetArg};
use crate::procstat::{self, group_cpu_us, rss_bytes, self_cpu_us};
use crate::proto::{AckMode, Command, ConnectSpec, Pace, Reply};
use crate::results::{ConnectResult, PhaseResult, RunResult};

/// How long the `idle` scenario holds its connections after opening them.
const IDLE_HOLD: Duration = Duration::from_secs(3);

pub async fn run(
    args: &RunArgs,
    bin: &Binary,
    scenario: Scenario,
    round: usize,
) -> anyhow::Result<RunResult> {
    let topology = match args.target {
        TargetArg::Standalone => Topology::Standalone,
        TargetArg::Cluster => Topology::Cluster {
            push_nodes: args.push_nodes,
            dispatchers: args.dispatchers,
        },
    };
    let loadavg = procstat::loadavg();
    let target = Target::start(&bin.path, bin.edge, &topology).await?;
    let store = target.store.clone();
    let workers = Workers::spawn(args.workers.max(1))?;
    // Let the server finish starting before its memory is read.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut bench = Bench::new(args, target, workers, scenario);
    let mut result = RunResult {
        scenario: scenario.name().into(),
        target: args.target.name().into(),
        label: bin.label.clone(),
        round,
        pushd: bin.path.display().to_string(),
        commit: crate::results::git_commit(),
        unix_time: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        machine: procstat::machine(),
        loadavg,
        store,
        params: params(args, scenario, bin.ack),
        connect: ConnectResult::default(),
        phases: Vec::new(),
        complete: false,
        failure: None,
    };
    let outcome = async {
        result.connect = connect(&mut bench, bin.ack).await?;
        if matches!(args.target, TargetArg::Cluster) {
            // Routes are written as clients are welcomed; let the last ones settle.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        match scenario {
            Scenario::Idle => {
                result.connect.idle_server_cpu_us_per_conn_min = Some(idle(&bench).await);
            }
            Scenario::Unicast => unicast(&mut bench, args, &mut result).await?,
            Scenario::Fanout => fanout(&mut bench, args, &mut result).await?,
        }
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = outcome {
        result.failure = Some(format!("{e:#}"));
    }
    result.complete = result.failure.is_none();
    if !result.complete {
        eprintln!(
            "server logs of the failed run are in {} (kept)",
            bench.target.log_dir().display()
        );
        bench.target.keep_logs();
    }
    bench.workers.quit().await;
    Ok(result)
}

fn params(args: &RunArgs, scenario: Scenario, ack: AckMode) -> serde_json::Value {
    let mut p = json!({
        "users": args.users,
        "workers": args.workers,
        "ack": ack,
    });
    match scenario {
        Scenario::Idle => {}
        Scenario::Unicast => {
            p["in_flight"] = json!(args.in_flight);
            p["duration_s"] = json!(args.duration.as_secs_f64());
            p["warmup_s"] = json!(args.warmup.as_secs_f64());
            p["paced"] = json!(args.paced);
            p["payload_bytes"] = json!(args.payload);
        }
        Scenario::Fanout => {
            let cases: Vec<String> = args
                .fanout
                .iter()
                .map(|c| format!("{}x{}", c.recipients, c.payload_bytes))
                .collect();
            p["cases"] = json!(cases);
            p["duration_s"] = json!(args.fanout_duration.as_secs_f64());
            p["max_messages"] = json!(args.fanout_max);
            p["in_flight"] = json!(args.fanout_in_flight);
        }
    }
    if matches!(args.target, TargetArg::Cluster) {
        p["push_nodes"] = json!(args.push_nodes);
        p["dispatchers"] = json!(args.dispatchers);
    }
    p
}

/// Opens every connection (each worker its slice, all at once).
async fn connect(bench: &mut Bench<'_>, ack: AckMode) -> anyhow::Result<ConnectResult> {
    let holders = bench.target.conn_holders.clone();
    let rss_before: u64 = holders.iter().map(|p| rss_bytes(*p)).sum();
    let cpu_before = bench.server_cpu_us();
    let gen_before = self_cpu_us() + bench.worker_cpu_us();
    let n = bench.workers.len() as u32;
    let users = bench.args.users;
    let per = users.div_ceil(n);
    let cmds = (0..n)
        .map(|w| {
            let first = (w * per).min(users);
            Some(Command::Connect(ConnectSpec {
                nodes: bench.target.ws_nodes.clone(),
                first_user: first,
                count: per.min(users - first),
                worker: w,
                secret: JWT_SECRET.into(),
                concurrency: bench.args.connect_concurrency,
                ack,
            }))
        })
        .collect();
    let replies = bench.workers.call_some(cmds).await?;
    let (mut ok, mut failed, mut secs, mut first_error) = (0u64, 0u64, 0f64, None);
    for r in replies.into_iter().flatten() {
        let Reply::Connected(c) = r else {
            bail!("unexpected reply to connect: {r:?}");
        };
        ok += u64::from(c.ok);
        failed += u64::from(c.failed);
        secs = secs.max(c.secs);
        if first_error.is_none() {
            first_error = c.first_error;
        }
    }
    let cpu_after = bench.server_cpu_us();
    let gen_after = self_cpu_us() + bench.worker_cpu_us();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_after: u64 = holders.iter().map(|p| rss_bytes(*p)).sum();
    let per_conn = |v: f64| v / ok.max(1) as f64;
    let result = ConnectResult {
        connections: ok,
        failed,
        secs,
        connects_per_s: ok as f64 / secs.max(1e-9),
        rss_before,
        rss_after,
        rss_per_conn_bytes: per_conn(rss_after.saturating_sub(rss_before) as f64),
        server_cpu_us_per_conn: per_conn(cpu_after.saturating_sub(cpu_before) as f64),
        gen_cpu_us_per_conn: per_conn(gen_after.saturating_sub(gen_before) as f64),
        idle_server_cpu_us_per_conn_min: None,
    };
    if failed > 0 {
        bail!(
            "{failed} of {users} connections failed; first error: {}",
            first_error.unwrap_or_default()
        );
    }
    Ok(result)
}

/// Server CPU while the connections sit idle, µs per connection per minute.
async fn idle(bench: &Bench<'_>) -> f64 {
    let before = bench.server_cpu_us();
    tokio::time::sleep(IDLE_HOLD).await;
    let used = bench.server_cpu_us().saturating_sub(before) as f64;
    used / f64::from(bench.args.users.max(1)) * (60.0 / IDLE_HOLD.as_secs_f64())
}

async fn unicast(
    bench: &mut Bench<'_>,
    args: &RunArgs,
    result: &mut RunResult,
) -> anyhow::Result<()> {
    let flat = |name: &str, warmup: bool, duration| PhaseSpec {
        name: name.into(),
        warmup,
        pace: Pace::Flat,
        in_flight: args.in_flight,
        duration,
        max_messages: None,
        recipients: 1,
        payload_bytes: args.payload,
        senders: args.workers,
    };
    if !args.warmup.is_zero() {
        let warm = bench.phase(flat("warmup", true, args.warmup)).await?;
        record(result, warm)?;
    }
    let measured = bench.phase(flat("flat", false, args.duration)).await?;
    let rate = measured.msgs_per_s;
    record(result, measured)?;
    for f in &args.paced {
        let spec = PhaseSpec {
            name: format!("paced-{:.0}%", f * 100.0),
            pace: Pace::Rate(rate * f),
            ..flat("", false, args.duration)
        };
        let phase = bench.phase(spec).await?;
        record(result, phase)?;
    }
    Ok(())
}

/// Keeps a phase's result; its failed check (if any) ends the run.
fn record(result: &mut RunResult, phase: PhaseResult) -> anyhow::Result<()> {
    let failure = phase
        .failure
        .as_ref()
        .map(|f| format!("phase {}: {f}", phase.name));
    result.phases.push(phase);
    match failure {
        Some(f) => bail!(f),
        None => Ok(()),
    }
}

async fn fanout(
    bench: &mut Bench<'_>,
    args: &RunArgs,
    result: &mut RunResult,
) -> anyhow::Result<()> {
    for case in &args.fanout {
        if case.recipients > args.users {
            bail!(
                "fan-out to {} users needs at least that many --users ({})",
                case.recipients,
                args.users
            );
        }
        let spec = PhaseSpec {
            name: format!("fanout-{}x{}", case.recipients, case.payload_bytes),
            warmup: false,
            pace: Pace::Flat,
            in_flight: args.fanout_in_flight,
            duration: args.fanout_duration,
            max_messages: Some(args.fanout_max),
            recipients: case.recipients,
            payload_bytes: case.payload_bytes,
            senders: 1,
        };
        let phase = bench.phase(spec).await?;
        record(result, phase)?;
    }
    Ok(())
}

impl Bench<'_> {
    /// CPU time of every server process so far, µs.
    pub fn server_cpu_us(&self) -> u64 {
        self.target
            .procs
            .iter()
            .map(|(_, p)| group_cpu_us(*p))
            .sum()
    }

    /// CPU time of the worker processes so far (from `/proc`, 10 ms resolution), µs.
    fn worker_cpu_us(&self) -> u64 {
        self.workers.pids().into_iter().map(group_cpu_us).sum()
    }
}
