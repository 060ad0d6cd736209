//! Byte layouts of the redb values: a message record (read by every replay, so the payload
//! comes back without being parsed), a recipient list, an outbox entry.

use pushcluster_proto::api::{Mobile, Notification};
use serde::{Deserialize, Serialize};

use crate::{Error, Payload, Result};

/// A stored message: `created_at_ms` (8 bytes LE), `expires_at_ms` (8), the length of the
/// metadata (4), the metadata as JSON, then the payload text.
pub(crate) struct Record {
    pub created_at_ms: u64,
    pub expires_at_ms: u64,
    pub payload: Payload,
    pub meta: Meta,
}

/// What a replay does not need.
#[derive(Serialize, Deserialize, Default)]
pub(super) struct Meta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification: Option<Notification>,
    #[serde(default)]
    pub mobile: Mobile,
}

const HEADER: usize = 20;

impl Record {
    pub fn encode(&self) -> Result<Vec<u8>> {
        let meta = serde_json::to_vec(&self.meta).map_err(Error::backend)?;
        let mut out = Vec::with_capacity(HEADER + meta.len() + self.payload.len());
        out.extend_from_slice(&self.created_at_ms.to_le_bytes());
        out.extend_from_slice(&self.expires_at_ms.to_le_bytes());
        out.extend_from_slice(&(meta.len() as u32).to_le_bytes());
        out.extend_from_slice(&meta);
        out.extend_from_slice(self.payload.as_str().as_bytes());
        Ok(out)
    }

    /// The times and payload only (replays).
    pub fn decode_light(id: &str, bytes: &[u8]) -> Result<(u64, u64, Payload)> {
        let (created, expires, meta_len) = header(id, bytes)?;
        let payload = std::str::from_utf8(&bytes[HEADER + meta_len..])
            .map_err(|e| Error::Corrupt(format!("payload of message {id}: {e}")))?;
        Ok((created, expires, Payload::trusted(payload)))
    }

    pub fn decode(id: &str, bytes: &[u8]) -> Result<Record> {
        let (created_at_ms, expires_at_ms, payload) = Self::decode_light(id, bytes)?;
        let (_, _, meta_len) = header(id, bytes)?;
        let meta = serde_json::from_slice(&bytes[HEADER..HEADER + meta_len])
            .map_err(|e| Error::Corrupt(format!("message {id}: {e}")))?;
        Ok(Record {
            created_at_ms,
            expires_at_ms,
            payload,
            meta,
        })
    }
}

fn header(id: &str, b: &[u8]) -> Result<(u64, u64, usize)> {
    let corrupt = || Error::Corrupt(format!("message {id}: truncated record"));
    if b.len() < HEADER {
        return Err(corrupt());
    }
    let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
    let meta_len = u32::from_le_bytes(b[16..20].try_into().expect("4 bytes")) as usize;
    if b.len() < HEADER + meta_len {
        return Err(corrupt());
    }
    Ok((u64_at(0), u64_at(8), meta_len))
}

/// A message's recipients with their seqs: per recipient the user's length (2 bytes LE),
/// the user, the seq (8 bytes LE).
pub(super) fn encode_recipients(recipients: &[(String, u64)]) -> Vec<u8> {
    let len: usize = recipients.iter().map(|(u, _)| u.len() + 10).sum();
    let mut out = Vec::with_capacity(len);
    for (user, seq) in recipients {
        out.extend_from_slice(&(user.len() as u16).to_le_bytes());
        out.extend_from_slice(user.as_bytes());
        out.extend_from_slice(&seq.to_le_bytes());
    }
    out
}

pub(super) fn decode_recipients(id: &str, mut b: &[u8]) -> Result<Vec<(String, u64)>> {
    let corrupt = || Error::Corrupt(format!("recipients of message {id}"));
    let mut out = Vec::new();
    while !b.is_empty() {
        if b.len() < 2 {
            return Err(corrupt());
        }
        let n = u16::from_le_bytes([b[0], b[1]]) as usize;
        if b.len() < 2 + n + 8 {
            return Err(corrupt());
        }
        let user = std::str::from_utf8(&b[2..2 + n]).map_err(|_| corrupt())?;
        let seq = u64::from_le_bytes(b[2 + n..2 + n + 8].try_into().expect("8 bytes"));
        out.push((user.to_owned(), seq));
        b = &b[2 + n + 8..];
    }
    Ok(out)
}

/// An outbox entry: the lease's end (8 bytes LE), then the message ids, `\n`-separated.
pub(super) fn encode_outbox(lease_until_ms: u64, ids: &[&str]) -> Vec<u8> {
    let mut out = lease_until_ms.to_le_bytes().to_vec();
    out.extend_from_slice(ids.join("\n").as_bytes());
    out
}

pub(super) fn decode_outbox(batch: &str, b: &[u8]) -> Result<(u64, Vec<String>)> {
    if b.len() < 8 {
        return Err(Error::Corrupt(format!("outbox batch {batch}")));
    }
    let lease = u64::from_le_bytes(b[..8].try_into().expect("8 bytes"));
    let ids = std::str::from_utf8(&b[8..])
        .map_err(|_| Error::Corrupt(format!("outbox batch {batch}")))?;
    Ok((
        lease,
        ids.split('\n')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let r = Record {
            created_at_ms: 1,
            expires_at_ms: u64::MAX,
            payload: Payload::trusted(r#"{"a":"é"}"#),
            meta: Meta {
                idempotency_key: Some("k".into()),
                ..Meta::default()
            },
        };
        let b = r.encode().unwrap();
        let back = Record::decode("m", &b).unwrap();
        assert_eq!((back.created_at_ms, back.expires_at_ms), (1, u64::MAX));
        assert_eq!(back.payload.as_str(), r#"{"a":"é"}"#);
        assert_eq!(back.meta.idempotency_key.as_deref(), Some("k"));
        assert!(Record::decode("m", &b[..10]).is_err());
    }

    #[test]
    fn recipients_and_outbox_round_trip() {
        let r = vec![("alice".to_string(), 7), ("".to_string(), u64::MAX)];
        assert_eq!(decode_recipients("m", &encode_recipients(&r)).unwrap(), r);
        assert!(decode_recipients("m", &[3, 0, b'a']).is_err());
        let b = encode_outbox(42, &["x", "y"]);
        assert_eq!(
            decode_outbox("b", &b).unwrap(),
            (42, vec!["x".into(), "y".into()])
        );
        assert_eq!(
            decode_outbox("b", &encode_outbox(1, &[])).unwrap().1.len(),
            0
        );
    }
}
