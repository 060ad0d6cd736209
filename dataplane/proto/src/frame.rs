//! Client frames: server → client `message`/`welcome`/`error`, client → server `ack`.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::payload::Payload;

/// Encodes a `message` frame. The payload is embedded verbatim (it was validated as JSON when
/// the message was accepted), so the frame is built without re-parsing it.
pub fn encode_message(id: &str, seq: u64, payload: &RawValue) -> String {
    #[derive(Serialize)]
    struct Message<'a> {
        r#type: &'static str,
        id: &'a str,
        seq: u64,
        payload: &'a RawValue,
    }
    serde_json::to_string(&Message {
        r#type: "message",
        id,
        seq,
        payload,
    })
    .expect("serializing a message frame cannot fail")
}

/// The `message` frame of one message, built once and shared by all its recipients: only
/// `seq` differs between them, so a frame is the shared prefix, the seq and the shared suffix
/// (which holds the payload). Same bytes as [`encode_message`].
#[derive(Clone, Debug)]
pub struct FrameTemplate {
    prefix: Arc<str>,
    suffix: Arc<str>,
}

impl FrameTemplate {
    pub fn new(id: &str, payload: &Payload) -> FrameTemplate {
        let id = serde_json::to_string(id).expect("a string serializes");
        let prefix = format!(r#"{{"type":"message","id":{id},"seq":"#);
        let mut suffix = String::with_capacity(payload.len() + 13);
        suffix.push_str(r#","payload":"#);
        suffix.push_str(payload.as_str());
        suffix.push('}');
        FrameTemplate {
            prefix: prefix.into(),
            suffix: suffix.into(),
        }
    }

    /// The frame for the recipient whose seq is `seq`.
    pub fn render(&self, seq: u64) -> String {
        let mut digits = itoa_buf(seq);
        let digits = digits.as_str();
        let mut s = String::with_capacity(self.len_without_seq() + digits.len());
        s.push_str(&self.prefix);
        s.push_str(digits);
        s.push_str(&self.suffix);
        s
    }

    /// Bytes of a rendered frame, but for the seq's digits.
    pub fn len_without_seq(&self) -> usize {
        self.prefix.len() + self.suffix.len()
    }
}

/// Decimal digits of `v` without allocating.
struct Digits {
    buf: [u8; 20],
    start: usize,
}

impl Digits {
    fn as_str(&mut self) -> &str {
        std::str::from_utf8(&self.buf[self.start..]).expect("ASCII digits")
    }
}

fn itoa_buf(mut v: u64) -> Digits {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    Digits { buf, start: i }
}

/// The first frame on every connection, sent once the connection is routed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    pub user: String,
    pub node: String,
    pub ping_interval_secs: u64,
}

pub fn encode_welcome(w: &Welcome) -> String {
    let mut v = serde_json::to_value(w).expect("welcome serializes");
    v["type"] = "welcome".into();
    v.to_string()
}

/// An error frame: the connection stays open.
pub fn encode_error(code: &str, message: &str, id: Option<&str>) -> String {
    let mut v = serde_json::json!({"type": "error", "code": code, "message": message});
    if let Some(id) = id {
        v["id"] = id.into();
    }
    v.to_string()
}

/// A frame sent by a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientFrame {
    /// The client has processed a message and — acks being cumulative, since messages
    /// arrive in `seq` order — every earlier message of the user.
    Ack(AckTarget),
    /// Application-level keep-alive for clients (browsers) that cannot send WebSocket pings.
    Ping,
}

/// What an ack names: a `seq` (one ack can cover a burst) or a message `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckTarget {
    Seq(u64),
    Id(String),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid client frame: {0}")]
pub struct FrameError(pub String);

/// Longest message id an ack may name (ids are UUIDs).
const MAX_ACK_ID_BYTES: usize = 64;

/// Decodes a client text frame.
pub fn decode_client(text: &str) -> Result<ClientFrame, FrameError> {
    #[derive(Deserialize)]
    struct Raw<'a> {
        #[serde(rename = "type", borrow)]
        kind: std::borrow::Cow<'a, str>,
        #[serde(default)]
        id: Option<String>,
        #[serde(default)]
        seq: Option<u64>,
    }
    let raw: Raw = serde_json::from_str(text).map_err(|e| FrameError(e.to_string()))?;
    match (&*raw.kind, raw.seq, raw.id) {
        ("ping", _, _) => Ok(ClientFrame::Ping),
        ("ack", Some(seq), _) => Ok(ClientFrame::Ack(AckTarget::Seq(seq))),
        ("ack", None, Some(id)) if id.len() <= MAX_ACK_ID_BYTES => {
            Ok(ClientFrame::Ack(AckTarget::Id(id)))
        }
        ("ack", None, Some(_)) => Err(FrameError(format!(
            "`id` of an ack is longer than {MAX_ACK_ID_BYTES} bytes"
        ))),
        ("ack", None, None) => Err(FrameError("an ack needs `seq` or `id`".into())),
        (other, _, _) => Err(FrameError(format!(
            "unknown frame type `{}`; expected `ack` or `ping`",
            other.chars().take(32).collect::<String>()
        ))),
    }
}

/// A decoded server `message` frame, as a client sees it (used by tools and tests).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MessageFrame {
    pub id: String,
    pub seq: u64,
    pub payload: serde_json::Value,
}

/// Decodes a server frame into a [`MessageFrame`] if it is of type `message`.
pub fn decode_message(text: &str) -> Option<MessageFrame> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    if v.get("type")?.as_str()? != "message" {
        return None;
    }
    serde_json::from_value(v).ok()
}

#[cfg(test)]
mod tests;
