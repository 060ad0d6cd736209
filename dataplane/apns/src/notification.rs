//! What is sent: [`Notification`] (headers and payload of one APNs request), device tokens,
//! deterministic ids, and alert payloads built with `a2`.

use std::fmt;

use a2::request::notification::{DefaultNotificationBuilder, NotificationBuilder};
use a2::request::payload::PayloadLike;
use bytes::Bytes;
use uuid::Uuid;

/// Largest payload of a regular notification (VoIP: [`MAX_VOIP_PAYLOAD`]).
pub const MAX_PAYLOAD: usize = 4096;
/// Largest payload of a VoIP notification.
pub const MAX_VOIP_PAYLOAD: usize = 5120;
/// Longest `apns-collapse-id`, in bytes.
pub const MAX_COLLAPSE_ID: usize = 64;

/// A notification that cannot be sent as built.
#[derive(Debug, thiserror::Error)]
pub enum NotificationError {
    #[error("device token must be an even number of hex digits, 64 to 200 of them")]
    BadDeviceToken,
    #[error("collapse id is longer than {MAX_COLLAPSE_ID} bytes")]
    CollapseIdTooLong,
    #[error("payload is {size} bytes, more than the {max} APNs accepts")]
    PayloadTooLarge { size: usize, max: usize },
    #[error("failed to build the APNs payload: {0}")]
    Payload(String),
}

/// A device token: lowercase hex, as the app registered it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct DeviceToken(String);

impl DeviceToken {
    /// Accepts 64–200 hex digits (Apple's tokens are 32 bytes today and may grow).
    pub fn parse(s: &str) -> Result<DeviceToken, NotificationError> {
        let ok = (64..=200).contains(&s.len())
            && s.len().is_multiple_of(2)
            && s.bytes().all(|b| b.is_ascii_hexdigit());
        if !ok {
            return Err(NotificationError::BadDeviceToken);
        }
        Ok(DeviceToken(s.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for DeviceToken {
    /// Only a prefix: a device token identifies a device.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceToken({}…)", &self.0[..8])
    }
}

impl fmt::Display for DeviceToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}…", &self.0[..8])
    }
}

/// `apns-push-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PushType {
    #[default]
    Alert,
    Background,
    Voip,
    Complication,
    FileProvider,
    Mdm,
    Location,
    LiveActivity,
}

impl PushType {
    pub fn as_str(self) -> &'static str {
        match self {
            PushType::Alert => "alert",
            PushType::Background => "background",
            PushType::Voip => "voip",
            PushType::Complication => "complication",
            PushType::FileProvider => "fileprovider",
            PushType::Mdm => "mdm",
            PushType::Location => "location",
            PushType::LiveActivity => "liveactivity",
        }
    }
}

/// `apns-priority`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Priority {
    /// 10: deliver now (alerts).
    #[default]
    Immediate,
    /// 5: may be grouped to save power (required for background pushes).
    Normal,
    /// 1: opportunistic.
    Low,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Immediate => "10",
            Priority::Normal => "5",
            Priority::Low => "1",
        }
    }
}

/// One APNs request. Sent again unchanged on retries: the same `apns-id` and the same
/// collapse id, so a duplicate (after an unknown outcome) replaces the first copy on screen.
#[derive(Debug, Clone)]
pub struct Notification {
    pub device_token: DeviceToken,
    /// `apns-id`; Apple echoes it. Not a dedupe key for Apple, but ours: keep it per
    /// (message, device), e.g. [`apns_id_for`].
    pub apns_id: Uuid,
    /// `apns-collapse-id`; `None` uses the `apns-id` (see [`Notification::collapse_id`]).
    pub collapse_id: Option<String>,
    pub priority: Priority,
    /// `apns-expiration`, seconds since the Unix epoch; `Some(0)`: try once, do not store.
    pub expiration: Option<u64>,
    pub push_type: PushType,
    /// The JSON body (`{"aps":{…},…}`), e.g. from [`alert_payload`].
    pub payload: Bytes,
}

impl Notification {
    /// An alert with priority 10, no expiration and the `apns-id` as collapse id.
    pub fn new(device_token: DeviceToken, apns_id: Uuid, payload: Bytes) -> Notification {
        Notification {
            device_token,
            apns_id,
            collapse_id: None,
            priority: Priority::Immediate,
            expiration: None,
            push_type: PushType::Alert,
            payload,
        }
    }

    /// The `apns-collapse-id` sent: the given one, else the hyphenated `apns-id` (36 bytes).
    /// Deterministic, so every attempt of this notification carries the same one.
    pub fn collapse_id(&self) -> String {
        match &self.collapse_id {
            Some(id) => id.clone(),
            None => self.apns_id.hyphenated().to_string(),
        }
    }

    /// Checks the limits APNs enforces, so they fail here and not as a 400/413.
    pub fn validate(&self) -> Result<(), NotificationError> {
        if self
            .collapse_id
            .as_ref()
            .is_some_and(|c| c.len() > MAX_COLLAPSE_ID)
        {
            return Err(NotificationError::CollapseIdTooLong);
        }
        let max = match self.push_type {
            PushType::Voip => MAX_VOIP_PAYLOAD,
            _ => MAX_PAYLOAD,
        };
        if self.payload.len() > max {
            return Err(NotificationError::PayloadTooLarge {
                size: self.payload.len(),
                max,
            });
        }
        Ok(())
    }
}

/// A deterministic `apns-id` for a (message, device) pair (UUID v5), so a resend after a
/// crash carries the same id as the first attempt.
pub fn apns_id_for(message_id: &str, device_token: &DeviceToken) -> Uuid {
    // A fixed namespace for pushcluster's APNs ids.
    const NAMESPACE: Uuid = Uuid::from_u128(0x6f2c_3a1e_8d4b_4c1a_9e52_7b0d_1f3a_5c88);
    let mut name = Vec::with_capacity(message_id.len() + 1 + device_token.0.len());
    name.extend_from_slice(message_id.as_bytes());
    name.push(0);
    name.extend_from_slice(device_token.0.as_bytes());
    Uuid::new_v5(&NAMESPACE, &name)
}

/// The visible part of an alert (the `notification` of a message).
#[derive(Debug, Clone, Default)]
pub struct Alert<'a> {
    pub title: Option<&'a str>,
    pub body: Option<&'a str>,
    pub badge: Option<u32>,
    pub sound: Option<&'a str>,
    /// Custom data, sent under the `data` key next to `aps`.
    pub data: Option<&'a serde_json::Value>,
}

/// Builds the JSON payload of an alert with `a2`'s builder.
pub fn alert_payload(alert: &Alert<'_>) -> Result<Bytes, NotificationError> {
    let mut builder = DefaultNotificationBuilder::new();
    if let Some(title) = alert.title {
        builder = builder.set_title(title);
    }
    if let Some(body) = alert.body {
        builder = builder.set_body(body);
    }
    if let Some(badge) = alert.badge {
        builder = builder.set_badge(badge);
    }
    if let Some(sound) = alert.sound {
        builder = builder.set_sound(sound);
    }
    // The token and options of a2's payload are not serialized; ours travel as headers.
    let mut payload = builder.build("", Default::default());
    if let Some(data) = alert.data {
        payload
            .add_custom_data("data", data)
            .map_err(|e| NotificationError::Payload(e.to_string()))?;
    }
    let json = payload
        .to_json_string()
        .map_err(|e| NotificationError::Payload(e.to_string()))?;
    if json.len() > MAX_PAYLOAD {
        return Err(NotificationError::PayloadTooLarge {
            size: json.len(),
            max: MAX_PAYLOAD,
        });
    }
    Ok(Bytes::from(json))
}

#[cfg(test)]
mod tests;
