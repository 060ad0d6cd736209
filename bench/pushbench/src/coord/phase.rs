//! One phase: snapshot the server's and the generator's CPU and the server's counters, have
//! the workers post for a while, wait until every accepted message reached every recipient
//! (or fail the phase after the drain period), snapshot again, and compute the figures.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::bail;

use super::perf::Profile;
use super::scrape::Scrape;
use super::target::{API_KEY, Target};
use super::workers::Workers;
use crate::cli::{RunArgs, Scenario};
use crate::hist;
use crate::message::now_us;
use crate::procstat::{group_cpu_us, self_cpu_us};
use crate::proto::{Command, Pace, Reply, SendSpec, Sent, Stats};
use crate::results::PhaseResult;

/// How often deliveries are counted while draining.
const POLL: Duration = Duration::from_millis(50);

/// What a phase sends.
#[derive(Debug, Clone)]
pub struct PhaseSpec {
    pub name: String,
    pub warmup: bool,
    /// Overall pace (a rate is split over the senders).
    pub pace: Pace,
    /// Overall requests in flight.
    pub in_flight: usize,
    pub duration: Duration,
    /// Overall cap on messages.
    pub max_messages: Option<u64>,
    pub recipients: u32,
    pub payload_bytes: usize,
    /// Workers that post (the first ones).
    pub senders: usize,
}

/// A scenario run in progress: the server, the workers, the phases so far.
pub struct Bench<'a> {
    pub args: &'a RunArgs,
    pub target: Target,
    pub workers: Workers,
    scenario: Scenario,
    next_phase: u32,
}

/// The counters a phase is measured between.
struct Snapshot {
    server_cpu: Vec<u64>,
    gen_cpu: u64,
    closed: u64,
    scrape: Scrape,
}

impl<'a> Bench<'a> {
    pub fn new(args: &'a RunArgs, target: Target, workers: Workers, scenario: Scenario) -> Self {
        Bench {
            args,
            target,
            workers,
            scenario,
            next_phase: 1,
        }
    }

    async fn stats(&mut self, phase: u32) -> anyhow::Result<Vec<Stats>> {
        self.workers
            .call_all(&Command::Stats { phase })
            .await?
            .into_iter()
            .map(|r| match r {
                Reply::Stats(s) => Ok(s),
                other => bail!("unexpected reply to stats: {other:?}"),
            })
            .collect()
    }

    async fn snapshot(&mut self, stats: &[Stats]) -> Snapshot {
        Snapshot {
            server_cpu: self
                .target
                .procs
                .iter()
                .map(|(_, p)| group_cpu_us(*p))
                .collect(),
            gen_cpu: self_cpu_us() + stats.iter().map(|s| s.cpu_us).sum::<u64>(),
            closed: stats.iter().map(|s| s.closed).sum(),
            scrape: Scrape::take(&self.target.metrics, self.target.store_metrics).await,
        }
    }

    /// Runs one phase. A failed check is reported in the result's `failure`.
    pub async fn phase(&mut self, spec: PhaseSpec) -> anyhow::Result<PhaseResult> {
        let id = self.next_phase;
        self.next_phase += 1;
        let senders = spec
            .senders
            .clamp(1, self.workers.len())
            .min(spec.in_flight.max(1));
        let before_stats = self.stats(id).await?;
        let before = self.snapshot(&before_stats).await;
        let profile = match (self.args.perf, spec.warmup) {
            (true, false) => {
                let pids: Vec<u32> = self.target.procs.iter().map(|(_, p)| *p).collect();
                let file = self.args.out.join(format!(
                    "profile-{}-{}-{}.perf.data",
                    self.args.target.name(),
                    self.scenario.name(),
                    spec.name.replace('%', "")
                ));
                std::fs::create_dir_all(&self.args.out)?;
                Some(Profile::start(&pids, &file)?)
            }
            _ => None,
        };
        let start_us = now_us();
        let cmds = (0..self.workers.len())
            .map(|w| (w < senders).then(|| Command::Send(self.send_spec(&spec, id, w, senders))))
            .collect();
        let sent: Vec<Sent> = self
            .workers
            .call_some(cmds)
            .await?
            .into_iter()
            .flatten()
            .map(|r| match r {
                Reply::Sent(s) => Ok(s),
                other => bail!("unexpected reply to send: {other:?}"),
            })
            .collect::<anyhow::Result<_>>()?;
        let accepted: u64 = sent.iter().map(|s| s.accepted).sum();
        let per_message = u64::from(spec.recipients.min(self.args.users));
        let expected = accepted * per_message;
        let failure = self.drain(id, expected, before.closed).await?;
        let after_stats = self.stats(id).await?;
        let after = self.snapshot(&after_stats).await;
        let top = match profile {
            Some(p) => p.stop()?,
            None => Vec::new(),
        };
        let mut r = self.figures(&spec, start_us, &sent, &after_stats, &before, &after);
        r.expected_deliveries = expected;
        r.profile = top;
        r.failure = failure.or_else(|| {
            (r.delivered < expected).then(|| format!("{} of {expected} delivered", r.delivered))
        });
        Ok(r)
    }

    fn send_spec(&self, spec: &PhaseSpec, id: u32, w: usize, senders: usize) -> SendSpec {
        let share =
            |total: u64| total / senders as u64 + u64::from((w as u64) < total % senders as u64);
        SendSpec {
            phase: id,
            collect: self.target.api,
            api_key: API_KEY.into(),
            pace: match spec.pace {
                Pace::Flat => Pace::Flat,
                Pace::Rate(r) => Pace::Rate(r / senders as f64),
            },
            in_flight: share(spec.in_flight as u64) as usize,
            duration_ms: spec.duration.as_millis() as u64,
            max_messages: spec.max_messages.map(share),
            recipients: spec.recipients,
            total_users: self.args.users,
            payload_bytes: spec.payload_bytes,
            worker: w as u32,
            workers: senders as u32,
        }
    }

    /// Waits until `expected` deliveries of phase `id` arrived; the reason when they did not
    /// within the drain period, or when the server closed connections.
    async fn drain(
        &mut self,
        id: u32,
        expected: u64,
        closed_before: u64,
    ) -> anyhow::Result<Option<String>> {
        let deadline = Instant::now() + self.args.drain;
        loop {
            let (mut delivered, mut closed) = (0, 0);
            for r in self.workers.call_all(&Command::Count { phase: id }).await? {
                if let Reply::Count {
                    delivered: d,
                    closed: c,
                } = r
                {
                    delivered += d;
                    closed += c;
                }
            }
            if closed > closed_before {
                let reasons = self.stats(id).await?;
                let samples: Vec<String> =
                    reasons.into_iter().flat_map(|s| s.close_reasons).collect();
                return Ok(Some(format!(
                    "the server closed {} connections: {}",
                    closed - closed_before,
                    samples.join("; ")
                )));
            }
            if delivered >= expected {
                return Ok(None);
            }
            if Instant::now() >= deadline {
                return Ok(Some(format!(
                    "only {delivered} of {expected} deliveries arrived within {:?} of the last \
                     request",
                    self.args.drain
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn figures(
        &self,
        spec: &PhaseSpec,
        start_us: u64,
        sent: &[Sent],
        stats: &[Stats],
        before: &Snapshot,
        after: &Snapshot,
    ) -> PhaseResult {
        let sum = |f: fn(&Sent) -> u64| sent.iter().map(f).sum::<u64>();
        let (accepted, rejected, errors) =
            (sum(|s| s.accepted), sum(|s| s.rejected), sum(|s| s.errors));
        let delivered: u64 = stats.iter().map(|s| s.delivered).sum();
        let last_sent = sent.iter().map(|s| s.last_us).max().unwrap_or(start_us);
        let last_delivered = stats.iter().map(|s| s.last_us).max().unwrap_or(0);
        let send_secs = secs(last_sent.saturating_sub(start_us));
        let elapsed_secs = secs(last_sent.max(last_delivered).saturating_sub(start_us));
        let mut latency = hist::new();
        let mut accept = hist::new();
        let mut per_msg: HashMap<u64, (u64, u64)> = HashMap::new();
        for s in stats {
            hist::add_pairs(&mut latency, &s.latency_us);
            for [m, n, max] in &s.per_msg {
                let e = per_msg.entry(*m).or_default();
                e.0 += n;
                e.1 = e.1.max(*max);
            }
        }
        for s in sent {
            hist::add_pairs(&mut accept, &s.accept_us);
        }
        let last_delivery = (spec.recipients > 1).then(|| {
            let mut h = hist::new();
            for (_, max) in per_msg.values() {
                h.saturating_record((*max).max(1));
            }
            hist::summary(&h)
        });
        let mut by_process = BTreeMap::new();
        for (i, (name, _)) in self.target.procs.iter().enumerate() {
            let used = after.server_cpu[i].saturating_sub(before.server_cpu[i]);
            *by_process.entry(group_name(name)).or_insert(0.0) += used as f64 / 1e6;
        }
        let server_cpu_s: f64 = by_process.values().sum();
        let pushd_cpu_s: f64 = by_process
            .iter()
            .filter(|(name, _)| !SERVICES.contains(&name.as_str()))
            .map(|(_, s)| s)
            .sum();
        let gen_cpu_s = after.gen_cpu.saturating_sub(before.gen_cpu) as f64 / 1e6;
        let per = |cpu_s: f64, n: u64| cpu_s * 1e6 / n.max(1) as f64;
        let mongo_commands = after.scrape.commands_since(&before.scrape);
        let mongo_commands_by_collection =
            after.scrape.commands_by_collection_since(&before.scrape);
        let mongo_total: u64 = mongo_commands.values().sum();
        let store_commands = after.scrape.store_commands_since(&before.scrape);
        let store_total: u64 = store_commands.values().sum();
        let first_error = sent.iter().find_map(|s| s.first_error.clone());
        PhaseResult {
            name: spec.name.clone(),
            warmup: spec.warmup,
            pace: match spec.pace {
                Pace::Flat => "flat".into(),
                Pace::Rate(_) => "paced".into(),
            },
            offered_rate: match spec.pace {
                Pace::Flat => None,
                Pace::Rate(r) => Some(r),
            },
            in_flight: spec.in_flight,
            recipients: spec.recipients,
            payload_bytes: spec.payload_bytes,
            send_secs,
            elapsed_secs,
            accepted,
            rejected,
            errors,
            first_error,
            expected_deliveries: 0,
            delivered,
            duplicates: stats.iter().map(|s| s.duplicates).sum(),
            out_of_order: stats.iter().map(|s| s.out_of_order).sum(),
            slow_parses: stats.iter().map(|s| s.slow_parses).sum(),
            accepted_per_s: accepted as f64 / send_secs.max(1e-9),
            msgs_per_s: accepted as f64 / elapsed_secs.max(1e-9),
            deliveries_per_s: delivered as f64 / elapsed_secs.max(1e-9),
            latency: hist::summary(&latency),
            accept_latency: hist::summary(&accept),
            last_delivery,
            server_cpu_s,
            server_cpu_by_process: by_process,
            server_cpu_us_per_msg: per(server_cpu_s, accepted),
            server_cpu_us_per_delivery: per(server_cpu_s, delivered),
            pushd_cpu_us_per_msg: per(pushd_cpu_s, accepted),
            pushd_cpu_us_per_delivery: per(pushd_cpu_s, delivered),
            server_cores: server_cpu_s / elapsed_secs.max(1e-9),
            gen_cpu_s,
            gen_cpu_us_per_msg: per(gen_cpu_s, accepted),
            gen_cpu_us_per_delivery: per(gen_cpu_s, delivered),
            mongo_commands_per_msg: (!mongo_commands.is_empty())
                .then(|| mongo_total as f64 / accepted.max(1) as f64),
            mongo_commands,
            mongo_commands_by_collection,
            store_commands_per_msg: (!store_commands.is_empty())
                .then(|| store_total as f64 / accepted.max(1) as f64),
            store_commands,
            stages: after.scrape.stages_since(&before.scrape),
            profile: Vec::new(),
            failure: None,
        }
    }
}

/// Server processes that are not pushd (their CPU is in the server's, not in pushd's).
const SERVICES: [&str; 3] = ["redis", "ferretdb", "postgres"];

/// `push-2` → `push`, `dispatch-0` → `dispatch`: CPU is reported per role.
fn group_name(name: &str) -> String {
    match name.rsplit_once('-') {
        Some((role, n)) if n.chars().all(|c| c.is_ascii_digit()) => role.to_owned(),
        _ => name.to_owned(),
    }
}

fn secs(us: u64) -> f64 {
    us as f64 / 1e6
}
