//! Connects per source address: a token bucket each, in bounded memory.
//!
//! IPv4 addresses count one by one, IPv6 ones per /64 (what one host usually gets). The table
//! holds at most [`MAX_TRACKED`] sources: when a shard is full, buckets that have refilled (a
//! source that has been quiet) are forgotten — they are equivalent to new ones (that sweep runs
//! at most once a second per shard, so a flood cannot make every connect scan the table); if
//! the shard is still full the newcomer is let through untracked (logged), so a flood from
//! very many addresses degrades the limit rather than memory or everyone's access.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const SHARDS: usize = 16;
/// Most sources tracked at once (about 40 bytes each).
pub const MAX_TRACKED: usize = 65_536;

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f32,
    /// Milliseconds since the limiter's start.
    at_ms: u32,
}

#[derive(Default)]
struct Shard {
    buckets: HashMap<u128, Bucket>,
    /// When refilled buckets were last swept out (ms since the start).
    swept_ms: Option<u32>,
}

/// Token buckets per source.
pub struct RateLimiter {
    /// Tokens per millisecond; 0: no limit.
    per_ms: f64,
    burst: f64,
    start: Instant,
    shards: Vec<Mutex<Shard>>,
}

/// The key of a source: an IPv4 address, or an IPv6 /64.
fn key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => u128::from(v4.to_ipv6_mapped()),
            None => u128::from(v6) & !((1u128 << 64) - 1),
        },
    }
}

impl RateLimiter {
    pub fn new(per_second: f64, burst: u32) -> RateLimiter {
        RateLimiter {
            per_ms: per_second.max(0.0) / 1000.0,
            burst: f64::from(burst.max(1)),
            start: Instant::now(),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    fn now_ms(&self) -> u32 {
        u32::try_from(self.start.elapsed().as_millis()).unwrap_or(u32::MAX)
    }

    fn refilled(&self, b: &Bucket, now: u32) -> f64 {
        let elapsed = f64::from(now.saturating_sub(b.at_ms));
        (f64::from(b.tokens) + elapsed * self.per_ms).min(self.burst)
    }

    /// Takes one connect for `ip`; `Err(wait)` when its bucket is empty.
    pub fn take(&self, ip: IpAddr) -> Result<(), Duration> {
        if self.per_ms <= 0.0 {
            return Ok(());
        }
        let key = key(ip);
        let now = self.now_ms();
        let mut guard = self.shards[(key % SHARDS as u128) as usize]
            .lock()
            .expect("rate lock");
        let shard = &mut *guard;
        let full = MAX_TRACKED / SHARDS;
        if !shard.buckets.contains_key(&key) && shard.buckets.len() >= full {
            if shard.swept_ms.is_none_or(|t| now.saturating_sub(t) >= 1000) {
                shard.swept_ms = Some(now);
                shard
                    .buckets
                    .retain(|_, b| self.refilled(b, now) < self.burst);
            }
            if shard.buckets.len() >= full {
                tracing::debug!("connect-rate table full: admitting an untracked source");
                return Ok(());
            }
        }
        let b = shard.buckets.entry(key).or_insert(Bucket {
            tokens: self.burst as f32,
            at_ms: now,
        });
        let tokens = self.refilled(b, now);
        if tokens >= 1.0 {
            *b = Bucket {
                tokens: (tokens - 1.0) as f32,
                at_ms: now,
            };
            return Ok(());
        }
        let wait_ms = ((1.0 - tokens) / self.per_ms).ceil();
        Err(Duration::from_millis(wait_ms as u64))
    }

    /// Sources tracked now.
    pub fn tracked(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().expect("rate lock").buckets.len())
            .sum()
    }
}
