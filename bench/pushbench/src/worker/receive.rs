//! The worker's client connections: open them, then read, count and ack every message like a
//! real client ([`AckMode`]: an ack per message, or one cumulative ack per read; all acks of
//! one read in one write).

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::oneshot;
use tokio::task::JoinSet;

use crate::hist;
use crate::message::{self, Scanned};
use crate::procstat::self_cpu_us;
use crate::proto::{AckMode, ConnectSpec, Connected, Reply, Stats};
use crate::wire::ws::{Frame, Out, WsClient};

/// How long a connection may take to be upgraded and welcomed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections per source address (each address has its own ephemeral ports).
const PER_SOURCE: u32 = 2000;
/// Close reasons and error frames kept as samples.
const SAMPLES: usize = 5;

/// What this worker's connections have received, per phase.
#[derive(Default)]
pub struct Received {
    phases: HashMap<u32, Phase>,
    closed: u64,
    close_reasons: Vec<String>,
    error_frames: u64,
    error_samples: Vec<String>,
}

struct Phase {
    delivered: u64,
    duplicates: u64,
    out_of_order: u64,
    slow_parses: u64,
    latency: Histogram<u64>,
    first_us: u64,
    last_us: u64,
    /// Message index → (deliveries, latest latency).
    per_msg: HashMap<u64, (u64, u64)>,
}

impl Received {
    fn phase(&mut self, phase: u32) -> &mut Phase {
        self.phases.entry(phase).or_insert_with(|| Phase {
            delivered: 0,
            duplicates: 0,
            out_of_order: 0,
            slow_parses: 0,
            latency: hist::new(),
            first_us: 0,
            last_us: 0,
            per_msg: HashMap::new(),
        })
    }

    fn closed(&mut self, why: String) {
        self.closed += 1;
        if self.close_reasons.len() < SAMPLES {
            self.close_reasons.push(why);
        }
    }

    /// Handles one text frame received at `now_us`; queues its ack.
    fn on_text(&mut self, text: &[u8], now_us: u64, conn: &mut ConnState, out: &mut Out<'_>) {
        match message::scan(text) {
            Scanned::Message { id, seq, tag, slow } => {
                match conn.ack {
                    AckMode::Id => out.text(&message::ack_parts(id.as_bytes())),
                    AckMode::Seq => conn.unacked = conn.unacked.max(seq),
                }
                let p = self.phase(tag.phase);
                p.slow_parses += u64::from(slow);
                match conn.seen.first(seq) {
                    Seen::Again => {
                        p.duplicates += 1;
                        return;
                    }
                    Seen::Late => p.out_of_order += 1,
                    Seen::InOrder => {}
                }
                let latency = now_us.saturating_sub(tag.sent_us);
                p.delivered += 1;
                p.latency.saturating_record(latency.max(1));
                if p.first_us == 0 {
                    p.first_us = now_us;
                }
                p.last_us = p.last_us.max(now_us);
                if tag.msg != 0 {
                    let e = p.per_msg.entry(tag.msg).or_default();
                    e.0 += 1;
                    e.1 = e.1.max(latency);
                }
            }
            Scanned::Welcome => {
                if let Some(w) = conn.welcomed.take() {
                    let _ = w.send(());
                }
            }
            Scanned::Error(frame) => {
                self.error_frames += 1;
                if self.error_samples.len() < SAMPLES {
                    self.error_samples
                        .push(String::from_utf8_lossy(frame).into_owned());
                }
            }
            Scanned::Other => {}
        }
    }

    pub fn count(&mut self, phase: u32) -> Reply {
        Reply::Count {
            delivered: self.phase(phase).delivered,
            closed: self.closed,
        }
    }

    /// The counts of `phase`, and since-the-start counts of closes and error frames.
    pub fn stats(&mut self, phase: u32) -> Stats {
        let p = self.phase(phase);
        let mut per_msg: Vec<[u64; 3]> = p
            .per_msg
            .iter()
            .map(|(m, (n, max))| [*m, *n, *max])
            .collect();
        per_msg.sort_unstable();
        let mut s = Stats {
            delivered: p.delivered,
            duplicates: p.duplicates,
            out_of_order: p.out_of_order,
            slow_parses: p.slow_parses,
            latency_us: hist::to_pairs(&p.latency),
            first_us: p.first_us,
            last_us: p.last_us,
            per_msg,
            ..Stats::default()
        };
        s.closed = self.closed;
        s.close_reasons = self.close_reasons.clone();
        s.error_frames = self.error_frames;
        s.error_samples = self.error_samples.clone();
        s.cpu_us = self_cpu_us();
        s
    }
}

/// How many of the latest seqs below the highest a connection remembers.
const RECENT: usize = 16;

/// The seqs a connection has seen: the highest, and the last [`RECENT`] others, so that a
/// repeat is told from a message that overtook another.
#[derive(Debug, Default)]
pub struct SeenSeqs {
    highest: u64,
    recent: [u64; RECENT],
    next: usize,
}

/// What a received seq is to its connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Seen {
    /// Above every seq so far.
    InOrder,
    /// First seen, but below the highest (the server reordered).
    Late,
    /// Seen before (a redelivery).
    Again,
}

impl SeenSeqs {
    pub fn first(&mut self, seq: u64) -> Seen {
        if seq > self.highest {
            self.remember(self.highest);
            self.highest = seq;
            return Seen::InOrder;
        }
        if seq == self.highest || self.recent.contains(&seq) {
            return Seen::Again;
        }
        self.remember(seq);
        Seen::Late
    }

    fn remember(&mut self, seq: u64) {
        if seq > 0 {
            self.recent[self.next] = seq;
            self.next = (self.next + 1) % RECENT;
        }
    }
}

/// Per-connection state the frame handler needs.
struct ConnState {
    /// The seqs seen (the server should send a user's messages in seq order).
    seen: SeenSeqs,
    /// Told when the `welcome` frame arrives.
    welcomed: Option<oneshot::Sender<()>>,
    ack: AckMode,
    /// [`AckMode::Seq`]: the highest seq of this read, acked after it (0: nothing to ack).
    unacked: u64,
}

/// Opens the connections of `spec`, each served by its own task from then on.
pub async fn connect(spec: ConnectSpec, received: &Rc<RefCell<Received>>) -> Reply {
    let tokens: Vec<String> = (0..spec.count)
        .map(|i| {
            let user = crate::user_name(spec.first_user + i);
            pushcluster_auth::issue(spec.secret.as_bytes(), &user, Duration::from_secs(86_400))
        })
        .collect();
    let started = Instant::now();
    let mut pending = JoinSet::new();
    let (mut ok, mut failed, mut first_error) = (0, 0, None);
    let mut next = 0;
    while next < spec.count || !pending.is_empty() {
        while pending.len() < spec.concurrency.max(1) && next < spec.count {
            let user = spec.first_user + next;
            let dst = spec.nodes[user as usize % spec.nodes.len()];
            let src = IpAddr::V4(Ipv4Addr::new(
                127,
                1,
                spec.worker as u8,
                1 + (next / PER_SOURCE) as u8,
            ));
            let path = format!("/ws?token={}", tokens[next as usize]);
            let received = received.clone();
            let ack = spec.ack;
            pending.spawn_local(async move {
                tokio::time::timeout(CONNECT_TIMEOUT, open(src, dst, path, ack, received))
                    .await
                    .unwrap_or_else(|_| Err("no welcome within 30 s".into()))
            });
            next += 1;
        }
        match pending.join_next().await {
            Some(Ok(Ok(()))) => ok += 1,
            Some(Ok(Err(e))) => {
                failed += 1;
                first_error.get_or_insert(e);
            }
            Some(Err(e)) => {
                failed += 1;
                first_error.get_or_insert(e.to_string());
            }
            None => {}
        }
    }
    Reply::Connected(Connected {
        ok,
        failed,
        secs: started.elapsed().as_secs_f64(),
        first_error,
        cpu_us: self_cpu_us(),
    })
}

/// Connects, starts the connection's task and waits for its `welcome`.
async fn open(
    src: IpAddr,
    dst: std::net::SocketAddr,
    path: String,
    ack: AckMode,
    received: Rc<RefCell<Received>>,
) -> Result<(), String> {
    let ws = WsClient::connect(Some(src), dst, &path)
        .await
        .map_err(|e| format!("{dst} from {src}: {e}"))?;
    let (tx, rx) = oneshot::channel();
    tokio::task::spawn_local(serve(ws, ack, received, tx));
    rx.await
        .map_err(|_| format!("{dst}: closed before the welcome"))
}

/// Reads until the connection ends; every message is counted and acked.
async fn serve(
    mut ws: WsClient,
    ack: AckMode,
    received: Rc<RefCell<Received>>,
    welcomed: oneshot::Sender<()>,
) {
    let mut conn = ConnState {
        seen: SeenSeqs::default(),
        welcomed: Some(welcomed),
        ack,
        unacked: 0,
    };
    let mut ack_frame = Vec::new();
    // Frames that came with the upgrade response are handled before the first read.
    let mut first = true;
    loop {
        if !first && let Err(e) = ws.read().await {
            received.borrow_mut().closed(e.to_string());
            return;
        }
        first = false;
        let now = message::now_us();
        let mut close = None;
        let parsed = {
            let mut r = received.borrow_mut();
            ws.process(|frame, out| match frame {
                Frame::Text(text) => r.on_text(text, now, &mut conn, out),
                Frame::Close(code, reason) => {
                    close = Some(format!("close {code} {}", String::from_utf8_lossy(reason)));
                }
            })
        };
        if let Err(e) = parsed {
            received.borrow_mut().closed(e.to_string());
            return;
        }
        if let Some(why) = close {
            received.borrow_mut().closed(why);
            return;
        }
        if conn.unacked > 0 {
            message::ack_seq(&mut ack_frame, conn.unacked);
            ws.text(&[&ack_frame]);
            conn.unacked = 0;
        }
        if let Err(e) = ws.flush().await {
            received.borrow_mut().closed(e.to_string());
            return;
        }
    }
}

#[cfg(test)]
mod tests;
