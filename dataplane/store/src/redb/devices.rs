//! Devices and mobile records in redb: writes (run by the writer thread) and reads.

use std::sync::Arc;

use pushcluster_proto::api::{Device, MobileRecord, MobileState, NewDevice};
use pushcluster_proto::delivery::now_ms;
use redb::{ReadTransaction, ReadableTable, WriteTransaction};

use super::{DEVICES, MESSAGES, MOBILE, Record, USER_DEVICES};
use crate::{DeviceSaved, Error, Result, RetryMobile};

fn decode_device(token: &str, bytes: &[u8]) -> Result<Device> {
    serde_json::from_slice(bytes).map_err(|e| Error::Corrupt(format!("device {token}: {e}")))
}

fn decode_record(id: &str, token: &str, bytes: &[u8]) -> Result<MobileRecord> {
    let mut r: MobileRecord = serde_json::from_slice(bytes)
        .map_err(|e| Error::Corrupt(format!("mobile record {id}/{token}: {e}")))?;
    r.message = id.to_owned();
    Ok(r)
}

fn get_device(txn: &WriteTransaction, token: &str) -> Result<Option<Device>> {
    let table = txn.open_table(DEVICES).map_err(Error::backend)?;
    let found = table.get(token).map_err(Error::backend)?;
    found.map(|v| decode_device(token, v.value())).transpose()
}

fn save_device(txn: &WriteTransaction, d: &Device) -> Result<()> {
    let bytes = serde_json::to_vec(d).map_err(Error::backend)?;
    txn.open_table(DEVICES)
        .map_err(Error::backend)?
        .insert(d.token.as_str(), bytes.as_slice())
        .map_err(Error::backend)?;
    Ok(())
}

pub(super) fn put(txn: &WriteTransaction, new: &NewDevice) -> Result<DeviceSaved> {
    let now = now_ms();
    let old = get_device(txn, &new.token)?;
    let mut user_devices = txn.open_table(USER_DEVICES).map_err(Error::backend)?;
    if let Some(old) = &old
        && old.user != new.user
    {
        user_devices
            .remove((old.user.as_str(), old.token.as_str()))
            .map_err(Error::backend)?;
    }
    user_devices
        .insert((new.user.as_str(), new.token.as_str()), ())
        .map_err(Error::backend)?;
    let device = Device {
        user: new.user.clone(),
        platform: new.platform,
        token: new.token.clone(),
        topic: new.topic.clone(),
        created_at_ms: old.as_ref().map_or(now, |d| d.created_at_ms),
        updated_at_ms: now,
        dead_at_ms: None,
    };
    save_device(txn, &device)?;
    Ok(match old {
        None => DeviceSaved::Created(device),
        Some(_) => DeviceSaved::Updated(device),
    })
}

pub(super) fn delete(txn: &WriteTransaction, token: &str) -> Result<bool> {
    let Some(old) = get_device(txn, token)? else {
        return Ok(false);
    };
    txn.open_table(USER_DEVICES)
        .map_err(Error::backend)?
        .remove((old.user.as_str(), token))
        .map_err(Error::backend)?;
    txn.open_table(DEVICES)
        .map_err(Error::backend)?
        .remove(token)
        .map_err(Error::backend)?;
    Ok(true)
}

pub(super) fn mark_dead(txn: &WriteTransaction, token: &str, at_ms: u64) -> Result<bool> {
    let Some(mut d) = get_device(txn, token)? else {
        return Ok(false);
    };
    // Registered again after Apple's timestamp: the new registration stands.
    if d.updated_at_ms <= at_ms && d.dead_at_ms.is_none() {
        d.dead_at_ms = Some(at_ms);
        save_device(txn, &d)?;
    }
    Ok(true)
}

pub(super) fn claim_mobile(txn: &WriteTransaction, r: &MobileRecord) -> Result<bool> {
    let mut table = txn.open_table(MOBILE).map_err(Error::backend)?;
    let key = (r.message.as_str(), r.token.as_str());
    if table.get(key).map_err(Error::backend)?.is_some() {
        return Ok(false);
    }
    let bytes = serde_json::to_vec(r).map_err(Error::backend)?;
    table
        .insert(key, bytes.as_slice())
        .map_err(Error::backend)?;
    Ok(true)
}

pub(super) fn update_mobile(txn: &WriteTransaction, r: &MobileRecord) -> Result<()> {
    let bytes = serde_json::to_vec(r).map_err(Error::backend)?;
    txn.open_table(MOBILE)
        .map_err(Error::backend)?
        .insert((r.message.as_str(), r.token.as_str()), bytes.as_slice())
        .map_err(Error::backend)?;
    Ok(())
}

/// Deletes the mobile records of a purged message.
pub(super) fn purge_mobile(txn: &WriteTransaction, id: &str) -> Result<()> {
    let mut table = txn.open_table(MOBILE).map_err(Error::backend)?;
    let keys: Vec<String> = {
        let mut keys = Vec::new();
        for entry in table.range((id, "")..=(id, "~")).map_err(Error::backend)? {
            let (k, _) = entry.map_err(Error::backend)?;
            keys.push(k.value().1.to_owned());
        }
        keys
    };
    for token in keys {
        table.remove((id, token.as_str())).map_err(Error::backend)?;
    }
    Ok(())
}

pub(super) fn list(txn: &ReadTransaction, user: &str) -> Result<Vec<Device>> {
    let index = txn.open_table(USER_DEVICES).map_err(Error::backend)?;
    let devices = txn.open_table(DEVICES).map_err(Error::backend)?;
    let mut out = Vec::new();
    for entry in index
        .range((user, "")..=(user, "~"))
        .map_err(Error::backend)?
    {
        let (k, _) = entry.map_err(Error::backend)?;
        let token = k.value().1.to_owned();
        if let Some(v) = devices.get(token.as_str()).map_err(Error::backend)? {
            out.push(decode_device(&token, v.value())?);
        }
    }
    Ok(out)
}

/// The mobile records of message `id`, by token.
pub(super) fn mobile_records(txn: &ReadTransaction, id: &str) -> Result<Vec<MobileRecord>> {
    let table = txn.open_table(MOBILE).map_err(Error::backend)?;
    let mut out = Vec::new();
    for entry in table.range((id, "")..=(id, "~")).map_err(Error::backend)? {
        let (k, v) = entry.map_err(Error::backend)?;
        out.push(decode_record(id, k.value().1, v.value())?);
    }
    Ok(out)
}

/// Whether a record is one the sweeper may send again (see `MessageStore::retryable_mobile`).
fn is_retryable(r: &MobileRecord, before_ms: u64) -> bool {
    r.state == MobileState::Pending && r.reason.is_some() && r.updated_at_ms < before_ms
}

/// Scans the mobile records (a standalone node holds few) for retryable ones.
pub(super) fn retryable_mobile(
    txn: &ReadTransaction,
    before_ms: u64,
    limit: usize,
) -> Result<Vec<RetryMobile>> {
    let table = txn.open_table(MOBILE).map_err(Error::backend)?;
    let messages = txn.open_table(MESSAGES).map_err(Error::backend)?;
    let mut out = Vec::new();
    for entry in table.iter().map_err(Error::backend)? {
        if out.len() >= limit {
            break;
        }
        let (k, v) = entry.map_err(Error::backend)?;
        let (id, token) = k.value();
        let record = decode_record(id, token, v.value())?;
        if !is_retryable(&record, before_ms) {
            continue;
        }
        let Some(bytes) = messages.get(id).map_err(Error::backend)? else {
            continue; // purged
        };
        let msg = Record::decode(id, bytes.value())?;
        let Some(notification) = msg.meta.notification else {
            continue;
        };
        out.push(RetryMobile {
            record,
            notification: Arc::new(notification),
            expires_at_ms: msg.expires_at_ms,
        });
    }
    Ok(out)
}

/// Compare-and-set on `updated_at_ms`: one taker per listed record.
pub(super) fn retake_mobile(txn: &WriteTransaction, r: &MobileRecord, now: u64) -> Result<bool> {
    let key = (r.message.as_str(), r.token.as_str());
    let mut table = txn.open_table(MOBILE).map_err(Error::backend)?;
    let current = match table.get(key).map_err(Error::backend)? {
        Some(v) => decode_record(&r.message, &r.token, v.value())?,
        None => return Ok(false),
    };
    if current.state != MobileState::Pending || current.updated_at_ms != r.updated_at_ms {
        return Ok(false);
    }
    let mut taken = current;
    taken.updated_at_ms = now;
    let bytes = serde_json::to_vec(&taken).map_err(Error::backend)?;
    table
        .insert(key, bytes.as_slice())
        .map_err(Error::backend)?;
    Ok(true)
}
