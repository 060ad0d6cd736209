//! What every vendor's payload is made of: the time left to live, the custom `data` as the
//! string map or text a vendor takes, and the deterministic ids that make a resend of the
//! same (message, device) show once (tags, collapse keys, Xiaomi `jobkey`, vivo
//! `requestId`).

use std::collections::BTreeMap;
use std::time::Duration;

use pushcluster_proto::delivery::now_ms;
use serde_json::Value;
use uuid::Uuid;

use crate::sender::MobileRequest;

/// pushcluster's namespace for the ids derived here (UUID v5).
const NAMESPACE: Uuid = Uuid::from_u128(0x1c5e_97a0_4b7d_4e21_8f3a_62d9_0b4c_7e15);

/// The time the message has left (what the vendor may keep it for an offline device).
pub fn ttl(req: &MobileRequest) -> Duration {
    Duration::from_millis(req.expires_at_ms.saturating_sub(now_ms()))
}

/// `data` as a string map (FCM `data`, vivo `clientCustomMap`): an object's strings as
/// they are, its other values as JSON text; anything else under the key `data`.
pub fn data_map(data: &Value) -> BTreeMap<String, String> {
    match data {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), v)
            })
            .collect(),
        other => BTreeMap::from([("data".to_owned(), other.to_string())]),
    }
}

/// A UUID for `parts`, the same on every attempt and after a restart.
pub fn stable_id(kind: &str, parts: &[&str]) -> Uuid {
    let mut name = kind.as_bytes().to_vec();
    for p in parts {
        name.push(0);
        name.extend_from_slice(p.as_bytes());
    }
    Uuid::new_v5(&NAMESPACE, &name)
}

/// The on-screen tag of a notification (FCM/HMS `android.notification.tag`): the message's
/// `collapse_id`, else an id of the message — so a copy sent after an unknown outcome
/// replaces the first on the device instead of showing twice.
pub fn tag(req: &MobileRequest) -> String {
    match &req.notification.collapse_id {
        Some(c) => c.clone(),
        None => stable_id("tag", &[&req.message_id]).simple().to_string(),
    }
}

/// A per-(message, device) key of `len` hex digits (Xiaomi `jobkey`, vivo `requestId`).
pub fn device_key(req: &MobileRequest, len: usize) -> String {
    let id = stable_id("device", &[&req.message_id, &req.device.token]);
    let mut hex = id.simple().to_string();
    hex.truncate(len);
    hex
}

/// A non-negative 31-bit number for `text` (Xiaomi `notify_id`, HMS collapse groups).
pub fn small_number(text: &str) -> u32 {
    let bytes = stable_id("number", &[text]).into_bytes();
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) & 0x7fff_ffff
}

/// `text` cut to at most `max` display units, a CJK (non-ASCII) character counting two —
/// how vivo counts its title and content limits.
pub fn truncate_units(text: &str, max: usize) -> String {
    let mut used = 0;
    let mut out = String::new();
    for c in text.chars() {
        let w = if c.is_ascii() { 1 } else { 2 };
        if used + w > max {
            break;
        }
        used += w;
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests;
