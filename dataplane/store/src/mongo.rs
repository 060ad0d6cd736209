//! The cluster's store: MongoDB, any deployment the official driver reaches through the URI
//! (standalone, replica set, sharded cluster; FerretDB in tests).
//!
//! The write path inserts and never updates per message or per recipient: FerretDB (and, to a
//! lesser degree, MongoDB) insert batches cheaply and update slowly. Collections (no
//! multi-document transactions anywhere):
//! - `outbox`: one document per accepted batch `{_id: batch, lease, owner, m: [message]}`,
//!   each message with its recipients and their seqs. Its insert is the durable accept; it is
//!   deleted once the batch is dispatched. Everything below is derived from it and completed
//!   again by whichever dispatch worker claims the batch after a crash.
//! - `idem`: `{_id: idempotency key, m: message id, b: batch}`, inserted *before* the batch:
//!   the unique `_id` makes it the atomic claim of a key.
//! - `msgs`: `{_id: id, p: payload, c, e, to: [user], sq: [seq], k?, n?, mo, purge_at}`.
//! - `rows`: one per recipient, `{_id: "<user>\x1f<seq>", u, s, m, c, e, p?, purge_at}` —
//!   the user's stream in seq order; the unique `_id` arbitrates seqs between collect nodes
//!   (see [`seqs`]). Small messages carry their payload (`p`) so a replay needs no second read.
//! - `marks`: insert-only watermarks `{_id: "<user>\x1f<a|d>\x1f<seq>", u, k, s}`: the user's
//!   acked-through (`a`) and delivered-through (`d`) seqs are the highest of their kind;
//!   older ones are deleted in bulk now and then.
//! - `users`: `{_id: user, s}`, inserted when a user is first given a seq (its duplicate-key
//!   error is how a collect node learns in one insert which of a batch's unknown users are
//!   new); `s` is the floor a purge leaves: the highest seq whose row it deleted, so seqs
//!   never go back.
//! - `devices` and `mobile`: users' mobile devices and per-(message, device) notification
//!   records, see [`devices`].
//!
//! Times are Unix milliseconds (Int64); `purge_at` is expiry + 24 h, the same retention as
//! redb; [`MessageStore::expire`] purges (after writing floors), on every server.
//!
//! FerretDB pushes only equality filters down to its backend: reads here are equality
//! lookups (`_id`, `u`), and what MongoDB answers with one `$in` or `$max` query FerretDB
//! answers with parallel point queries ([`Server::Ferret`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use mongodb::bson::{Bson, DateTime, Document, doc};
use mongodb::options::ClientOptions;
use mongodb::{Collection, Database, IndexModel};
use pushcluster_proto::api::{Device, MessageStatus, MobileRecord, NewDevice, NewMessage};
use tokio::sync::mpsc;

use crate::{
    Accepted, AckOutcome, BatchId, DeviceSaved, Error, MessageStore, OutboxBatch, PendingPage,
    Result, RetryMobile,
};

mod devices;
mod docs;
mod marks;
mod outbox;
mod read;
pub(crate) mod seqs;
mod submit;
mod sweep;

/// How long the status of an expired message stays readable (as redb's retention).
const RETENTION_MS: u64 = 24 * 3600 * 1000;
/// How long to look for a reachable server before an operation fails (callers answer 503).
const SERVER_SELECTION_TIMEOUT: Duration = Duration::from_secs(3);
/// Users whose highest seq a collect node keeps in memory.
const SEQ_CACHE_USERS: usize = 1 << 20;
/// Point queries in flight at once where FerretDB cannot take one `$in`.
const PARALLEL_READS: usize = 32;

/// Called with the name of every command the driver sends.
pub type CommandCounter = Arc<dyn Fn(&str, &str) + Send + Sync>;

/// Which server answers: what it can be asked in one query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Server {
    /// MongoDB: `$in` uses indexes, `$group` has `$max`.
    Mongo,
    /// FerretDB: only equality filters reach the backend's indexes.
    Ferret,
}

/// The MongoDB-backed [`MessageStore`]. Cheap to clone: clones share the connection pool,
/// the seq cache and the writers.
#[derive(Clone)]
pub struct MongoStore {
    db: Database,
    outbox: Collection<Document>,
    idem: Collection<Document>,
    msgs: Collection<Document>,
    rows: Collection<Document>,
    marks: Collection<Document>,
    users: Collection<Document>,
    devices: Collection<Document>,
    mobile: Collection<Document>,
    server: Arc<std::sync::OnceLock<Server>>,
    seqs: Arc<Mutex<seqs::SeqCache>>,
    submits: mpsc::Sender<submit::Job>,
    marks_buffer: marks::Buffer,
    lease: crate::outbox::HandoffLease,
    /// A name for this process in outbox leases (logs only: leases arbitrate by time).
    owner: Arc<str>,
    /// Held by the caller's clones only: when the last one goes, the writers stop.
    _life: Arc<Life>,
    stopped: tokio::sync::watch::Receiver<bool>,
}

/// Stops the background writers when the last caller's clone of the store is dropped.
struct Life(Option<tokio::sync::watch::Sender<bool>>);

impl Drop for Life {
    fn drop(&mut self) {
        if let Some(tx) = &self.0 {
            tx.send_replace(true);
        }
    }
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
    /// Starts the submit and watermark writers (needs a Tokio runtime).
    pub async fn connect_lazy(uri: &str, database: &str) -> Result<MongoStore> {
        Self::connect_with(uri, database, None).await
    }

    /// As [`MongoStore::connect_lazy`], counting every command the driver sends by name
    /// (for `pushd_mongo_commands_total`).
    pub async fn connect_with(
        uri: &str,
        database: &str,
        on_command: Option<CommandCounter>,
    ) -> Result<MongoStore> {
        let open_err = |e: mongodb::error::Error| Error::Open {
            path: format!("MongoDB database {database}"),
            source: Box::new(e),
        };
        let mut opts = ClientOptions::parse(uri).await.map_err(open_err)?;
        opts.server_selection_timeout
            .get_or_insert(SERVER_SELECTION_TIMEOUT);
        opts.connect_timeout.get_or_insert(SERVER_SELECTION_TIMEOUT);
        opts.app_name.get_or_insert_with(|| "pushcluster".into());
        if let Some(count) = on_command {
            use mongodb::event::EventHandler;
            use mongodb::event::command::CommandEvent;
            opts.command_event_handler = Some(EventHandler::callback(move |e: CommandEvent| {
                if let CommandEvent::Started(s) = e {
                    // `{insert: "msgs", …}`: the collection is the command's own field.
                    let collection = s.command.get_str(&s.command_name).unwrap_or("");
                    count(&s.command_name, collection);
                }
            }));
        }
        let db = mongodb::Client::with_options(opts)
            .map_err(open_err)?
            .database(database);
        let (submits, rx) = mpsc::channel(submit::QUEUE);
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let store = MongoStore {
            outbox: db.collection("outbox"),
            idem: db.collection("idem"),
            msgs: db.collection("msgs"),
            rows: db.collection("rows"),
            marks: db.collection("marks"),
            users: db.collection("users"),
            devices: db.collection("devices"),
            mobile: db.collection("mobile"),
            db,
            server: Arc::new(std::sync::OnceLock::new()),
            seqs: Arc::new(Mutex::new(seqs::SeqCache::new(SEQ_CACHE_USERS))),
            submits,
            marks_buffer: marks::Buffer::default(),
            lease: crate::outbox::HandoffLease::default(),
            owner: format!("{}-{}", std::process::id(), crate::new_message_id()).into(),
            _life: Arc::new(Life(Some(stop))),
            stopped,
        };
        tokio::spawn(submit::run(store.background(), rx));
        marks::spawn_flusher(store.background());
        Ok(store)
    }

    /// How long an accepted batch stays leased to the submitter's dispatch (see
    /// [`HANDOFF_LEASE`](crate::outbox::HANDOFF_LEASE)).
    pub fn set_handoff_lease(&self, lease: Duration) {
        self.lease.set(lease);
    }

    /// A clone for the store's own tasks: it keeps neither the submit queue open nor the
    /// writers running.
    fn background(&self) -> MongoStore {
        let (closed, _) = mpsc::channel(1);
        MongoStore {
            submits: closed,
            _life: Arc::new(Life(None)),
            ..self.clone()
        }
    }

    async fn create_indexes(&self) -> Result<(), mongodb::error::Error> {
        let index = |keys: Document| IndexModel::builder().keys(keys).build();
        self.rows.create_index(index(doc! {"u": 1, "s": 1})).await?;
        self.rows.create_index(index(doc! {"purge_at": 1})).await?;
        self.marks.create_index(index(doc! {"u": 1})).await?;
        self.msgs.create_index(index(doc! {"purge_at": 1})).await?;
        self.outbox.create_index(index(doc! {"lease": 1})).await?;
        self.devices.create_index(index(doc! {"user": 1})).await?;
        self.mobile.create_index(index(doc! {"msg": 1})).await?;
        Ok(())
    }

    /// What the server can do, asked once (FerretDB says so in `buildInfo`).
    async fn server(&self) -> Server {
        if let Some(s) = self.server.get() {
            return *s;
        }
        let info = self.db.run_command(doc! {"buildInfo": 1}).await;
        let s = match info {
            Ok(d) if d.contains_key("ferretdbVersion") || d.contains_key("ferretdb") => {
                Server::Ferret
            }
            Ok(_) => Server::Mongo,
            // Unknown yet: assume the lowest common denominator, ask again next time.
            Err(_) => return Server::Ferret,
        };
        *self.server.get_or_init(|| s)
    }
}

#[async_trait]
impl MessageStore for MongoStore {
    async fn submit(&self, batch: Vec<NewMessage>) -> Result<Accepted> {
        submit::submit(self, batch).await
    }

    async fn claim_outbox(
        &self,
        owner: &str,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<OutboxBatch>> {
        outbox::claim(self, owner, lease, limit).await
    }

    async fn outbox_batch(&self, id: &BatchId) -> Result<Option<OutboxBatch>> {
        outbox::get(self, id).await
    }

    async fn complete_outbox(&self, ids: &[BatchId]) -> Result<()> {
        outbox::clear(self, ids).await
    }

    async fn pending(&self, user: &str, after: u64, limit: usize) -> Result<PendingPage> {
        let acked = marks::read(self, user).await?.0;
        read::page(self, user, after.max(acked), limit).await
    }

    async fn backlog(&self, user: &str, after: u64, limit: usize) -> Result<PendingPage> {
        read::page(self, user, after, limit).await
    }

    async fn mark_delivered(&self, user: &str, seq: u64) -> Result<()> {
        self.marks_buffer.delivered(user, seq);
        Ok(())
    }

    async fn ack(&self, user: &str, seq: u64) -> Result<AckOutcome> {
        marks::ack(self, user, seq).await
    }

    async fn status(&self, id: &str) -> Result<Option<MessageStatus>> {
        read::status(self, id).await
    }

    async fn expire(&self, now_ms: u64) -> Result<u64> {
        sweep::purge(self, now_ms).await
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

/// The indexes of an unordered `insert_many`'s documents that hit an existing `_id` (or
/// unique key); any other failure is an error.
fn duplicate_indexes(e: mongodb::error::Error) -> Result<Vec<usize>> {
    let mongodb::error::ErrorKind::InsertMany(ref many) = *e.kind else {
        return Err(backend(e));
    };
    if many.write_concern_error.is_some()
        || many
            .write_errors
            .iter()
            .flatten()
            .any(|w| w.code != DUPLICATE_KEY)
    {
        return Err(backend(e));
    }
    Ok(many
        .write_errors
        .iter()
        .flatten()
        .map(|w| w.index)
        .collect())
}

fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    error_code(e) == Some(DUPLICATE_KEY)
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
    as_u64(d.get(key)).ok_or_else(|| {
        Error::Corrupt(format!(
            "field {key} of {:?}: {:?}",
            d.get("_id"),
            d.get(key)
        ))
    })
}

fn as_u64(v: Option<&Bson>) -> Option<u64> {
    let v = match v {
        Some(Bson::Int64(v)) => Some(*v),
        Some(Bson::Int32(v)) => Some(i64::from(*v)),
        _ => None,
    };
    v.and_then(|v| u64::try_from(v).ok())
}

fn get_str<'a>(d: &'a Document, key: &str) -> Result<&'a str> {
    d.get_str(key)
        .map_err(|e| Error::Corrupt(format!("field {key} of {:?}: {e}", d.get("_id"))))
}

#[cfg(test)]
mod tests;
