//! The cluster's store: MongoDB, any deployment the official driver reaches through the URI
//! (standalone, replica set, sharded cluster; FerretDB in tests).
//!
//! Collections (no multi-document transactions anywhere):
//! - `messages`: `{_id: id, payload: "<JSON text>", created_at, expires_at, to: [user],
//!   idempotency_key?, purge_at}`. A unique sparse index on `idempotency_key` makes the insert
//!   of the message the atomic claim of its key.
//! - `deliveries`: one per (message, user): `{_id: "<id>/<user>", msg, user, seq, state,
//!   expires_at, purge_at}`; unique on `(user, seq)` (replay order), indexed on `(msg, user)`
//!   (status) and `(state, expires_at)` (expiry sweep). `state` is [`RecipientState::as_u8`].
//! - `user_seq`: `{_id: user, seq}`: the highest seq handed out, bumped with
//!   `findAndModify {$inc}` + upsert.
//! - `devices` and `mobile`: users' mobile devices and per-(message, device) notification
//!   records, see [`devices`].
//!
//! Times are Unix milliseconds (Int64); `purge_at` (a BSON date) is expiry + 24 h, the same
//! retention as redb, and a TTL index on it deletes old messages and deliveries. Servers
//! without TTL indexes (FerretDB) get a plain index instead; [`MessageStore::expire`] also
//! purges, so status disappears at the same moment as with redb either way.
//!
//! Crash safety: `submit` inserts the message, then each recipient's delivery, and returns
//! only after all of them (with the server's default write concern, `majority` on replica
//! sets since MongoDB 5.0; set `w=majority` in the URI for older servers). A crash in
//! between leaves a message with missing deliveries: the client got no 202, and its retry with
//! the same idempotency key completes them before answering `Duplicate`.
//!
//! FerretDB (the tests' server) has no TTL or partial indexes, and applies an update as an
//! unisolated read-modify-write, so concurrent updates of one document can be lost. Seqs stay
//! distinct and gap-free anyway (the unique `(user, seq)` index arbitrates, see `submit`), but
//! a `mark_delivered` racing an `ack` of the same delivery can set it back to delivered (it is
//! then replayed once more). MongoDB itself updates one document atomically.
//!
//! Sharding: shard `deliveries` on `{user: 1}` and keep `messages` and `user_seq` unsharded
//! (or shard `user_seq` on `_id`); a unique index must be prefixed by the shard key.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mongodb::bson::{Bson, DateTime, Document, doc};
use mongodb::options::{ClientOptions, IndexOptions};
use mongodb::{Collection, IndexModel};
use pushcluster_proto::api::{
    Device, MessageStatus, MobileRecord, NewDevice, NewMessage, RecipientState,
};
use tokio::sync::Semaphore;

use crate::{
    AckOutcome, DeviceSaved, Error, MessageStore, PendingPage, Result, RetryMobile, Submitted,
};

mod devices;
mod read;
mod submit;
mod update;

/// How long the status of an expired message stays readable (as redb's retention).
const RETENTION_MS: u64 = 24 * 3600 * 1000;
/// How long to look for a reachable server before an operation fails (callers answer 503).
const SERVER_SELECTION_TIMEOUT: Duration = Duration::from_secs(3);
/// Most `mark_delivered` updates in flight; beyond that they are dropped (status is advisory).
const MAX_BUFFERED_DELIVERED: usize = 4096;

/// The MongoDB-backed [`MessageStore`]. Cheap to clone: clones share the connection pool.
#[derive(Clone)]
pub struct MongoStore {
    messages: Collection<Document>,
    deliveries: Collection<Document>,
    user_seq: Collection<Document>,
    devices: Collection<Document>,
    mobile: Collection<Document>,
    delivered_slots: Arc<Semaphore>,
}

impl MongoStore {
    /// Connects to `database` at `uri` and creates the indexes (idempotent). Fails within a
    /// few seconds when no server is reachable.
    pub async fn connect(uri: &str, database: &str) -> Result<MongoStore> {
        let store = Self::connect_lazy(uri, database).await?;
        store.create_indexes().await.map_err(|e| Error::Open {
            path: format!("MongoDB database {database}"),
            source: Box::new(e),
        })?;
        Ok(store)
    }

    /// Parses the URI without contacting the server and without creating indexes: each
    /// operation fails (after the server selection timeout) until a server is reachable.
    pub async fn connect_lazy(uri: &str, database: &str) -> Result<MongoStore> {
        let open_err = |e: mongodb::error::Error| Error::Open {
            path: format!("MongoDB database {database}"),
            source: Box::new(e),
        };
        let mut opts = ClientOptions::parse(uri).await.map_err(open_err)?;
        opts.server_selection_timeout
            .get_or_insert(SERVER_SELECTION_TIMEOUT);
        opts.connect_timeout.get_or_insert(SERVER_SELECTION_TIMEOUT);
        opts.app_name.get_or_insert_with(|| "pushcluster".into());
        let db = mongodb::Client::with_options(opts)
            .map_err(open_err)?
            .database(database);
        Ok(MongoStore {
            messages: db.collection("messages"),
            deliveries: db.collection("deliveries"),
            user_seq: db.collection("user_seq"),
            devices: db.collection("devices"),
            mobile: db.collection("mobile"),
            delivered_slots: Arc::new(Semaphore::new(MAX_BUFFERED_DELIVERED)),
        })
    }

    async fn create_indexes(&self) -> Result<(), mongodb::error::Error> {
        let index = |keys: Document, opts: IndexOptions| {
            IndexModel::builder().keys(keys).options(opts).build()
        };
        let unique = || IndexOptions::builder().unique(true).build();
        self.messages
            .create_index(index(
                doc! {"idempotency_key": 1},
                IndexOptions::builder().unique(true).sparse(true).build(),
            ))
            .await?;
        self.deliveries
            .create_index(index(doc! {"user": 1, "seq": 1}, unique()))
            .await?;
        self.deliveries
            .create_index(index(doc! {"msg": 1, "user": 1}, IndexOptions::default()))
            .await?;
        self.deliveries
            .create_index(index(
                doc! {"state": 1, "expires_at": 1},
                IndexOptions::default(),
            ))
            .await?;
        self.devices
            .create_index(index(doc! {"user": 1}, IndexOptions::default()))
            .await?;
        self.mobile
            .create_index(index(doc! {"msg": 1}, IndexOptions::default()))
            .await?;
        for coll in [&self.messages, &self.deliveries, &self.mobile] {
            let ttl = IndexOptions::builder().expire_after(Duration::ZERO).build();
            match coll.create_index(index(doc! {"purge_at": 1}, ttl)).await {
                Ok(_) => {}
                Err(e) if error_code(&e) == Some(NOT_IMPLEMENTED) => {
                    tracing::info!(
                        collection = coll.name(),
                        "no TTL indexes on this server: the expiry sweep purges"
                    );
                    coll.create_index(index(doc! {"purge_at": 1}, IndexOptions::default()))
                        .await?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

#[async_trait]
impl MessageStore for MongoStore {
    async fn submit(&self, msg: NewMessage) -> Result<Submitted> {
        submit::submit(self, msg).await
    }

    async fn pending(&self, user: &str, after: u64, limit: usize) -> Result<PendingPage> {
        read::page(self, user, after, limit, read::Scope::Unacked).await
    }

    async fn backlog(&self, user: &str, after: u64, limit: usize) -> Result<PendingPage> {
        read::page(self, user, after, limit, read::Scope::All).await
    }

    async fn mark_delivered(&self, id: &str, user: &str) -> Result<()> {
        update::mark_delivered(self, id, user);
        Ok(())
    }

    async fn ack(&self, user: &str, id: &str) -> Result<AckOutcome> {
        update::ack(self, user, id).await
    }

    async fn status(&self, id: &str) -> Result<Option<MessageStatus>> {
        read::status(self, id).await
    }

    async fn expire(&self, now_ms: u64) -> Result<u64> {
        update::expire(self, now_ms).await
    }

    async fn put_device(&self, device: NewDevice) -> Result<DeviceSaved> {
        devices::put(self, device).await
    }

    async fn delete_device(&self, token: &str) -> Result<bool> {
        devices::delete(self, token).await
    }

    async fn devices(&self, user: &str) -> Result<Vec<Device>> {
        devices::list(self, user).await
    }

    async fn mark_device_dead(&self, token: &str, at_ms: u64) -> Result<bool> {
        devices::mark_dead(self, token, at_ms).await
    }

    async fn claim_mobile(&self, record: &MobileRecord) -> Result<bool> {
        devices::claim(self, record).await
    }

    async fn update_mobile(&self, record: &MobileRecord) -> Result<()> {
        devices::update(self, record).await
    }

    async fn retryable_mobile(&self, before_ms: u64, limit: usize) -> Result<Vec<RetryMobile>> {
        devices::retryable(self, before_ms, limit).await
    }

    async fn retake_mobile(&self, record: &MobileRecord, now_ms: u64) -> Result<bool> {
        devices::retake(self, record, now_ms).await
    }
}

const DUPLICATE_KEY: i32 = 11000;
const NOT_IMPLEMENTED: i32 = 238;

fn backend(e: mongodb::error::Error) -> Error {
    Error::Backend(Box::new(e))
}

/// The server's error code, whichever way the driver wrapped it.
fn error_code(e: &mongodb::error::Error) -> Option<i32> {
    use mongodb::error::{ErrorKind, WriteFailure};
    match &*e.kind {
        ErrorKind::Write(WriteFailure::WriteError(w)) => Some(w.code),
        ErrorKind::Write(WriteFailure::WriteConcernError(w)) => Some(w.code),
        ErrorKind::Command(c) => Some(c.code),
        _ => None,
    }
}

fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    error_code(e) == Some(DUPLICATE_KEY)
}

/// The `_id` of the delivery of message `id` to `user` (ids are UUIDs: no `/` in them).
fn delivery_id(id: &str, user: &str) -> String {
    format!("{id}/{user}")
}

fn state_code(s: RecipientState) -> i32 {
    i32::from(s.as_u8())
}

/// Matches pending or delivered: the states an ack or expiry may still leave.
fn unfinished() -> Document {
    let states = [RecipientState::Pending, RecipientState::Delivered].map(state_code);
    doc! {"$in": states.to_vec()}
}

/// Milliseconds as stored (Int64), saturating instead of wrapping.
fn ms(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn purge_at(expires_at_ms: u64) -> DateTime {
    DateTime::from_millis(ms(expires_at_ms.saturating_add(RETENTION_MS)))
}

/// A non-negative integer field.
fn get_u64(d: &Document, key: &str) -> Result<u64> {
    let v = match d.get(key) {
        Some(Bson::Int64(v)) => Some(*v),
        Some(Bson::Int32(v)) => Some(i64::from(*v)),
        _ => None,
    };
    v.and_then(|v| u64::try_from(v).ok()).ok_or_else(|| {
        Error::Corrupt(format!(
            "field {key} of {:?}: {:?}",
            d.get("_id"),
            d.get(key)
        ))
    })
}

fn get_str<'a>(d: &'a Document, key: &str) -> Result<&'a str> {
    d.get_str(key)
        .map_err(|e| Error::Corrupt(format!("field {key} of {:?}: {e}", d.get("_id"))))
}

fn get_state(d: &Document) -> Result<RecipientState> {
    let v = get_u64(d, "state")?;
    u8::try_from(v)
        .ok()
        .and_then(RecipientState::from_u8)
        .ok_or_else(|| Error::Corrupt(format!("state {v} of delivery {:?}", d.get("_id"))))
}

#[cfg(test)]
mod tests;
