//! Purging messages whose retention ended: floors first, then rows, messages, keys, mobile
//! records. One sweeper at a time (a lease document), in bounded passes.

use std::collections::HashMap;

use futures_util::TryStreamExt;
use mongodb::bson::{Document, doc};

use super::docs::Msg;
use super::seqs::row_id;
use super::{MongoStore, backend, is_duplicate_key, ms};
use crate::Result;

/// Messages purged per pass.
const PER_PASS: i64 = 1000;
/// How long a sweeper holds the sweep.
const LEASE_MS: u64 = 60_000;

/// Runs one purge pass if no other node is sweeping; returns how many messages it purged.
pub(super) async fn purge(s: &MongoStore, now_ms: u64) -> Result<u64> {
    if !take_lease(s, now_ms).await? {
        return Ok(0);
    }
    let due: Vec<Document> = s
        .msgs
        .find(doc! {"purge_at": {"$lt": mongodb::bson::DateTime::from_millis(ms(now_ms))}})
        .projection(doc! {"p": 0})
        .limit(PER_PASS)
        .await
        .map_err(backend)?
        .try_collect()
        .await
        .map_err(backend)?;
    if due.is_empty() {
        release(s).await;
        return Ok(0);
    }
    let mut floors: HashMap<String, u64> = HashMap::new();
    let mut rows = Vec::new();
    let mut msgs = Vec::new();
    let mut keys = Vec::new();
    for mut d in due {
        d.insert("p", "");
        let m = Msg::from_doc(&d)?;
        for (u, seq) in &m.stored.recipients {
            let f = floors.entry(u.clone()).or_default();
            *f = (*f).max(*seq);
            rows.push(doc! {"q": {"_id": row_id(u, *seq)}, "limit": 1});
        }
        keys.extend(
            m.idempotency_key
                .map(|k| doc! {"q": {"_id": k, "m": &m.stored.id}, "limit": 1}),
        );
        msgs.push(m.stored.id);
    }
    // Floors before rows: once a user's rows are gone, the floor keeps their seqs going up.
    let ups: Vec<Document> = floors
        .iter()
        .map(|(u, seq)| doc! {"q": {"_id": u}, "u": {"$max": {"s": ms(*seq)}}, "upsert": true})
        .collect();
    run(
        s,
        doc! {"update": s.users.name(), "updates": ups, "ordered": false},
    )
    .await?;
    run(
        s,
        doc! {"delete": s.rows.name(), "deletes": rows, "ordered": false},
    )
    .await?;
    if !keys.is_empty() {
        run(
            s,
            doc! {"delete": s.idem.name(), "deletes": keys, "ordered": false},
        )
        .await?;
    }
    let mobile: Vec<Document> = msgs
        .iter()
        .map(|id| doc! {"q": {"msg": id}, "limit": 0})
        .collect();
    run(
        s,
        doc! {"delete": s.mobile.name(), "deletes": mobile, "ordered": false},
    )
    .await?;
    let gone: Vec<Document> = msgs
        .iter()
        .map(|id| doc! {"q": {"_id": id}, "limit": 1})
        .collect();
    run(
        s,
        doc! {"delete": s.msgs.name(), "deletes": gone, "ordered": false},
    )
    .await?;
    // A batch never dispatched within its messages' retention: nothing left to dispatch.
    let stale: Vec<Document> = msgs
        .iter()
        .map(|id| doc! {"q": {"m._id": id}, "limit": 0})
        .collect();
    run(
        s,
        doc! {"delete": s.outbox.name(), "deletes": stale, "ordered": false},
    )
    .await?;
    release(s).await;
    Ok(msgs.len() as u64)
}

async fn run(s: &MongoStore, cmd: Document) -> Result<()> {
    s.db.run_command(cmd).await.map_err(backend)?;
    Ok(())
}

const LEASE_ID: &str = "sweep";

/// Takes the sweep lease: a new lease document, or one that ran out (compare-and-set).
async fn take_lease(s: &MongoStore, now: u64) -> Result<bool> {
    let leases = s.db.collection::<Document>("leases");
    let until = ms(now.saturating_add(LEASE_MS));
    match leases
        .insert_one(doc! {"_id": LEASE_ID, "until": until, "owner": &*s.owner})
        .await
    {
        Ok(_) => return Ok(true),
        Err(e) if is_duplicate_key(&e) => {}
        Err(e) => return Err(backend(e)),
    }
    let taken = leases
        .update_one(
            doc! {"_id": LEASE_ID, "until": {"$lt": ms(now)}},
            doc! {"$set": {"until": until, "owner": &*s.owner}},
        )
        .await
        .map_err(backend)?;
    Ok(taken.modified_count == 1)
}

async fn release(s: &MongoStore) {
    let leases = s.db.collection::<Document>("leases");
    let _ = leases
        .delete_one(doc! {"_id": LEASE_ID, "owner": &*s.owner})
        .await;
}
