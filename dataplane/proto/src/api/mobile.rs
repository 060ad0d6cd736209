//! The mobile side of a message: its `notification` (what a phone shows), its `mobile`
//! policy (when to send it), and the per-device records `GET /v1/messages/{id}` reports.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Invalid;

/// Longest `notification.collapse_id`, in bytes (APNs' `apns-collapse-id` limit).
pub const MAX_COLLAPSE_ID_BYTES: usize = 64;
/// Longest `notification.title`, `body` or `sound`, in bytes (APNs payloads are ≤ 4 KiB).
pub const MAX_TEXT_BYTES: usize = 2048;

/// When a message goes to the recipients' registered mobile devices.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Mobile {
    /// Only to recipients with no live WebSocket connection when the message is dispatched.
    #[default]
    Offline,
    /// To every recipient's devices, connected or not.
    Always,
    /// Never.
    Never,
}

impl Mobile {
    pub fn as_str(self) -> &'static str {
        match self {
            Mobile::Offline => "offline",
            Mobile::Always => "always",
            Mobile::Never => "never",
        }
    }

    pub fn parse(s: &str) -> Option<Mobile> {
        match s {
            "offline" => Some(Mobile::Offline),
            "always" => Some(Mobile::Always),
            "never" => Some(Mobile::Never),
            _ => None,
        }
    }
}

/// What a phone shows for a message (`"notification"` of `POST /v1/messages`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Notification {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub badge: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sound: Option<String>,
    /// Same id: the device shows only the newest notification (`apns-collapse-id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collapse_id: Option<String>,
    /// Custom data for the app, next to the visible part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

const FIELD: &str = "notification";

/// Validates the `notification` member of a submit body (`None`/`null`: no notification).
pub fn parse_notification(v: Option<Value>) -> Result<Option<Notification>, Invalid> {
    let map = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(map)) => map,
        Some(_) => return Err(Invalid::bad(FIELD, "`notification` must be an object")),
    };
    let mut n = Notification::default();
    for (key, value) in map {
        let text = |value: Value, max: usize| match value {
            Value::String(s) if !s.is_empty() && s.len() <= max => Ok(Some(s)),
            Value::Null => Ok(None),
            _ => Err(Invalid::bad(
                FIELD,
                format!("`notification.{key}` must be a non-empty string of at most {max} bytes"),
            )),
        };
        match key.as_str() {
            "title" => n.title = text(value, MAX_TEXT_BYTES)?,
            "body" => n.body = text(value, MAX_TEXT_BYTES)?,
            "sound" => n.sound = text(value, MAX_TEXT_BYTES)?,
            "collapse_id" => n.collapse_id = text(value, MAX_COLLAPSE_ID_BYTES)?,
            "badge" => {
                n.badge = match &value {
                    Value::Null => None,
                    Value::Number(x) => {
                        match super::whole_number(x).and_then(|b| u32::try_from(b).ok()) {
                            Some(b) => Some(b),
                            None => return Err(bad_badge()),
                        }
                    }
                    _ => return Err(bad_badge()),
                }
            }
            "data" => n.data = Some(value).filter(|v| !v.is_null()),
            other => {
                return Err(Invalid::bad(
                    FIELD,
                    format!(
                        "unknown member `notification.{other}`; allowed: title, body, badge, sound, collapse_id, data"
                    ),
                ));
            }
        }
    }
    if n.title.is_none() && n.body.is_none() && n.badge.is_none() && n.data.is_none() {
        return Err(Invalid::bad(
            FIELD,
            "`notification` needs at least one of title, body, badge or data",
        ));
    }
    Ok(Some(n))
}

fn bad_badge() -> Invalid {
    Invalid::bad(FIELD, "`notification.badge` must be a non-negative integer")
}

/// Validates the `mobile` member of a submit body (absent/`null`: `offline`).
pub fn parse_mobile(v: Option<Value>) -> Result<Mobile, Invalid> {
    match v {
        None | Some(Value::Null) => Ok(Mobile::default()),
        Some(Value::String(s)) => Mobile::parse(&s).ok_or_else(|| bad_mobile(&s)),
        Some(other) => Err(bad_mobile(&other.to_string())),
    }
}

fn bad_mobile(given: &str) -> Invalid {
    Invalid::bad(
        "mobile",
        format!("`mobile` must be \"offline\", \"always\" or \"never\", not {given}"),
    )
}

/// Where one (message, device) notification is: `pending` until the vendor answers, then
/// final. Never sent again once it has a record, whatever its state.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum MobileState {
    /// Claimed for sending; not answered yet (or the vendor could not be reached: `reason`).
    Pending,
    /// The vendor took it (APNs 200).
    Accepted,
    /// The vendor refused it (`reason`, e.g. `BadDeviceToken`, `Unregistered`).
    Rejected,
    /// Sent without an answer: it may or may not have reached the device.
    Unknown,
}

/// The record of one (message, device) notification, as `GET /v1/messages/{id}` shows it;
/// `platform` names the vendor it went to.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MobileRecord {
    /// The message id.
    #[serde(skip)]
    pub message: String,
    pub user: String,
    pub platform: super::devices::Platform,
    /// The device token.
    pub token: String,
    pub state: MobileState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Requests made to the vendor.
    pub attempts: u32,
    /// APNs only: the `apns-id` (the same as `vendor_id`; kept for compatibility).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apns_id: Option<String>,
    /// The id the vendor knows the notification by: APNs `apns-id`, FCM message `name`, HMS
    /// `requestId`, Xiaomi message id, vivo `taskId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor_id: Option<String>,
    /// Unix milliseconds.
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
}

impl MobileRecord {
    /// The `pending` record that claims a (message, device) notification at `now_ms`.
    pub fn claim(
        message: &str,
        user: &str,
        platform: super::devices::Platform,
        token: &str,
        now_ms: u64,
    ) -> MobileRecord {
        MobileRecord {
            message: message.into(),
            user: user.into(),
            platform,
            token: token.into(),
            state: MobileState::Pending,
            reason: None,
            attempts: 0,
            apns_id: None,
            vendor_id: None,
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
        }
    }
}
