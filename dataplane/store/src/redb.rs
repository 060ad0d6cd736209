//! The embedded store: one redb file in `--data-dir`.
//!
//! Why redb: pure Rust (no C toolchain, no shared library), ACID with copy-on-write B-trees and
//! checksummed commits, so a crash at any point leaves the last committed transaction intact;
//! actively maintained with a stable file format. See `docs/storage.md`.
//!
//! All writes go through one writer thread that applies every queued operation in a single
//! transaction and commits once (group commit): one fsync covers many submits, deliveries and
//! acks. Reads use their own read transactions on the blocking pool.

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;

use async_trait::async_trait;
use pushcluster_proto::api::{
    Device, MessageStatus, Mobile, MobileRecord, NewDevice, NewMessage, Notification,
    RecipientState, RecipientStatus,
};
use pushcluster_proto::delivery::now_ms;
use redb::{Database, ReadableDatabase, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::sync::oneshot;

use crate::{
    AckOutcome, DeviceSaved, Error, MessageStore, Pending, PendingPage, Result, RetryMobile,
    Submitted,
};

mod devices;
mod ops;

/// id → [`Record`] as JSON.
const MESSAGES: TableDefinition<&str, &[u8]> = TableDefinition::new("messages");
/// idempotency key → id.
const IDEMPOTENCY: TableDefinition<&str, &str> = TableDefinition::new("idempotency");
/// user → highest seq assigned.
const USER_SEQ: TableDefinition<&str, u64> = TableDefinition::new("user_seq");
/// (user, seq) → id, for messages the user has neither acked nor let expire.
const INBOX: TableDefinition<(&str, u64), &str> = TableDefinition::new("inbox");
/// (user, seq) → id, for every message of the user until it is purged (acked or not): what a
/// device resuming from a seq still needs, whatever the user's other devices acked.
const HISTORY: TableDefinition<(&str, u64), &str> = TableDefinition::new("history");
/// (id, user) → (seq, state).
const RECIPIENTS: TableDefinition<(&str, &str), (u64, u8)> = TableDefinition::new("recipients");
/// (expires_at_ms, id) for messages not yet expired.
const EXPIRY: TableDefinition<(u64, &str), ()> = TableDefinition::new("expiry");
/// (purge_at_ms, id) for expired messages whose status is still kept.
const PURGE: TableDefinition<(u64, &str), ()> = TableDefinition::new("purge");
/// device token → [`Device`] as JSON.
const DEVICES: TableDefinition<&str, &[u8]> = TableDefinition::new("devices");
/// (user, device token), to list a user's devices.
const USER_DEVICES: TableDefinition<(&str, &str), ()> = TableDefinition::new("user_devices");
/// (message id, device token) → [`MobileRecord`] as JSON; purged with the message.
const MOBILE: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("mobile");

/// A stored message.
#[derive(Serialize, Deserialize)]
struct Record {
    created_at_ms: u64,
    expires_at_ms: u64,
    payload: Box<RawValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    idempotency_key: Option<String>,
    to: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    notification: Option<Notification>,
    #[serde(default)]
    mobile: Mobile,
}

impl Record {
    fn decode(id: &str, bytes: &[u8]) -> Result<Record> {
        serde_json::from_slice(bytes).map_err(|e| Error::Corrupt(format!("message {id}: {e}")))
    }
}

/// How long the status of an expired message stays readable before it is purged.
const DEFAULT_RETENTION_MS: u64 = 24 * 3600 * 1000;

/// The redb-backed [`MessageStore`].
#[derive(Clone)]
pub struct RedbStore {
    db: Arc<Database>,
    writer: mpsc::Sender<ops::Job>,
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
        txn.commit().map_err(|e| open_err(Box::new(e)))?;
        let db = Arc::new(db);
        let (tx, rx) = mpsc::channel();
        let writer_db = db.clone();
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || ops::writer_loop(&writer_db, rx, DEFAULT_RETENTION_MS))
            .map_err(|e| open_err(Box::new(e)))?;
        Ok(RedbStore { db, writer: tx })
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

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_read().map_err(Error::backend)?;
            f(&txn)
        })
        .await
        .map_err(|_| Error::Closed)?
    }

    /// Up to `limit` unexpired messages of `user` with `seq > after` listed in `index`.
    async fn page(
        &self,
        index: TableDefinition<'static, (&'static str, u64), &'static str>,
        user: &str,
        after: u64,
        limit: usize,
    ) -> Result<PendingPage> {
        let user = user.to_owned();
        self.read(move |txn| {
            let seqs = txn.open_table(USER_SEQ).map_err(Error::backend)?;
            let high_seq = seqs
                .get(user.as_str())
                .map_err(Error::backend)?
                .map(|v| v.value())
                .unwrap_or(0);
            let index_table = txn.open_table(index).map_err(Error::backend)?;
            let messages = txn.open_table(MESSAGES).map_err(Error::backend)?;
            let now = now_ms();
            let mut items = Vec::new();
            let start = after.saturating_add(1);
            for entry in index_table
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
                let rec = Record::decode(&id, bytes.value())?;
                if rec.expires_at_ms <= now {
                    continue;
                }
                items.push(Pending {
                    id,
                    seq,
                    payload: Arc::from(rec.payload),
                    created_at_ms: rec.created_at_ms,
                    expires_at_ms: rec.expires_at_ms,
                });
            }
            Ok(PendingPage { items, high_seq })
        })
        .await
    }
}

fn create_tables(txn: &WriteTransaction) -> Result<(), redb::TableError> {
    txn.open_table(MESSAGES)?;
    txn.open_table(IDEMPOTENCY)?;
    txn.open_table(USER_SEQ)?;
    txn.open_table(INBOX)?;
    txn.open_table(HISTORY)?;
    txn.open_table(RECIPIENTS)?;
    txn.open_table(EXPIRY)?;
    txn.open_table(PURGE)?;
    txn.open_table(DEVICES)?;
    txn.open_table(USER_DEVICES)?;
    txn.open_table(MOBILE)?;
    Ok(())
}

#[async_trait]
impl MessageStore for RedbStore {
    async fn submit(&self, msg: NewMessage) -> Result<Submitted> {
        self.write(ops::Op::Submit(msg), ops::Reply::Submit).await
    }

    async fn pending(&self, user: &str, after: u64, limit: usize) -> Result<PendingPage> {
        self.page(INBOX, user, after, limit).await
    }

    async fn backlog(&self, user: &str, after: u64, limit: usize) -> Result<PendingPage> {
        self.page(HISTORY, user, after, limit).await
    }

    async fn mark_delivered(&self, id: &str, user: &str) -> Result<()> {
        // Buffered: do not wait for the commit.
        let (tx, _rx) = oneshot::channel();
        self.writer
            .send(ops::Job {
                op: ops::Op::Delivered {
                    id: id.to_owned(),
                    user: user.to_owned(),
                },
                reply: ops::Reply::Unit(tx),
            })
            .map_err(|_| Error::Closed)
    }

    async fn ack(&self, user: &str, id: &str) -> Result<AckOutcome> {
        let op = ops::Op::Ack {
            id: id.to_owned(),
            user: user.to_owned(),
        };
        self.write(op, ops::Reply::Ack).await
    }

    async fn status(&self, id: &str) -> Result<Option<MessageStatus>> {
        let id = id.to_owned();
        self.read(move |txn| {
            let messages = txn.open_table(MESSAGES).map_err(Error::backend)?;
            let Some(bytes) = messages.get(id.as_str()).map_err(Error::backend)? else {
                return Ok(None);
            };
            let rec = Record::decode(&id, bytes.value())?;
            let rcpts = txn.open_table(RECIPIENTS).map_err(Error::backend)?;
            let now = now_ms();
            let mut recipients = Vec::with_capacity(rec.to.len());
            for user in &rec.to {
                let Some(v) = rcpts
                    .get((id.as_str(), user.as_str()))
                    .map_err(Error::backend)?
                else {
                    continue;
                };
                let (seq, state) = v.value();
                let state = RecipientState::from_u8(state)
                    .ok_or_else(|| Error::Corrupt(format!("state {state} of {id}/{user}")))?;
                recipients.push(RecipientStatus {
                    user: user.clone(),
                    seq,
                    state: state.at(rec.expires_at_ms, now),
                });
            }
            let mobile = devices::mobile_records(txn, &id)?;
            Ok(Some(MessageStatus {
                id,
                created_at_ms: rec.created_at_ms,
                expires_at_ms: rec.expires_at_ms,
                recipients,
                mobile,
            }))
        })
        .await
    }

    async fn expire(&self, now_ms: u64) -> Result<u64> {
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
        self.read(move |txn| devices::list(txn, &user)).await
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
        self.read(move |txn| devices::retryable_mobile(txn, before_ms, limit))
            .await
    }

    async fn retake_mobile(&self, record: &MobileRecord, now_ms: u64) -> Result<bool> {
        let op = ops::Op::RetakeMobile(record.clone(), now_ms);
        self.write(op, ops::Reply::Bool).await
    }
}

#[cfg(test)]
mod tests;
