//! A message payload: JSON text validated once, when the message was accepted.

use std::sync::Arc;

use serde_json::value::RawValue;

/// JSON text that was validated when its message was accepted. Cheap to clone (shared), and
/// embedded verbatim into frames without being parsed again.
#[derive(Clone, PartialEq, Eq)]
pub struct Payload(Arc<str>);

impl Payload {
    /// The payload of a message being accepted (already parsed as JSON).
    pub fn from_raw(raw: &RawValue) -> Payload {
        Payload(Arc::from(raw.get()))
    }

    /// Text read back from storage or a trusted peer that stored or sent what
    /// [`Payload::from_raw`] once checked. Not for input from clients or producers.
    pub fn trusted(text: impl Into<Arc<str>>) -> Payload {
        Payload(text.into())
    }

    /// Parses untrusted text (from a gRPC producer, say) as JSON.
    pub fn parse(text: &str) -> Result<Payload, serde_json::Error> {
        let raw: &RawValue = serde_json::from_str(text)?;
        Ok(Payload::from_raw(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Payload {
    /// Only the size: payloads are user data and stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Payload({} bytes)", self.0.len())
    }
}
