//! The dispatch role's gRPC service: `Wake` names (or carries) outbox batches to dispatch
//! now.

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

/// A batch or message id of a `Wake`: not empty, at most [`MAX_ID_BYTES`].
pub(crate) fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_BYTES
}

/// The `Dispatch` gRPC service, feeding the outbox worker.
pub struct DispatchService {
    pub work: mpsc::Sender<Work>,
}

#[tonic::async_trait]
impl Dispatch for DispatchService {
    async fn wake(&self, req: Request<WakeRequest>) -> Result<Response<WakeResponse>, Status> {
        let WakeRequest { batches, carried } = req.into_inner();
        if batches.len() + carried.len() > MAX_WAKE_BATCHES {
            return Err(Status::invalid_argument(format!(
                "at most {MAX_WAKE_BATCHES} batches per call"
            )));
        }
        if !batches.iter().all(|id| valid_id(id)) {
            return Err(Status::invalid_argument("a batch id is empty or too long"));
        }
        let whole = carried
            .into_iter()
            .map(crate::carried::decode)
            .collect::<Result<Vec<_>, String>>()
            .map_err(Status::invalid_argument)?;
        let mut queued = 0;
        for b in whole {
            // Full: the batch is dispatched when its lease runs out.
            if self.work.try_send(Work::Batch(b)).is_ok() {
                queued += 1;
            }
        }
        if !batches.is_empty() {
            let n = batches.len() as u32;
            if self
                .work
                .try_send(Work::Ids(batches.into_iter().map(BatchId).collect()))
                .is_ok()
            {
                queued += n;
            }
        }
        Ok(Response::new(WakeResponse { queued }))
    }
}
