//! The writer thread: group commit of every queued write operation.

use std::sync::Arc;
use std::sync::mpsc;

use pushcluster_proto::api::{MobileRecord, NewDevice, NewMessage, RecipientState};
use pushcluster_proto::delivery::now_ms;
use redb::{Database, ReadableTable, WriteTransaction};
use tokio::sync::oneshot;

use super::{
    EXPIRY, HISTORY, IDEMPOTENCY, INBOX, MESSAGES, PURGE, RECIPIENTS, Record, USER_SEQ, devices,
};
use crate::{AckOutcome, DeviceSaved, Error, Result, StoredMessage, Submitted, new_message_id};

/// Most operations applied in one transaction.
const MAX_BATCH: usize = 512;

pub(super) enum Op {
    Submit(NewMessage),
    Delivered {
        id: String,
        user: String,
    },
    Ack {
        id: String,
        user: String,
    },
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

pub(super) enum Reply {
    Submit(oneshot::Sender<Result<Submitted>>),
    Ack(oneshot::Sender<Result<AckOutcome>>),
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
    Submitted(Submitted),
    Ack(AckOutcome),
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
            (Reply::Count(tx), Ok(Done::Count(n))) => drop(tx.send(Ok(n))),
            (Reply::Unit(tx), Ok(Done::Unit)) => drop(tx.send(Ok(()))),
            (Reply::Device(tx), Ok(Done::Device(d))) => drop(tx.send(Ok(d))),
            (Reply::Bool(tx), Ok(Done::Bool(b))) => drop(tx.send(Ok(b))),
            (Reply::Submit(tx), Err(e)) => drop(tx.send(Err(e))),
            (Reply::Ack(tx), Err(e)) => drop(tx.send(Err(e))),
            (Reply::Count(tx), Err(e)) => drop(tx.send(Err(e))),
            (Reply::Unit(tx), Err(e)) => drop(tx.send(Err(e))),
            (Reply::Device(tx), Err(e)) => drop(tx.send(Err(e))),
            (Reply::Bool(tx), Err(e)) => drop(tx.send(Err(e))),
            _ => unreachable!("reply kind always matches its operation"),
        }
    }
}

pub(super) fn writer_loop(db: &Arc<Database>, rx: mpsc::Receiver<Job>, retention_ms: u64) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let outcome = apply_batch(db, &mut jobs, retention_ms);
        match outcome {
            Ok(results) => {
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

/// Applies every job in one transaction. A per-job result is returned for each; an `Err` of
/// the whole means nothing was committed.
fn apply_batch(db: &Database, jobs: &mut [Job], retention_ms: u64) -> Result<Vec<Result<Done>>> {
    let txn = db.begin_write().map_err(Error::backend)?;
    let mut results = Vec::with_capacity(jobs.len());
    for job in jobs.iter_mut() {
        let r = match &mut job.op {
            Op::Submit(msg) => submit(&txn, msg).map(Done::Submitted),
            Op::Delivered { id, user } => delivered(&txn, id, user).map(|_| Done::Unit),
            Op::Ack { id, user } => ack(&txn, id, user).map(Done::Ack),
            Op::Expire { now_ms } => expire(&txn, *now_ms, retention_ms).map(Done::Count),
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
    txn.commit().map_err(Error::backend)?;
    Ok(results)
}

fn submit(txn: &WriteTransaction, msg: &mut NewMessage) -> Result<Submitted> {
    let mut idem = txn.open_table(IDEMPOTENCY).map_err(Error::backend)?;
    if let Some(key) = &msg.idempotency_key
        && let Some(id) = idem.get(key.as_str()).map_err(Error::backend)?
    {
        return Ok(Submitted::Duplicate {
            id: id.value().to_owned(),
        });
    }
    let id = new_message_id();
    let created_at_ms = now_ms();
    let expires_at_ms = created_at_ms + msg.ttl_secs * 1000;
    let payload = std::mem::replace(
        &mut msg.payload,
        serde_json::value::RawValue::NULL.to_owned(),
    );
    let to = std::mem::take(&mut msg.to);
    let notification = msg.notification.take();

    let mut seqs = txn.open_table(USER_SEQ).map_err(Error::backend)?;
    let mut inbox = txn.open_table(INBOX).map_err(Error::backend)?;
    let mut history = txn.open_table(HISTORY).map_err(Error::backend)?;
    let mut rcpts = txn.open_table(RECIPIENTS).map_err(Error::backend)?;
    let mut recipients = Vec::with_capacity(to.len());
    for user in &to {
        let seq = seqs
            .get(user.as_str())
            .map_err(Error::backend)?
            .map(|v| v.value())
            .unwrap_or(0)
            + 1;
        seqs.insert(user.as_str(), seq).map_err(Error::backend)?;
        inbox
            .insert((user.as_str(), seq), id.as_str())
            .map_err(Error::backend)?;
        history
            .insert((user.as_str(), seq), id.as_str())
            .map_err(Error::backend)?;
        rcpts
            .insert(
                (id.as_str(), user.as_str()),
                (seq, RecipientState::Pending.as_u8()),
            )
            .map_err(Error::backend)?;
        recipients.push((user.clone(), seq));
    }
    let record = Record {
        created_at_ms,
        expires_at_ms,
        payload,
        idempotency_key: msg.idempotency_key.clone(),
        to,
        notification,
        mobile: msg.mobile,
    };
    let bytes = serde_json::to_vec(&record).map_err(Error::backend)?;
    txn.open_table(MESSAGES)
        .map_err(Error::backend)?
        .insert(id.as_str(), bytes.as_slice())
        .map_err(Error::backend)?;
    txn.open_table(EXPIRY)
        .map_err(Error::backend)?
        .insert((expires_at_ms, id.as_str()), ())
        .map_err(Error::backend)?;
    if let Some(key) = &record.idempotency_key {
        idem.insert(key.as_str(), id.as_str())
            .map_err(Error::backend)?;
    }
    Ok(Submitted::New(StoredMessage {
        id,
        payload: Arc::from(record.payload),
        created_at_ms,
        expires_at_ms,
        recipients,
        notification: record.notification.map(Arc::new),
        mobile: record.mobile,
    }))
}

/// Moves one recipient's state forward; returns the (seq, old, new) states, or `None` if the
/// message has no such recipient.
fn transition(
    txn: &WriteTransaction,
    id: &str,
    user: &str,
    to: RecipientState,
) -> Result<Option<(u64, RecipientState, RecipientState)>> {
    let mut rcpts = txn.open_table(RECIPIENTS).map_err(Error::backend)?;
    let Some((seq, old)) = rcpts
        .get((id, user))
        .map_err(Error::backend)?
        .map(|v| v.value())
    else {
        return Ok(None);
    };
    let old = RecipientState::from_u8(old)
        .ok_or_else(|| Error::Corrupt(format!("state {old} of {id}/{user}")))?;
    let new = old.advance(to);
    if new != old {
        rcpts
            .insert((id, user), (seq, new.as_u8()))
            .map_err(Error::backend)?;
    }
    Ok(Some((seq, old, new)))
}

fn delivered(txn: &WriteTransaction, id: &str, user: &str) -> Result<()> {
    transition(txn, id, user, RecipientState::Delivered).map(|_| ())
}

fn ack(txn: &WriteTransaction, id: &str, user: &str) -> Result<AckOutcome> {
    match transition(txn, id, user, RecipientState::Acked)? {
        None => Ok(AckOutcome::Unknown),
        Some((_, old, _)) if old == RecipientState::Acked || old == RecipientState::Expired => {
            Ok(AckOutcome::AlreadyFinal)
        }
        Some((seq, _, _)) => {
            txn.open_table(INBOX)
                .map_err(Error::backend)?
                .remove((user, seq))
                .map_err(Error::backend)?;
            Ok(AckOutcome::Acked)
        }
    }
}

/// Expires due messages (their unacked recipients leave the inboxes) and purges messages whose
/// retention is over. Bounded per call so one transaction stays small.
fn expire(txn: &WriteTransaction, now_ms: u64, retention_ms: u64) -> Result<u64> {
    const MAX_PER_CALL: usize = 1000;
    let mut expired = 0u64;
    let due: Vec<(u64, String)> = {
        let table = txn.open_table(EXPIRY).map_err(Error::backend)?;
        let mut due = Vec::new();
        for entry in table
            .range((0u64, "")..(now_ms.saturating_add(1), ""))
            .map_err(Error::backend)?
            .take(MAX_PER_CALL)
        {
            let (k, _) = entry.map_err(Error::backend)?;
            let (at, id) = k.value();
            due.push((at, id.to_owned()));
        }
        due
    };
    for (at, id) in &due {
        let rec = match txn
            .open_table(MESSAGES)
            .map_err(Error::backend)?
            .get(id.as_str())
            .map_err(Error::backend)?
        {
            Some(bytes) => Some(Record::decode(id, bytes.value())?),
            None => None,
        };
        if let Some(rec) = rec {
            for user in &rec.to {
                if let Some((seq, old, new)) = transition(txn, id, user, RecipientState::Expired)?
                    && old != new
                {
                    expired += 1;
                    txn.open_table(INBOX)
                        .map_err(Error::backend)?
                        .remove((user.as_str(), seq))
                        .map_err(Error::backend)?;
                }
            }
        }
        txn.open_table(EXPIRY)
            .map_err(Error::backend)?
            .remove((*at, id.as_str()))
            .map_err(Error::backend)?;
        txn.open_table(PURGE)
            .map_err(Error::backend)?
            .insert((at.saturating_add(retention_ms), id.as_str()), ())
            .map_err(Error::backend)?;
    }
    purge(txn, now_ms, MAX_PER_CALL)?;
    Ok(expired)
}

fn purge(txn: &WriteTransaction, now_ms: u64, max: usize) -> Result<()> {
    let due: Vec<(u64, String)> = {
        let table = txn.open_table(PURGE).map_err(Error::backend)?;
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
        due
    };
    let mut messages = txn.open_table(MESSAGES).map_err(Error::backend)?;
    let mut rcpts = txn.open_table(RECIPIENTS).map_err(Error::backend)?;
    let mut idem = txn.open_table(IDEMPOTENCY).map_err(Error::backend)?;
    let mut purge = txn.open_table(PURGE).map_err(Error::backend)?;
    let mut history = txn.open_table(HISTORY).map_err(Error::backend)?;
    for (at, id) in &due {
        if let Some(bytes) = messages.remove(id.as_str()).map_err(Error::backend)? {
            let rec = Record::decode(id, bytes.value())?;
            for user in &rec.to {
                if let Some(v) = rcpts
                    .remove((id.as_str(), user.as_str()))
                    .map_err(Error::backend)?
                {
                    let (seq, _) = v.value();
                    history
                        .remove((user.as_str(), seq))
                        .map_err(Error::backend)?;
                }
            }
            if let Some(key) = &rec.idempotency_key {
                idem.remove(key.as_str()).map_err(Error::backend)?;
            }
            devices::purge_mobile(txn, id)?;
        }
        purge.remove((*at, id.as_str())).map_err(Error::backend)?;
    }
    Ok(())
}
