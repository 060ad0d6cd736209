//! Bodies of the collect HTTP API (`POST /v1/messages`, `GET /v1/messages/{id}`).
//!
//! - [`mobile`]: a message's `notification` and `mobile` policy, and its per-device records.
//! - [`devices`]: `POST /v1/devices`, `DELETE /v1/devices/{token}`.
//!
//! Validation happens here, once, so every role that accepts messages (standalone, collect,
//! gRPC `Submit`) rejects the same inputs with the same field names.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

pub mod devices;
pub mod mobile;
mod strict;

pub use devices::{Device, NewDevice, Platform};
pub use mobile::{Mobile, MobileRecord, MobileState, Notification};

/// Longest accepted user id, in bytes.
pub const MAX_USER_ID_BYTES: usize = 256;
/// Longest accepted idempotency key, in bytes.
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 256;

/// Limits applied to a submitted message.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_payload_bytes: usize,
    pub max_recipients: usize,
    pub default_ttl_secs: u64,
    pub max_ttl_secs: u64,
    /// Most messages in one batch request.
    pub max_batch: usize,
    /// Largest batch request body, in bytes.
    pub max_batch_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_payload_bytes: 64 * 1024,
            max_recipients: 10_000,
            default_ttl_secs: 24 * 3600,
            max_ttl_secs: 30 * 24 * 3600,
            max_batch: 1000,
            max_batch_bytes: 16 << 20,
        }
    }
}

impl Limits {
    /// The largest single-message body worth reading: anything above is 413 without parsing.
    pub fn max_body_bytes(&self) -> usize {
        self.max_payload_bytes + self.max_recipients * (MAX_USER_ID_BYTES + 4) + 8 * 1024
    }

    /// The largest body of either form (a batch may be larger than one message).
    pub fn max_request_bytes(&self) -> usize {
        self.max_body_bytes().max(self.max_batch_bytes)
    }
}

/// A message that passed validation.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// Recipients, deduplicated, in the order given.
    pub to: Vec<String>,
    pub payload: Box<RawValue>,
    pub ttl_secs: u64,
    pub idempotency_key: Option<String>,
    /// What a phone shows, if the message goes to mobile devices at all.
    pub notification: Option<Notification>,
    /// When it goes to mobile devices (needs a `notification`).
    pub mobile: Mobile,
}

/// Why a request was refused; maps to an HTTP status and a JSON body naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Invalid {
    /// 400 or 413.
    pub status: u16,
    /// The offending field, when there is one.
    pub field: Option<&'static str>,
    pub message: String,
}

/// Longest [`Invalid::message`], in bytes: messages may quote what the client sent, which can
/// be as large as the body.
pub const MAX_MESSAGE_BYTES: usize = 256;

/// `message`, cut to [`MAX_MESSAGE_BYTES`] (on a character boundary, ending in `…`).
fn bounded(message: impl Into<String>) -> String {
    let mut message = message.into();
    if message.len() > MAX_MESSAGE_BYTES {
        let mut end = MAX_MESSAGE_BYTES - '…'.len_utf8();
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
    message
}

impl Invalid {
    pub(crate) fn bad(field: &'static str, message: impl Into<String>) -> Self {
        Invalid {
            status: 400,
            field: Some(field),
            message: bounded(message),
        }
    }
    fn too_large(field: &'static str, message: impl Into<String>) -> Self {
        Invalid {
            status: 413,
            field: Some(field),
            message: bounded(message),
        }
    }
}

#[derive(Deserialize)]
struct RawSubmit {
    to: Option<Value>,
    payload: Option<Box<RawValue>>,
    ttl_secs: Option<Value>,
    idempotency_key: Option<Value>,
    notification: Option<Value>,
    mobile: Option<Value>,
}

/// Reads a request body as the JSON object `T`; a 400 that says whether the JSON was
/// malformed or not an object of the expected shape.
pub(crate) fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Invalid> {
    serde_json::from_slice(body).map_err(|e| Invalid {
        status: 400,
        field: None,
        // serde's message quotes the offending value, which may be most of the body.
        message: bounded(if e.is_syntax() || e.is_eof() {
            format!("malformed JSON: {e}")
        } else {
            format!("body must be a JSON object: {e}")
        }),
    })
}

/// Parses and validates a `POST /v1/messages` body.
pub fn parse_submit(body: &[u8], limits: &Limits) -> Result<NewMessage, Invalid> {
    validate_submit(parse_body(body)?, limits)
}

/// Whether a `POST /v1/messages` body is a batch (a JSON array of messages).
pub fn is_batch(body: &[u8]) -> bool {
    body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[')
}

/// Parses a batch body: a JSON array of 1..=`limits.max_batch` messages, each validated on
/// its own (one bad message does not refuse the others).
pub fn parse_batch(
    body: &[u8],
    limits: &Limits,
) -> Result<Vec<Result<NewMessage, Invalid>>, Invalid> {
    let items: Vec<Box<RawValue>> = parse_body(body)?;
    if items.is_empty() {
        return Err(Invalid {
            status: 400,
            field: None,
            message: "a batch must hold at least one message".into(),
        });
    }
    if items.len() > limits.max_batch {
        return Err(Invalid {
            status: 413,
            field: None,
            message: format!(
                "the batch has {} messages; the limit is {}",
                items.len(),
                limits.max_batch
            ),
        });
    }
    Ok(items
        .iter()
        .map(|raw| parse_submit(raw.get().as_bytes(), limits))
        .collect())
}

fn validate_submit(raw: RawSubmit, limits: &Limits) -> Result<NewMessage, Invalid> {
    let to = match raw.to {
        None | Some(Value::Null) => return Err(Invalid::bad("to", "`to` is required")),
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(Invalid::bad(
                "to",
                "`to` must be an array of user id strings",
            ));
        }
    };
    if to.is_empty() {
        return Err(Invalid::bad("to", "`to` must name at least one user"));
    }
    if to.len() > limits.max_recipients {
        return Err(Invalid::too_large(
            "to",
            format!(
                "`to` has {} recipients; the limit is {}",
                to.len(),
                limits.max_recipients
            ),
        ));
    }
    let mut users = Vec::with_capacity(to.len());
    let mut seen = std::collections::HashSet::with_capacity(to.len());
    for (i, item) in to.into_iter().enumerate() {
        let Value::String(user) = item else {
            return Err(Invalid::bad("to", format!("`to[{i}]` must be a string")));
        };
        validate_user_id(&user).map_err(|m| Invalid::bad("to", format!("`to[{i}]` {m}")))?;
        if seen.insert(user.clone()) {
            users.push(user);
        }
    }

    let Some(payload) = raw.payload else {
        return Err(Invalid::bad(
            "payload",
            "`payload` is required (any JSON value)",
        ));
    };
    if payload.get().len() > limits.max_payload_bytes {
        return Err(Invalid::too_large(
            "payload",
            format!(
                "`payload` is {} bytes; the limit is {}",
                payload.get().len(),
                limits.max_payload_bytes
            ),
        ));
    }

    check_payload(&payload)?;

    let ttl_secs = match raw.ttl_secs {
        None | Some(Value::Null) => limits.default_ttl_secs,
        Some(Value::Number(n)) => match whole_number(&n) {
            Some(t) if t >= 1 && t <= limits.max_ttl_secs => t,
            _ => {
                return Err(Invalid::bad(
                    "ttl_secs",
                    format!(
                        "`ttl_secs` must be an integer from 1 to {}",
                        limits.max_ttl_secs
                    ),
                ));
            }
        },
        Some(_) => return Err(Invalid::bad("ttl_secs", "`ttl_secs` must be an integer")),
    };

    let idempotency_key = match raw.idempotency_key {
        None | Some(Value::Null) => None,
        Some(Value::String(k)) if !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY_BYTES => Some(k),
        Some(_) => {
            return Err(Invalid::bad(
                "idempotency_key",
                format!(
                    "`idempotency_key` must be a non-empty string of at most {MAX_IDEMPOTENCY_KEY_BYTES} bytes"
                ),
            ));
        }
    };

    let notification = mobile::parse_notification(raw.notification)?;
    let mobile = mobile::parse_mobile(raw.mobile)?;
    if mobile == Mobile::Always && notification.is_none() {
        return Err(Invalid::bad(
            "mobile",
            "`mobile: \"always\"` needs a `notification` to send",
        ));
    }

    Ok(NewMessage {
        to: users,
        payload,
        ttl_secs,
        idempotency_key,
        notification,
        mobile,
    })
}

/// A JSON number that is a non-negative integer: `3`, and also `3.0` (JSON has one number
/// type, and JSON Schema's `integer` includes `3.0`).
pub(crate) fn whole_number(n: &serde_json::Number) -> Option<u64> {
    // Up to 2^53, where every integer is exact in an f64.
    n.as_u64().or_else(|| {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && (0.0..=9_007_199_254_740_992.0).contains(f))
            .map(|f| f as u64)
    })
}

/// Checks that a `payload` (JSON by construction) is JSON every receiver can decode: a
/// string escape of a lone UTF-16 surrogate (`"\ud800"`) passes serde_json's grammar check
/// but no client can decode it, so it would be accepted and then never read.
pub fn check_payload(payload: &RawValue) -> Result<(), Invalid> {
    strict::check_decodable(payload.get())
        .map_err(|e| Invalid::bad("payload", format!("`payload` cannot be decoded: {e}")))
}

/// Checks a user id (from a token's `sub` or a recipient list).
pub fn validate_user_id(user: &str) -> Result<(), &'static str> {
    if user.is_empty() {
        return Err("must not be empty");
    }
    if user.len() > MAX_USER_ID_BYTES {
        return Err("is longer than 256 bytes");
    }
    if user.chars().any(char::is_control) {
        return Err("must not contain control characters");
    }
    Ok(())
}

/// `202 Accepted` body.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Accepted {
    pub id: String,
    /// True when the idempotency key matched an earlier message (nothing new was sent).
    #[serde(default)]
    pub duplicate: bool,
}

/// One message's outcome in a batch response: `status` as a single request would get it
/// (202, or the 4xx/5xx with `error`/`field`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BatchResult {
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// Body of the answer to a batch `POST /v1/messages`: one result per message, in order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BatchAccepted {
    pub results: Vec<BatchResult>,
}

/// Delivery state of one recipient of a message.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum RecipientState {
    Pending,
    Delivered,
    Acked,
    Expired,
}

impl RecipientState {
    /// The state after an event, enforcing that status only moves forward:
    /// pending → delivered → acked, and pending/delivered → expired; acked and expired are final.
    pub fn advance(self, to: RecipientState) -> RecipientState {
        use RecipientState::*;
        match (self, to) {
            (Acked, _) | (Expired, _) => self,
            (Delivered, Pending) => Delivered,
            (_, next) => next,
        }
    }

    /// The state as reported at `now_ms`: a message past its expiry reads as expired even
    /// before the sweeper has recorded it (acked stays acked).
    pub fn at(self, expires_at_ms: u64, now_ms: u64) -> RecipientState {
        if expires_at_ms <= now_ms {
            self.advance(RecipientState::Expired)
        } else {
            self
        }
    }

    /// A recipient's state derived from its seq, the user's watermarks (acked through,
    /// delivered through) and the message's expiry: nothing is stored per recipient.
    pub fn derive(seq: u64, acked: u64, delivered: u64, expires_at_ms: u64, now_ms: u64) -> Self {
        if seq <= acked {
            RecipientState::Acked
        } else if expires_at_ms <= now_ms {
            RecipientState::Expired
        } else if seq <= delivered {
            RecipientState::Delivered
        } else {
            RecipientState::Pending
        }
    }

    pub fn as_u8(self) -> u8 {
        self as u8
    }

    pub fn from_u8(v: u8) -> Option<Self> {
        use RecipientState::*;
        [Pending, Delivered, Acked, Expired]
            .get(v as usize)
            .copied()
    }
}

/// One recipient in `GET /v1/messages/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RecipientStatus {
    pub user: String,
    pub seq: u64,
    pub state: RecipientState,
}

/// `GET /v1/messages/{id}` body.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MessageStatus {
    pub id: String,
    /// Unix milliseconds.
    pub created_at_ms: u64,
    pub expires_at_ms: u64,
    pub recipients: Vec<RecipientStatus>,
    /// One record per (recipient, mobile device) the message was sent to, by token.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mobile: Vec<MobileRecord>,
}

/// Every error response of the HTTP API.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub field: Option<String>,
}

#[cfg(test)]
mod tests;
