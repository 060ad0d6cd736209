//! Who may open a WebSocket on this node, decided before the upgrade:
//!
//! - a connect rate per source IP ([`rate`], a token bucket per address in bounded memory),
//!   checked first so a flood costs no token verification;
//! - a bound on this node's connections (`--max-connections`);
//! - a bound on one user's connections here (`--max-connections-per-user`).
//!
//! An admitted connection holds a [`Slot`] for its whole life; dropping it frees both counts.
//! Users are counted by a keyed hash of their id (no copy of the id per connection).

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

pub mod rate;

const USER_SHARDS: usize = 64;

/// The limits (0 disables one).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdmissionLimits {
    pub max_connections: usize,
    pub max_per_user: u32,
    /// Connects per second per source IP.
    pub rate_per_ip: f64,
    pub burst_per_ip: u32,
}

impl Default for AdmissionLimits {
    fn default() -> Self {
        AdmissionLimits {
            max_connections: 100_000,
            max_per_user: 16,
            rate_per_ip: 20.0,
            burst_per_ip: 100,
        }
    }
}

/// Why a connection is refused.
#[derive(Debug, Clone, PartialEq)]
pub enum Refused {
    /// Too many connects from this address; retry after this long.
    Rate { retry_after: Duration },
    /// This node is full.
    NodeFull { max: usize },
    /// This user has `max` connections here already.
    UserFull { max: u32 },
}

impl Refused {
    /// The `reason` label of `pushd_connections_refused_total`.
    pub fn label(&self) -> &'static str {
        match self {
            Refused::Rate { .. } => "connect_rate",
            Refused::NodeFull { .. } => "node_full",
            Refused::UserFull { .. } => "user_full",
        }
    }
}

/// Labels of `pushd_connections_refused_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusedLabels {
    pub reason: &'static str,
}

/// The admission state of a node.
pub struct Admission {
    limits: AdmissionLimits,
    open: AtomicUsize,
    users: Vec<Mutex<HashMap<u64, u32>>>,
    hasher: std::collections::hash_map::RandomState,
    rate: rate::RateLimiter,
    refused: Family<RefusedLabels, Counter>,
}

/// An admitted connection's place; dropping it frees it.
pub struct Slot {
    admission: Arc<Admission>,
    user: u64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let a = &self.admission;
        a.open.fetch_sub(1, Ordering::AcqRel);
        let mut shard = a.shard(self.user).lock().expect("admission lock");
        if let Some(n) = shard.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                shard.remove(&self.user);
            }
        }
    }
}

impl Admission {
    pub fn new(limits: AdmissionLimits) -> Arc<Admission> {
        Arc::new(Admission {
            limits,
            open: AtomicUsize::new(0),
            users: (0..USER_SHARDS).map(|_| Mutex::default()).collect(),
            hasher: Default::default(),
            rate: rate::RateLimiter::new(limits.rate_per_ip, limits.burst_per_ip),
            refused: Family::default(),
        })
    }

    /// Registers `pushd_connections_refused_total{reason}`.
    pub fn register(&self, registry: &mut Registry) {
        registry.sub_registry_with_prefix("pushd").register(
            "connections_refused",
            "WebSocket connects refused before the upgrade: connect_rate, node_full, user_full",
            self.refused.clone(),
        );
    }

    fn shard(&self, user: u64) -> &Mutex<HashMap<u64, u32>> {
        &self.users[(user % USER_SHARDS as u64) as usize]
    }

    fn refuse<T>(&self, why: Refused) -> Result<T, Refused> {
        self.refused
            .get_or_create(&RefusedLabels {
                reason: why.label(),
            })
            .inc();
        Err(why)
    }

    /// Before verifying the token: the source's connect rate and the node's room.
    pub fn precheck(&self, ip: Option<IpAddr>) -> Result<(), Refused> {
        if let Some(ip) = ip
            && let Err(retry_after) = self.rate.take(ip)
        {
            return self.refuse(Refused::Rate { retry_after });
        }
        let max = self.limits.max_connections;
        if max > 0 && self.open.load(Ordering::Acquire) >= max {
            return self.refuse(Refused::NodeFull { max });
        }
        Ok(())
    }

    /// After verifying the token: takes a place for `user` on this node, or says why not.
    pub fn admit(self: &Arc<Self>, user: &str) -> Result<Slot, Refused> {
        let max = self.limits.max_connections;
        let before = self.open.fetch_add(1, Ordering::AcqRel);
        if max > 0 && before >= max {
            self.open.fetch_sub(1, Ordering::AcqRel);
            return self.refuse(Refused::NodeFull { max });
        }
        let key = self.hasher.hash_one(user);
        let mut shard = self.shard(key).lock().expect("admission lock");
        let n = shard.entry(key).or_insert(0);
        let per_user = self.limits.max_per_user;
        if per_user > 0 && *n >= per_user {
            drop(shard);
            self.open.fetch_sub(1, Ordering::AcqRel);
            return self.refuse(Refused::UserFull { max: per_user });
        }
        *n += 1;
        Ok(Slot {
            admission: self.clone(),
            user: key,
        })
    }

    /// Connections admitted and not yet closed.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests;
