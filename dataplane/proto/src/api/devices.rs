//! Bodies of `POST /v1/devices` and `DELETE /v1/devices/{token}`: a user's mobile devices.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Invalid, validate_user_id};

/// Largest `POST /v1/devices` body worth reading.
pub const MAX_DEVICE_BODY_BYTES: usize = 4096;
/// Longest `topic` (an app's bundle id, plus a suffix such as `.voip`), in bytes.
pub const MAX_TOPIC_BYTES: usize = 255;

/// The push vendor a device token belongs to.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// Apple (APNs).
    Apns,
}

impl Platform {
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Apns => "apns",
        }
    }

    pub fn parse(s: &str) -> Option<Platform> {
        match s {
            "apns" => Some(Platform::Apns),
            _ => None,
        }
    }
}

/// A device registration that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDevice {
    pub user: String,
    pub platform: Platform,
    /// Lowercase hex.
    pub token: String,
    /// The app's topic (bundle id) the token was issued for; `None`: the server's topic.
    pub topic: Option<String>,
}

/// A registered device, as stored and as `POST /v1/devices` answers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Device {
    pub user: String,
    pub platform: Platform,
    pub token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// Unix milliseconds.
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    /// Set when the vendor said the token is no longer valid (APNs 410: Apple's timestamp).
    /// A dead device gets nothing until it is registered again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_at_ms: Option<u64>,
}

impl Device {
    pub fn is_live(&self) -> bool {
        self.dead_at_ms.is_none()
    }
}

#[derive(Deserialize)]
struct RawDevice {
    user: Option<Value>,
    platform: Option<Value>,
    token: Option<Value>,
    topic: Option<Value>,
}

/// Parses and validates a `POST /v1/devices` body.
pub fn parse_device(body: &[u8]) -> Result<NewDevice, Invalid> {
    let raw: RawDevice = super::parse_body(body)?;
    let user = match raw.user {
        Some(Value::String(u)) => {
            validate_user_id(&u).map_err(|m| Invalid::bad("user", format!("`user` {m}")))?;
            u
        }
        None | Some(Value::Null) => return Err(Invalid::bad("user", "`user` is required")),
        Some(_) => return Err(Invalid::bad("user", "`user` must be a string")),
    };
    let platform = match raw.platform {
        Some(Value::String(p)) => Platform::parse(&p).ok_or_else(|| {
            Invalid::bad(
                "platform",
                format!("unknown `platform` {p:?}; supported: \"apns\""),
            )
        })?,
        None | Some(Value::Null) => {
            return Err(Invalid::bad(
                "platform",
                "`platform` is required (\"apns\")",
            ));
        }
        Some(_) => return Err(Invalid::bad("platform", "`platform` must be a string")),
    };
    let token = match raw.token {
        Some(Value::String(t)) => {
            validate_token(platform, &t).map_err(|m| Invalid::bad("token", m))?
        }
        None | Some(Value::Null) => return Err(Invalid::bad("token", "`token` is required")),
        Some(_) => return Err(Invalid::bad("token", "`token` must be a string")),
    };
    let topic = match raw.topic {
        None | Some(Value::Null) => None,
        Some(Value::String(t))
            if !t.is_empty()
                && t.len() <= MAX_TOPIC_BYTES
                && t.chars().all(|c| c.is_ascii_graphic()) =>
        {
            Some(t)
        }
        Some(_) => {
            return Err(Invalid::bad(
                "topic",
                format!(
                    "`topic` must be a bundle id: 1 to {MAX_TOPIC_BYTES} printable ASCII characters without spaces"
                ),
            ));
        }
    };
    Ok(NewDevice {
        user,
        platform,
        token,
        topic,
    })
}

/// Checks a device token for `platform`; returns it normalized (lowercase hex).
///
/// APNs: an even number of hex digits, 64 to 200 of them — the rule of
/// `pushcluster_apns::DeviceToken::parse` (Apple's tokens are 32 bytes today and may grow).
pub fn validate_token(platform: Platform, token: &str) -> Result<String, String> {
    match platform {
        Platform::Apns => {
            if !token.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err("`token` must be hexadecimal (0-9, a-f)".into());
            }
            if !(64..=200).contains(&token.len()) || !token.len().is_multiple_of(2) {
                return Err(format!(
                    "`token` has {} hex digits; an APNs token has an even number from 64 to 200",
                    token.len()
                ));
            }
            Ok(token.to_ascii_lowercase())
        }
    }
}

/// Checks the `{token}` of `DELETE /v1/devices/{token}`: hex, not too long. Returns it
/// normalized (lowercase), as tokens are stored.
pub fn validate_token_path(token: &str) -> Result<String, String> {
    if token.is_empty() || token.len() > 200 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("the device token in the path must be 1 to 200 hex digits".into());
    }
    Ok(token.to_ascii_lowercase())
}

#[cfg(test)]
mod tests;
