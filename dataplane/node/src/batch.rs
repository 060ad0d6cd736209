//! The delivery batch: each message once, one entry per `(user, seq)` it goes to.

use std::collections::HashMap;
use std::sync::Arc;

use pushcluster_proto::grpc;
use pushcluster_proto::payload::Payload;
use pushcluster_store::StoredMessage;

/// A message in a batch.
#[derive(Debug, Clone)]
pub struct BatchMessage {
    pub id: String,
    pub payload: Payload,
    /// When the message was accepted (unix ms), for the delivery-latency histogram.
    pub created_at_ms: u64,
    pub expires_at_ms: u64,
}

impl BatchMessage {
    pub fn of(m: &StoredMessage) -> BatchMessage {
        BatchMessage {
            id: m.id.clone(),
            payload: m.payload.clone(),
            created_at_ms: m.created_at_ms,
            expires_at_ms: m.expires_at_ms,
        }
    }

    fn wire_bytes(&self) -> usize {
        self.id.len() + self.payload.len() + 32
    }
}

/// One delivery: `messages[message]` to `user`, whose seq it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub user: String,
    pub seq: u64,
    pub message: u32,
}

impl Entry {
    fn wire_bytes(&self) -> usize {
        self.user.len() + 24
    }
}

/// Messages for one node and the entries that say who gets which.
#[derive(Debug, Clone, Default)]
pub struct DeliveryBatch {
    pub messages: Vec<Arc<BatchMessage>>,
    pub entries: Vec<Entry>,
}

impl DeliveryBatch {
    pub fn to_proto(&self, batch: u64) -> grpc::DeliverBatch {
        grpc::DeliverBatch {
            batch,
            messages: self
                .messages
                .iter()
                .map(|m| grpc::NodeMessage {
                    id: m.id.clone(),
                    payload: m.payload.as_str().to_owned(),
                    created_at_ms: m.created_at_ms,
                    expires_at_ms: m.expires_at_ms,
                })
                .collect(),
            entries: self
                .entries
                .iter()
                .map(|e| grpc::NodeEntry {
                    user: e.user.clone(),
                    seq: e.seq,
                    message: e.message,
                })
                .collect(),
        }
    }

    /// A received batch, and the indexes of the entries that cannot be delivered — their
    /// message's payload is not JSON, or they name a message that is not there — to answer
    /// `NotHere` (what they carry stays in the store).
    pub fn from_proto(b: grpc::DeliverBatch) -> (DeliveryBatch, Vec<usize>) {
        let mut valid = Vec::with_capacity(b.messages.len());
        let messages: Vec<Option<Arc<BatchMessage>>> = b
            .messages
            .into_iter()
            .map(|m| {
                let payload = Payload::parse(&m.payload).ok()?;
                Some(Arc::new(BatchMessage {
                    id: m.id,
                    payload,
                    created_at_ms: m.created_at_ms,
                    expires_at_ms: m.expires_at_ms,
                }))
            })
            .collect();
        // Re-index over the valid messages only.
        let mut index = Vec::with_capacity(messages.len());
        for m in &messages {
            index.push(m.as_ref().map(|m| {
                valid.push(m.clone());
                (valid.len() - 1) as u32
            }));
        }
        let mut entries = Vec::with_capacity(b.entries.len());
        let mut bad = Vec::new();
        for (i, e) in b.entries.into_iter().enumerate() {
            match index.get(e.message as usize).copied().flatten() {
                Some(message) => entries.push(Entry {
                    user: e.user,
                    seq: e.seq,
                    message,
                }),
                None => bad.push(i),
            }
        }
        let batch = DeliveryBatch {
            messages: valid,
            entries,
        };
        (batch, bad)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Builds the batches for one node, each below `max_bytes` on the wire.
pub struct BatchBuilder {
    max_bytes: usize,
    done: Vec<DeliveryBatch>,
    current: DeliveryBatch,
    bytes: usize,
    /// Message index in `current` by the position of the message in the caller's list.
    placed: HashMap<usize, u32>,
}

impl BatchBuilder {
    pub fn new(max_bytes: usize) -> BatchBuilder {
        BatchBuilder {
            max_bytes: max_bytes.max(1024),
            done: Vec::new(),
            current: DeliveryBatch::default(),
            bytes: 0,
            placed: HashMap::new(),
        }
    }

    /// Adds the delivery of `msg` (the caller's message number `key`) to `user` at `seq`.
    pub fn push(&mut self, key: usize, msg: &Arc<BatchMessage>, user: &str, seq: u64) {
        let entry_bytes = user.len() + 24;
        let msg_bytes = if self.placed.contains_key(&key) {
            0
        } else {
            msg.wire_bytes()
        };
        if !self.current.is_empty() && self.bytes + entry_bytes + msg_bytes > self.max_bytes {
            self.cut();
        }
        let index = match self.placed.get(&key) {
            Some(i) => *i,
            None => {
                self.current.messages.push(msg.clone());
                self.bytes += msg.wire_bytes();
                let i = (self.current.messages.len() - 1) as u32;
                self.placed.insert(key, i);
                i
            }
        };
        let e = Entry {
            user: user.to_owned(),
            seq,
            message: index,
        };
        self.bytes += e.wire_bytes();
        self.current.entries.push(e);
    }

    fn cut(&mut self) {
        self.done.push(std::mem::take(&mut self.current));
        self.bytes = 0;
        self.placed.clear();
    }

    pub fn finish(mut self) -> Vec<DeliveryBatch> {
        if !self.current.is_empty() {
            self.cut();
        }
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(id: &str, payload_bytes: usize) -> Arc<BatchMessage> {
        Arc::new(BatchMessage {
            id: id.into(),
            payload: Payload::trusted(format!("\"{}\"", "x".repeat(payload_bytes))),
            created_at_ms: 1,
            expires_at_ms: 2,
        })
    }

    #[test]
    fn each_payload_once_per_batch_and_split_below_the_maximum() {
        let big = msg("m1", 64 * 1024);
        let max = 256 * 1024;
        let mut b = BatchBuilder::new(max);
        for i in 0..10_000 {
            b.push(0, &big, &format!("user-{i}"), 7);
        }
        let batches = b.finish();
        assert!(batches.len() >= 2, "10,000 entries do not fit in 256 KiB");
        for batch in &batches {
            assert_eq!(batch.messages.len(), 1, "the payload once per batch");
            let wire = prost::Message::encoded_len(&batch.to_proto(1));
            assert!(wire <= max, "{wire}");
        }
        assert_eq!(batches.iter().map(|b| b.len()).sum::<usize>(), 10_000);
    }

    #[test]
    fn round_trips_and_flags_bad_entries() {
        let mut b = BatchBuilder::new(1 << 20);
        b.push(0, &msg("a", 3), "u1", 1);
        b.push(1, &msg("b", 3), "u1", 2);
        b.push(0, &msg("a", 3), "u2", 9);
        let batch = b.finish().remove(0);
        let mut wire = batch.to_proto(5);
        let (back, bad) = DeliveryBatch::from_proto(wire.clone());
        assert!(bad.is_empty());
        assert_eq!(back.entries, batch.entries);
        assert_eq!(back.messages[1].id, "b");
        wire.messages[0].payload = "{not json".into();
        wire.entries[1].message = 7;
        let (back, bad) = DeliveryBatch::from_proto(wire);
        assert_eq!(bad, vec![0, 1, 2]);
        assert!(back.entries.is_empty());
    }
}
