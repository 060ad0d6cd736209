//! Client frames: server → client `message`/`welcome`/`error`, client → server `ack`.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

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
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ClientFrame {
    /// The client has processed message `id`; it will not be redelivered to this user.
    Ack { id: String },
    /// Application-level keep-alive for clients (browsers) that cannot send WebSocket pings.
    Ping,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid client frame: {0}")]
pub struct FrameError(pub String);

/// Decodes a client text frame.
pub fn decode_client(text: &str) -> Result<ClientFrame, FrameError> {
    serde_json::from_str(text).map_err(|e| FrameError(e.to_string()))
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
