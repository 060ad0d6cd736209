//! Batching: the notifications of one message to Huawei devices (one per device, all with
//! the same payload) that arrive within the linger share one request of up to
//! [`MAX_BATCH`](super::MAX_BATCH) tokens. Each keeps its own claim, record and budget:
//! the retry driver sends only the tokens still open, so after a partial success the
//! accepted ones are never sent again.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use pushcluster_proto::api::MobileState;
use tokio::sync::oneshot;

use super::{HmsSender, VENDOR, message};
use crate::retry::{Attempt, Verdict, drive};
use crate::sender::{MobileRequest, MobileResult};
use crate::token::Used;

/// One notification waiting for its batch's result.
struct Waiting {
    req: MobileRequest,
    done: oneshot::Sender<MobileResult>,
}

/// Open batches by message id.
#[derive(Default)]
pub(crate) struct Batches(Mutex<HashMap<String, Vec<Waiting>>>);

impl Batches {
    fn take(&self, message_id: &str) -> Vec<Waiting> {
        let mut open = self.0.lock().unwrap_or_else(|e| e.into_inner());
        open.remove(message_id).unwrap_or_default()
    }
}

/// Adds `req` to its message's batch and waits for its result.
pub(crate) async fn enqueue(sender: &HmsSender, req: MobileRequest) -> MobileResult {
    let inner = &sender.inner;
    let (done, result) = oneshot::channel();
    let id = req.message_id.clone();
    let (first, full) = {
        let mut open = inner.batches.0.lock().unwrap_or_else(|e| e.into_inner());
        let batch = open.entry(id.clone()).or_default();
        batch.push(Waiting { req, done });
        let full = batch.len() >= inner.config.max_batch.max(1);
        (batch.len() == 1, full.then(|| open.remove(&id)).flatten())
    };
    if let Some(batch) = full {
        tokio::spawn(flush(sender.clone(), batch));
    } else if first {
        let sender = sender.clone();
        tokio::spawn(async move {
            tokio::time::sleep(sender.inner.config.linger).await;
            let batch = sender.inner.batches.take(&id);
            if !batch.is_empty() {
                flush(sender, batch).await;
            }
        });
    }
    result.await.unwrap_or_else(|_| MobileResult {
        // The batch task ended without a result (shutdown, panic): it may have been sent.
        state: MobileState::Unknown,
        reason: Some("the Huawei batch ended without a result".into()),
        attempts: 0,
        vendor_id: None,
        unregistered_at_ms: None,
        retry_after: None,
    })
}

/// One batch's requests.
struct Batch<'a> {
    sender: &'a HmsSender,
    reqs: Vec<MobileRequest>,
    used: Used,
}

#[async_trait]
impl Attempt for Batch<'_> {
    async fn attempt(&self, open: &[usize]) -> Vec<Verdict> {
        let inner = &*self.sender.inner;
        let all = |v: Verdict| vec![v; open.len()];
        let token = match self.sender.token().await {
            Ok(t) => t,
            Err(e) => return all(e.verdict()),
        };
        self.used.set(&token);
        let tokens: Vec<&str> = open
            .iter()
            .map(|&i| self.reqs[i].device.token.as_str())
            .collect();
        let body = match message::body(&self.reqs[open[0]], &tokens) {
            Ok(b) => b,
            Err(reason) => {
                return all(Verdict::Rejected {
                    reason,
                    dead: false,
                });
            }
        };
        let bearer = format!("Bearer {}", token.expose());
        let auth = Some(("authorization", bearer.as_str()));
        inner
            .client
            .request(
                &inner.send_url,
                "application/json",
                auth,
                body,
                all,
                |s, h, b| message::classify(s, h, b, &tokens),
            )
            .await
    }

    async fn auth_refused(&self) {
        self.used.refused(&self.sender.inner.tokens).await;
    }
}

/// Sends a batch and hands each notification its result.
async fn flush(sender: HmsSender, batch: Vec<Waiting>) {
    let (reqs, done): (Vec<MobileRequest>, Vec<_>) =
        batch.into_iter().map(|w| (w.req, w.done)).unzip();
    let n = reqs.len();
    let attempt = Batch {
        sender: &sender,
        reqs,
        used: Used::default(),
    };
    let inner = &*sender.inner;
    let results = drive(
        VENDOR,
        &inner.config.direct.retry,
        &inner.metrics,
        n,
        &attempt,
    )
    .await;
    let accepted = results
        .iter()
        .filter(|r| r.state == MobileState::Accepted)
        .count();
    tracing::debug!(tokens = n, accepted, "Huawei batch");
    for (tx, result) in done.into_iter().zip(results) {
        let _ = tx.send(result);
    }
}
