//! The worker's producers: `in_flight` keep-alive HTTP connections, each posting one
//! message at a time to `POST /v1/messages`, flat out or on a schedule.

use std::cell::{Cell, RefCell};
use std::io::Write;
use std::rc::Rc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::hist;
use crate::message::{self, Tag};
use crate::procstat::self_cpu_us;
use crate::proto::{Pace, SendSpec, Sent};
use crate::wire::http::HttpClient;

/// Shared by the producers of one `send`.
struct Progress {
    next: Cell<u64>,
    accepted: Cell<u64>,
    rejected: Cell<u64>,
    errors: Cell<u64>,
    first_error: RefCell<Option<String>>,
    accept: RefCell<Histogram<u64>>,
    first_us: Cell<u64>,
    last_us: Cell<u64>,
}

/// Posts messages as `spec` says; returns when every producer is done.
pub async fn send(spec: SendSpec) -> Sent {
    let progress = Rc::new(Progress {
        next: Cell::new(0),
        accepted: Cell::new(0),
        rejected: Cell::new(0),
        errors: Cell::new(0),
        first_error: RefCell::new(None),
        accept: RefCell::new(hist::new()),
        first_us: Cell::new(0),
        last_us: Cell::new(0),
    });
    let spec = Rc::new(spec);
    let clock = Clock {
        start: Instant::now(),
        wall_us: message::now_us(),
    };
    let mut producers = tokio::task::JoinSet::new();
    for slot in 0..spec.in_flight.max(1) {
        let (spec, progress) = (spec.clone(), progress.clone());
        producers.spawn_local(produce(spec, progress, clock, slot as u64));
    }
    while producers.join_next().await.is_some() {}
    let p = progress;
    Sent {
        accepted: p.accepted.get(),
        rejected: p.rejected.get(),
        errors: p.errors.get(),
        first_error: p.first_error.borrow().clone(),
        accept_us: hist::to_pairs(&p.accept.borrow()),
        first_us: p.first_us.get(),
        last_us: p.last_us.get(),
        cpu_us: self_cpu_us(),
    }
}

/// The start of a `send`, on the monotonic clock and on the wall clock.
#[derive(Clone, Copy)]
struct Clock {
    start: Instant,
    wall_us: u64,
}

async fn produce(spec: Rc<SendSpec>, progress: Rc<Progress>, clock: Clock, slot: u64) {
    let mut http = HttpClient::new(spec.collect, &spec.api_key);
    let mut rng = Rng::new(u64::from(spec.worker) << 32 | slot);
    let duration = Duration::from_millis(spec.duration_ms);
    let mut body = Vec::with_capacity(spec.payload_bytes + 256);
    loop {
        let k = progress.next.get();
        if spec.max_messages.is_some_and(|max| k >= max) {
            return;
        }
        progress.next.set(k + 1);
        let sent_us = match spec.pace {
            Pace::Flat => {
                if clock.start.elapsed() >= duration {
                    return;
                }
                message::now_us()
            }
            Pace::Rate(rate) => {
                let at = Duration::from_secs_f64(k as f64 / rate);
                if at >= duration {
                    return;
                }
                tokio::time::sleep_until((clock.start + at).into()).await;
                clock.wall_us + at.as_micros() as u64
            }
        };
        body.clear();
        write_body(&mut body, &spec, k, sent_us, &mut rng);
        let started = Instant::now();
        let result = http.request("POST", "/v1/messages", &body).await;
        progress
            .accept
            .borrow_mut()
            .saturating_record(started.elapsed().as_micros().max(1) as u64);
        let now = message::now_us();
        if progress.first_us.get() == 0 {
            progress.first_us.set(now);
        }
        progress.last_us.set(now);
        let error = match result {
            Ok(r) if r.status == 202 => {
                progress.accepted.set(progress.accepted.get() + 1);
                None
            }
            Ok(r) => {
                progress.rejected.set(progress.rejected.get() + 1);
                Some(format!(
                    "HTTP {}: {}",
                    r.status,
                    String::from_utf8_lossy(&r.body[..r.body.len().min(300)])
                ))
            }
            Err(e) => {
                progress.errors.set(progress.errors.get() + 1);
                Some(e.to_string())
            }
        };
        if let Some(e) = error {
            progress.first_error.borrow_mut().get_or_insert(e);
        }
    }
}

/// `{"to":[…],"payload":{…}}` for this worker's `k`-th message.
fn write_body(body: &mut Vec<u8>, spec: &SendSpec, k: u64, sent_us: u64, rng: &mut Rng) {
    let total = u64::from(spec.total_users.max(1));
    let (msg, first, count) = if spec.recipients <= 1 {
        (0, rng.below(total), 1)
    } else {
        // Fan-out: consecutive users, a different window for every message.
        let msg = k * u64::from(spec.workers) + u64::from(spec.worker) + 1;
        let r = u64::from(spec.recipients);
        (msg, ((msg - 1) * r) % total, r.min(total))
    };
    body.extend_from_slice(br#"{"to":["#);
    for i in 0..count {
        if i > 0 {
            body.push(b',');
        }
        let user = ((first + i) % total) as u32;
        write!(body, "\"{}\"", crate::user_name(user)).expect("writing to a Vec");
    }
    body.extend_from_slice(br#"],"payload":"#);
    let tag = Tag {
        phase: spec.phase,
        msg,
        sent_us,
    };
    message::write_payload(body, &tag, spec.payload_bytes);
    body.push(b'}');
}

/// xorshift64*: cheap, and good enough to pick recipients.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}
