//! Devices and mobile records in MongoDB.
//!
//! - `devices`: `{_id: token, user, platform, topic?, created_at, updated_at, dead_at?}`;
//!   the `_id` makes the token unique, an index on `user` lists a user's devices.
//! - `mobile`: one per (message, device): `{_id: "<id>/<token>", msg, token, user, platform,
//!   state, reason?, attempts, apns_id?, vendor_id?, created_at, updated_at, purge_at}`,
//!   indexed on `msg`; `platform` is the vendor (`apns`, `fcm`, `hms`, `xiaomi`, `vivo`);
//!   purged with the message (TTL index on `purge_at`, or the expiry sweep). The insert of
//!   the `pending` record is the claim: a duplicate key means someone sent it already.

use std::sync::Arc;

use mongodb::bson::{Bson, Document, doc};
use mongodb::options::ReturnDocument;
use pushcluster_proto::api::{
    Device, MobileRecord, MobileState, NewDevice, Notification, Platform,
};
use pushcluster_proto::delivery::now_ms;

use super::{MongoStore, backend, get_str, get_u64, is_duplicate_key, ms};
use crate::{DeviceSaved, Error, Result, RetryMobile};

fn platform(d: &Document) -> Result<Platform> {
    let p = get_str(d, "platform")?;
    Platform::parse(p)
        .ok_or_else(|| Error::Corrupt(format!("platform {p:?} of {:?}", d.get("_id"))))
}

fn opt_str(d: &Document, key: &str) -> Option<String> {
    d.get_str(key).ok().map(str::to_owned)
}

fn opt_u64(d: &Document, key: &str) -> Result<Option<u64>> {
    match d.get(key) {
        None | Some(Bson::Null) => Ok(None),
        Some(_) => get_u64(d, key).map(Some),
    }
}

fn device(d: &Document) -> Result<Device> {
    Ok(Device {
        user: get_str(d, "user")?.to_owned(),
        platform: platform(d)?,
        token: get_str(d, "_id")?.to_owned(),
        topic: opt_str(d, "topic"),
        created_at_ms: get_u64(d, "created_at")?,
        updated_at_ms: get_u64(d, "updated_at")?,
        dead_at_ms: opt_u64(d, "dead_at")?,
    })
}

pub(super) async fn put(s: &MongoStore, new: NewDevice) -> Result<DeviceSaved> {
    let now_u64 = now_ms();
    let now = ms(now_u64);
    let mut set = doc! {
        "user": &new.user,
        "platform": new.platform.as_str(),
        "updated_at": now,
    };
    let mut unset = doc! {"dead_at": ""};
    match &new.topic {
        Some(t) => {
            set.insert("topic", t);
        }
        None => {
            unset.insert("topic", "");
        }
    }
    let update = doc! {"$set": set, "$unset": unset, "$setOnInsert": {"created_at": now}};
    // Two first registrations of one token can race on the upsert: the second retries.
    for _ in 0..3 {
        let r = s
            .devices
            .find_one_and_update(doc! {"_id": &new.token}, update.clone())
            .upsert(true)
            .return_document(ReturnDocument::Before)
            .await;
        let before = match r {
            Ok(before) => before,
            Err(e) if is_duplicate_key(&e) => continue,
            Err(e) => return Err(backend(e)),
        };
        let device = Device {
            user: new.user.clone(),
            platform: new.platform,
            token: new.token.clone(),
            topic: new.topic.clone(),
            created_at_ms: match &before {
                Some(b) => get_u64(b, "created_at")?,
                None => now_u64,
            },
            updated_at_ms: now_u64,
            dead_at_ms: None,
        };
        return Ok(match before {
            None => DeviceSaved::Created(device),
            Some(_) => DeviceSaved::Updated(device),
        });
    }
    Err(Error::Backend(
        format!("registering device {}… kept racing", &new.token[..8]).into(),
    ))
}

pub(super) async fn delete(s: &MongoStore, token: &str) -> Result<bool> {
    let r = s
        .devices
        .delete_one(doc! {"_id": token})
        .await
        .map_err(backend)?;
    Ok(r.deleted_count > 0)
}

pub(super) async fn list(s: &MongoStore, user: &str) -> Result<Vec<Device>> {
    let mut cursor = s
        .devices
        .find(doc! {"user": user})
        .sort(doc! {"_id": 1})
        .await
        .map_err(backend)?;
    let mut out = Vec::new();
    while cursor.advance().await.map_err(backend)? {
        out.push(device(&cursor.deserialize_current().map_err(backend)?)?);
    }
    Ok(out)
}

pub(super) async fn mark_dead(s: &MongoStore, token: &str, at_ms: u64) -> Result<bool> {
    // Registered again after Apple's timestamp: the new registration stands.
    let r = s
        .devices
        .update_one(
            doc! {"_id": token, "updated_at": {"$lte": ms(at_ms)}, "dead_at": {"$exists": false}},
            doc! {"$set": {"dead_at": ms(at_ms)}},
        )
        .await
        .map_err(backend)?;
    if r.matched_count > 0 {
        return Ok(true);
    }
    let n = s
        .devices
        .count_documents(doc! {"_id": token})
        .await
        .map_err(backend)?;
    Ok(n > 0)
}

fn state_str(s: MobileState) -> &'static str {
    match s {
        MobileState::Pending => "pending",
        MobileState::Accepted => "accepted",
        MobileState::Rejected => "rejected",
        MobileState::Unknown => "unknown",
    }
}

fn parse_state(d: &Document) -> Result<MobileState> {
    match get_str(d, "state")? {
        "pending" => Ok(MobileState::Pending),
        "accepted" => Ok(MobileState::Accepted),
        "rejected" => Ok(MobileState::Rejected),
        "unknown" => Ok(MobileState::Unknown),
        other => Err(Error::Corrupt(format!(
            "mobile state {other:?} of {:?}",
            d.get("_id")
        ))),
    }
}

fn record_id(r: &MobileRecord) -> String {
    format!("{}/{}", r.message, r.token)
}

/// The fields that change after the claim.
fn record_update(r: &MobileRecord) -> Document {
    let mut d = doc! {
        "state": state_str(r.state),
        "attempts": i64::from(r.attempts),
        "updated_at": ms(r.updated_at_ms),
    };
    if let Some(reason) = &r.reason {
        d.insert("reason", reason);
    }
    if let Some(id) = &r.apns_id {
        d.insert("apns_id", id);
    }
    if let Some(id) = &r.vendor_id {
        d.insert("vendor_id", id);
    }
    d
}

pub(super) async fn claim(s: &MongoStore, r: &MobileRecord) -> Result<bool> {
    // Kept as long as the message: its expiry is on the message, so look it up.
    let purge_at = s
        .msgs
        .find_one(doc! {"_id": &r.message})
        .projection(doc! {"purge_at": 1})
        .await
        .map_err(backend)?
        .and_then(|m| m.get_datetime("purge_at").ok().copied());
    let mut d = doc! {
        "_id": record_id(r),
        "msg": &r.message,
        "token": &r.token,
        "user": &r.user,
        "platform": r.platform.as_str(),
        "created_at": ms(r.created_at_ms),
    };
    d.extend(record_update(r));
    if let Some(p) = purge_at {
        d.insert("purge_at", p);
    }
    match s.mobile.insert_one(d).await {
        Ok(_) => Ok(true),
        Err(e) if is_duplicate_key(&e) => Ok(false),
        Err(e) => Err(backend(e)),
    }
}

pub(super) async fn update(s: &MongoStore, r: &MobileRecord) -> Result<()> {
    let mut unset = Document::new();
    if r.reason.is_none() {
        unset.insert("reason", "");
    }
    let mut update = doc! {"$set": record_update(r)};
    if !unset.is_empty() {
        update.insert("$unset", unset);
    }
    s.mobile
        .update_one(doc! {"_id": record_id(r)}, update)
        .await
        .map_err(backend)?;
    Ok(())
}

/// The mobile records of message `id`, by token.
pub(super) async fn records(s: &MongoStore, id: &str) -> Result<Vec<MobileRecord>> {
    let mut cursor = s
        .mobile
        .find(doc! {"msg": id})
        .sort(doc! {"token": 1})
        .await
        .map_err(backend)?;
    let mut out = Vec::new();
    while cursor.advance().await.map_err(backend)? {
        let d = cursor.deserialize_current().map_err(backend)?;
        out.push(record_from(&d, id)?);
    }
    Ok(out)
}

fn record_from(d: &Document, id: &str) -> Result<MobileRecord> {
    let attempts = get_u64(d, "attempts")?;
    Ok(MobileRecord {
        message: id.to_owned(),
        user: get_str(d, "user")?.to_owned(),
        platform: platform(d)?,
        token: get_str(d, "token")?.to_owned(),
        state: parse_state(d)?,
        reason: opt_str(d, "reason"),
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        apns_id: opt_str(d, "apns_id"),
        vendor_id: opt_str(d, "vendor_id"),
        created_at_ms: get_u64(d, "created_at")?,
        updated_at_ms: get_u64(d, "updated_at")?,
    })
}

/// Pending records with a reason, older than `before_ms`, with their message's notification.
pub(super) async fn retryable(
    s: &MongoStore,
    before_ms: u64,
    limit: usize,
) -> Result<Vec<RetryMobile>> {
    let mut cursor = s
        .mobile
        .find(doc! {
            "state": state_str(MobileState::Pending),
            "reason": {"$exists": true},
            "updated_at": {"$lt": ms(before_ms)},
        })
        .limit(i64::try_from(limit).unwrap_or(i64::MAX))
        .await
        .map_err(backend)?;
    let mut records = Vec::new();
    while cursor.advance().await.map_err(backend)? {
        let d = cursor.deserialize_current().map_err(backend)?;
        let id = get_str(&d, "msg")?.to_owned();
        records.push(record_from(&d, &id)?);
    }
    let mut out = Vec::with_capacity(records.len());
    for record in records {
        let Some(m) = s
            .msgs
            .find_one(doc! {"_id": &record.message})
            .projection(doc! {"n": 1, "e": 1})
            .await
            .map_err(backend)?
        else {
            continue; // purged
        };
        let Some(json) = opt_str(&m, "n") else {
            continue;
        };
        let notification: Notification = serde_json::from_str(&json).map_err(|e| {
            Error::Corrupt(format!("notification of message {}: {e}", record.message))
        })?;
        out.push(RetryMobile {
            record,
            notification: Arc::new(notification),
            expires_at_ms: get_u64(&m, "e")?,
        });
    }
    Ok(out)
}

/// Compare-and-set on `updated_at`: one taker per listed record.
pub(super) async fn retake(s: &MongoStore, r: &MobileRecord, now: u64) -> Result<bool> {
    let res = s
        .mobile
        .update_one(
            doc! {
                "_id": record_id(r),
                "state": state_str(MobileState::Pending),
                "updated_at": ms(r.updated_at_ms),
            },
            doc! {"$set": {"updated_at": ms(now)}},
        )
        .await
        .map_err(backend)?;
    Ok(res.matched_count == 1)
}
