//! Test helpers shared by the unit tests.

use std::sync::Arc;

use pushcluster_proto::api::{Device, Notification, Platform};
use pushcluster_proto::delivery::now_ms;

use crate::sender::MobileRequest;

/// A request for message `0190-msg` to one device, an hour left, with a title.
pub(crate) fn request(platform: Platform, token: &str) -> MobileRequest {
    MobileRequest {
        message_id: "0190-msg".into(),
        expires_at_ms: now_ms() + 3_600_000,
        device: Device {
            user: "u".into(),
            platform,
            token: token.into(),
            topic: None,
            created_at_ms: 0,
            updated_at_ms: 0,
            dead_at_ms: None,
        },
        notification: Arc::new(Notification {
            title: Some("t".into()),
            ..Notification::default()
        }),
    }
}

/// `request` with a notification of its own.
pub(crate) fn with(platform: Platform, token: &str, n: Notification) -> MobileRequest {
    let mut r = request(platform, token);
    r.notification = Arc::new(n);
    r
}

/// A status, headers and a body, for `classify`.
pub(crate) fn reply(status: u16) -> (http::StatusCode, http::HeaderMap) {
    (
        http::StatusCode::from_u16(status).unwrap(),
        http::HeaderMap::new(),
    )
}
