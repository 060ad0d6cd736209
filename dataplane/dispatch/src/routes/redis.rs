//! The route table in Redis (standalone or Redis Cluster).
//!
//! One sorted set per user, `pc:route:{<user>}`: members are node ids, scores the time (unix
//! ms) until which the entry is valid. The braces are a hash tag, so each user's key lives in
//! one cluster slot. A push node `add`s on connect and renews its users by heartbeat
//! ([`RedisRouteTable::refresh`]); an entry whose node stopped renewing expires by score, and
//! the whole key by `PEXPIRE`. `remove` is `ZREM` of this node's member only, so a user's
//! entries on other nodes are never touched (compare-and-delete by construction).

use std::time::Duration;

use async_trait::async_trait;
use pushcluster_proto::delivery::{NodeId, now_ms};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;

use super::{RouteError, RouteTable};

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
}

fn key(user: &str) -> String {
    format!("pc:route:{{{user}}}")
}

fn unavailable(e: redis::RedisError) -> RouteError {
    RouteError::Unavailable(e.to_string())
}

impl RedisRouteTable {
    /// Connects; route entries live for `ttl` unless renewed.
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
        Ok(RedisRouteTable { conn, ttl })
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, RouteError> {
        match self.conn.clone() {
            Conn::Single(mut c) => cmd.query_async(&mut c).await.map_err(unavailable),
            Conn::Cluster(mut c) => cmd.query_async(&mut c).await.map_err(unavailable),
        }
    }

    async fn pipe<T: redis::FromRedisValue>(
        &self,
        pipe: &redis::Pipeline,
    ) -> Result<T, RouteError> {
        match self.conn.clone() {
            Conn::Single(mut c) => pipe.query_async(&mut c).await.map_err(unavailable),
            Conn::Cluster(mut c) => pipe.query_async(&mut c).await.map_err(unavailable),
        }
    }

    /// Writes (or renews) `node`'s entry for `user`, and drops expired entries of other nodes.
    /// Returns true when the entry was missing (new, expired, or lost in a Redis restart).
    async fn upsert(&self, user: &str, node: &NodeId) -> Result<bool, RouteError> {
        let now = now_ms();
        let k = key(user);
        let mut p = redis::pipe();
        p.atomic()
            .zrembyscore(&k, "-inf", now)
            .ignore()
            .zadd(&k, &node.0, now + self.ttl.as_millis() as u64)
            .pexpire(&k, self.ttl.as_millis() as i64)
            .ignore();
        let (added,): (i64,) = self.pipe(&p).await?;
        Ok(added > 0)
    }

    /// Renews `node`'s entries for `users` (the heartbeat).
    pub async fn refresh(&self, users: &[String], node: &NodeId) -> Refresh {
        let mut out = Refresh::default();
        for chunk in users.chunks(256) {
            let results =
                futures_util::future::join_all(chunk.iter().map(|u| self.upsert(u, node))).await;
            for (user, r) in chunk.iter().zip(results) {
                match r {
                    Ok(true) => out.restored.push(user.clone()),
                    Ok(false) => {}
                    Err(_) => out.failed += 1,
                }
            }
        }
        out
    }

    /// Route entry lifetime.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}

/// Outcome of a heartbeat.
#[derive(Debug, Default)]
pub struct Refresh {
    /// Users whose entry could not be written.
    pub failed: usize,
    /// Users whose entry was missing and has been written again: messages may have been
    /// stored for them while they were unroutable.
    pub restored: Vec<String>,
}

#[async_trait]
impl RouteTable for RedisRouteTable {
    async fn add(&self, user: &str, node: &NodeId) -> Result<(), RouteError> {
        self.upsert(user, node).await.map(|_| ())
    }

    async fn remove(&self, user: &str, node: &NodeId) -> Result<(), RouteError> {
        self.query::<i64>(redis::cmd("ZREM").arg(key(user)).arg(&node.0))
            .await
            .map(|_| ())
    }

    async fn lookup(&self, user: &str) -> Result<Vec<NodeId>, RouteError> {
        let nodes: Vec<String> = self
            .query(
                redis::cmd("ZRANGEBYSCORE")
                    .arg(key(user))
                    .arg(now_ms())
                    .arg("+inf"),
            )
            .await?;
        Ok(nodes.into_iter().map(NodeId).collect())
    }
}

#[cfg(test)]
mod tests;
