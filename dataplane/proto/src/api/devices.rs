//! Bodies of `POST /v1/devices`, `GET /v1/devices?user=U` and `DELETE /v1/devices/{token}`:
//! a user's mobile devices, one push vendor each, with each vendor's token format checked.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Invalid, validate_user_id};

/// Largest `POST /v1/devices` body worth reading.
pub const MAX_DEVICE_BODY_BYTES: usize = 4096;
/// Longest `topic` (an app's bundle id, plus a suffix such as `.voip`), in bytes.
pub const MAX_TOPIC_BYTES: usize = 255;

/// The push vendor a device token belongs to.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// Apple (APNs).
    Apns,
    /// Firebase Cloud Messaging (HTTP v1).
    Fcm,
    /// Huawei Push Kit (HMS).
    Hms,
    /// Xiaomi push (MiPush).
    Xiaomi,
    /// vivo push.
    Vivo,
}

impl Platform {
    /// Every platform, in the order the API lists them.
    pub const ALL: [Platform; 5] = [
        Platform::Apns,
        Platform::Fcm,
        Platform::Hms,
        Platform::Xiaomi,
        Platform::Vivo,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Apns => "apns",
            Platform::Fcm => "fcm",
            Platform::Hms => "hms",
            Platform::Xiaomi => "xiaomi",
            Platform::Vivo => "vivo",
        }
    }

    pub fn parse(s: &str) -> Option<Platform> {
        Platform::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// `"apns", "fcm", "hms", "xiaomi" or "vivo"`, for error messages.
fn supported() -> String {
    let names: Vec<String> = Platform::ALL
        .iter()
        .map(|p| format!("\"{}\"", p.as_str()))
        .collect();
    names.join(", ")
}

/// A device registration that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDevice {
    pub user: String,
    pub platform: Platform,
    /// As the vendor issued it (APNs: lowercase hex).
    pub token: String,
    /// APNs only: the app's topic (bundle id) the token was issued for; `None`: the server's.
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
                format!("unknown `platform` {p:?}; supported: {}", supported()),
            )
        })?,
        None | Some(Value::Null) => {
            return Err(Invalid::bad(
                "platform",
                format!("`platform` is required ({})", supported()),
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
        Some(_) if platform != Platform::Apns => {
            return Err(Invalid::bad(
                "topic",
                "`topic` (an APNs bundle id) is only for platform \"apns\"",
            ));
        }
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

/// Longest device token of any vendor, in bytes (FCM tokens are ~160 today; this bounds the
/// path of `DELETE /v1/devices/{token}` and every stored key).
pub const MAX_TOKEN_BYTES: usize = 4096;

/// Checks a device token for `platform`; returns it normalized (APNs: lowercase hex; the
/// others as issued — their tokens are case-sensitive).
///
/// - APNs: an even number of hex digits, 64 to 200 of them — the rule of
///   `pushcluster_apns::DeviceToken::parse` (Apple's tokens are 32 bytes today and may grow).
/// - FCM: a registration token, 100 to 4096 characters of `A-Z a-z 0-9 - _ :`.
/// - HMS: 32 to 1024 characters of `A-Z a-z 0-9 - _ . : + / =` (old 32-digit and new tokens).
/// - Xiaomi: a `regId`, 20 to 256 characters of base64 (`A-Z a-z 0-9 + / =`).
/// - vivo: a `regId`, 8 to 64 letters and digits.
pub fn validate_token(platform: Platform, token: &str) -> Result<String, String> {
    let rule = |name: &str, min: usize, max: usize, extra: &str| {
        let ok_char = |c: char| c.is_ascii_alphanumeric() || extra.contains(c);
        if !token.chars().all(ok_char) {
            let allowed = if extra.is_empty() {
                "letters and digits".to_owned()
            } else {
                format!("letters, digits and `{extra}`")
            };
            return Err(format!("`token` must be a {name}: only {allowed}"));
        }
        if !(min..=max).contains(&token.len()) {
            return Err(format!(
                "`token` has {} characters; a {name} has {min} to {max}",
                token.len()
            ));
        }
        Ok(token.to_owned())
    };
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
        Platform::Fcm => rule("FCM registration token", 100, MAX_TOKEN_BYTES, "-_:"),
        Platform::Hms => rule("Huawei push token", 32, 1024, "-_.:+/="),
        Platform::Xiaomi => rule("Xiaomi regId", 20, 256, "+/="),
        Platform::Vivo => rule("vivo regId", 8, 64, ""),
    }
}

/// Checks the `{token}` of `DELETE /v1/devices/{token}` (percent-decoded: Xiaomi regIds hold
/// `/`, sent as `%2F`): 1 to [`MAX_TOKEN_BYTES`] characters any vendor's token may hold.
/// Returns the tokens to look for, in order: as given, then (for an APNs-shaped token given
/// in upper case) lowercased, as APNs tokens are stored.
pub fn validate_token_path(token: &str) -> Result<Vec<String>, String> {
    const MSG: &str =
        "the device token in the path must be 1 to 4096 characters of A-Z a-z 0-9 - _ . : + / =";
    let decoded = percent_decode(token).ok_or_else(|| MSG.to_owned())?;
    let ok = |c: char| c.is_ascii_alphanumeric() || "-_.:+/=".contains(c);
    if decoded.is_empty() || decoded.len() > MAX_TOKEN_BYTES || !decoded.chars().all(ok) {
        return Err(MSG.into());
    }
    let mut out = vec![decoded.clone()];
    if let Ok(lower) = validate_token(Platform::Apns, &decoded)
        && lower != decoded
    {
        out.push(lower);
    }
    Ok(out)
}

/// `%XX` escapes decoded; `None` on a bad escape or non-UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Most devices `GET /v1/devices?user=U` lists (the rest are counted, not listed).
pub const MAX_LISTED_DEVICES: usize = 100;

/// `GET /v1/devices?user=U`'s answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeviceList {
    pub user: String,
    /// At most [`MAX_LISTED_DEVICES`], ordered by token.
    pub devices: Vec<Device>,
    /// True when the user has more devices than listed.
    pub truncated: bool,
}

/// The `user` of `GET /v1/devices?user=U` (percent-decoded, validated like a recipient).
pub fn parse_device_query(query: Option<&str>) -> Result<String, Invalid> {
    let mut user = None;
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key == "user" {
            if user.is_some() {
                return Err(Invalid::bad("user", "give `user` once"));
            }
            let value = value.replace('+', " ");
            let decoded = percent_decode(&value)
                .ok_or_else(|| Invalid::bad("user", "`user` is not valid percent-encoded UTF-8"))?;
            user = Some(decoded);
        } else {
            return Err(Invalid::bad(
                "user",
                format!("unknown query parameter `{key}`; use ?user=USER"),
            ));
        }
    }
    let user = user.ok_or_else(|| Invalid::bad("user", "`user` is required: ?user=USER"))?;
    validate_user_id(&user).map_err(|m| Invalid::bad("user", format!("`user` {m}")))?;
    Ok(user)
}

#[cfg(test)]
mod tests;
