//! An outbox batch carried whole in `Dispatch.Wake`: collect holds the batch's final seqs in
//! memory once its rows are written, so sending it spares the dispatch replica reading it
//! back (one store command per batch). Large batches still travel by id.

use std::sync::Arc;

use prost::Message as _;
use pushcluster_proto::api::{Mobile, Notification};
use pushcluster_proto::grpc::{HandedBatch, HandedMessage, NodeMessage};
use pushcluster_store::{BatchId, OutboxBatch, Payload, StoredMessage};

use crate::service::valid_id;

/// Largest `Dispatch.Wake` request, set on both ends.
pub const MAX_WAKE_BYTES: usize = 4 << 20;
/// Largest batch carried whole; a larger one travels by id.
pub const MAX_CARRIED_BYTES: usize = 1 << 20;

/// `batch` as it travels, or `None` when it is too large to carry.
pub fn encode(batch: &OutboxBatch) -> Option<HandedBatch> {
    // A cheap bound first, so a large batch is never copied.
    let rough: usize = batch
        .messages
        .iter()
        .map(|m| {
            m.payload.len()
                + m.id.len()
                + m.recipients
                    .iter()
                    .map(|(u, _)| u.len() + 12)
                    .sum::<usize>()
                + 64
        })
        .sum();
    if rough > MAX_CARRIED_BYTES {
        return None;
    }
    let messages = batch
        .messages
        .iter()
        .map(|m| {
            let notification = match &m.notification {
                Some(n) => serde_json::to_string(n.as_ref()).ok()?,
                None => String::new(),
            };
            Some(HandedMessage {
                message: Some(NodeMessage {
                    id: m.id.clone(),
                    payload: m.payload.as_str().to_owned(),
                    created_at_ms: m.created_at_ms,
                    expires_at_ms: m.expires_at_ms,
                }),
                users: m.recipients.iter().map(|(u, _)| u.clone()).collect(),
                seqs: m.recipients.iter().map(|(_, s)| *s).collect(),
                notification,
                mobile: m.mobile.as_str().to_owned(),
            })
        })
        .collect::<Option<Vec<_>>>()?;
    let handed = HandedBatch {
        id: batch.id.0.clone(),
        messages,
    };
    (handed.encoded_len() <= MAX_CARRIED_BYTES).then_some(handed)
}

/// A carried batch back as the outbox batch it was; `Err` names what is malformed.
///
/// The payload is taken as it came: only authenticated internal callers reach the service,
/// and collect checked it as JSON when it accepted the message.
pub fn decode(b: HandedBatch) -> Result<OutboxBatch, String> {
    if !valid_id(&b.id) {
        return Err("a carried batch id is empty or too long".into());
    }
    let messages = b
        .messages
        .into_iter()
        .map(|m| {
            let Some(msg) = m.message else {
                return Err(format!("a message of batch {} has no body", b.id));
            };
            if !valid_id(&msg.id) {
                return Err(format!(
                    "a message id of batch {} is empty or too long",
                    b.id
                ));
            }
            if m.users.len() != m.seqs.len() || m.users.is_empty() {
                return Err(format!(
                    "message {} has no recipients or uneven seqs",
                    msg.id
                ));
            }
            let mobile = Mobile::parse(&m.mobile)
                .ok_or_else(|| format!("message {} has an unknown mobile mode", msg.id))?;
            let notification = if m.notification.is_empty() {
                None
            } else {
                let n: Notification = serde_json::from_str(&m.notification)
                    .map_err(|e| format!("the notification of message {}: {e}", msg.id))?;
                Some(Arc::new(n))
            };
            Ok(StoredMessage {
                payload: Payload::trusted(msg.payload),
                created_at_ms: msg.created_at_ms,
                expires_at_ms: msg.expires_at_ms,
                recipients: m.users.into_iter().zip(m.seqs).collect(),
                notification,
                mobile,
                id: msg.id,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(OutboxBatch {
        id: BatchId(b.id),
        messages,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(recipients: usize, payload: usize) -> OutboxBatch {
        OutboxBatch {
            id: BatchId::new(),
            messages: vec![StoredMessage {
                id: "m1".into(),
                payload: Payload::trusted(format!("\"{}\"", "x".repeat(payload))),
                created_at_ms: 5,
                expires_at_ms: 9,
                recipients: (0..recipients)
                    .map(|i| (format!("u{i}"), i as u64 + 1))
                    .collect(),
                notification: Some(Arc::new(Notification {
                    title: Some("hi".into()),
                    ..Default::default()
                })),
                mobile: Mobile::Always,
            }],
        }
    }

    #[test]
    fn a_carried_batch_comes_back_as_it_was() {
        let b = batch(3, 10);
        let back = decode(encode(&b).expect("small")).unwrap();
        assert_eq!(back.id, b.id);
        let (m, n) = (&back.messages[0], &b.messages[0]);
        assert_eq!(m.id, n.id);
        assert_eq!(m.payload, n.payload);
        assert_eq!((m.created_at_ms, m.expires_at_ms), (5, 9));
        assert_eq!(m.recipients, n.recipients);
        assert_eq!(m.notification, n.notification);
        assert_eq!(m.mobile, Mobile::Always);
    }

    #[test]
    fn large_batches_travel_by_id() {
        assert!(encode(&batch(1, MAX_CARRIED_BYTES)).is_none());
        assert!(encode(&batch(100_000, 10)).is_none());
        assert!(encode(&batch(1_000, 60_000)).is_some());
    }

    #[test]
    fn malformed_batches_are_refused_with_a_reason() {
        let mut h = encode(&batch(2, 1)).unwrap();
        h.messages[0].seqs.pop();
        assert!(decode(h).unwrap_err().contains("uneven seqs"));
        let mut h = encode(&batch(2, 1)).unwrap();
        h.messages[0].mobile = "sometimes".into();
        assert!(decode(h).unwrap_err().contains("mobile mode"));
        let mut h = encode(&batch(2, 1)).unwrap();
        h.id.clear();
        assert!(decode(h).is_err());
        let mut h = encode(&batch(2, 1)).unwrap();
        h.messages[0].message = None;
        assert!(decode(h).unwrap_err().contains("no body"));
    }
}
