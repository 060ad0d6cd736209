//! The dispatch role's gRPC service (collect → dispatch), and the client collect uses.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use pushcluster_proto::api::{Mobile, Notification};
use pushcluster_proto::grpc::dispatch_client::DispatchClient;
use pushcluster_proto::grpc::dispatch_server::Dispatch;
use pushcluster_proto::grpc::{DispatchRequest, DispatchResponse, Recipient};
use pushcluster_server::grpc::{InternalChannel, InternalClient};
use pushcluster_store::StoredMessage;
use serde_json::value::RawValue;
use tonic::transport::Endpoint;
use tonic::{Request, Response, Status};

use crate::{DispatchReport, Dispatcher};

/// Where collect hands a stored message: the in-process [`Dispatcher`] (standalone) or the
/// dispatch role over gRPC (cluster). A failed handoff loses nothing: the message is stored and
/// pending, and reaches the user on (re)connect.
#[async_trait]
pub trait Handoff: Send + Sync + 'static {
    async fn handoff(&self, msg: &StoredMessage) -> DispatchReport;
}

#[async_trait]
impl Handoff for Dispatcher {
    async fn handoff(&self, msg: &StoredMessage) -> DispatchReport {
        self.dispatch(msg).await
    }
}

/// The `Dispatch` gRPC service.
pub struct DispatchService {
    pub dispatcher: Dispatcher,
}

#[tonic::async_trait]
impl Dispatch for DispatchService {
    async fn dispatch(
        &self,
        req: Request<DispatchRequest>,
    ) -> Result<Response<DispatchResponse>, Status> {
        let r = req.into_inner();
        let payload = RawValue::from_string(r.payload)
            .map_err(|e| Status::invalid_argument(format!("payload is not JSON: {e}")))?;
        let notification = match r.notification.as_str() {
            "" => None,
            json => Some(Arc::new(
                serde_json::from_str::<Notification>(json).map_err(|e| {
                    Status::invalid_argument(format!("notification is not valid: {e}"))
                })?,
            )),
        };
        let mobile = match r.mobile.as_str() {
            "" => Mobile::default(),
            m => Mobile::parse(m)
                .ok_or_else(|| Status::invalid_argument(format!("unknown mobile policy {m:?}")))?,
        };
        let msg = StoredMessage {
            id: r.id,
            payload: Arc::from(payload),
            created_at_ms: r.created_at_ms,
            expires_at_ms: r.expires_at_ms,
            recipients: r.recipients.into_iter().map(|x| (x.user, x.seq)).collect(),
            notification,
            mobile,
        };
        let report = self.dispatcher.dispatch(&msg).await;
        Ok(Response::new(DispatchResponse {
            forwarded: report.forwarded as u32,
            offline: report.offline as u32,
            failed: report.failed as u32,
            mobile: report.mobile as u32,
        }))
    }
}

/// Hands messages to the dispatch role over gRPC (internal token, mutual TLS when configured).
pub struct RemoteDispatch {
    /// One client per address; calls take turns, and a retry goes to the next address.
    clients: Vec<DispatchClient<InternalChannel>>,
    next: AtomicUsize,
}

impl RemoteDispatch {
    /// `addrs` like `http://dispatch:7002`, or several separated by commas (balanced);
    /// connects lazily, reconnects by itself.
    pub fn new(internal: &InternalClient, addrs: &str) -> Result<Self, String> {
        let mut clients = Vec::new();
        for addr in addrs.split(',').map(str::trim).filter(|a| !a.is_empty()) {
            let endpoint = Endpoint::from_shared(addr.to_owned())
                .map_err(|e| format!("bad dispatch address {addr}: {e}"))?
                .connect_timeout(Duration::from_secs(2))
                .timeout(Duration::from_secs(30));
            let channel = internal
                .connect_lazy(endpoint, None)
                .map_err(|e| format!("bad dispatch address {addr}: {e}"))?;
            clients.push(DispatchClient::new(channel));
        }
        if clients.is_empty() {
            return Err("no dispatch address".into());
        }
        Ok(RemoteDispatch {
            clients,
            next: AtomicUsize::new(0),
        })
    }
}

#[async_trait]
impl Handoff for RemoteDispatch {
    async fn handoff(&self, msg: &StoredMessage) -> DispatchReport {
        let req = DispatchRequest {
            id: msg.id.clone(),
            payload: msg.payload.get().to_owned(),
            created_at_ms: msg.created_at_ms,
            expires_at_ms: msg.expires_at_ms,
            recipients: msg
                .recipients
                .iter()
                .map(|(user, seq)| Recipient {
                    user: user.clone(),
                    seq: *seq,
                })
                .collect(),
            notification: msg
                .notification
                .as_deref()
                .and_then(|n| serde_json::to_string(n).ok())
                .unwrap_or_default(),
            mobile: msg.mobile.as_str().to_owned(),
        };
        let mut delay = Duration::from_millis(100);
        let first = self.next.fetch_add(1, Ordering::Relaxed);
        for attempt in 1..=4 {
            let mut client = self.clients[(first + attempt) % self.clients.len()].clone();
            match client.dispatch(req.clone()).await {
                Ok(r) => {
                    let r = r.into_inner();
                    return DispatchReport {
                        forwarded: r.forwarded as usize,
                        offline: r.offline as usize,
                        failed: r.failed as usize,
                        mobile: r.mobile as usize,
                    };
                }
                Err(status) => {
                    tracing::warn!(id = %msg.id, attempt, error = %status, "handoff to dispatch failed");
                    tokio::time::sleep(delay).await;
                    delay *= 3;
                }
            }
        }
        DispatchReport {
            failed: msg.recipients.len(),
            ..DispatchReport::default()
        }
    }
}
