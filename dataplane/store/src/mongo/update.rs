//! Recipient state changes: delivered, ack, expiry (and purge).

use mongodb::bson::{DateTime, doc};
use pushcluster_proto::api::RecipientState;

use super::{MongoStore, backend, delivery_id, get_state, ms, state_code, unfinished};
use crate::{AckOutcome, Result};

/// Buffered like redb: the status is advisory, so the socket writer does not wait for it.
pub(super) fn mark_delivered(s: &MongoStore, id: &str, user: &str) {
    let Ok(permit) = s.delivered_slots.clone().try_acquire_owned() else {
        tracing::debug!(%id, %user, "too many delivered updates in flight; skipping one");
        return;
    };
    let deliveries = s.deliveries.clone();
    let filter = doc! {
        "_id": delivery_id(id, user),
        "state": state_code(RecipientState::Pending),
    };
    tokio::spawn(async move {
        let set = doc! {"$set": {"state": state_code(RecipientState::Delivered)}};
        if let Err(e) = deliveries.update_one(filter, set).await {
            tracing::debug!(error = %e, "recording a delivery failed");
        }
        drop(permit);
    });
}

pub(super) async fn ack(s: &MongoStore, user: &str, id: &str) -> Result<AckOutcome> {
    let key = delivery_id(id, user);
    let r = s
        .deliveries
        .update_one(
            doc! {"_id": &key, "state": unfinished()},
            doc! {"$set": {"state": state_code(RecipientState::Acked)}},
        )
        .await
        .map_err(backend)?;
    if r.matched_count > 0 {
        return Ok(AckOutcome::Acked);
    }
    let existing = s
        .deliveries
        .find_one(doc! {"_id": &key})
        .await
        .map_err(backend)?;
    match existing {
        None => Ok(AckOutcome::Unknown),
        Some(d) => {
            get_state(&d)?; // anything but a valid state is corruption, not "final"
            Ok(AckOutcome::AlreadyFinal)
        }
    }
}

/// Marks the unfinished deliveries of messages expired at `now_ms` expired, and purges what
/// the TTL index would have (so servers without TTL indexes behave the same).
pub(super) async fn expire(s: &MongoStore, now_ms: u64) -> Result<u64> {
    let r = s
        .deliveries
        .update_many(
            doc! {"state": unfinished(), "expires_at": {"$lte": ms(now_ms)}},
            doc! {"$set": {"state": state_code(RecipientState::Expired)}},
        )
        .await
        .map_err(backend)?;
    let due = doc! {"purge_at": {"$lte": DateTime::from_millis(ms(now_ms))}};
    // Deliveries first: a delivery never outlives its message for long.
    s.deliveries
        .delete_many(due.clone())
        .await
        .map_err(backend)?;
    s.mobile.delete_many(due.clone()).await.map_err(backend)?;
    s.messages.delete_many(due).await.map_err(backend)?;
    Ok(r.modified_count)
}
