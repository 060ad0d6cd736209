//! Reads: a page of a user's stream, a message's status.

use std::collections::HashMap;

use futures_util::{StreamExt, TryStreamExt, stream};
use mongodb::bson::{Document, doc};
use pushcluster_proto::api::{MessageStatus, RecipientState, RecipientStatus};
use pushcluster_proto::delivery::now_ms;

use super::docs::Msg;
use super::{MongoStore, PARALLEL_READS, Server, backend, get_str, get_u64, ms};
use crate::{Payload, Pending, PendingPage, Result};

/// Up to `limit` of `user`'s unexpired messages with `seq > after`, in seq order.
///
/// `high_seq` is the end of the run of consecutive seqs from `after` that the read found
/// (expired or purged rows count: they are final): rows of concurrent batches are written
/// out of seq order, and another collect node may still write a seq below the highest, so a
/// missing seq may be one being stored. A push node holds what follows it for a while.
pub(super) async fn page(
    s: &MongoStore,
    user: &str,
    after: u64,
    limit: usize,
) -> Result<PendingPage> {
    let now = now_ms();
    let mut rows = Vec::new();
    if limit > 0 {
        let mut cursor = s
            .rows
            .find(doc! {"u": user, "s": {"$gt": ms(after)}})
            .sort(doc! {"s": 1})
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .projection(doc! {"s": 1, "m": 1, "c": 1, "e": 1, "p": 1})
            .await
            .map_err(backend)?;
        while let Some(d) = cursor.try_next().await.map_err(backend)? {
            rows.push(d);
        }
    }
    // Rows without their payload (messages to many users) read it from `msgs`.
    let wanted: Vec<String> = rows
        .iter()
        .filter(|r| !r.contains_key("p"))
        .map(|r| get_str(r, "m").map(str::to_owned))
        .collect::<Result<_>>()?;
    let mut payloads = payloads(s, &wanted).await?;
    let mut items = Vec::with_capacity(rows.len());
    for r in &rows {
        let expires_at_ms = get_u64(r, "e")?;
        let id = get_str(r, "m")?;
        let payload = match r.get_str("p") {
            Ok(p) => Payload::trusted(p),
            // Purged since the row was read: nothing to send (as redb).
            Err(_) => match payloads.remove(id) {
                Some(p) => p,
                None => continue,
            },
        };
        if expires_at_ms <= now {
            continue;
        }
        items.push(Pending {
            id: id.to_owned(),
            seq: get_u64(r, "s")?,
            payload,
            created_at_ms: get_u64(r, "c")?,
            expires_at_ms,
        });
    }
    let seqs: Vec<u64> = rows
        .iter()
        .map(|r| get_u64(r, "s"))
        .collect::<Result<_>>()?;
    let high_seq = run_end(after, &seqs);
    Ok(PendingPage { items, high_seq })
}

/// The end of the run of consecutive seqs from `after` in `seqs` (ascending).
fn run_end(after: u64, seqs: &[u64]) -> u64 {
    let mut end = after;
    for &s in seqs {
        if s == end + 1 {
            end = s;
        } else if s > end {
            break;
        }
    }
    end
}

/// Payloads of messages by id.
async fn payloads(s: &MongoStore, ids: &[String]) -> Result<HashMap<String, Payload>> {
    let docs = by_id(s, &s.msgs, ids, doc! {"p": 1}).await?;
    docs.iter()
        .map(|d| {
            Ok((
                get_str(d, "_id")?.to_owned(),
                Payload::trusted(get_str(d, "p")?),
            ))
        })
        .collect()
}

/// Documents of `coll` by `_id`: one `$in` on MongoDB, parallel point queries on FerretDB.
pub(super) async fn by_id(
    s: &MongoStore,
    coll: &mongodb::Collection<Document>,
    ids: &[String],
    projection: Document,
) -> Result<Vec<Document>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    match s.server().await {
        Server::Mongo => coll
            .find(doc! {"_id": {"$in": ids}})
            .projection(projection)
            .await
            .map_err(backend)?
            .try_collect()
            .await
            .map_err(backend),
        Server::Ferret => {
            let found: Vec<Option<Document>> = stream::iter(ids.to_vec())
                .map(|id| {
                    let p = projection.clone();
                    async move {
                        coll.find_one(doc! {"_id": &id})
                            .projection(p)
                            .await
                            .map_err(backend)
                    }
                })
                .buffer_unordered(PARALLEL_READS)
                .try_collect()
                .await?;
            Ok(found.into_iter().flatten().collect())
        }
    }
}

/// Recipients in `to` order, each state derived from the user's watermarks. A message
/// accepted but not yet completed (its batch's rows are being written) is read from the
/// outbox, which holds only batches not yet dispatched.
pub(super) async fn status(s: &MongoStore, id: &str) -> Result<Option<MessageStatus>> {
    let found = s
        .msgs
        .find_one(doc! {"_id": id})
        .projection(doc! {"p": 0})
        .await
        .map_err(backend)?;
    let mut d = match found {
        Some(d) => d,
        None => match in_outbox(s, id).await? {
            Some(d) => d,
            None => return Ok(None),
        },
    };
    d.insert("p", ""); // the layout wants one; status does not read it
    let m = Msg::from_doc(&d)?.stored;
    let users: Vec<String> = m.recipients.iter().map(|(u, _)| u.clone()).collect();
    let marks = super::marks::read_many(s, &users).await?;
    let now = now_ms();
    let recipients = m
        .recipients
        .into_iter()
        .map(|(user, seq)| {
            let (acked, delivered) = marks.get(&user).copied().unwrap_or_default();
            let state = RecipientState::derive(seq, acked, delivered, m.expires_at_ms, now);
            RecipientStatus { user, seq, state }
        })
        .collect();
    Ok(Some(MessageStatus {
        id: id.to_owned(),
        created_at_ms: m.created_at_ms,
        expires_at_ms: m.expires_at_ms,
        recipients,
        mobile: super::devices::records(s, id).await?,
    }))
}

/// The message `id` as the outbox holds it, if its batch is still there.
async fn in_outbox(s: &MongoStore, id: &str) -> Result<Option<Document>> {
    let Some(batch) = s
        .outbox
        .find_one(doc! {"m._id": id})
        .await
        .map_err(backend)?
    else {
        return Ok(None);
    };
    let msgs = batch.get_array("m").map_err(|_| {
        crate::Error::Corrupt(format!("messages of outbox batch {:?}", batch.get("_id")))
    })?;
    Ok(msgs.iter().find_map(|m| match m {
        mongodb::bson::Bson::Document(m) if m.get_str("_id") == Ok(id) => Some(m.clone()),
        _ => None,
    }))
}

#[cfg(test)]
mod tests {
    use super::run_end;

    #[test]
    fn the_bound_stops_at_the_first_missing_seq() {
        assert_eq!(run_end(4, &[]), 4);
        assert_eq!(run_end(4, &[5, 6, 7]), 7);
        assert_eq!(run_end(4, &[5, 7, 8]), 5, "6 may still be being written");
        assert_eq!(run_end(4, &[6, 7]), 4);
    }
}
