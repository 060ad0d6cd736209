//! Group commit: concurrent submits combined into one outbox document per batch.
//!
//! One task takes every queued submit (bounded by [`MAX_BATCH_MESSAGES`] and
//! [`MAX_BATCH_BYTES`]) and *accepts* the batch, one batch at a time: claims idempotency keys
//! (one `insert`), loads the users it does not know ([`load_users`]), hands out seqs from
//! memory and inserts the outbox document — the durable accept — then the batch's `msgs`
//! (so the next batch gathers for longer and is larger). Completing a batch (its `rows`,
//! with seq conflicts resolved, see `outbox::write_rows`) runs concurrently with accepting
//! the next ones, and replies are released in batch order once the batch's
//! rows are written, so a batch is handed to dispatch only once every earlier batch of this
//! node has its rows written (a push node that sees a gap in a user's seqs finds the missing
//! message in the store), and a message posted after another's reply, to any collect node,
//! gets a higher seq (its node's row insert of a seq taken conflicts and moves on). Messages
//! in flight on two nodes at once may settle in either order; a push node holds a gap
//! for a while so devices still receive them in seq order.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt, stream};
use mongodb::bson::{Document, doc};
use pushcluster_proto::api::NewMessage;
use pushcluster_proto::delivery::now_ms;
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::docs::Msg;
use super::{MongoStore, PARALLEL_READS, Server, backend, get_str, get_u64, ms};
use crate::{
    Accepted, BatchId, Error, OutboxBatch, Payload, Result, StoredMessage, Submitted,
    new_message_id,
};

/// Submits waiting to be combined.
pub(super) const QUEUE: usize = 4096;
/// Most messages in one batch.
const MAX_BATCH_MESSAGES: usize = 1000;
/// Most payload and recipient bytes in one batch (an outbox document stays far below 16 MiB).
const MAX_BATCH_BYTES: usize = 6 << 20;
/// Batches being completed at once.
const COMPLETING: usize = 8;
/// How long a claimed idempotency key is taken to belong to a submit still in progress
/// before a retry may take it over.
const SETTLE_MS: u64 = 5_000;

pub(super) struct Job {
    msgs: Vec<NewMessage>,
    reply: oneshot::Sender<Result<Accepted>>,
}

pub(super) async fn submit(s: &MongoStore, msgs: Vec<NewMessage>) -> Result<Accepted> {
    let (reply, rx) = oneshot::channel();
    s.submits
        .send(Job { msgs, reply })
        .await
        .map_err(|_| Error::Closed)?;
    rx.await.map_err(|_| Error::Closed)?
}

fn weight(m: &NewMessage) -> usize {
    m.payload.get().len() + m.to.iter().map(|u| u.len() + 16).sum::<usize>() + 256
}

/// Takes one job, then whatever else is queued, within the batch bounds.
async fn gather(rx: &mut mpsc::Receiver<Job>, held: &mut Option<Job>) -> Option<Vec<Job>> {
    let first = match held.take() {
        Some(j) => j,
        None => rx.recv().await?,
    };
    let (mut n, mut bytes) = (
        first.msgs.len(),
        first.msgs.iter().map(weight).sum::<usize>(),
    );
    let mut jobs = vec![first];
    while let Ok(job) = rx.try_recv() {
        let w: usize = job.msgs.iter().map(weight).sum();
        if n + job.msgs.len() > MAX_BATCH_MESSAGES || bytes + w > MAX_BATCH_BYTES {
            *held = Some(job);
            break;
        }
        n += job.msgs.len();
        bytes += w;
        jobs.push(job);
    }
    Some(jobs)
}

/// The accept loop (one per store).
pub(super) async fn run(s: MongoStore, mut rx: mpsc::Receiver<Job>) {
    let completing = Arc::new(Semaphore::new(COMPLETING));
    let mut held = None;
    // Resolved when the previous batch was handed over (or given up).
    let mut previous: Option<oneshot::Receiver<()>> = None;
    while let Some(jobs) = gather(&mut rx, &mut held).await {
        let mut accepted = accept(&s, jobs).await;
        // The durable write is done; the answer waits for the rows (in batch order), so a
        // message posted after this one's 202 — to any collect node — gets a higher seq:
        // that node's row insert of a seq this batch holds conflicts and moves on.
        let written = std::mem::replace(&mut accepted.written, Err(()));
        let Ok((batch, msgs)) = written else {
            accepted.reply(None);
            continue;
        };
        let (slots, msgs): (Vec<Slot>, Vec<Msg>) = msgs.into_iter().unzip();
        // The messages are written before the next batch is taken: the next batch gathers
        // meanwhile and is larger (fewer commands per message at the same latency), and the
        // completion left to run beside it is the rows alone.
        let msgs_written = match super::outbox::write_msgs(&s, &batch, &msgs).await {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(batch = %batch, error = %e, "writing a batch's messages failed; retried with its rows");
                false
            }
        };
        let permit = completing
            .clone()
            .acquire_owned()
            .await
            .expect("never closed");
        let (done, next) = oneshot::channel::<()>();
        let prev = previous.replace(next);
        let s = s.clone();
        tokio::spawn(async move {
            let settled = settle(&s, batch, msgs, msgs_written).await;
            if let Some(prev) = prev {
                let _ = prev.await; // a dropped sender (a panic) also releases
            }
            match &settled {
                Some(b) => {
                    for (slot, m) in slots.iter().zip(&b.messages) {
                        accepted.set(slot, Ok(Submitted::New(m.clone())));
                    }
                }
                None => {
                    for slot in &slots {
                        let e = "stored, but writing its rows failed: retry with the same \
                                 idempotency key, which finds it or stores it";
                        accepted.set(slot, Err(Error::Backend(e.into())));
                    }
                }
            }
            accepted.reply(settled);
            drop(done);
            drop(permit);
        });
    }
}

/// Writes a batch's rows, and its messages unless `msgs_written`; the batch to dispatch, or
/// `None` to leave it to its lease (dispatch must not see a message before its rows).
async fn settle(
    s: &MongoStore,
    batch: BatchId,
    mut msgs: Vec<Msg>,
    msgs_written: bool,
) -> Option<OutboxBatch> {
    let written = if msgs_written {
        super::outbox::write_rows(s, &batch, &mut msgs).await
    } else {
        super::outbox::settle(s, &batch, &mut msgs).await
    };
    match written {
        Ok(()) => Some(OutboxBatch {
            id: batch,
            messages: msgs.into_iter().map(|m| m.stored).collect(),
        }),
        Err(e) => {
            tracing::warn!(batch = %batch, error = %e, "completing a batch failed; left to the outbox");
            None
        }
    }
}

/// One message of a batch: where its result goes.
struct Slot {
    job: usize,
    index: usize,
}

/// A job's reply channel and its messages' results so far.
type Replies = (
    oneshot::Sender<Result<Accepted>>,
    Vec<Option<Result<Submitted>>>,
);

/// A batch after its accept, before its completion.
struct AcceptedBatch {
    jobs: Vec<Replies>,
    /// The durable outbox document, or why there is none.
    written: std::result::Result<(BatchId, Vec<(Slot, Msg)>), ()>,
}

/// Claims keys, allocates seqs, inserts the outbox document.
async fn accept(s: &MongoStore, jobs: Vec<Job>) -> AcceptedBatch {
    let batch = BatchId::new();
    let now = now_ms();
    let mut replies = Vec::with_capacity(jobs.len());
    let mut fresh: Vec<(Slot, NewMessage, String)> = Vec::new();
    for (j, job) in jobs.into_iter().enumerate() {
        replies.push((job.reply, (0..job.msgs.len()).map(|_| None).collect()));
        for (i, m) in job.msgs.into_iter().enumerate() {
            fresh.push((Slot { job: j, index: i }, m, new_message_id()));
        }
    }
    let mut batch_out = AcceptedBatch {
        jobs: replies,
        written: Err(()),
    };
    // Idempotency keys: the claim is the insert of `{_id: key}`. A key twice in one batch is
    // the first one's duplicate.
    let mut first_with_key: HashMap<String, String> = HashMap::new();
    let mut claims = Vec::new();
    let mut keep = Vec::with_capacity(fresh.len());
    for (slot, m, id) in fresh {
        if let Some(k) = &m.idempotency_key {
            if let Some(first) = first_with_key.get(k) {
                batch_out.set(&slot, Ok(Submitted::Duplicate { id: first.clone() }));
                continue;
            }
            first_with_key.insert(k.clone(), id.clone());
            claims.push(doc! {"_id": k, "m": &id, "b": &batch.0, "t": ms(now)});
        }
        keep.push((slot, m, id));
    }
    let taken = match insert_claims(s, claims).await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "claiming idempotency keys failed");
            batch_out.fail_rest(&e);
            return batch_out;
        }
    };
    let mut msgs = Vec::with_capacity(keep.len());
    for (slot, m, mut id) in keep {
        if let Some(k) = m
            .idempotency_key
            .as_deref()
            .filter(|k| taken.iter().any(|t| t == k))
        {
            match earlier(s, k, &batch, now).await {
                Ok(Earlier::Duplicate(id)) => {
                    batch_out.set(&slot, Ok(Submitted::Duplicate { id }));
                    continue;
                }
                Ok(Earlier::InProgress) => {
                    let e = "a submit with the same idempotency key is in progress; retry";
                    batch_out.set(&slot, Err(Error::Backend(e.into())));
                    continue;
                }
                // Its submit died before its batch was stored: store it now, same id.
                Ok(Earlier::TakeOver(old)) => id = old,
                Err(e) => {
                    batch_out.set(&slot, Err(e));
                    continue;
                }
            }
        }
        msgs.push((slot, m, id));
    }
    if msgs.is_empty() {
        return batch_out;
    }
    // Seqs, from memory; users the cache does not know are loaded first.
    let users: Vec<&str> = msgs
        .iter()
        .flat_map(|(_, m, _)| m.to.iter().map(String::as_str))
        .collect();
    let missing = s.seqs.lock().expect("seq cache").missing(users);
    if !missing.is_empty() {
        match known_users(s, &missing).await {
            Ok(highs) => {
                let mut cache = s.seqs.lock().expect("seq cache");
                for (u, h) in highs {
                    cache.load(&u, h);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, users = missing.len(), "loading users' seqs failed");
                batch_out.fail_rest(&e);
                return batch_out;
            }
        }
    }
    let built: Vec<(Slot, Msg)> = {
        let mut cache = s.seqs.lock().expect("seq cache");
        cache.trim();
        msgs.into_iter()
            .map(|(slot, m, id)| {
                let recipients =
                    m.to.into_iter()
                        .map(|u| {
                            let seq = cache.next(&u).unwrap_or_else(|| {
                                // Trimmed between load and use: only if one batch has more users
                                // than the cache holds. Reload it next time, start above the rest.
                                cache.load(&u, 0);
                                cache.next(&u).expect("just loaded")
                            });
                            (u, seq)
                        })
                        .collect();
                let stored = StoredMessage {
                    id,
                    payload: Payload::from_raw(&m.payload),
                    created_at_ms: now,
                    expires_at_ms: now.saturating_add(m.ttl_secs.saturating_mul(1000)),
                    recipients,
                    notification: m.notification.map(Arc::new),
                    mobile: m.mobile,
                };
                let msg = Msg {
                    stored,
                    idempotency_key: m.idempotency_key,
                };
                (slot, msg)
            })
            .collect()
    };
    let docs: Result<Vec<Document>> = built.iter().map(|(_, m)| m.to_doc()).collect();
    let outbox = docs.map(|m| {
        doc! {
            "_id": &batch.0,
            "lease": ms(s.lease.until(now)),
            "owner": &*s.owner,
            "m": m,
        }
    });
    let inserted = match outbox {
        Ok(d) => s.outbox.insert_one(d).await.map_err(backend),
        Err(e) => Err(e),
    };
    if let Err(e) = inserted {
        tracing::warn!(error = %e, "storing a batch failed; nothing of it was accepted");
        // Nothing was written: these seqs are free again, reload the users next time.
        s.seqs.lock().expect("seq cache").forget(
            built
                .iter()
                .flat_map(|(_, m)| m.stored.recipients.iter().map(|(u, _)| u.as_str())),
        );
        for (slot, _) in &built {
            batch_out.set(slot, Err(Error::Backend(e.to_string().into())));
        }
        return batch_out;
    }
    batch_out.written = Ok((batch, built));
    batch_out
}

impl AcceptedBatch {
    fn set(&mut self, slot: &Slot, r: Result<Submitted>) {
        self.jobs[slot.job].1[slot.index] = Some(r);
    }

    fn fail_rest(&mut self, e: &Error) {
        for (_, results) in &mut self.jobs {
            for r in results.iter_mut().filter(|r| r.is_none()) {
                *r = Some(Err(Error::Backend(e.to_string().into())));
            }
        }
    }

    /// Sends every job its results; the batch (completely stored) goes with the first job's.
    fn reply(self, ready: Option<OutboxBatch>) {
        let mut ready = ready;
        for (tx, results) in self.jobs {
            let results = results
                .into_iter()
                .map(|r| r.unwrap_or_else(|| Err(Error::Corrupt("message left unanswered".into()))))
                .collect();
            let batch = ready.take();
            let _ = tx.send(Ok(Accepted { results, batch }));
        }
    }
}

/// Inserts key claims; returns the keys that were taken already.
async fn insert_claims(s: &MongoStore, claims: Vec<Document>) -> Result<Vec<String>> {
    if claims.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<String> = claims
        .iter()
        .map(|d| get_str(d, "_id").map(str::to_owned))
        .collect::<Result<_>>()?;
    match s.idem.insert_many(claims).ordered(false).await {
        Ok(_) => Ok(Vec::new()),
        Err(e) => Ok(super::duplicate_indexes(e)?
            .into_iter()
            .filter_map(|i| keys.get(i).cloned())
            .collect()),
    }
}

/// What an earlier claim of an idempotency key means for this submit.
enum Earlier {
    Duplicate(String),
    InProgress,
    TakeOver(String),
}

async fn earlier(s: &MongoStore, key: &str, batch: &BatchId, now: u64) -> Result<Earlier> {
    let Some(claim) = s.idem.find_one(doc! {"_id": key}).await.map_err(backend)? else {
        // Released (purged) between our insert and this read: the caller retries.
        return Ok(Earlier::InProgress);
    };
    let id = get_str(&claim, "m")?.to_owned();
    let old_batch = get_str(&claim, "b")?.to_owned();
    let stored = s
        .msgs
        .find_one(doc! {"_id": &id})
        .projection(doc! {"_id": 1});
    let outboxed = s
        .outbox
        .find_one(doc! {"_id": &old_batch})
        .projection(doc! {"_id": 1});
    let (stored, outboxed) = tokio::join!(stored, outboxed);
    if stored.map_err(backend)?.is_some() || outboxed.map_err(backend)?.is_some() {
        return Ok(Earlier::Duplicate(id));
    }
    if now.saturating_sub(get_u64(&claim, "t")?) < SETTLE_MS {
        return Ok(Earlier::InProgress);
    }
    // The claim's batch never got stored: move the claim to this batch (compare on the old
    // batch, so one of two concurrent retries takes it).
    let moved = s
        .idem
        .update_one(
            doc! {"_id": key, "b": &old_batch},
            doc! {"$set": {"b": &batch.0, "t": ms(now)}},
        )
        .await
        .map_err(backend)?;
    Ok(if moved.modified_count == 1 {
        Earlier::TakeOver(id)
    } else {
        Earlier::InProgress
    })
}

/// The highest seq of each of `users` the cache does not know: brand-new users (their
/// `users` document is inserted now) start at 0; the others are loaded.
async fn known_users(s: &MongoStore, users: &[String]) -> Result<Vec<(String, u64)>> {
    let docs: Vec<Document> = users.iter().map(|u| doc! {"_id": u, "s": 0_i64}).collect();
    let existing: Vec<String> = match s.users.insert_many(docs).ordered(false).await {
        Ok(_) => Vec::new(),
        Err(e) => super::duplicate_indexes(e)?
            .into_iter()
            .filter_map(|i| users.get(i).cloned())
            .collect(),
    };
    let mut highs: Vec<(String, u64)> = users
        .iter()
        .filter(|u| !existing.contains(u))
        .map(|u| (u.clone(), 0))
        .collect();
    if !existing.is_empty() {
        highs.extend(load_users(s, &existing).await?);
    }
    Ok(highs)
}

/// The highest seq of each user: the highest row, or the floor a purge left.
pub(super) async fn load_users(s: &MongoStore, users: &[String]) -> Result<Vec<(String, u64)>> {
    let mut highs: HashMap<String, u64> = users.iter().map(|u| (u.clone(), 0)).collect();
    match s.server().await {
        Server::Mongo => {
            let pipeline = [
                doc! {"$match": {"u": {"$in": users}}},
                doc! {"$group": {"_id": "$u", "s": {"$max": "$s"}}},
            ];
            let mut rows = s.rows.aggregate(pipeline).await.map_err(backend)?;
            while let Some(d) = rows.try_next().await.map_err(backend)? {
                raise(&mut highs, &d)?;
            }
            let mut floors = s
                .users
                .find(doc! {"_id": {"$in": users}})
                .await
                .map_err(backend)?;
            while let Some(d) = floors.try_next().await.map_err(backend)? {
                raise(&mut highs, &d)?;
            }
        }
        Server::Ferret => {
            let found: Vec<Vec<Document>> = stream::iter(users.to_vec())
                .map(|u| async move {
                    let top = s
                        .rows
                        .find(doc! {"u": &u})
                        .sort(doc! {"s": -1})
                        .limit(1)
                        .projection(doc! {"s": 1, "u": 1});
                    let floor = s.users.find_one(doc! {"_id": &u});
                    let (top, floor) = tokio::join!(top, floor);
                    let mut out: Vec<Document> =
                        top.map_err(backend)?.try_collect().await.map_err(backend)?;
                    for d in &mut out {
                        let user = get_str(d, "u")?.to_owned();
                        d.insert("_id", user);
                    }
                    out.extend(floor.map_err(backend)?);
                    Ok::<_, Error>(out)
                })
                .buffer_unordered(PARALLEL_READS)
                .try_collect()
                .await?;
            for d in found.iter().flatten() {
                raise(&mut highs, d)?;
            }
        }
    }
    Ok(highs.into_iter().collect())
}

fn raise(highs: &mut HashMap<String, u64>, d: &Document) -> Result<()> {
    let user = get_str(d, "_id")?;
    let s = get_u64(d, "s")?;
    if let Some(h) = highs.get_mut(user) {
        *h = (*h).max(s);
    }
    Ok(())
}
