//! The outbox on MongoDB: settle a batch (its `msgs` and `rows`), hand batches out, clear
//! them.
//!
//! [`settle`] is idempotent — what exists already is skipped — so the accepting node and any
//! worker that claims the batch later may both run it. A row whose `(user, seq)` another
//! message took (two collect nodes handed out the same seq) is moved to the user's next seq:
//! the outbox document and the message are updated first, so whoever settles the batch
//! again uses the new seq.

use std::time::Duration;

use futures_util::TryStreamExt;
use mongodb::bson::{Document, doc};
use pushcluster_proto::delivery::now_ms;

use super::docs::Msg;
use super::submit::load_users;
use super::{MongoStore, backend, get_str, get_u64, ms};
use crate::{BatchId, Error, OutboxBatch, Result};

/// Attempts at one step of settling before the batch is left to a later claim.
const ATTEMPTS: u32 = 3;
/// Attempts at moving one conflicting row before giving up (heavy contention on one user).
const MAX_MOVES: u32 = 100;

/// Writes a batch's messages and rows (skipping what exists), resolving seq conflicts.
pub(super) async fn settle(s: &MongoStore, batch: &BatchId, msgs: &mut [Msg]) -> Result<()> {
    let docs = msgs_docs(batch, msgs)?;
    retry(|| insert_new(&s.msgs, docs.clone())).await?;
    write_rows(s, batch, msgs).await
}

fn msgs_docs(batch: &BatchId, msgs: &[Msg]) -> Result<Vec<Document>> {
    msgs.iter().map(|m| m.msgs_doc(&batch.0)).collect()
}

/// One attempt at writing a batch's messages (skipping what exists): the accepting node
/// writes them before it takes the next batch, and [`settle`] again if this failed.
pub(super) async fn write_msgs(s: &MongoStore, batch: &BatchId, msgs: &[Msg]) -> Result<()> {
    insert_new(&s.msgs, msgs_docs(batch, msgs)?).await.map(drop)
}

/// Writes a batch's rows (skipping what exists) once its messages are written, resolving
/// seq conflicts.
pub(super) async fn write_rows(s: &MongoStore, batch: &BatchId, msgs: &mut [Msg]) -> Result<()> {
    // Row `k` of the flattened list is recipient `j` of message `i`.
    let mut at = Vec::new();
    let mut rows = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        for (j, row) in m.rows().into_iter().enumerate() {
            at.push((i, j));
            rows.push(row);
        }
    }
    let conflicts = retry(|| insert_new(&s.rows, rows.clone())).await?;
    for k in conflicts {
        let (i, j) = at[k];
        move_row(s, batch, msgs, i, j).await?;
    }
    Ok(())
}

/// Inserts `docs` (unordered); returns the indexes that hit an existing `_id` whose content
/// differs — for `rows`, a seq taken by another message. Identical documents (a second
/// settle) are not conflicts.
async fn insert_new(
    coll: &mongodb::Collection<Document>,
    docs: Vec<Document>,
) -> Result<Vec<usize>> {
    if docs.is_empty() {
        return Ok(Vec::new());
    }
    let taken = match coll.insert_many(docs.clone()).ordered(false).await {
        Ok(_) => return Ok(Vec::new()),
        Err(e) => super::duplicate_indexes(e)?,
    };
    // Which duplicates belong to another message.
    let mut conflicts = Vec::new();
    for k in taken {
        let d = &docs[k];
        let id = d.get("_id").cloned().unwrap_or_default();
        let existing = coll
            .find_one(doc! {"_id": id})
            .projection(doc! {"m": 1})
            .await
            .map_err(backend)?;
        let same = match (existing, d.get_str("m")) {
            (Some(e), Ok(m)) => e.get_str("m") == Ok(m),
            (Some(_), Err(_)) => true, // not a row: the same message id
            (None, _) => false,        // purged meanwhile: try again as a conflict
        };
        if !same {
            conflicts.push(k);
        }
    }
    Ok(conflicts)
}

/// Moves recipient `j` of message `i` to the user's next free seq.
async fn move_row(
    s: &MongoStore,
    batch: &BatchId,
    msgs: &mut [Msg],
    i: usize,
    j: usize,
) -> Result<()> {
    let user = msgs[i].stored.recipients[j].0.clone();
    for _ in 0..MAX_MOVES {
        let high = load_users(s, std::slice::from_ref(&user))
            .await?
            .first()
            .map_or(0, |(_, h)| *h);
        let seq = {
            let mut cache = s.seqs.lock().expect("seq cache");
            cache.load(&user, high);
            cache.next(&user).expect("just loaded")
        };
        tracing::info!(%user, seq, batch = %batch, "seq taken by another collect node; moving");
        let field = format!("m.{i}.sq.{j}");
        s.outbox
            .update_one(doc! {"_id": &batch.0}, doc! {"$set": {field: ms(seq)}})
            .await
            .map_err(backend)?;
        let id = msgs[i].stored.id.clone();
        s.msgs
            .update_one(
                doc! {"_id": &id},
                doc! {"$set": {format!("sq.{j}"): ms(seq)}},
            )
            .await
            .map_err(backend)?;
        msgs[i].stored.recipients[j].1 = seq;
        let inline = msgs[i].rows().first().is_some_and(|r| r.contains_key("p"));
        let row = msgs[i].row(&user, seq, inline);
        match s.rows.insert_one(row).await {
            Ok(_) => return Ok(()),
            Err(e) if super::is_duplicate_key(&e) => continue,
            Err(e) => return Err(backend(e)),
        }
    }
    Err(Error::Backend(
        format!("no free seq for user {user} after {MAX_MOVES} attempts").into(),
    ))
}

async fn retry<T, F, Fut>(mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut delay = Duration::from_millis(50);
    let mut attempt = 1;
    loop {
        match f().await {
            Err(e) if attempt < ATTEMPTS => {
                tracing::debug!(error = %e, attempt, "store write failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 4;
                attempt += 1;
            }
            other => return other,
        }
    }
}

fn batch_from(d: &Document) -> Result<(BatchId, Vec<Msg>)> {
    let id = get_str(d, "_id")?.to_owned();
    let msgs = d
        .get_array("m")
        .map_err(|_| Error::Corrupt(format!("messages of outbox batch {id}")))?
        .iter()
        .map(|m| match m {
            mongodb::bson::Bson::Document(m) => Msg::from_doc(m),
            _ => Err(Error::Corrupt(format!("a message of outbox batch {id}"))),
        })
        .collect::<Result<_>>()?;
    Ok((BatchId(id), msgs))
}

fn to_batch(id: BatchId, msgs: Vec<Msg>) -> OutboxBatch {
    OutboxBatch {
        id,
        messages: msgs.into_iter().map(|m| m.stored).collect(),
    }
}

pub(super) async fn get(s: &MongoStore, id: &BatchId) -> Result<Option<OutboxBatch>> {
    let found = s
        .outbox
        .find_one(doc! {"_id": &id.0})
        .await
        .map_err(backend)?;
    found
        .map(|d| batch_from(&d).map(|(id, m)| to_batch(id, m)))
        .transpose()
}

/// Claims batches whose lease ran out (compare-and-set on the lease), settles them (the
/// node that accepted them may have died half-way) and returns them.
pub(super) async fn claim(
    s: &MongoStore,
    owner: &str,
    lease: Duration,
    limit: usize,
) -> Result<Vec<OutboxBatch>> {
    let now = now_ms();
    let due: Vec<Document> = s
        .outbox
        .find(doc! {"lease": {"$lt": ms(now)}})
        .limit(i64::try_from(limit).unwrap_or(i64::MAX))
        .await
        .map_err(backend)?
        .try_collect()
        .await
        .map_err(backend)?;
    let mut out = Vec::with_capacity(due.len());
    for d in due {
        let old = get_u64(&d, "lease")?;
        let (id, mut msgs) = batch_from(&d)?;
        let taken = s
            .outbox
            .update_one(
                doc! {"_id": &id.0, "lease": ms(old)},
                doc! {"$set": {"lease": ms(now.saturating_add(lease.as_millis() as u64)), "owner": owner}},
            )
            .await
            .map_err(backend)?;
        if taken.modified_count == 0 {
            continue; // another worker was first
        }
        // A message whose key another message holds is that one's duplicate: never stored.
        let mut kept = Vec::with_capacity(msgs.len());
        for m in msgs.drain(..) {
            if let Some(k) = &m.idempotency_key {
                let claim = s.idem.find_one(doc! {"_id": k}).await.map_err(backend)?;
                if claim.as_ref().and_then(|c| c.get_str("m").ok()) != Some(m.stored.id.as_str()) {
                    continue;
                }
            }
            kept.push(m);
        }
        if kept.len() != d.get_array("m").map_or(0, |a| a.len()) {
            // Indexes in the document no longer match: settle the kept ones from a batch
            // rewritten without the others.
            let docs: Vec<Document> = kept.iter().map(Msg::to_doc).collect::<Result<_>>()?;
            s.outbox
                .update_one(doc! {"_id": &id.0}, doc! {"$set": {"m": docs}})
                .await
                .map_err(backend)?;
        }
        match settle(s, &id, &mut kept).await {
            Ok(()) => out.push(to_batch(id, kept)),
            Err(e) => tracing::warn!(batch = %id, error = %e, "settling a claimed batch failed"),
        }
    }
    Ok(out)
}

/// Deletes the outbox documents of dispatched batches, in one command.
pub(super) async fn clear(s: &MongoStore, ids: &[BatchId]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let deletes: Vec<Document> = ids
        .iter()
        .map(|id| doc! {"q": {"_id": &id.0}, "limit": 1})
        .collect();
    s.db.run_command(doc! {"delete": s.outbox.name(), "deletes": deletes, "ordered": false})
        .await
        .map_err(backend)?;
    Ok(())
}
