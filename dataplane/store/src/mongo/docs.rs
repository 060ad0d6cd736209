//! BSON layouts: a message (inside an outbox document and in `msgs`) and a row.

use std::sync::Arc;

use mongodb::bson::{Bson, Document, doc};
use pushcluster_proto::api::{Mobile, Notification};

use super::seqs::row_id;
use super::{as_u64, get_str, get_u64, ms, purge_at};
use crate::{Error, Payload, Result, StoredMessage};

/// Messages with at most this many recipients (and a payload of at most
/// [`INLINE_PAYLOAD_BYTES`]) carry their payload in every row: a replay reads one document.
pub(super) const INLINE_RECIPIENTS: usize = 4;
pub(super) const INLINE_PAYLOAD_BYTES: usize = 8 * 1024;

/// A message being stored: what the outbox and `msgs` hold.
#[derive(Debug, Clone)]
pub(super) struct Msg {
    pub stored: StoredMessage,
    pub idempotency_key: Option<String>,
}

impl Msg {
    /// The message as a BSON document (without `_id`'s collection-specific extras).
    pub fn to_doc(&self) -> Result<Document> {
        let m = &self.stored;
        let (to, sq): (Vec<&str>, Vec<i64>) = m
            .recipients
            .iter()
            .map(|(u, s)| (u.as_str(), ms(*s)))
            .unzip();
        let mut d = doc! {
            "_id": &m.id,
            "p": m.payload.as_str(),
            "c": ms(m.created_at_ms),
            "e": ms(m.expires_at_ms),
            "to": to,
            "sq": sq,
            "mo": m.mobile.as_str(),
        };
        if let Some(k) = &self.idempotency_key {
            d.insert("k", k);
        }
        if let Some(n) = &m.notification {
            let json = serde_json::to_string(n.as_ref()).map_err(Error::backend)?;
            d.insert("n", json);
        }
        Ok(d)
    }

    /// The document in `msgs`.
    pub fn msgs_doc(&self, batch: &str) -> Result<Document> {
        let mut d = self.to_doc()?;
        d.insert("b", batch);
        d.insert("purge_at", purge_at(self.stored.expires_at_ms));
        Ok(d)
    }

    pub fn from_doc(d: &Document) -> Result<Msg> {
        let id = get_str(d, "_id")?.to_owned();
        let corrupt = |what: &str| Error::Corrupt(format!("{what} of message {id}"));
        let to = d.get_array("to").map_err(|_| corrupt("recipients"))?;
        let sq = d.get_array("sq").map_err(|_| corrupt("seqs"))?;
        if to.len() != sq.len() {
            return Err(corrupt("recipients and seqs"));
        }
        let mut recipients = Vec::with_capacity(to.len());
        for (u, s) in to.iter().zip(sq) {
            let (Bson::String(u), Some(s)) = (u, as_u64(Some(s))) else {
                return Err(corrupt("a recipient"));
            };
            recipients.push((u.clone(), s));
        }
        let notification = match d.get_str("n") {
            Ok(json) => Some(Arc::new(
                serde_json::from_str::<Notification>(json).map_err(|_| corrupt("notification"))?,
            )),
            Err(_) => None,
        };
        let mobile = match d.get_str("mo") {
            Ok("always") => Mobile::Always,
            Ok("never") => Mobile::Never,
            _ => Mobile::Offline,
        };
        Ok(Msg {
            stored: StoredMessage {
                payload: Payload::trusted(get_str(d, "p")?),
                created_at_ms: get_u64(d, "c")?,
                expires_at_ms: get_u64(d, "e")?,
                recipients,
                notification,
                mobile,
                id,
            },
            idempotency_key: d.get_str("k").ok().map(str::to_owned),
        })
    }

    /// One row per recipient.
    pub fn rows(&self) -> Vec<Document> {
        let m = &self.stored;
        let inline =
            m.recipients.len() <= INLINE_RECIPIENTS && m.payload.len() <= INLINE_PAYLOAD_BYTES;
        m.recipients
            .iter()
            .map(|(user, seq)| self.row(user, *seq, inline))
            .collect()
    }

    pub fn row(&self, user: &str, seq: u64, inline: bool) -> Document {
        let m = &self.stored;
        let mut d = doc! {
            "_id": row_id(user, seq),
            "u": user,
            "s": ms(seq),
            "m": &m.id,
            "c": ms(m.created_at_ms),
            "e": ms(m.expires_at_ms),
            "purge_at": purge_at(m.expires_at_ms),
        };
        if inline {
            d.insert("p", m.payload.as_str());
        }
        d
    }
}
