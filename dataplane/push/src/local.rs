//! In-process transport: dispatch and push in one process (`pushd standalone`).

use std::sync::Arc;

use async_trait::async_trait;
use pushcluster_dispatch::{NodeTransport, Outcome, TransportError};
use pushcluster_proto::delivery::{Delivery, NodeId};

use crate::Hub;

/// Delivers straight into this process's [`Hub`].
pub struct LocalTransport {
    pub hub: Arc<Hub>,
}

#[async_trait]
impl NodeTransport for LocalTransport {
    async fn deliver(
        &self,
        node: &NodeId,
        batch: Vec<Delivery>,
    ) -> Result<Vec<Outcome>, TransportError> {
        if node != self.hub.node() {
            return Err(TransportError::Unreachable {
                node: node.clone(),
                reason: "standalone mode has a single node".into(),
            });
        }
        Ok(self.hub.deliver(batch).await)
    }
}
