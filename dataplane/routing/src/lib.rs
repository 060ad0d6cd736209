//! Routing: which push nodes hold a user's connections.
//!
//! - [`RouteTable`]: user → nodes, written by a push node when a user's first connection to
//!   it opens and removed when the last one closes; looked up by dispatch in batches (one
//!   round trip per batch). Each push node also keeps a **liveness** key alive; entries of a
//!   node whose liveness is gone are treated as gone (and cleaned by the reader). So the
//!   steady-state cost is O(nodes), not O(users): nothing is renewed per user.
//! - [`MemoryRouteTable`]: `pushd standalone`'s in-process table.
//! - [`redis`]: the cluster's table on Redis (standalone or Redis Cluster).
#![forbid(unsafe_code)]

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
pub use pushcluster_proto::delivery::NodeId;

pub mod redis;

#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("route table unavailable: {0}")]
    Unavailable(String),
}

/// What a liveness renewal found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// The node's key was there: its entries are all in place.
    Renewed,
    /// The key was missing (first beat, or the table lost its data, e.g. Redis restarted
    /// empty): the node must write its users' entries again and resync its connections.
    Restored,
}

/// user → nodes. A user may be connected to several nodes (several devices).
#[async_trait]
pub trait RouteTable: Send + Sync + 'static {
    /// Records that `node` holds connections of each of `users` (idempotent), in one round
    /// trip per batch.
    async fn add(&self, node: &NodeId, users: &[&str]) -> Result<(), RouteError>;
    /// Removes `node`'s entries for `users` only (other nodes' entries stay), in one round
    /// trip per batch.
    async fn remove(&self, node: &NodeId, users: &[&str]) -> Result<(), RouteError>;
    /// The live nodes holding each of `users`, in order (possibly empty), in one round trip
    /// per batch (plus one for liveness of nodes not checked recently).
    async fn lookup(&self, users: &[&str]) -> Result<Vec<Vec<NodeId>>, RouteError>;
    /// Renews `node`'s liveness.
    async fn heartbeat(&self, node: &NodeId) -> Result<Liveness, RouteError>;
    /// Ends `node`'s liveness at once (a draining node, after removing its entries).
    async fn leave(&self, node: &NodeId) -> Result<(), RouteError>;
}

/// The in-process route table of `pushd standalone`.
#[derive(Default)]
pub struct MemoryRouteTable {
    routes: Mutex<HashMap<String, BTreeSet<NodeId>>>,
}

#[async_trait]
impl RouteTable for MemoryRouteTable {
    async fn add(&self, node: &NodeId, users: &[&str]) -> Result<(), RouteError> {
        let mut routes = self.routes.lock().expect("route table lock");
        for u in users {
            routes
                .entry((*u).to_owned())
                .or_default()
                .insert(node.clone());
        }
        Ok(())
    }

    async fn remove(&self, node: &NodeId, users: &[&str]) -> Result<(), RouteError> {
        let mut routes = self.routes.lock().expect("route table lock");
        for u in users {
            if let Some(nodes) = routes.get_mut(*u) {
                nodes.remove(node);
                if nodes.is_empty() {
                    routes.remove(*u);
                }
            }
        }
        Ok(())
    }

    async fn lookup(&self, users: &[&str]) -> Result<Vec<Vec<NodeId>>, RouteError> {
        let routes = self.routes.lock().expect("route table lock");
        Ok(users
            .iter()
            .map(|u| {
                routes
                    .get(*u)
                    .map(|n| n.iter().cloned().collect())
                    .unwrap_or_default()
            })
            .collect())
    }

    async fn heartbeat(&self, _node: &NodeId) -> Result<Liveness, RouteError> {
        Ok(Liveness::Renewed)
    }

    async fn leave(&self, _node: &NodeId) -> Result<(), RouteError> {
        Ok(())
    }
}

/// A user id as it appears in a key: `%`, `{` and `}` percent-encoded, so an id cannot
/// carry a Redis Cluster hash tag (`{…}` would pick the key's slot) or collide with an
/// encoded one.
pub fn key_safe(user: &str) -> std::borrow::Cow<'_, str> {
    if !user.contains(['%', '{', '}']) {
        return user.into();
    }
    let mut out = String::with_capacity(user.len() + 8);
    for c in user.chars() {
        match c {
            '%' => out.push_str("%25"),
            '{' => out.push_str("%7B"),
            '}' => out.push_str("%7D"),
            c => out.push(c),
        }
    }
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_carry_no_hash_tag_and_never_collide() {
        assert_eq!(key_safe("alice"), "alice");
        assert_eq!(key_safe("{slot}x"), "%7Bslot%7Dx");
        assert_ne!(key_safe("%7B"), key_safe("{"));
        assert!(!key_safe("a{b}c}").contains(['{', '}']));
    }

    #[tokio::test]
    async fn memory_table_adds_removes_and_looks_up_in_batches() {
        let t = MemoryRouteTable::default();
        let (a, b) = (NodeId("a".into()), NodeId("b".into()));
        t.add(&a, &["u1", "u2"]).await.unwrap();
        t.add(&b, &["u1"]).await.unwrap();
        assert_eq!(
            t.lookup(&["u1", "u2", "u3"]).await.unwrap(),
            vec![vec![a.clone(), b.clone()], vec![a.clone()], vec![]]
        );
        t.remove(&a, &["u1", "u2"]).await.unwrap();
        assert_eq!(
            t.lookup(&["u1", "u2"]).await.unwrap(),
            vec![vec![b], vec![]]
        );
    }
}
