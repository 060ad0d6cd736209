//! The embedded store: one redb file in `--data-dir`.
//!
//! Why redb: pure Rust (no C toolchain, no shared library), ACID with copy-on-write B-trees and
//! checksummed commits, so a crash at any point leaves the last committed transaction intact;
//! actively maintained with a stable file format. See `docs/storage.md`.
//!
//! All writes go through one writer thread that applies every queued operation in a single
//! transaction and commits once (group commit): one fsync covers many submits, acks and
//! outbox updates, and the users' watermarks touched by a commit are written once each.
//! Reads use their own read transactions on the blocking pool.
//!
//! Per message: its record, its recipient list, one index entry per recipient, a purge
//! entry; per batch: one outbox entry; per user: one row of counters (highest seq,
//! acked-through, delivered-through), kept after the user's messages are purged so seqs
//! never go back.

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;

use async_trait::async_trait;
use pushcluster_proto::api::{
    Device, MessageStatus, MobileRecord, NewDevice, NewMessage, RecipientState, RecipientStatus,
};
use pushcluster_proto::delivery::now_ms;
use redb::{Database, ReadableDatabase, TableDefinition, WriteTransaction};
use tokio::sync::oneshot;

use crate::{
    Accepted, AckOutcome, BatchId, DeviceSaved, Error, MessageStore, OutboxBatch, Pending,
    PendingPage, Result, RetryMobile, StoredMessage,
};

mod codec;
mod devices;
mod ops;
mod users;

use codec::Record;

/// id → [`Record`] (times, metadata, payload).
const MESSAGES: TableDefinition<&str, &[u8]> = TableDefinition::new("v2.messages");
/// id → the message's recipients and their seqs.
const RECIPIENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("v2.recipients");
/// idempotency key → id.
const IDEMPOTENCY: TableDefinition<&str, &str> = TableDefinition::new("v2.idempotency");
/// user → (highest seq assigned, acked through, delivered through).
const USERS: TableDefinition<&str, (u64, u64, u64)> = TableDefinition::new("v2.users");
/// (user, seq) → id, for every message of the user until it is purged.
const INDEX: TableDefinition<(&str, u64), &str> = TableDefinition::new("v2.index");
/// batch id → lease end and message ids: accepted, not yet dispatched.
const OUTBOX: TableDefinition<&str, &[u8]> = TableDefinition::new("v2.outbox");
/// (purge_at_ms, id): when each message's retention ends (its expiry + the retention).
const PURGE: TableDefinition<(u64, &str), ()> = TableDefinition::new("v2.purge");
/// device token → [`Device`] as JSON.
const DEVICES: TableDefinition<&str, &[u8]> = TableDefinition::new("devices");
/// (user, device token), to list a user's devices.
const USER_DEVICES: TableDefinition<(&str, &str), ()> = TableDefinition::new("user_devices");
/// (message id, device token) → [`MobileRecord`] as JSON; purged with the message.
const MOBILE: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("mobile");

/// How long the status of an expired message stays readable before it is purged.
const DEFAULT_RETENTION_MS: u64 = 24 * 3600 * 1000;

/// A user's counters: `(high, acked, delivered)`.
type Marks = (u64, u64, u64);

/// The redb-backed [`MessageStore`].
#[derive(Clone)]
pub struct RedbStore {
    db: Arc<Database>,
    writer: mpsc::Sender<ops::Job>,
    lease: crate::outbox::HandoffLease,
    /// Progress the writer applied and has not written yet; reads merge it.
    pending: users::Pending,
}

impl RedbStore {
    /// Opens (or creates) `dir/messages.redb` and starts the writer thread.
    pub fn open(dir: &Path) -> Result<RedbStore> {
        let open_err = |source: Box<dyn std::error::Error + Send + Sync>| Error::Open {
            path: dir.display().to_string(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(|e| open_err(Box::new(e)))?;
        let db = Database::create(dir.join("messages.redb")).map_err(|e| open_err(Box::new(e)))?;
        let txn = db.begin_write().map_err(|e| open_err(Box::new(e)))?;
        create_tables(&txn).map_err(|e| open_err(Box::new(e)))?;
        let released = ops::release_outbox(&txn).map_err(|e| open_err(Box::new(e)))?;
        txn.commit().map_err(|e| open_err(Box::new(e)))?;
        if released > 0 {
            tracing::info!(
                batches = released,
                "outbox batches of the previous run are due now"
            );
        }
        let db = Arc::new(db);
        let (tx, rx) = mpsc::channel();
        let writer_db = db.clone();
        let lease = crate::outbox::HandoffLease::default();
        let writer_lease = lease.clone();
        let pending = users::Pending::default();
        let writer_pending = pending.clone();
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                ops::writer_loop(
                    &writer_db,
                    rx,
                    DEFAULT_RETENTION_MS,
                    writer_lease,
                    writer_pending,
                )
            })
            .map_err(|e| open_err(Box::new(e)))?;
        Ok(RedbStore {
            db,
            writer: tx,
            lease,
            pending,
        })
    }

    /// How long an accepted batch stays leased to the submitter's dispatch (see
    /// [`HANDOFF_LEASE`](crate::outbox::HANDOFF_LEASE)).
    pub fn set_handoff_lease(&self, lease: std::time::Duration) {
        self.lease.set(lease);
    }

    async fn write<T: Send + 'static>(
        &self,
        op: ops::Op,
        wrap: fn(oneshot::Sender<Result<T>>) -> ops::Reply,
    ) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.writer
            .send(ops::Job {
                op,
                reply: wrap(tx),
            })
            .map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// Queues a write nobody waits for.
    fn write_unawaited(&self, op: ops::Op) -> Result<()> {
        let (tx, _rx) = oneshot::channel();
        self.writer
            .send(ops::Job {
                op,
                reply: ops::Reply::Unit(tx),
            })
            .map_err(|_| Error::Closed)
    }

    /// Runs `f` on a read transaction; again if the writer flushed deferred progress
    /// meanwhile (`f` merges it with [`users::Pending`]).
    async fn read<T: Send + 'static>(
        &self,
        f: impl Fn(&redb::ReadTransaction, &users::Pending) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (db, pending) = (self.db.clone(), self.pending.clone());
        tokio::task::spawn_blocking(move || {
            pending.consistent(|| {
                let txn = db.begin_read().map_err(Error::backend)?;
                f(&txn, &pending)
            })
        })
        .await
        .map_err(|_| Error::Closed)?
    }

    /// Up to `limit` unexpired messages of `user` with `seq > after` (and above the user's
    /// acked-through watermark when `unacked_only`).
    async fn page(
        &self,
        user: &str,
        after: u64,
        limit: usize,
        unacked_only: bool,
    ) -> Result<PendingPage> {
        let user = user.to_owned();
        self.read(move |txn, pending| {
            let index = txn.open_table(INDEX).map_err(Error::backend)?;
            let row = users::read_marks(
                &txn.open_table(USERS).map_err(Error::backend)?,
                &index,
                &user,
            )?;
            let (high_seq, acked, _) = pending.merge(&user, row);
            let after = if unacked_only {
                after.max(acked)
            } else {
                after
            };
            let messages = txn.open_table(MESSAGES).map_err(Error::backend)?;
            let now = now_ms();
            let mut items = Vec::new();
            let start = after.saturating_add(1);
            for entry in index
                .range((user.as_str(), start)..=(user.as_str(), u64::MAX))
                .map_err(Error::backend)?
            {
                if items.len() >= limit {
                    break;
                }
                let (key, id) = entry.map_err(Error::backend)?;
                let (seq, id) = (key.value().1, id.value().to_owned());
                let Some(bytes) = messages.get(id.as_str()).map_err(Error::backend)? else {
                    continue;
                };
                let (created_at_ms, expires_at_ms, payload) =
                    Record::decode_light(&id, bytes.value())?;
                if expires_at_ms <= now {
                    continue;
                }
                items.push(Pending {
                    id,
                    seq,
                    payload,
                    created_at_ms,
                    expires_at_ms,
                });
            }
            Ok(PendingPage { items, high_seq })
        })
        .await
    }
}

/// A user's counters, zero for a user never seen.
fn marks(
    users: &impl redb::ReadableTable<&'static str, (u64, u64, u64)>,
    user: &str,
) -> Result<Marks> {
    Ok(users
        .get(user)
        .map_err(Error::backend)?
        .map(|v| v.value())
        .unwrap_or_default())
}

/// A stored message as dispatch needs it, read from `messages` and `recipients`.
fn load_message(
    messages: &impl redb::ReadableTable<&'static str, &'static [u8]>,
    recipients: &impl redb::ReadableTable<&'static str, &'static [u8]>,
    id: &str,
) -> Result<Option<StoredMessage>> {
    let Some(bytes) = messages.get(id).map_err(Error::backend)? else {
        return Ok(None);
    };
    let rec = Record::decode(id, bytes.value())?;
    let list = match recipients.get(id).map_err(Error::backend)? {
        Some(b) => codec::decode_recipients(id, b.value())?,
        None => Vec::new(),
    };
    Ok(Some(StoredMessage {
        id: id.to_owned(),
        payload: rec.payload,
        created_at_ms: rec.created_at_ms,
        expires_at_ms: rec.expires_at_ms,
        recipients: list,
        notification: rec.meta.notification.map(Arc::new),
        mobile: rec.meta.mobile,
    }))
}

/// The messages of an outbox entry that still exist.
fn load_batch(
    messages: &impl redb::ReadableTable<&'static str, &'static [u8]>,
    recipients: &impl redb::ReadableTable<&'static str, &'static [u8]>,
    id: &str,
    ids: &[String],
) -> Result<OutboxBatch> {
    let mut out = Vec::with_capacity(ids.len());
    for m in ids {
        out.extend(load_message(messages, recipients, m)?);
    }
    Ok(OutboxBatch {
        id: BatchId(id.to_owned()),
        messages: out,
    })
}

fn create_tables(txn: &WriteTransaction) -> Result<(), redb::TableError> {
    txn.open_table(MESSAGES)?;
    txn.open_table(RECIPIENTS)?;
    txn.open_table(IDEMPOTENCY)?;
    txn.open_table(USERS)?;
    txn.open_table(INDEX)?;
    txn.open_table(OUTBOX)?;
    txn.open_table(PURGE)?;
    txn.open_table(DEVICES)?;
    txn.open_table(USER_DEVICES)?;
    txn.open_table(MOBILE)?;
    Ok(())
}

#[async_trait]
impl MessageStore for RedbStore {
    async fn submit(&self, batch: Vec<NewMessage>) -> Result<Accepted> {
        self.write(ops::Op::Submit(batch), ops::Reply::Submit).await
    }

    async fn claim_outbox(
        &self,
        _owner: &str,
        lease: std::time::Duration,
        limit: usize,
    ) -> Result<Vec<OutboxBatch>> {
        // One process owns the file: the owner is implied, only the lease matters.
        let op = ops::Op::ClaimOutbox {
            lease_ms: lease.as_millis() as u64,
            limit,
        };
        self.write(op, ops::Reply::Batches).await
    }

    async fn outbox_batch(&self, id: &BatchId) -> Result<Option<OutboxBatch>> {
        let id = id.0.clone();
        self.read(move |txn, pending| {
            if pending.is_cleared(&id) {
                return Ok(None);
            }
            let outbox = txn.open_table(OUTBOX).map_err(Error::backend)?;
            let Some(v) = outbox.get(id.as_str()).map_err(Error::backend)? else {
                return Ok(None);
            };
            let (_, ids) = codec::decode_outbox(&id, v.value())?;
            let messages = txn.open_table(MESSAGES).map_err(Error::backend)?;
            let recipients = txn.open_table(RECIPIENTS).map_err(Error::backend)?;
            load_batch(&messages, &recipients, &id, &ids).map(Some)
        })
        .await
    }

    async fn complete_outbox(&self, ids: &[BatchId]) -> Result<()> {
        self.write(ops::Op::CompleteOutbox(ids.to_vec()), ops::Reply::Unit)
            .await
    }

    async fn pending(&self, user: &str, after: u64, limit: usize) -> Result<PendingPage> {
        self.page(user, after, limit, true).await
    }

    async fn backlog(&self, user: &str, after: u64, limit: usize) -> Result<PendingPage> {
        self.page(user, after, limit, false).await
    }

    async fn mark_delivered(&self, user: &str, seq: u64) -> Result<()> {
        if self.pending.try_delivered(user, seq) {
            return Ok(());
        }
        self.write_unawaited(ops::Op::Delivered {
            user: user.to_owned(),
            seq,
        })
    }

    async fn ack(&self, user: &str, seq: u64) -> Result<AckOutcome> {
        if let Some(outcome) = self.pending.try_ack(user, seq) {
            return Ok(outcome);
        }
        let op = ops::Op::Ack {
            user: user.to_owned(),
            seq,
        };
        self.write(op, ops::Reply::Ack).await
    }

    async fn status(&self, id: &str) -> Result<Option<MessageStatus>> {
        let id = id.to_owned();
        self.read(move |txn, pending| {
            let messages = txn.open_table(MESSAGES).map_err(Error::backend)?;
            let Some(bytes) = messages.get(id.as_str()).map_err(Error::backend)? else {
                return Ok(None);
            };
            let rec = Record::decode(&id, bytes.value())?;
            let list = match txn
                .open_table(RECIPIENTS)
                .map_err(Error::backend)?
                .get(id.as_str())
                .map_err(Error::backend)?
            {
                Some(b) => codec::decode_recipients(&id, b.value())?,
                None => Vec::new(),
            };
            let users = txn.open_table(USERS).map_err(Error::backend)?;
            let now = now_ms();
            let rows = list
                .iter()
                .map(|(user, _)| Ok((user.as_str(), marks(&users, user)?)))
                .collect::<Result<Vec<_>>>()?;
            let merged = pending.merge_all(rows.into_iter());
            let mut recipients = Vec::with_capacity(list.len());
            for ((user, seq), (_, acked, delivered)) in list.into_iter().zip(merged) {
                let state = RecipientState::derive(seq, acked, delivered, rec.expires_at_ms, now);
                recipients.push(RecipientStatus { user, seq, state });
            }
            let mobile = devices::mobile_records(txn, &id)?;
            Ok(Some(MessageStatus {
                id: id.clone(),
                created_at_ms: rec.created_at_ms,
                expires_at_ms: rec.expires_at_ms,
                recipients,
                mobile,
            }))
        })
        .await
    }

    async fn expire(&self, now_ms: u64) -> Result<u64> {
        // Expired messages are skipped by reads already; this purges old ones.
        self.write(ops::Op::Expire { now_ms }, ops::Reply::Count)
            .await
    }

    async fn put_device(&self, device: NewDevice) -> Result<DeviceSaved> {
        self.write(ops::Op::PutDevice(device), ops::Reply::Device)
            .await
    }

    async fn delete_device(&self, token: &str) -> Result<bool> {
        let op = ops::Op::DeleteDevice {
            token: token.to_owned(),
        };
        self.write(op, ops::Reply::Bool).await
    }

    async fn devices(&self, user: &str) -> Result<Vec<Device>> {
        let user = user.to_owned();
        self.read(move |txn, _| devices::list(txn, &user)).await
    }

    async fn mark_device_dead(&self, token: &str, at_ms: u64) -> Result<bool> {
        let op = ops::Op::DeviceDead {
            token: token.to_owned(),
            at_ms,
        };
        self.write(op, ops::Reply::Bool).await
    }

    async fn claim_mobile(&self, record: &MobileRecord) -> Result<bool> {
        self.write(ops::Op::ClaimMobile(record.clone()), ops::Reply::Bool)
            .await
    }

    async fn update_mobile(&self, record: &MobileRecord) -> Result<()> {
        self.write(ops::Op::UpdateMobile(record.clone()), ops::Reply::Unit)
            .await
    }

    async fn retryable_mobile(&self, before_ms: u64, limit: usize) -> Result<Vec<RetryMobile>> {
        self.read(move |txn, _| devices::retryable_mobile(txn, before_ms, limit))
            .await
    }

    async fn retake_mobile(&self, record: &MobileRecord, now_ms: u64) -> Result<bool> {
        let op = ops::Op::RetakeMobile(record.clone(), now_ms);
        self.write(op, ops::Reply::Bool).await
    }
}

#[cfg(test)]
mod tests;
