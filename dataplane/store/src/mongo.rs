//! The cluster's store: MongoDB (any deployment the official driver supports, via the URI).
//!
//! Collections:
//! - `messages` — `{_id: id, payload, created_at, expires_at, to: [users], purge_at}`;
//! - `deliveries` — one per (message, user): `{m, u, seq, state, expires_at, purge_at}`,
//!   unique on `(m, u)`, scanned by `(u, seq)` for replay;
//! - `user_seq` — `{_id: user, seq}`, incremented atomically per recipient;
//! - `idempotency` — `{_id: key, id, purge_at}`.
//!
//! TTL indexes on `purge_at` (expiry + 24 h) delete old documents. No multi-document
//! transactions: `submit` writes the message and its deliveries before it returns, so a crash
//! before the 202 loses nothing that was acknowledged. Concurrent submits may insert
//! deliveries out of seq order; push nodes deliver late arrivals anyway (see `pending`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mongodb::bson::{Bson, DateTime, Document, doc};
use mongodb::options::{ClientOptions, IndexOptions};
use mongodb::{Collection, Database, IndexModel};
use pushcluster_proto::api::{MessageStatus, NewMessage, RecipientState, RecipientStatus};
use pushcluster_proto::delivery::now_ms;
use serde_json::value::RawValue;

use crate::{
    AckOutcome, Error, MessageStore, Pending, PendingPage, Result, StoredMessage, Submitted,
    new_message_id,
};

const RETENTION_MS: u64 = 24 * 3600 * 1000;

/// [`MessageStore`] on MongoDB.
#[derive(Clone)]
pub struct MongoStore {
    messages: Collection<Document>,
    deliveries: Collection<Document>,
    user_seq: Collection<Document>,
    idempotency: Collection<Document>,
}

fn backend(e: mongodb::error::Error) -> Error {
    Error::Backend(Box::new(e))
}

fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    use mongodb::error::{ErrorKind, WriteFailure};
    match &*e.kind {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == 11000,
        ErrorKind::InsertMany(m) => m
            .write_errors
            .as_ref()
            .is_some_and(|errs| errs.iter().any(|w| w.code == 11000)),
        ErrorKind::Command(c) => c.code == 11000,
        _ => false,
    }
}

fn is_not_implemented(e: &mongodb::error::Error) -> bool {
    matches!(&*e.kind, mongodb::error::ErrorKind::Command(c) if c.code == 238)
}

fn purge_at(expires_at_ms: u64) -> DateTime {
    DateTime::from_millis((expires_at_ms + RETENTION_MS) as i64)
}

fn get_u64(d: &Document, key: &str) -> Result<u64> {
    match d.get(key) {
        Some(Bson::Int64(v)) => Ok(*v as u64),
        Some(Bson::Int32(v)) => Ok(*v as u64),
        Some(Bson::Double(v)) => Ok(*v as u64),
        other => Err(Error::Corrupt(format!("field {key}: {other:?}"))),
    }
}

fn get_str<'a>(d: &'a Document, key: &str) -> Result<&'a str> {
    d.get_str(key)
        .map_err(|e| Error::Corrupt(format!("field {key}: {e}")))
}

const PENDING: i32 = 0;
const DELIVERED: i32 = 1;
const ACKED: i32 = 2;
const EXPIRED: i32 = 3;

fn state(d: &Document) -> Result<RecipientState> {
    let v = get_u64(d, "state")?;
    RecipientState::from_u8(v as u8).ok_or_else(|| Error::Corrupt(format!("state {v}")))
}

impl MongoStore {
    /// Connects (failing fast when MongoDB is unreachable) and creates the indexes.
    pub async fn connect(uri: &str, database: &str) -> Result<MongoStore> {
        let store = Self::connect_lazy(uri, database).await?;
        store.create_indexes().await?;
        Ok(store)
    }

    /// Connects without touching the server (operations fail until it is reachable).
    pub async fn connect_lazy(uri: &str, database: &str) -> Result<MongoStore> {
        let mut opts = ClientOptions::parse(uri).await.map_err(|e| Error::Open {
            path: uri.to_owned(),
            source: Box::new(e),
        })?;
        opts.server_selection_timeout = Some(Duration::from_secs(3));
        opts.connect_timeout = Some(Duration::from_secs(3));
        opts.app_name = Some("pushcluster".into());
        let client = mongodb::Client::with_options(opts).map_err(backend)?;
        let db: Database = client.database(database);
        Ok(MongoStore {
            messages: db.collection("messages"),
            deliveries: db.collection("deliveries"),
            user_seq: db.collection("user_seq"),
            idempotency: db.collection("idempotency"),
        })
    }

    async fn create_indexes(&self) -> Result<()> {
        let ttl = || {
            IndexModel::builder()
                .keys(doc! {"purge_at": 1})
                .options(IndexOptions::builder().expire_after(Duration::ZERO).build())
                .build()
        };
        for coll in [&self.messages, &self.idempotency, &self.deliveries] {
            match coll.create_index(ttl()).await {
                Ok(_) => {}
                // FerretDB's SQLite backend has no TTL indexes: `expire` purges instead.
                Err(e) if is_not_implemented(&e) => {
                    tracing::warn!(
                        collection = coll.name(),
                        "TTL indexes not supported; purging in the expiry sweep"
                    );
                }
                Err(e) => return Err(backend(e)),
            }
        }
        let unique = IndexOptions::builder().unique(true).build();
        self.deliveries
            .create_index(
                IndexModel::builder()
                    .keys(doc! {"m": 1, "u": 1})
                    .options(unique)
                    .build(),
            )
            .await
            .map_err(backend)?;
        self.deliveries
            .create_index(
                IndexModel::builder()
                    .keys(doc! {"u": 1, "seq": 1})
                    .options(IndexOptions::builder().unique(true).build())
                    .build(),
            )
            .await
            .map_err(backend)?;
        self.deliveries
            .create_index(IndexModel::builder().keys(doc! {"expires_at": 1}).build())
            .await
            .map_err(backend)?;
        Ok(())
    }

    /// Inserts the delivery of message `id` for `user` under the user's next seq and returns
    /// it. The unique `(u, seq)` index is the arbiter: a candidate seq taken by a concurrent
    /// submit fails with a duplicate key and the next one is tried. (`findAndModify` + `$inc`
    /// would be simpler on MongoDB, but is not atomic on FerretDB; a unique insert is atomic
    /// on both.) `user_seq` is only a hint of where to start.
    async fn claim_seq(&self, id: &str, user: &str, expires_at_ms: u64) -> Result<u64> {
        let hint = self
            .user_seq
            .find_one(doc! {"_id": user})
            .await
            .map_err(backend)?
            .map(|d| get_u64(&d, "seq"))
            .transpose()?
            .unwrap_or(0);
        let mut seq = hint + 1;
        for _ in 0..10_000 {
            let delivery = doc! {
                "m": id, "u": user, "seq": seq as i64, "state": PENDING,
                "expires_at": expires_at_ms as i64, "purge_at": purge_at(expires_at_ms),
            };
            match self.deliveries.insert_one(delivery).await {
                Ok(_) => {
                    self.user_seq
                        .update_one(doc! {"_id": user}, doc! {"$max": {"seq": seq as i64}})
                        .upsert(true)
                        .await
                        .map_err(backend)?;
                    return Ok(seq);
                }
                Err(e) if is_duplicate_key(&e) => seq += 1,
                Err(e) => return Err(backend(e)),
            }
        }
        Err(Error::Backend("seq allocation kept conflicting".into()))
    }

    async fn existing_id(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .idempotency
            .find_one(doc! {"_id": key})
            .await
            .map_err(backend)?
            .and_then(|d| d.get_str("id").ok().map(str::to_owned)))
    }

    async fn delete_message(&self, id: &str) -> Result<()> {
        self.deliveries
            .delete_many(doc! {"m": id})
            .await
            .map_err(backend)?;
        self.messages
            .delete_one(doc! {"_id": id})
            .await
            .map_err(backend)?;
        Ok(())
    }
}

#[async_trait]
impl MessageStore for MongoStore {
    async fn submit(&self, msg: NewMessage) -> Result<Submitted> {
        if let Some(key) = &msg.idempotency_key
            && let Some(id) = self.existing_id(key).await?
        {
            return Ok(Submitted::Duplicate { id });
        }
        let id = new_message_id();
        let created_at_ms = now_ms();
        let expires_at_ms = created_at_ms + msg.ttl_secs * 1000;
        // Message first, then its deliveries: a delivery never points to a missing message.
        self.messages
            .insert_one(doc! {
                "_id": &id,
                "payload": msg.payload.get(),
                "created_at": created_at_ms as i64,
                "expires_at": expires_at_ms as i64,
                "to": &msg.to,
                "purge_at": purge_at(expires_at_ms),
            })
            .await
            .map_err(backend)?;
        let mut recipients = Vec::with_capacity(msg.to.len());
        for user in &msg.to {
            let seq = self.claim_seq(&id, user, expires_at_ms).await?;
            recipients.push((user.clone(), seq));
        }
        if let Some(key) = &msg.idempotency_key {
            let claim = self
                .idempotency
                .insert_one(doc! {"_id": key, "id": &id, "purge_at": purge_at(expires_at_ms)})
                .await;
            match claim {
                Ok(_) => {}
                Err(e) if is_duplicate_key(&e) => {
                    // A concurrent submit with the same key won: withdraw ours.
                    self.delete_message(&id).await?;
                    let id = self
                        .existing_id(key)
                        .await?
                        .ok_or_else(|| Error::Corrupt(format!("idempotency key {key} vanished")))?;
                    return Ok(Submitted::Duplicate { id });
                }
                Err(e) => return Err(backend(e)),
            }
        }
        Ok(Submitted::New(StoredMessage {
            id,
            payload: Arc::from(msg.payload),
            created_at_ms,
            expires_at_ms,
            recipients,
        }))
    }

    /// `high_seq` is the highest seq seen in this page (or `after`): with MongoDB a seq can be
    /// allocated before its delivery is visible, so the counter itself proves nothing.
    async fn pending(&self, user: &str, after: u64, limit: usize) -> Result<PendingPage> {
        let now = now_ms() as i64;
        let mut cursor = self
            .deliveries
            .find(doc! {
                "u": user,
                "seq": {"$gt": after as i64},
                "state": {"$in": [PENDING, DELIVERED]},
                "expires_at": {"$gt": now},
            })
            .sort(doc! {"seq": 1})
            .limit(limit as i64)
            .await
            .map_err(backend)?;
        let mut rows = Vec::new();
        while cursor.advance().await.map_err(backend)? {
            let d = cursor.deserialize_current().map_err(backend)?;
            rows.push((get_str(&d, "m")?.to_owned(), get_u64(&d, "seq")?));
        }
        let ids: Vec<&str> = rows.iter().map(|(m, _)| m.as_str()).collect();
        let mut messages = std::collections::HashMap::new();
        if !ids.is_empty() {
            let mut cursor = self
                .messages
                .find(doc! {"_id": {"$in": ids}})
                .await
                .map_err(backend)?;
            while cursor.advance().await.map_err(backend)? {
                let d = cursor.deserialize_current().map_err(backend)?;
                messages.insert(get_str(&d, "_id")?.to_owned(), d);
            }
        }
        let mut items = Vec::with_capacity(rows.len());
        for (id, seq) in rows {
            let Some(m) = messages.get(&id) else { continue };
            let payload = RawValue::from_string(get_str(m, "payload")?.to_owned())
                .map_err(|e| Error::Corrupt(format!("payload of {id}: {e}")))?;
            items.push(Pending {
                seq,
                payload: Arc::from(payload),
                created_at_ms: get_u64(m, "created_at")?,
                expires_at_ms: get_u64(m, "expires_at")?,
                id,
            });
        }
        let high_seq = items.last().map(|p| p.seq).unwrap_or(after);
        Ok(PendingPage { items, high_seq })
    }

    async fn mark_delivered(&self, id: &str, user: &str) -> Result<()> {
        // Buffered like redb: the status is advisory; do not hold up the socket writer.
        let deliveries = self.deliveries.clone();
        let filter = doc! {"m": id, "u": user, "state": PENDING};
        tokio::spawn(async move {
            if let Err(e) = deliveries
                .update_one(filter, doc! {"$set": {"state": DELIVERED}})
                .await
            {
                tracing::debug!(error = %e, "mark delivered failed");
            }
        });
        Ok(())
    }

    async fn ack(&self, user: &str, id: &str) -> Result<AckOutcome> {
        let updated = self
            .deliveries
            .update_one(
                doc! {"m": id, "u": user, "state": {"$in": [PENDING, DELIVERED]}},
                doc! {"$set": {"state": ACKED}},
            )
            .await
            .map_err(backend)?;
        if updated.modified_count > 0 {
            return Ok(AckOutcome::Acked);
        }
        let exists = self
            .deliveries
            .find_one(doc! {"m": id, "u": user})
            .await
            .map_err(backend)?;
        Ok(match exists {
            Some(_) => AckOutcome::AlreadyFinal,
            None => AckOutcome::Unknown,
        })
    }

    async fn status(&self, id: &str) -> Result<Option<MessageStatus>> {
        let Some(m) = self
            .messages
            .find_one(doc! {"_id": id})
            .await
            .map_err(backend)?
        else {
            return Ok(None);
        };
        let expires_at_ms = get_u64(&m, "expires_at")?;
        let mut by_user = std::collections::HashMap::new();
        let mut cursor = self
            .deliveries
            .find(doc! {"m": id})
            .await
            .map_err(backend)?;
        while cursor.advance().await.map_err(backend)? {
            let d = cursor.deserialize_current().map_err(backend)?;
            by_user.insert(
                get_str(&d, "u")?.to_owned(),
                (get_u64(&d, "seq")?, state(&d)?),
            );
        }
        let now = now_ms();
        let to = m
            .get_array("to")
            .map_err(|e| Error::Corrupt(format!("to of {id}: {e}")))?;
        let mut recipients = Vec::with_capacity(to.len());
        for user in to.iter().filter_map(Bson::as_str) {
            let Some((seq, mut state)) = by_user.get(user).copied() else {
                continue;
            };
            if expires_at_ms <= now {
                state = state.advance(RecipientState::Expired);
            }
            recipients.push(RecipientStatus {
                user: user.to_owned(),
                seq,
                state,
            });
        }
        Ok(Some(MessageStatus {
            id: id.to_owned(),
            created_at_ms: get_u64(&m, "created_at")?,
            expires_at_ms,
            recipients,
        }))
    }

    async fn expire(&self, now_ms: u64) -> Result<u64> {
        let r = self
            .deliveries
            .update_many(
                doc! {"expires_at": {"$lte": now_ms as i64}, "state": {"$in": [PENDING, DELIVERED]}},
                doc! {"$set": {"state": EXPIRED}},
            )
            .await
            .map_err(backend)?;
        // What a TTL index would do, for servers without TTL indexes (idempotent otherwise).
        let due = doc! {"purge_at": {"$lte": DateTime::from_millis(now_ms as i64)}};
        for coll in [&self.deliveries, &self.idempotency, &self.messages] {
            coll.delete_many(due.clone()).await.map_err(backend)?;
        }
        Ok(r.modified_count)
    }
}

#[cfg(test)]
mod tests;
