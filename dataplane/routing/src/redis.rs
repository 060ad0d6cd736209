//! The route table in Redis (standalone or Redis Cluster).
//!
//! - `pc:u:{b<bucket>}:<user>`: a set of node ids, one member per node holding the user.
//!   `SADD` on the user's first connection to a node, `SREM` of that node's member only
//!   when its last one closes, so other nodes' entries are never touched. The user id is
//!   [`key_safe`](crate::key_safe)-encoded, and the hash tag is ours: a bucket of the user
//!   (`BUCKETS` of them), so on Redis Cluster a batch of users becomes one pipeline per
//!   bucket (at most `BUCKETS` round trips in parallel), not one per user.
//! - `pc:n:<node>`: the node's liveness, renewed every `ttl / 3` with `SET … EX ttl GET`
//!   (a missing old value says the entries may be gone too: re-add them).
//!
//! Readers skip entries of nodes whose liveness key is gone (checked at most once per
//! [`LIVENESS_CACHE`] per node) and delete them.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;

use crate::{Liveness, NodeId, RouteError, RouteTable, key_safe};

/// Hash-tag buckets user keys are spread over.
const BUCKETS: u64 = 256;
/// How long a node's liveness, once read, is believed.
pub const LIVENESS_CACHE: Duration = Duration::from_secs(1);

/// Where the route table lives.
#[derive(Debug, Clone)]
pub enum RedisTarget {
    /// One `redis://` URL.
    Standalone(String),
    /// Seed URLs of a Redis Cluster.
    Cluster(Vec<String>),
}

#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// [`RouteTable`] on Redis.
#[derive(Clone)]
pub struct RedisRouteTable {
    conn: Conn,
    ttl: Duration,
    alive: Arc<Mutex<HashMap<NodeId, (bool, Instant)>>>,
}

fn bucket(user: &str) -> u64 {
    // FNV-1a: stable across processes and versions.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in user.as_bytes() {
        h = (h ^ u64::from(*b)).wrapping_mul(0x100000001b3);
    }
    h % BUCKETS
}

fn user_key(user: &str) -> String {
    format!("pc:u:{{b{}}}:{}", bucket(user), key_safe(user))
}

fn node_key(node: &NodeId) -> String {
    format!("pc:n:{}", key_safe(&node.0))
}

fn unavailable(e: redis::RedisError) -> RouteError {
    RouteError::Unavailable(e.to_string())
}

impl RedisRouteTable {
    /// Connects; a node's liveness lasts `ttl` unless renewed.
    pub async fn connect(target: &RedisTarget, ttl: Duration) -> Result<Self, RouteError> {
        let timeout = Duration::from_secs(2);
        let conn = match target {
            RedisTarget::Standalone(url) => {
                let client = redis::Client::open(url.as_str()).map_err(unavailable)?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout))
                    .set_number_of_retries(2)
                    .set_max_delay(Duration::from_secs(1));
                Conn::Single(
                    ConnectionManager::new_with_config(client, config)
                        .await
                        .map_err(unavailable)?,
                )
            }
            RedisTarget::Cluster(urls) => {
                let client = ClusterClientBuilder::new(urls.iter().map(String::as_str))
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .retries(2)
                    .build()
                    .map_err(unavailable)?;
                Conn::Cluster(client.get_async_connection().await.map_err(unavailable)?)
            }
        };
        Ok(RedisRouteTable {
            conn,
            ttl,
            alive: Arc::default(),
        })
    }

    /// A node's liveness lifetime.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, RouteError> {
        match self.conn.clone() {
            Conn::Single(mut c) => cmd.query_async(&mut c).await.map_err(unavailable),
            Conn::Cluster(mut c) => cmd.query_async(&mut c).await.map_err(unavailable),
        }
    }

    /// Runs one command per user (`build(key) `), pipelined: one pipeline on standalone
    /// Redis, one per hash-tag bucket (in parallel) on a cluster. Results in `users` order.
    async fn per_user<T>(
        &self,
        users: &[&str],
        build: impl Fn(&mut redis::Pipeline, String),
    ) -> Result<Vec<T>, RouteError>
    where
        T: redis::FromRedisValue + Default + Clone,
    {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        match self.conn.clone() {
            Conn::Single(mut c) => {
                let mut p = redis::pipe();
                for u in users {
                    build(&mut p, user_key(u));
                }
                p.query_async(&mut c).await.map_err(unavailable)
            }
            Conn::Cluster(c) => {
                let mut groups: HashMap<u64, Vec<usize>> = HashMap::new();
                for (i, u) in users.iter().enumerate() {
                    groups.entry(bucket(u)).or_default().push(i);
                }
                let calls = groups.into_values().map(|idx| {
                    let mut c = c.clone();
                    let mut p = redis::pipe();
                    for &i in &idx {
                        build(&mut p, user_key(users[i]));
                    }
                    async move {
                        let r: Vec<T> = p.query_async(&mut c).await.map_err(unavailable)?;
                        Ok::<_, RouteError>((idx, r))
                    }
                });
                let mut out = vec![T::default(); users.len()];
                for r in futures_util::future::join_all(calls).await {
                    let (idx, values) = r?;
                    for (i, v) in idx.into_iter().zip(values) {
                        out[i] = v;
                    }
                }
                Ok(out)
            }
        }
    }

    /// Which of `nodes` are alive (cached for [`LIVENESS_CACHE`]).
    async fn live(&self, nodes: &HashSet<NodeId>) -> Result<HashSet<NodeId>, RouteError> {
        let now = Instant::now();
        let mut live = HashSet::new();
        let mut unknown = Vec::new();
        {
            let cache = self.alive.lock().expect("liveness cache");
            for n in nodes {
                match cache.get(n) {
                    Some((alive, at)) if now.duration_since(*at) < LIVENESS_CACHE => {
                        if *alive {
                            live.insert(n.clone());
                        }
                    }
                    _ => unknown.push(n.clone()),
                }
            }
        }
        if unknown.is_empty() {
            return Ok(live);
        }
        let checks = unknown.iter().map(|n| {
            let cmd = redis::cmd("EXISTS").arg(node_key(n)).to_owned();
            async move { self.query::<bool>(&cmd).await }
        });
        let found = futures_util::future::join_all(checks).await;
        let mut cache = self.alive.lock().expect("liveness cache");
        for (n, r) in unknown.into_iter().zip(found) {
            let alive = r?;
            cache.insert(n.clone(), (alive, now));
            if alive {
                live.insert(n);
            }
        }
        Ok(live)
    }
}

#[async_trait]
impl RouteTable for RedisRouteTable {
    async fn add(&self, node: &NodeId, users: &[&str]) -> Result<(), RouteError> {
        let _: Vec<i64> = self
            .per_user(users, |p, k| {
                p.sadd(k, &node.0);
            })
            .await?;
        Ok(())
    }

    async fn remove(&self, node: &NodeId, users: &[&str]) -> Result<(), RouteError> {
        let _: Vec<i64> = self
            .per_user(users, |p, k| {
                p.srem(k, &node.0);
            })
            .await?;
        Ok(())
    }

    async fn lookup(&self, users: &[&str]) -> Result<Vec<Vec<NodeId>>, RouteError> {
        let members: Vec<Vec<String>> = self
            .per_user(users, |p, k| {
                p.smembers(k);
            })
            .await?;
        let nodes: HashSet<NodeId> = members.iter().flatten().cloned().map(NodeId).collect();
        if nodes.is_empty() {
            return Ok(vec![Vec::new(); users.len()]);
        }
        let live = self.live(&nodes).await?;
        let mut out = Vec::with_capacity(users.len());
        let mut dead: HashMap<NodeId, Vec<&str>> = HashMap::new();
        for (user, members) in users.iter().zip(members) {
            let mut here = Vec::with_capacity(members.len());
            for m in members {
                let n = NodeId(m);
                if live.contains(&n) {
                    here.push(n);
                } else {
                    dead.entry(n).or_default().push(user);
                }
            }
            here.sort();
            out.push(here);
        }
        for (node, users) in dead {
            // Best effort: a failed clean-up is retried by the next reader.
            if let Err(e) = self.remove(&node, &users).await {
                tracing::debug!(%node, error = %e, "dropping a dead node's entries failed");
            }
        }
        Ok(out)
    }

    async fn heartbeat(&self, node: &NodeId) -> Result<Liveness, RouteError> {
        let old: Option<String> = self
            .query(
                redis::cmd("SET")
                    .arg(node_key(node))
                    .arg("1")
                    .arg("EX")
                    .arg(self.ttl.as_secs().max(1))
                    .arg("GET"),
            )
            .await?;
        self.alive
            .lock()
            .expect("liveness cache")
            .insert(node.clone(), (true, Instant::now()));
        Ok(match old {
            Some(_) => Liveness::Renewed,
            None => Liveness::Restored,
        })
    }

    async fn leave(&self, node: &NodeId) -> Result<(), RouteError> {
        self.alive.lock().expect("liveness cache").remove(node);
        self.query::<i64>(redis::cmd("DEL").arg(node_key(node)))
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests;
