//! The route table: which push nodes hold a user's connections.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use pushcluster_proto::delivery::NodeId;

pub mod redis;

#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("route table unavailable: {0}")]
    Unavailable(String),
}

/// user → nodes. A user may be connected to several nodes (several devices).
#[async_trait]
pub trait RouteTable: Send + Sync + 'static {
    /// Records that `node` holds at least one connection of `user` (idempotent; refreshes).
    async fn add(&self, user: &str, node: &NodeId) -> Result<(), RouteError>;
    /// Removes `node`'s entry for `user` only (compare-and-delete: other nodes' entries stay).
    async fn remove(&self, user: &str, node: &NodeId) -> Result<(), RouteError>;
    /// The nodes holding `user`, possibly empty.
    async fn lookup(&self, user: &str) -> Result<Vec<NodeId>, RouteError>;
}

/// The in-process route table of `pushd standalone`.
#[derive(Default)]
pub struct MemoryRouteTable {
    routes: Mutex<HashMap<String, BTreeSet<NodeId>>>,
}

#[async_trait]
impl RouteTable for MemoryRouteTable {
    async fn add(&self, user: &str, node: &NodeId) -> Result<(), RouteError> {
        let mut routes = self.routes.lock().expect("route table lock");
        routes
            .entry(user.to_owned())
            .or_default()
            .insert(node.clone());
        Ok(())
    }

    async fn remove(&self, user: &str, node: &NodeId) -> Result<(), RouteError> {
        let mut routes = self.routes.lock().expect("route table lock");
        if let Some(nodes) = routes.get_mut(user) {
            nodes.remove(node);
            if nodes.is_empty() {
                routes.remove(user);
            }
        }
        Ok(())
    }

    async fn lookup(&self, user: &str) -> Result<Vec<NodeId>, RouteError> {
        let routes = self.routes.lock().expect("route table lock");
        Ok(routes
            .get(user)
            .map(|n| n.iter().cloned().collect())
            .unwrap_or_default())
    }
}
