//! Watermarks on MongoDB: a user's acked-through and delivered-through seqs.
//!
//! Insert-only: acks and deliveries of every connection of this node are coalesced per user
//! and written by one flusher every [`FLUSH_EVERY`] as one `insert` of
//! `{_id: "<user>\x1f<a|d>\x1f<seq>", u, k, s}`; a user's watermark is the highest of their
//! marks. Superseded marks are deleted in bulk (one `delete` command per flush, for the users
//! that gathered [`COMPACT_AFTER`] of them). A delivered mark at or below the acked one is not
//! written at all: the ack says more.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt, stream};
use mongodb::bson::{Document, doc};
use tokio::sync::{Notify, oneshot};

use super::{MongoStore, PARALLEL_READS, Server, backend, get_str, get_u64, ms};
use crate::{AckOutcome, Error, Result};

/// How often marks are written: each flush is one command (two with a compaction) for all
/// of this node's users, and a connection has one ack being written at a time, so acks
/// coalesce meanwhile. Progress not yet written costs redeliveries, never a message.
const FLUSH_EVERY: Duration = Duration::from_millis(200);
/// Users with waiting acks that make the flusher write at once.
const FLUSH_AT: usize = 2000;
/// Marks of one kind a user gathers (from this node) before the older ones are deleted.
const COMPACT_AFTER: u32 = 8;

#[derive(Clone, Default)]
pub(super) struct Buffer {
    state: Arc<Mutex<State>>,
    wake: Arc<Notify>,
}

/// Who waits for an ack to be written.
type AckWaiters = Vec<oneshot::Sender<Result<AckOutcome>>>;

#[derive(Default)]
struct State {
    acks: HashMap<String, (u64, AckWaiters)>,
    delivered: HashMap<String, u64>,
    /// What this node wrote (or read) last per user: (acked, delivered, marks since the last
    /// compaction). Bounded: cleared when it grows past [`KNOWN_USERS`].
    known: HashMap<String, Known>,
}

#[derive(Default, Clone, Copy)]
struct Known {
    acked: u64,
    delivered: u64,
    unswept: u32,
}

const KNOWN_USERS: usize = 1 << 18;

impl Buffer {
    pub fn delivered(&self, user: &str, seq: u64) {
        let mut st = self.state.lock().expect("marks");
        if st
            .known
            .get(user)
            .is_some_and(|k| k.delivered.max(k.acked) >= seq)
        {
            return;
        }
        let d = st.delivered.entry(user.to_owned()).or_default();
        *d = (*d).max(seq);
    }

    fn ack(&self, user: &str, seq: u64) -> Option<oneshot::Receiver<Result<AckOutcome>>> {
        let mut st = self.state.lock().expect("marks");
        if st.known.get(user).is_some_and(|k| k.acked >= seq) {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        let e = st.acks.entry(user.to_owned()).or_default();
        e.0 = e.0.max(seq);
        e.1.push(tx);
        if st.acks.len() >= FLUSH_AT {
            self.wake.notify_one();
        }
        Some(rx)
    }

    fn learn(&self, user: &str, acked: u64, delivered: u64) {
        let mut st = self.state.lock().expect("marks");
        let k = st.known.entry(user.to_owned()).or_default();
        k.acked = k.acked.max(acked);
        k.delivered = k.delivered.max(delivered);
    }
}

pub(super) async fn ack(s: &MongoStore, user: &str, seq: u64) -> Result<AckOutcome> {
    match s.marks_buffer.ack(user, seq) {
        None => Ok(AckOutcome::AlreadyFinal),
        Some(rx) => rx.await.map_err(|_| Error::Closed)?,
    }
}

/// Writes marks until the store is dropped (then once more).
pub(super) fn spawn_flusher(s: MongoStore) {
    tokio::spawn(async move {
        let mut stopped = s.stopped.clone();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(FLUSH_EVERY) => {}
                _ = s.marks_buffer.wake.notified() => {}
                _ = stopped.changed() => {
                    flush(&s).await;
                    return;
                }
            }
            flush(&s).await;
        }
    });
}

fn mark_id(user: &str, kind: &str, seq: u64) -> String {
    format!("{user}\u{1f}{kind}\u{1f}{seq:020}")
}

fn mark(user: &str, kind: &str, seq: u64) -> Document {
    doc! {"_id": mark_id(user, kind, seq), "u": user, "k": kind, "s": ms(seq)}
}

async fn flush(s: &MongoStore) {
    let (acks, delivered) = {
        let mut st = s.marks_buffer.state.lock().expect("marks");
        (
            std::mem::take(&mut st.acks),
            std::mem::take(&mut st.delivered),
        )
    };
    if acks.is_empty() && delivered.is_empty() {
        return;
    }
    let mut docs = Vec::with_capacity(acks.len() + delivered.len());
    for (u, (seq, _)) in &acks {
        docs.push(mark(u, "a", *seq));
    }
    for (u, seq) in &delivered {
        if acks.get(u).is_none_or(|(a, _)| a < seq) {
            docs.push(mark(u, "d", *seq));
        }
    }
    // The same mark twice (two nodes, or a retry) is written all the same.
    let written = match s.marks.insert_many(docs).ordered(false).await {
        Ok(_) => Ok(()),
        Err(e) => super::duplicate_indexes(e).map(|_| ()),
    };
    let mut sweep = Vec::new();
    {
        let mut st = s.marks_buffer.state.lock().expect("marks");
        if written.is_ok() {
            if st.known.len() > KNOWN_USERS {
                st.known.clear();
            }
            for (u, (seq, _)) in &acks {
                let k = st.known.entry(u.clone()).or_default();
                k.acked = k.acked.max(*seq);
                k.unswept += 1;
                if k.unswept >= COMPACT_AFTER {
                    k.unswept = 0;
                    sweep.push((u.clone(), "a", k.acked));
                    if k.delivered > 0 {
                        sweep.push((u.clone(), "d", k.delivered));
                    }
                }
            }
            for (u, seq) in &delivered {
                let k = st.known.entry(u.clone()).or_default();
                k.delivered = k.delivered.max(*seq);
            }
        }
    }
    let err = written.as_ref().err().map(|e| e.to_string());
    if let Some(e) = &err {
        tracing::warn!(error = %e, users = acks.len(), "writing acks failed; clients are told to ack again");
    }
    for (_, (_, waiters)) in acks {
        for tx in waiters {
            let _ = tx.send(match &err {
                None => Ok(AckOutcome::Acked),
                Some(e) => Err(Error::Backend(e.clone().into())),
            });
        }
    }
    if !sweep.is_empty() {
        let deletes: Vec<Document> = sweep
            .iter()
            .map(
                |(u, k, below)| doc! {"q": {"u": u, "k": *k, "s": {"$lt": ms(*below)}}, "limit": 0},
            )
            .collect();
        let cmd = doc! {"delete": s.marks.name(), "deletes": deletes, "ordered": false};
        if let Err(e) = s.db.run_command(cmd).await {
            tracing::debug!(error = %e, "deleting superseded marks failed; next time");
        }
    }
}

/// A user's (acked, delivered) watermarks.
pub(super) async fn read(s: &MongoStore, user: &str) -> Result<(u64, u64)> {
    let docs: Vec<Document> = s
        .marks
        .find(doc! {"u": user})
        .projection(doc! {"k": 1, "s": 1})
        .await
        .map_err(backend)?
        .try_collect()
        .await
        .map_err(backend)?;
    let (mut a, mut d) = (0, 0);
    for m in &docs {
        let seq = get_u64(m, "s")?;
        match get_str(m, "k")? {
            "a" => a = a.max(seq),
            _ => d = d.max(seq),
        }
    }
    s.marks_buffer.learn(user, a, d);
    Ok((a, d.max(a)))
}

/// Watermarks of many users (a message's status).
pub(super) async fn read_many(
    s: &MongoStore,
    users: &[String],
) -> Result<HashMap<String, (u64, u64)>> {
    let mut out: HashMap<String, (u64, u64)> = HashMap::with_capacity(users.len());
    match s.server().await {
        Server::Mongo => {
            let mut cursor = s
                .marks
                .find(doc! {"u": {"$in": users}})
                .projection(doc! {"u": 1, "k": 1, "s": 1})
                .await
                .map_err(backend)?;
            while let Some(m) = cursor.try_next().await.map_err(backend)? {
                let seq = get_u64(&m, "s")?;
                let e = out.entry(get_str(&m, "u")?.to_owned()).or_default();
                match get_str(&m, "k")? {
                    "a" => e.0 = e.0.max(seq),
                    _ => e.1 = e.1.max(seq),
                }
            }
            for e in out.values_mut() {
                e.1 = e.1.max(e.0);
            }
        }
        Server::Ferret => {
            let found: Vec<(String, (u64, u64))> = stream::iter(users.to_vec())
                .map(|u| async move { read(s, &u).await.map(|m| (u, m)) })
                .buffer_unordered(PARALLEL_READS)
                .try_collect()
                .await?;
            out.extend(found);
        }
    }
    Ok(out)
}
