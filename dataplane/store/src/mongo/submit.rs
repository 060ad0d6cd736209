//! Submit: the message, per-user seq allocation, the deliveries, idempotency.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{StreamExt, TryStreamExt, stream};
use mongodb::bson::{Bson, Document, doc};
use mongodb::options::ReturnDocument;
use pushcluster_proto::api::{NewMessage, RecipientState};
use pushcluster_proto::delivery::now_ms;

use super::{
    MongoStore, backend, delivery_id, get_str, get_u64, is_duplicate_key, ms, purge_at, state_code,
};
use crate::{Error, Result, StoredMessage, Submitted, new_message_id};

/// Recipients whose seq allocation and delivery insert run at once, per submit.
const PARALLEL_RECIPIENTS: usize = 32;
/// Attempts at one seq allocation or delivery insert before giving up (contention).
const MAX_ATTEMPTS: usize = 1000;
/// How long a duplicate waits for a younger message's own submit to finish its deliveries
/// before completing them itself.
const SETTLE: Duration = Duration::from_secs(2);

pub(super) async fn submit(s: &MongoStore, msg: NewMessage) -> Result<Submitted> {
    let id = new_message_id();
    let created_at_ms = now_ms();
    let expires_at_ms = created_at_ms.saturating_add(msg.ttl_secs.saturating_mul(1000));
    let mut seen = HashSet::with_capacity(msg.to.len());
    let to: Vec<String> = msg
        .to
        .into_iter()
        .filter(|u| seen.insert(u.clone()))
        .collect();
    let mut message = doc! {
        "_id": &id,
        "payload": msg.payload.get(),
        "created_at": ms(created_at_ms),
        "expires_at": ms(expires_at_ms),
        "to": &to,
        "purge_at": purge_at(expires_at_ms),
    };
    if let Some(key) = &msg.idempotency_key {
        message.insert("idempotency_key", key);
    }
    if let Some(n) = &msg.notification {
        let json = serde_json::to_string(n).map_err(|e| Error::Backend(Box::new(e)))?;
        message.insert("notification", json);
    }
    message.insert("mobile", msg.mobile.as_str());
    // The message first: with a key, this insert is the atomic claim of the key.
    match s.messages.insert_one(message).await {
        Ok(_) => {}
        Err(e) if is_duplicate_key(&e) => match &msg.idempotency_key {
            Some(key) => return duplicate(s, key).await,
            None => return Err(backend(e)),
        },
        Err(e) => return Err(backend(e)),
    }
    let seqs = deliver_all(s, &id, &to, expires_at_ms).await?;
    Ok(Submitted::New(StoredMessage {
        id,
        payload: Arc::from(msg.payload),
        created_at_ms,
        expires_at_ms,
        recipients: to.into_iter().zip(seqs).collect(),
        notification: msg.notification.map(Arc::new),
        mobile: msg.mobile,
    }))
}

/// The key is taken: answer with the message holding it, after completing its deliveries in
/// case its submit stopped half-way (that submit's client got no 202; this may be its retry).
/// A young message's own submit is probably still running: it gets [`SETTLE`] to finish
/// first, so that the two do not both allocate seqs for one recipient.
async fn duplicate(s: &MongoStore, key: &str) -> Result<Submitted> {
    let Some(m) = s
        .messages
        .find_one(doc! {"idempotency_key": key})
        .projection(doc! {"payload": 0})
        .await
        .map_err(backend)?
    else {
        // Purged between the two steps: the caller's retry stores it anew.
        let e = format!("idempotency key {key:?} was released while in use; retry");
        return Err(Error::Backend(e.into()));
    };
    let id = get_str(&m, "_id")?.to_owned();
    let settled_at = get_u64(&m, "created_at")?.saturating_add(SETTLE.as_millis() as u64);
    let waiting = Instant::now(); // also bounds the wait if the clocks disagree
    loop {
        let missing = missing_deliveries(s, &id, &m).await?;
        if missing.is_empty() {
            break;
        }
        if now_ms() < settled_at && waiting.elapsed() < SETTLE {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        tracing::info!(%id, missing = missing.len(), "completing a half-stored message");
        deliver_all(s, &id, &missing, get_u64(&m, "expires_at")?).await?;
        break;
    }
    Ok(Submitted::Duplicate { id })
}

/// The recipients of message `m` that have no delivery yet.
async fn missing_deliveries(s: &MongoStore, id: &str, m: &Document) -> Result<Vec<String>> {
    let mut cursor = s
        .deliveries
        .find(doc! {"msg": id})
        .projection(doc! {"user": 1})
        .await
        .map_err(backend)?;
    let mut done = HashSet::new();
    while cursor.advance().await.map_err(backend)? {
        let d = cursor.deserialize_current().map_err(backend)?;
        done.insert(get_str(&d, "user")?.to_owned());
    }
    let to = m
        .get_array("to")
        .map_err(|e| Error::Corrupt(format!("recipients of message {id}: {e}")))?;
    let mut missing = Vec::new();
    for user in to {
        let Bson::String(user) = user else {
            return Err(Error::Corrupt(format!("recipient {user} of message {id}")));
        };
        if !done.contains(user) {
            missing.push(user.clone());
        }
    }
    Ok(missing)
}

/// The seqs of `users`' deliveries of message `id`, in order.
async fn deliver_all(
    s: &MongoStore,
    id: &str,
    users: &[String],
    expires_at_ms: u64,
) -> Result<Vec<u64>> {
    // Owned users: a closure over `&String` trips the `Send` check of `#[async_trait]`
    // futures (higher-ranked lifetimes).
    stream::iter(users.iter().cloned())
        .map(|user| async move { deliver_to(s, id, &user, expires_at_ms).await })
        .buffered(PARALLEL_RECIPIENTS)
        .try_collect()
        .await
}

/// Allocates `user`'s next seq and inserts the delivery under it; returns the seq.
///
/// A duplicate key on the insert means one of two things:
/// - this delivery exists already (a duplicate completing the message concurrently): its
///   seq stands, and ours is given back if nothing was allocated after it;
/// - another message has this seq. Never on MongoDB, where `$inc` is atomic, but FerretDB
///   applies updates as unisolated read-modify-write and can hand one seq out twice; the
///   unique `(user, seq)` index catches it and we allocate again. Every value the counter
///   takes is handed out, and each holder inserts it or sees it taken: no gaps either way.
async fn deliver_to(s: &MongoStore, id: &str, user: &str, expires_at_ms: u64) -> Result<u64> {
    let key = delivery_id(id, user);
    for _ in 0..MAX_ATTEMPTS {
        let seq = next_seq(s, user).await?;
        let delivery = doc! {
            "_id": &key,
            "msg": id,
            "user": user,
            "seq": ms(seq),
            "state": state_code(RecipientState::Pending),
            "expires_at": ms(expires_at_ms),
            "purge_at": purge_at(expires_at_ms),
        };
        match s.deliveries.insert_one(delivery).await {
            Ok(_) => return Ok(seq),
            Err(e) if is_duplicate_key(&e) => {
                let existing = s
                    .deliveries
                    .find_one(doc! {"_id": &key})
                    .await
                    .map_err(backend)?;
                if let Some(d) = existing {
                    let back = doc! {"$inc": {"seq": -1_i64}};
                    s.user_seq
                        .update_one(doc! {"_id": user, "seq": ms(seq)}, back)
                        .await
                        .map_err(backend)?;
                    return get_u64(&d, "seq");
                }
            }
            Err(e) => return Err(backend(e)),
        }
    }
    let e = format!("no free seq for user {user:?} after {MAX_ATTEMPTS} attempts");
    Err(Error::Backend(e.into()))
}

/// Bumps `user`'s counter and returns the new value.
pub(super) async fn next_seq(s: &MongoStore, user: &str) -> Result<u64> {
    for _ in 0..MAX_ATTEMPTS {
        let r = s
            .user_seq
            .find_one_and_update(doc! {"_id": user}, doc! {"$inc": {"seq": 1_i64}})
            .upsert(true)
            .return_document(ReturnDocument::After)
            .await;
        match r {
            Ok(Some(d)) => return get_u64(&d, "seq"),
            Ok(None) => break,
            // Two first upserts for one user raced (MongoDB retries these itself): the counter
            // exists now, so the next attempt updates it.
            Err(e) if is_duplicate_key(&e) => continue,
            Err(e) => return Err(backend(e)),
        }
    }
    Err(Error::Backend(
        format!("the seq counter of {user:?} did not update").into(),
    ))
}
