//! [`Router`]: picks the sender of a device's vendor by its `platform`. A platform without a
//! sender on this server is refused without a request (`PlatformNotConfigured`), so the
//! record says why the device got nothing.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use pushcluster_proto::api::Platform;

use crate::sender::{MobileRequest, MobileResult, MobileSender};

/// A [`MobileSender`] per platform.
#[derive(Clone, Default)]
pub struct Router {
    senders: BTreeMap<Platform, Arc<dyn MobileSender>>,
}

impl Router {
    /// Sends `platform`'s devices through `sender`.
    pub fn with(mut self, platform: Platform, sender: Arc<dyn MobileSender>) -> Router {
        self.senders.insert(platform, sender);
        self
    }

    /// The platforms with a sender.
    pub fn platforms(&self) -> Vec<Platform> {
        self.senders.keys().copied().collect()
    }

    pub fn is_empty(&self) -> bool {
        self.senders.is_empty()
    }
}

#[async_trait]
impl MobileSender for Router {
    async fn send(&self, req: &MobileRequest) -> MobileResult {
        match self.senders.get(&req.device.platform) {
            Some(sender) => sender.send(req).await,
            None => MobileResult::refused(format!(
                "PlatformNotConfigured: this server sends no {} notifications",
                req.device.platform.as_str()
            )),
        }
    }
}
