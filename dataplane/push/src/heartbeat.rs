//! The node's liveness in the route table, and recovery when the table lost its entries.

use std::sync::Arc;
use std::time::Duration;

use pushcluster_routing::Liveness;
use pushcluster_server::Shutdown;

use crate::Hub;

/// Renews this node's liveness every `every`. When the table says the key was gone (a
/// Redis that restarted empty), this node's users are written again in one batch and every
/// connection re-reads the store: messages may have been dispatched while they were
/// unroutable.
pub async fn heartbeat(hub: Arc<Hub>, every: Duration, shutdown: Shutdown) {
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(100)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait() => return,
        }
        if hub.is_draining() {
            return;
        }
        beat(&hub).await;
    }
}

/// One renewal (also run once before a node serves, so its first routes are live).
pub async fn beat(hub: &Hub) {
    match hub.routes().heartbeat(hub.node()).await {
        Ok(Liveness::Renewed) => hub.heartbeat_ok(),
        Ok(Liveness::Restored) => {
            let users = hub.user_names();
            if users.is_empty() {
                return hub.heartbeat_ok();
            }
            let refs: Vec<&str> = users.iter().map(String::as_str).collect();
            match hub.routes().add(hub.node(), &refs).await {
                Ok(()) => {
                    tracing::info!(
                        users = users.len(),
                        "routes restored; resyncing their connections"
                    );
                    hub.resync(&users);
                    hub.heartbeat_ok();
                }
                Err(e) => {
                    tracing::warn!(error = %e, users = users.len(), "restoring routes failed");
                    hub.set_degraded();
                }
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "route heartbeat failed");
            hub.set_degraded();
        }
    }
}
