//! In-process transport: dispatch and push in one process (`pushd standalone`).

use std::sync::Arc;

use async_trait::async_trait;

use crate::{DeliveryBatch, NodeId, NodeSink, NodeTransport, Outcome, TransportError};

/// Delivers straight into this process's node.
pub struct LocalTransport {
    pub node: NodeId,
    pub sink: Arc<dyn NodeSink>,
}

#[async_trait]
impl NodeTransport for LocalTransport {
    async fn deliver(
        &self,
        node: &NodeId,
        batch: DeliveryBatch,
    ) -> Result<Vec<Outcome>, TransportError> {
        if *node != self.node {
            return Err(TransportError::Unreachable {
                node: node.clone(),
                reason: "standalone mode has a single node".into(),
            });
        }
        Ok(self.sink.deliver(batch).await)
    }
}
