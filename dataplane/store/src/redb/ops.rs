//! The writer thread: group commit of every queued write operation.
//!
//! A commit applies every queued job in one transaction. The users' counters a commit touches
//! (seqs handed out, acks, deliveries) live in a map for its duration; acks, delivered marks
//! and outbox clears are applied to memory and written at most [`FLUSH_EVERY`] later (see
//! [`super::users`]), so a group of only those commits nothing, and a commit of submits
//! writes the message tables and the index but not the users' rows.

use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use pushcluster_proto::api::{MobileRecord, NewDevice, NewMessage};
use pushcluster_proto::delivery::now_ms;
use pushcluster_proto::payload::Payload;
use redb::{Database, Durability, ReadableTable, WriteTransaction};
use tokio::sync::oneshot;

use super::codec::{self, Meta};
#[cfg(doc)]
use super::users::FLUSH_EVERY;
use super::users::{self, Pending, Users};
use super::{IDEMPOTENCY, MESSAGES, OUTBOX, PURGE, RECIPIENTS, Record, devices, load_batch};
use crate::outbox::HandoffLease;
use crate::{
    Accepted, AckOutcome, BatchId, DeviceSaved, Error, OutboxBatch, Result, StoredMessage,
    Submitted, new_message_id,
};

/// Longest a commit without an fsync (watermarks, outbox clears) waits for a durable one: a
/// writer that is quiet for this long commits a durable transaction (with what is deferred).
const LAZY_DURABILITY: Duration = Duration::from_secs(1);

/// Most operations applied in one transaction.
const MAX_BATCH: usize = 512;
/// Most messages purged per sweep call, so one transaction stays small.
const MAX_EXPIRED_PER_CALL: usize = 1000;

pub(super) enum Op {
    Submit(Vec<NewMessage>),
    Delivered {
        user: String,
        seq: u64,
    },
    Ack {
        user: String,
        seq: u64,
    },
    ClaimOutbox {
        lease_ms: u64,
        limit: usize,
    },
    CompleteOutbox(Vec<BatchId>),
    Expire {
        now_ms: u64,
    },
    PutDevice(NewDevice),
    DeleteDevice {
        token: String,
    },
    DeviceDead {
        token: String,
        at_ms: u64,
    },
    ClaimMobile(MobileRecord),
    UpdateMobile(MobileRecord),
    /// The record as listed, and the new `updated_at_ms`.
    RetakeMobile(MobileRecord, u64),
}

impl Op {
    /// Whether the operation only records progress that can be recomputed or repeated
    /// (delivered and acked watermarks, outbox clears), so it need not be fsynced on its own.
    fn may_wait_for_durability(&self) -> bool {
        matches!(
            self,
            Op::Delivered { .. } | Op::Ack { .. } | Op::CompleteOutbox(_)
        )
    }
}

pub(super) enum Reply {
    Submit(oneshot::Sender<Result<Accepted>>),
    Ack(oneshot::Sender<Result<AckOutcome>>),
    Batches(oneshot::Sender<Result<Vec<OutboxBatch>>>),
    Count(oneshot::Sender<Result<u64>>),
    Unit(oneshot::Sender<Result<()>>),
    Device(oneshot::Sender<Result<DeviceSaved>>),
    Bool(oneshot::Sender<Result<bool>>),
}

pub(super) struct Job {
    pub op: Op,
    pub reply: Reply,
}

enum Done {
    Submitted(Accepted),
    Ack(AckOutcome),
    Batches(Vec<OutboxBatch>),
    Count(u64),
    Unit,
    Device(DeviceSaved),
    Bool(bool),
}

impl Reply {
    fn send(self, result: Result<Done>) {
        // A receiver that went away (client disconnected) is not an error.
        match (self, result) {
            (Reply::Submit(tx), Ok(Done::Submitted(s))) => drop(tx.send(Ok(s))),
            (Reply::Ack(tx), Ok(Done::Ack(a))) => drop(tx.send(Ok(a))),
            (Reply::Batches(tx), Ok(Done::Batches(b))) => drop(tx.send(Ok(b))),
            (Reply::Count(tx), Ok(Done::Count(n))) => drop(tx.send(Ok(n))),
            (Reply::Unit(tx), Ok(Done::Unit)) => drop(tx.send(Ok(()))),
            (Reply::Device(tx), Ok(Done::Device(d))) => drop(tx.send(Ok(d))),
            (Reply::Bool(tx), Ok(Done::Bool(b))) => drop(tx.send(Ok(b))),
            (Reply::Submit(tx), Err(e)) => drop(tx.send(Err(e))),
            (Reply::Ack(tx), Err(e)) => drop(tx.send(Err(e))),
            (Reply::Batches(tx), Err(e)) => drop(tx.send(Err(e))),
            (Reply::Count(tx), Err(e)) => drop(tx.send(Err(e))),
            (Reply::Unit(tx), Err(e)) => drop(tx.send(Err(e))),
            (Reply::Device(tx), Err(e)) => drop(tx.send(Err(e))),
            (Reply::Bool(tx), Err(e)) => drop(tx.send(Err(e))),
            _ => unreachable!("reply kind always matches its operation"),
        }
    }
}

pub(super) fn writer_loop(
    db: &Arc<Database>,
    rx: mpsc::Receiver<Job>,
    retention_ms: u64,
    lease: HandoffLease,
    pending: Pending,
) {
    // Set while a commit without an fsync is not yet covered by a durable one.
    let mut undurable_since: Option<Instant> = None;
    // After a failed quiet flush: not tried again before this.
    let mut not_before: Option<Instant> = None;
    loop {
        let wake = [
            undurable_since.map(|t| t + LAZY_DURABILITY),
            pending.deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
        .map(|at| not_before.map_or(at, |nb| at.max(nb)));
        let first = match wake {
            None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
            Some(at) => rx.recv_timeout(at.saturating_duration_since(Instant::now())),
        };
        let first = match first {
            Ok(job) => job,
            Err(quiet) => {
                // Quiet (or closing): write what is deferred, durably.
                let mode = Mode {
                    commit: true,
                    flush: true,
                    durable: true,
                };
                match apply_batch(db, &mut [], retention_ms, &lease, &pending, mode) {
                    Ok(_) => (undurable_since, not_before) = (None, None),
                    Err(e) => {
                        tracing::warn!(error = %e, "store flush failed; retrying");
                        not_before = Some(Instant::now() + LAZY_DURABILITY);
                    }
                }
                if quiet == mpsc::RecvTimeoutError::Disconnected {
                    return;
                }
                continue;
            }
        };
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let needs_fsync = jobs.iter().any(|j| !j.op.may_wait_for_durability());
        // A sweep writes the marks too (it writes rows anyway). Claims need nothing written:
        // every commit removes the deferred outbox clears first.
        let flush = pending.due() || jobs.iter().any(|j| matches!(j.op, Op::Expire { .. }));
        let durable =
            needs_fsync || undurable_since.is_some_and(|t| t.elapsed() >= LAZY_DURABILITY);
        let mode = Mode {
            commit: needs_fsync || flush,
            flush,
            durable,
        };
        match apply_batch(db, &mut jobs, retention_ms, &lease, &pending, mode) {
            Ok(results) => {
                if mode.commit {
                    undurable_since = match (durable, undurable_since) {
                        (false, None) => Some(Instant::now()),
                        (false, since) => since,
                        (true, _) => None,
                    };
                }
                for (job, r) in jobs.into_iter().zip(results) {
                    job.reply.send(r);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, batch = jobs.len(), "store commit failed");
                let msg = e.to_string();
                for job in jobs {
                    job.reply.send(Err(Error::Backend(msg.clone().into())));
                }
            }
        }
    }
}

/// How a group of jobs ends.
#[derive(Clone, Copy)]
struct Mode {
    /// Commit (otherwise the group only moved deferred progress, see [`Pending`]).
    commit: bool,
    /// Write the deferred progress in this transaction.
    flush: bool,
    /// With an fsync.
    durable: bool,
}

/// The tables the frequent operations (submit, outbox clear) write, opened once per commit
/// rather than once per job. Dropped before any other operation opens its own.
struct Hot<'t> {
    idem: redb::Table<'t, &'static str, &'static str>,
    messages: redb::Table<'t, &'static str, &'static [u8]>,
    recipients: redb::Table<'t, &'static str, &'static [u8]>,
    purge: redb::Table<'t, (u64, &'static str), ()>,
    outbox: redb::Table<'t, &'static str, &'static [u8]>,
}

impl<'t> Hot<'t> {
    fn open(txn: &'t WriteTransaction) -> Result<Hot<'t>> {
        Ok(Hot {
            idem: txn.open_table(IDEMPOTENCY).map_err(Error::backend)?,
            messages: txn.open_table(MESSAGES).map_err(Error::backend)?,
            recipients: txn.open_table(RECIPIENTS).map_err(Error::backend)?,
            purge: txn.open_table(PURGE).map_err(Error::backend)?,
            outbox: txn.open_table(OUTBOX).map_err(Error::backend)?,
        })
    }

    /// The open tables, opening them first if needed.
    fn get<'a>(hot: &'a mut Option<Hot<'t>>, txn: &'t WriteTransaction) -> Result<&'a mut Hot<'t>> {
        match hot {
            Some(h) => Ok(h),
            None => Ok(hot.insert(Hot::open(txn)?)),
        }
    }
}

/// Applies every job in one transaction. A per-job result is returned for each; an `Err` of
/// the whole means nothing was committed.
fn apply_batch(
    db: &Database,
    jobs: &mut [Job],
    retention_ms: u64,
    lease: &HandoffLease,
    pending: &Pending,
    mode: Mode,
) -> Result<Vec<Result<Done>>> {
    let mut txn = db.begin_write().map_err(Error::backend)?;
    if !mode.durable {
        // Only watermarks and outbox clears: committed without an fsync, made durable by the
        // next durable commit (within LAZY_DURABILITY). A crash before that loses them,
        // which costs a redelivery (clients drop what they have by seq) or a second dispatch
        // (push nodes drop it by seq, mobile claims stop a second notification), never a
        // message.
        txn.set_durability(Durability::None)
            .map_err(Error::backend)?;
    }
    let mut users = Users::open(&txn, pending)?;
    let mut hot: Option<Hot<'_>> = None;
    if mode.commit {
        let t = Hot::get(&mut hot, &txn)?;
        for id in pending.cleared() {
            t.outbox.remove(id.as_str()).map_err(Error::backend)?;
        }
    }
    let mut cleared = Vec::new();
    let mut results = Vec::with_capacity(jobs.len());
    for job in jobs.iter_mut() {
        if !matches!(
            job.op,
            Op::Submit(_) | Op::CompleteOutbox(_) | Op::Delivered { .. } | Op::Ack { .. }
        ) {
            hot = None; // the operation opens the tables it needs itself
        }
        let r = match &mut job.op {
            Op::Submit(batch) => {
                let t = Hot::get(&mut hot, &txn)?;
                submit(t, &mut users, std::mem::take(batch), retention_ms, lease)
                    .map(Done::Submitted)
            }
            Op::Delivered { user, seq } => {
                users::delivered(users.get(user)?, *seq);
                Ok(Done::Unit)
            }
            Op::Ack { user, seq } => Ok(Done::Ack(users::ack(users.get(user)?, *seq))),
            Op::ClaimOutbox { lease_ms, limit } => {
                claim_outbox(&txn, *lease_ms, *limit).map(Done::Batches)
            }
            Op::CompleteOutbox(ids) if mode.commit => {
                let t = Hot::get(&mut hot, &txn)?;
                complete_outbox(&mut t.outbox, ids).map(|_| Done::Unit)
            }
            Op::CompleteOutbox(ids) => {
                cleared.extend(ids.drain(..).map(|id| id.0));
                Ok(Done::Unit)
            }
            Op::Expire { now_ms } => expire(&txn, &mut users, *now_ms).map(Done::Count),
            Op::PutDevice(d) => devices::put(&txn, d).map(Done::Device),
            Op::DeleteDevice { token } => devices::delete(&txn, token).map(Done::Bool),
            Op::DeviceDead { token, at_ms } => {
                devices::mark_dead(&txn, token, *at_ms).map(Done::Bool)
            }
            Op::ClaimMobile(r) => devices::claim_mobile(&txn, r).map(Done::Bool),
            Op::UpdateMobile(r) => devices::update_mobile(&txn, r).map(|_| Done::Unit),
            Op::RetakeMobile(r, now) => devices::retake_mobile(&txn, r, *now).map(Done::Bool),
        };
        // A backend error poisons the transaction: abort everything.
        if let Err(e @ Error::Backend(_)) = r {
            return Err(e);
        }
        results.push(r);
    }
    drop(hot);
    let after = users.finish(mode.flush, mode.commit, cleared)?;
    if mode.commit {
        txn.commit().map_err(Error::backend)?;
    } else {
        txn.abort().map_err(Error::backend)?;
    }
    after.apply(pending);
    Ok(results)
}

/// Stores a batch: per message its record, recipients, index entries and expiry; one outbox
/// entry for the new ones, leased to the submitter's dispatch.
fn submit(
    t: &mut Hot<'_>,
    users: &mut Users<'_>,
    batch: Vec<NewMessage>,
    retention_ms: u64,
    lease: &HandoffLease,
) -> Result<Accepted> {
    let Hot {
        idem,
        messages,
        recipients,
        purge,
        outbox,
    } = t;
    let now = now_ms();
    let mut results = Vec::with_capacity(batch.len());
    let mut new = Vec::new();
    for msg in batch {
        if let Some(key) = &msg.idempotency_key
            && let Some(id) = idem.get(key.as_str()).map_err(Error::backend)?
        {
            results.push(Ok(Submitted::Duplicate {
                id: id.value().to_owned(),
            }));
            continue;
        }
        let id = new_message_id();
        let expires_at_ms = now.saturating_add(msg.ttl_secs.saturating_mul(1000));
        let mut list = Vec::with_capacity(msg.to.len());
        for user in msg.to {
            let m = users.get(&user)?;
            m.0 += 1;
            let seq = m.0;
            users
                .index
                .insert((user.as_str(), seq), id.as_str())
                .map_err(Error::backend)?;
            list.push((user, seq));
        }
        let record = Record {
            created_at_ms: now,
            expires_at_ms,
            payload: Payload::from_raw(&msg.payload),
            meta: Meta {
                idempotency_key: msg.idempotency_key,
                notification: msg.notification,
                mobile: msg.mobile,
            },
        };
        messages
            .insert(id.as_str(), record.encode()?.as_slice())
            .map_err(Error::backend)?;
        recipients
            .insert(id.as_str(), codec::encode_recipients(&list).as_slice())
            .map_err(Error::backend)?;
        purge
            .insert(
                (expires_at_ms.saturating_add(retention_ms), id.as_str()),
                (),
            )
            .map_err(Error::backend)?;
        if let Some(key) = &record.meta.idempotency_key {
            idem.insert(key.as_str(), id.as_str())
                .map_err(Error::backend)?;
        }
        let stored = StoredMessage {
            id,
            payload: record.payload,
            created_at_ms: now,
            expires_at_ms,
            recipients: list,
            notification: record.meta.notification.map(Arc::new),
            mobile: record.meta.mobile,
        };
        results.push(Ok(Submitted::New(stored.clone())));
        new.push(stored);
    }
    let batch = if new.is_empty() {
        None
    } else {
        let id = BatchId::new();
        let ids: Vec<&str> = new.iter().map(|m| m.id.as_str()).collect();
        let lease_until = lease.until(now);
        outbox
            .insert(
                id.0.as_str(),
                codec::encode_outbox(lease_until, &ids).as_slice(),
            )
            .map_err(Error::backend)?;
        Some(OutboxBatch { id, messages: new })
    };
    Ok(Accepted { results, batch })
}

/// Ends every outbox lease: at open, the leases in the file belong to a process that is gone
/// (redb's file lock makes this process its only user), so what it claimed or had handed
/// over is due at once instead of when its lease would have run out.
pub(super) fn release_outbox(txn: &WriteTransaction) -> Result<usize> {
    let mut outbox = txn.open_table(OUTBOX).map_err(Error::backend)?;
    let mut leased = Vec::new();
    for entry in outbox.iter().map_err(Error::backend)? {
        let (k, v) = entry.map_err(Error::backend)?;
        let (lease, ids) = codec::decode_outbox(k.value(), v.value())?;
        if lease > 0 {
            leased.push((k.value().to_owned(), ids));
        }
    }
    for (id, ids) in &leased {
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        outbox
            .insert(id.as_str(), codec::encode_outbox(0, &refs).as_slice())
            .map_err(Error::backend)?;
    }
    Ok(leased.len())
}

/// Takes up to `limit` outbox entries whose lease ran out, leasing them for `lease_ms`.
fn claim_outbox(txn: &WriteTransaction, lease_ms: u64, limit: usize) -> Result<Vec<OutboxBatch>> {
    let now = now_ms();
    let mut outbox = txn.open_table(OUTBOX).map_err(Error::backend)?;
    let mut due = Vec::new();
    for entry in outbox.iter().map_err(Error::backend)? {
        if due.len() >= limit {
            break;
        }
        let (k, v) = entry.map_err(Error::backend)?;
        let (lease, ids) = codec::decode_outbox(k.value(), v.value())?;
        if lease <= now {
            due.push((k.value().to_owned(), ids));
        }
    }
    let messages = txn.open_table(MESSAGES).map_err(Error::backend)?;
    let recipients = txn.open_table(RECIPIENTS).map_err(Error::backend)?;
    let mut out = Vec::with_capacity(due.len());
    for (id, ids) in due {
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        outbox
            .insert(
                id.as_str(),
                codec::encode_outbox(now.saturating_add(lease_ms), &refs).as_slice(),
            )
            .map_err(Error::backend)?;
        out.push(load_batch(&messages, &recipients, &id, &ids)?);
    }
    Ok(out)
}

fn complete_outbox(
    outbox: &mut redb::Table<'_, &'static str, &'static [u8]>,
    ids: &[BatchId],
) -> Result<()> {
    for id in ids {
        outbox.remove(id.0.as_str()).map_err(Error::backend)?;
    }
    Ok(())
}

/// The first `max` `(at, id)` keys of `table` due at `now_ms`.
fn due(
    txn: &WriteTransaction,
    table: redb::TableDefinition<(u64, &'static str), ()>,
    now_ms: u64,
    max: usize,
) -> Result<Vec<(u64, String)>> {
    let table = txn.open_table(table).map_err(Error::backend)?;
    let mut due = Vec::new();
    for entry in table
        .range((0u64, "")..(now_ms.saturating_add(1), ""))
        .map_err(Error::backend)?
        .take(max)
    {
        let (k, _) = entry.map_err(Error::backend)?;
        let (at, id) = k.value();
        due.push((at, id.to_owned()));
    }
    Ok(due)
}

/// Purges messages whose retention is over: their record, recipients, index entries,
/// idempotency key and mobile records. Expired messages need nothing before that: reads skip
/// them by their record's expiry. Returns how many messages were purged.
fn expire(txn: &WriteTransaction, users: &mut Users<'_>, now_ms: u64) -> Result<u64> {
    let due_now = due(txn, PURGE, now_ms, MAX_EXPIRED_PER_CALL)?;
    let mut messages = txn.open_table(MESSAGES).map_err(Error::backend)?;
    let mut recipients = txn.open_table(RECIPIENTS).map_err(Error::backend)?;
    let mut idem = txn.open_table(IDEMPOTENCY).map_err(Error::backend)?;
    let mut purge = txn.open_table(PURGE).map_err(Error::backend)?;
    for (at, id) in &due_now {
        if let Some(bytes) = messages.remove(id.as_str()).map_err(Error::backend)? {
            let rec = Record::decode(id, bytes.value())?;
            if let Some(key) = &rec.meta.idempotency_key {
                idem.remove(key.as_str()).map_err(Error::backend)?;
            }
        }
        if let Some(list) = recipients.remove(id.as_str()).map_err(Error::backend)? {
            for (user, seq) in codec::decode_recipients(id, list.value())? {
                // The row keeps the user's high once its index entries are gone.
                users.persist(&user)?;
                users
                    .index
                    .remove((user.as_str(), seq))
                    .map_err(Error::backend)?;
            }
        }
        devices::purge_mobile(txn, id)?;
        purge.remove((*at, id.as_str())).map_err(Error::backend)?;
    }
    Ok(due_now.len() as u64)
}
