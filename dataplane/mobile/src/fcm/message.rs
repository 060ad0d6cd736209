//! A notification as an FCM v1 message, and FCM's replies classified once:
//!
//! | reply | verdict |
//! | --- | --- |
//! | 200 `{name}` | accepted (`name` is the vendor id) |
//! | 404 `UNREGISTERED` | rejected, token dead |
//! | 400 `INVALID_ARGUMENT` on `message.token` | rejected, token dead |
//! | 400 `INVALID_ARGUMENT` (other), 403 `SENDER_ID_MISMATCH`, 401 `THIRD_PARTY_AUTH_ERROR`, other 4xx | rejected |
//! | 401 `UNAUTHENTICATED` | our access token refused: a new one, once more |
//! | 429 `QUOTA_EXCEEDED` | retry after `Retry-After`, at least a minute |
//! | 500 `INTERNAL`, 503 `UNAVAILABLE`, other 5xx | retry after `Retry-After` or a back-off |

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::payload;
use crate::retry::Verdict;
use crate::sender::MobileRequest;

/// Largest FCM message (FCM's limit is 4096 bytes of payload; the JSON around it is small).
pub const MAX_BODY: usize = 8 * 1024;

/// The JSON body of `messages:send` for one device.
pub fn body(req: &MobileRequest) -> Result<Bytes, String> {
    let n = &req.notification;
    let mut message = Map::new();
    message.insert("token".into(), json!(req.device.token));
    let visible = n.title.is_some() || n.body.is_some();
    if visible {
        let mut notification = Map::new();
        if let Some(t) = &n.title {
            notification.insert("title".into(), json!(t));
        }
        if let Some(b) = &n.body {
            notification.insert("body".into(), json!(b));
        }
        message.insert("notification".into(), Value::Object(notification));
    }
    if let Some(data) = &n.data {
        message.insert("data".into(), json!(payload::data_map(data)));
    }
    let mut android = Map::new();
    android.insert(
        "ttl".into(),
        json!(format!("{}s", payload::ttl(req).as_secs())),
    );
    android.insert("priority".into(), json!("high"));
    if let Some(c) = &n.collapse_id {
        android.insert("collapse_key".into(), json!(c));
    }
    if visible {
        let mut an = Map::new();
        an.insert("tag".into(), json!(payload::tag(req)));
        if let Some(s) = &n.sound {
            an.insert("sound".into(), json!(s));
        }
        if let Some(b) = n.badge {
            an.insert("notification_count".into(), json!(b));
        }
        android.insert("notification".into(), Value::Object(an));
    }
    message.insert("android".into(), Value::Object(android));
    let body = serde_json::to_vec(&json!({ "message": message })).map_err(|e| e.to_string())?;
    if body.len() > MAX_BODY {
        return Err(format!("MessageTooBig: {} bytes", body.len()));
    }
    Ok(Bytes::from(body))
}

#[derive(Deserialize)]
struct Accepted {
    name: Option<String>,
}

#[derive(Deserialize)]
struct ErrorReply {
    error: ErrorBody,
}

#[derive(Deserialize)]
struct ErrorBody {
    status: Option<String>,
    #[serde(default)]
    details: Vec<Detail>,
}

#[derive(Deserialize)]
struct Detail {
    #[serde(rename = "errorCode")]
    error_code: Option<String>,
    #[serde(rename = "fieldViolations", default)]
    field_violations: Vec<FieldViolation>,
}

#[derive(Deserialize)]
struct FieldViolation {
    field: Option<String>,
}

/// Classifies one answered request.
pub fn classify(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    quota_backoff: Duration,
) -> Verdict {
    if status.is_success() {
        let id = serde_json::from_slice::<Accepted>(body)
            .ok()
            .and_then(|a| a.name);
        return Verdict::Accepted { id };
    }
    let parsed = serde_json::from_slice::<ErrorReply>(body)
        .ok()
        .map(|r| r.error);
    let code = parsed
        .as_ref()
        .and_then(|e| e.details.iter().find_map(|d| d.error_code.clone()))
        .or_else(|| parsed.as_ref().and_then(|e| e.status.clone()))
        .unwrap_or_else(|| status.as_str().to_owned());
    let on_token = parsed.as_ref().is_some_and(|e| {
        e.details
            .iter()
            .flat_map(|d| &d.field_violations)
            .any(|v| v.field.as_deref() == Some("message.token"))
    });
    let reason = format!("{} {code}", status.as_u16());
    let after = crate::http::retry_after(headers);
    match (status.as_u16(), code.as_str()) {
        (404, _) | (_, "UNREGISTERED") => Verdict::Rejected { reason, dead: true },
        (400, _) if on_token => Verdict::Rejected {
            reason: format!("{reason}: invalid registration token"),
            dead: true,
        },
        (401, "THIRD_PARTY_AUTH_ERROR") => Verdict::Rejected {
            reason,
            dead: false,
        },
        (401, _) => Verdict::AuthRefused { reason },
        (429, _) => Verdict::Retry {
            reason,
            // FCM: honour Retry-After; without one wait at least a minute.
            after: Some(after.unwrap_or(quota_backoff)),
            now: false,
        },
        (s, _) if s >= 500 => Verdict::Retry {
            reason,
            after,
            now: false,
        },
        _ => Verdict::Rejected {
            reason,
            dead: false,
        },
    }
}
