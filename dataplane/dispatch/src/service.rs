//! The dispatch role's gRPC service: `Wake` names outbox batches to dispatch now.

use pushcluster_proto::grpc::dispatch_server::Dispatch;
use pushcluster_proto::grpc::{WakeRequest, WakeResponse};
use pushcluster_store::BatchId;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

use crate::worker::Work;

/// Most batch ids one `Wake` may name.
pub const MAX_WAKE_BATCHES: usize = 4096;
/// Longest batch id accepted (ids are UUIDs).
const MAX_ID_BYTES: usize = 64;

/// The `Dispatch` gRPC service, feeding the outbox worker.
pub struct DispatchService {
    pub work: mpsc::Sender<Work>,
}

#[tonic::async_trait]
impl Dispatch for DispatchService {
    async fn wake(&self, req: Request<WakeRequest>) -> Result<Response<WakeResponse>, Status> {
        let ids = req.into_inner().batches;
        if ids.len() > MAX_WAKE_BATCHES {
            return Err(Status::invalid_argument(format!(
                "at most {MAX_WAKE_BATCHES} batches per call"
            )));
        }
        if ids
            .iter()
            .any(|id| id.is_empty() || id.len() > MAX_ID_BYTES)
        {
            return Err(Status::invalid_argument("a batch id is empty or too long"));
        }
        let n = ids.len() as u32;
        let queued = match self
            .work
            .try_send(Work::Ids(ids.into_iter().map(BatchId).collect()))
        {
            Ok(()) => n,
            // Full: the batches are dispatched when their lease runs out.
            Err(_) => 0,
        };
        Ok(Response::new(WakeResponse { queued }))
    }
}
