//! `POST /v1/messages` bodies (`pushcluster_proto::api::parse_submit`). The first byte picks
//! the limits (the defaults, or small ones that make 413s reachable); the rest is the body.
//!
//! Properties: an accepted message is within every documented bound (recipients distinct,
//! valid and at most `max_recipients`; payload JSON of at most `max_payload_bytes`; TTL from 1
//! to `max_ttl_secs`; idempotency key and notification texts bounded; `mobile: always` only
//! with a notification) and parses again to itself from its canonical JSON; a refusal is a
//! 400 or 413 naming a field of the body, with a bounded message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pushcluster_proto::api::mobile::{MAX_COLLAPSE_ID_BYTES, MAX_TEXT_BYTES};
use pushcluster_proto::api::{
    Limits, MAX_IDEMPOTENCY_KEY_BYTES, Mobile, NewMessage, parse_submit, validate_user_id,
};
use serde_json::{Value, json};

const FIELDS: [&str; 6] = [
    "to",
    "payload",
    "ttl_secs",
    "idempotency_key",
    "notification",
    "mobile",
];
const MAX_REASON_BYTES: usize = 512;

fn limits(selector: u8) -> Limits {
    match selector % 4 {
        0 => Limits::default(),
        1 => Limits {
            max_payload_bytes: 16,
            max_recipients: 2,
            default_ttl_secs: 30,
            max_ttl_secs: 60,
            ..Limits::default()
        },
        2 => Limits {
            max_payload_bytes: 1,
            max_recipients: 1,
            default_ttl_secs: 1,
            max_ttl_secs: 1,
            max_batch: 1,
            max_batch_bytes: 64,
        },
        _ => Limits {
            max_payload_bytes: 256,
            max_recipients: 8,
            default_ttl_secs: 3600,
            max_ttl_secs: u64::MAX,
            ..Limits::default()
        },
    }
}

fn check_bounds(m: &NewMessage, l: &Limits) {
    assert!(!m.to.is_empty() && m.to.len() <= l.max_recipients);
    let mut seen = std::collections::HashSet::new();
    for u in &m.to {
        validate_user_id(u).expect("a valid recipient");
        assert!(seen.insert(u), "duplicate recipient {u:?}");
    }
    assert!(m.payload.get().len() <= l.max_payload_bytes);
    // Every receiver can decode it (and `json!` with it, as collect's gRPC Submit does, works).
    serde_json::to_value(&m.payload).expect("the payload decodes");
    assert!(m.ttl_secs >= 1 && m.ttl_secs <= l.max_ttl_secs);
    if let Some(k) = &m.idempotency_key {
        assert!(!k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY_BYTES);
    }
    if let Some(n) = &m.notification {
        for t in [&n.title, &n.body, &n.sound].into_iter().flatten() {
            assert!(!t.is_empty() && t.len() <= MAX_TEXT_BYTES);
        }
        if let Some(c) = &n.collapse_id {
            assert!(!c.is_empty() && c.len() <= MAX_COLLAPSE_ID_BYTES);
        }
        assert!(n.title.is_some() || n.body.is_some() || n.badge.is_some() || n.data.is_some());
        assert!(n.data.as_ref().is_none_or(|d| !d.is_null()));
    }
    if m.mobile == Mobile::Always {
        assert!(m.notification.is_some());
    }
}

/// The message as a body again; the payload verbatim (re-serializing it could change its size).
fn canonical(m: &NewMessage) -> Vec<u8> {
    let rest = json!({
        "to": m.to,
        "ttl_secs": m.ttl_secs,
        "idempotency_key": m.idempotency_key,
        "notification": m.notification,
        "mobile": m.mobile.as_str(),
    })
    .to_string();
    format!("{{\"payload\":{},{}", m.payload.get(), &rest[1..]).into_bytes()
}

fuzz_target!(|data: &[u8]| {
    let Some((selector, body)) = data.split_first() else {
        return;
    };
    let l = limits(*selector);
    match parse_submit(body, &l) {
        Ok(m) => {
            check_bounds(&m, &l);
            let again = parse_submit(&canonical(&m), &l).expect("the canonical body parses");
            assert_eq!(again.to, m.to);
            assert_eq!(
                serde_json::from_str::<Value>(again.payload.get()).unwrap(),
                serde_json::from_str::<Value>(m.payload.get()).unwrap()
            );
            assert_eq!(
                (
                    again.ttl_secs,
                    &again.idempotency_key,
                    &again.notification,
                    again.mobile
                ),
                (m.ttl_secs, &m.idempotency_key, &m.notification, m.mobile)
            );
        }
        Err(e) => {
            assert!(e.status == 400 || e.status == 413, "status {}", e.status);
            assert!(e.field.is_none_or(|f| FIELDS.contains(&f)), "{:?}", e.field);
            assert!(!e.message.is_empty());
            assert!(
                e.message.len() <= MAX_REASON_BYTES,
                "a {}-byte reason",
                e.message.len()
            );
        }
    }
});
