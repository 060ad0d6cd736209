//! Reads: a user's pending page and a message's status.

use std::collections::HashMap;
use std::sync::Arc;

use mongodb::bson::{Bson, Document, doc};
use pushcluster_proto::api::{MessageStatus, RecipientStatus};
use pushcluster_proto::delivery::now_ms;
use serde_json::value::RawValue;

use super::{MongoStore, backend, get_state, get_str, get_u64, ms, unfinished};
use crate::{Error, Pending, PendingPage, Result};

/// Which of a user's deliveries a page lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scope {
    /// Not yet acked (by any of the user's devices).
    Unacked,
    /// Acked or not: a resuming device's backlog.
    All,
}

/// Up to `limit` of `user`'s unexpired deliveries in `scope` with `seq > after`, in seq order.
///
/// `high_seq` is where this differs from redb, which reads the user's counter and inbox in one
/// snapshot and returns the counter. Here a seq is allocated before its delivery is inserted,
/// and concurrent submits insert out of seq order, so no read of the counter (or count of the
/// range below it) proves that every lower seq is visible: a delivery can appear between the
/// two reads, and a push node that took it as its high-water mark would skip it. So
/// `high_seq` is the highest seq returned, or `after`; a push node whose next live message
/// is above it reads the gap again, which costs one query and loses nothing.
pub(super) async fn page(
    s: &MongoStore,
    user: &str,
    after: u64,
    limit: usize,
    scope: Scope,
) -> Result<PendingPage> {
    let now = now_ms();
    let mut rows = Vec::new();
    if limit > 0 {
        let mut filter = doc! {
            "user": user,
            "seq": {"$gt": ms(after)},
            "expires_at": {"$gt": ms(now)},
        };
        if scope == Scope::Unacked {
            filter.insert("state", unfinished());
        }
        let mut cursor = s
            .deliveries
            .find(filter)
            .sort(doc! {"seq": 1})
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .projection(doc! {"msg": 1, "seq": 1})
            .await
            .map_err(backend)?;
        while cursor.advance().await.map_err(backend)? {
            let d = cursor.deserialize_current().map_err(backend)?;
            rows.push((get_str(&d, "msg")?.to_owned(), get_u64(&d, "seq")?));
        }
    }
    let mut messages = messages_by_id(s, rows.iter().map(|(id, _)| id.as_str())).await?;
    let mut items = Vec::with_capacity(rows.len());
    for (id, seq) in &rows {
        // Purged since the delivery was read: nothing to send (as redb).
        let Some(m) = messages.remove(id) else {
            continue;
        };
        let expires_at_ms = get_u64(&m, "expires_at")?;
        if expires_at_ms <= now {
            continue;
        }
        let payload = RawValue::from_string(get_str(&m, "payload")?.to_owned())
            .map_err(|e| Error::Corrupt(format!("payload of message {id}: {e}")))?;
        items.push(Pending {
            id: id.clone(),
            seq: *seq,
            payload: Arc::from(payload),
            created_at_ms: get_u64(&m, "created_at")?,
            expires_at_ms,
        });
    }
    let seen = items.last().map_or(after, |p| p.seq.max(after));
    // Never more than was seen: between this page and any count of the counter range, a
    // concurrent submit can make a seq visible that this page did not return, and claiming
    // it would make the push node skip it. Gaps below a later live message cost one more
    // read on the push node, nothing else.
    let high_seq = seen;
    Ok(PendingPage { items, high_seq })
}

async fn messages_by_id(
    s: &MongoStore,
    ids: impl Iterator<Item = &str>,
) -> Result<HashMap<String, Document>> {
    let ids: Vec<&str> = ids.collect();
    let mut by_id = HashMap::with_capacity(ids.len());
    if ids.is_empty() {
        return Ok(by_id);
    }
    let mut cursor = s
        .messages
        .find(doc! {"_id": {"$in": ids}})
        .await
        .map_err(backend)?;
    while cursor.advance().await.map_err(backend)? {
        let d = cursor.deserialize_current().map_err(backend)?;
        by_id.insert(get_str(&d, "_id")?.to_owned(), d);
    }
    Ok(by_id)
}

/// Recipients in `to` order; a state that is not final reads as expired once the message
/// has expired, even before the sweep marks it (as redb).
pub(super) async fn status(s: &MongoStore, id: &str) -> Result<Option<MessageStatus>> {
    let Some(m) = s
        .messages
        .find_one(doc! {"_id": id})
        .projection(doc! {"payload": 0})
        .await
        .map_err(backend)?
    else {
        return Ok(None);
    };
    let expires_at_ms = get_u64(&m, "expires_at")?;
    let mut by_user = HashMap::new();
    let mut cursor = s.deliveries.find(doc! {"msg": id}).await.map_err(backend)?;
    while cursor.advance().await.map_err(backend)? {
        let d = cursor.deserialize_current().map_err(backend)?;
        let user = get_str(&d, "user")?.to_owned();
        by_user.insert(user, (get_u64(&d, "seq")?, get_state(&d)?));
    }
    let to = m
        .get_array("to")
        .map_err(|e| Error::Corrupt(format!("recipients of message {id}: {e}")))?;
    let now = now_ms();
    let mut recipients = Vec::with_capacity(to.len());
    for user in to {
        let Bson::String(user) = user else {
            return Err(Error::Corrupt(format!("recipient {user} of message {id}")));
        };
        // Not yet stored (a submit in progress or cut short): not a recipient yet (as redb).
        let Some(&(seq, state)) = by_user.get(user) else {
            continue;
        };
        recipients.push(RecipientStatus {
            user: user.clone(),
            seq,
            state: state.at(expires_at_ms, now),
        });
    }
    Ok(Some(MessageStatus {
        id: id.to_owned(),
        created_at_ms: get_u64(&m, "created_at")?,
        expires_at_ms,
        recipients,
        mobile: super::devices::records(s, id).await?,
    }))
}
