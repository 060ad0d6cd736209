//! What one APNs request came to ([`Outcome`]), and the one place where responses, stream
//! errors and connect errors are classified (NOTES.md, "Retry classification"):
//!
//! | what happened | outcome | may it duplicate? |
//! | --- | --- | --- |
//! | 200 | `Accepted` | — |
//! | 400, 403, 404, 405, 410, 413 | `Rejected` (410: device gone, with Apple's timestamp) | no |
//! | 429, 500, 503 | `Retryable` after a back-off | no: APNs answered |
//! | connect / CONNECT / TLS failure, REFUSED_STREAM, GOAWAY above our stream, not sent | `Retryable` at once | no: provably not processed |
//! | proxy 407, proxy unreachable or refusing | `ProxyError`, retry later | no |
//! | written, then timeout / reset / connection lost | `Unknown` | **yes** |

use std::fmt;
use std::time::{Duration, SystemTime};

use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use uuid::Uuid;

use crate::connect::ConnectError;

/// Apple's `reason` string (known values and any other).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason(pub String);

impl Reason {
    pub const BAD_DEVICE_TOKEN: &'static str = "BadDeviceToken";
    pub const DEVICE_TOKEN_NOT_FOR_TOPIC: &'static str = "DeviceTokenNotForTopic";
    pub const EXPIRED_PROVIDER_TOKEN: &'static str = "ExpiredProviderToken";
    pub const INVALID_PROVIDER_TOKEN: &'static str = "InvalidProviderToken";
    pub const UNREGISTERED: &'static str = "Unregistered";
    pub const PAYLOAD_TOO_LARGE: &'static str = "PayloadTooLarge";
    pub const TOO_MANY_PROVIDER_TOKEN_UPDATES: &'static str = "TooManyProviderTokenUpdates";
    pub const TOO_MANY_REQUESTS: &'static str = "TooManyRequests";
    pub const INTERNAL_SERVER_ERROR: &'static str = "InternalServerError";
    pub const SERVICE_UNAVAILABLE: &'static str = "ServiceUnavailable";
    pub const SHUTDOWN: &'static str = "Shutdown";

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is(&self, known: &str) -> bool {
        self.0 == known
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a request may be sent again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryCause {
    /// Connecting (TCP, TLS, HTTP/2 handshake) failed: nothing was sent.
    Connect(String),
    /// The server reset our stream with REFUSED_STREAM: not processed.
    RefusedStream,
    /// GOAWAY with a last-stream-id below our stream: not processed.
    GoAway,
    /// The connection closed before the request was handed to it.
    NotSent,
    /// APNs answered 429, 500 or 503: back off, then send again.
    Status { status: u16, reason: Reason },
    /// 403 ExpiredProviderToken, and a new token may not be made yet (20-minute floor).
    ProviderTokenFloor,
}

impl RetryCause {
    /// True when the request may be sent again at once (it was provably not processed).
    pub fn immediate(&self) -> bool {
        matches!(
            self,
            RetryCause::Connect(_)
                | RetryCause::RefusedStream
                | RetryCause::GoAway
                | RetryCause::NotSent
        )
    }

    fn label(&self) -> String {
        match self {
            RetryCause::Connect(_) => "connect".into(),
            RetryCause::RefusedStream => "refused_stream".into(),
            RetryCause::GoAway => "goaway".into(),
            RetryCause::NotSent => "not_sent".into(),
            RetryCause::Status { reason, .. } => reason.0.clone(),
            RetryCause::ProviderTokenFloor => Reason::EXPIRED_PROVIDER_TOKEN.into(),
        }
    }
}

/// How the proxy failed. The request never reached APNs; retry later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyFailure {
    /// 407: the proxy refused our credentials (or they could not be read).
    AuthRequired,
    /// The proxy could not be reached, or timed out.
    Unreachable,
    /// The proxy answered CONNECT with something other than 200/407 (ACL, upstream down).
    Refused,
    /// The proxy's answer was not HTTP.
    Protocol,
}

impl ProxyFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyFailure::AuthRequired => "proxy_auth_required",
            ProxyFailure::Unreachable => "proxy_unreachable",
            ProxyFailure::Refused => "proxy_refused",
            ProxyFailure::Protocol => "proxy_protocol",
        }
    }
}

/// What one request (or, from the retry driver, a whole delivery) came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 200: APNs took it.
    Accepted { apns_id: Uuid },
    /// APNs refused it; sending it again cannot help (until something changes).
    Rejected {
        status: u16,
        reason: Reason,
        /// 410 only: when Apple last knew the token valid (ms since the Unix epoch).
        timestamp: Option<u64>,
    },
    /// Not taken, provably not processed: may be sent again (`retry_after`: Apple's hint or
    /// the remaining back-off).
    Retryable {
        cause: RetryCause,
        retry_after: Option<Duration>,
    },
    /// Written, but no response: APNs may or may not have it. Only these can duplicate.
    Unknown { cause: String },
    /// The proxy failed; the request never reached APNs. Retry later.
    ProxyError {
        failure: ProxyFailure,
        detail: String,
    },
}

impl Outcome {
    /// `(result, reason)` labels for metrics.
    pub fn labels(&self) -> (&'static str, String) {
        match self {
            Outcome::Accepted { .. } => ("accepted", String::new()),
            Outcome::Rejected { reason, .. } => ("rejected", reason.0.clone()),
            Outcome::Retryable { cause, .. } => ("retryable", cause.label()),
            Outcome::Unknown { cause } => (
                "unknown",
                if cause.starts_with("timeout") {
                    "timeout".into()
                } else {
                    "no_response".into()
                },
            ),
            Outcome::ProxyError { failure, .. } => ("proxy_error", failure.as_str().into()),
        }
    }

    /// 410: the time Apple says the device token stopped being valid.
    pub fn unregistered_at(&self) -> Option<SystemTime> {
        match self {
            Outcome::Rejected {
                status: 410,
                timestamp,
                ..
            } => Some(
                timestamp
                    .map(|ms| SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
                    .unwrap_or_else(SystemTime::now),
            ),
            _ => None,
        }
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    reason: Option<String>,
    timestamp: Option<u64>,
}

/// Classifies a complete response.
pub fn from_response(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    sent_id: Uuid,
) -> Outcome {
    if status == StatusCode::OK {
        let apns_id = headers
            .get("apns-id")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| Uuid::parse_str(v).ok())
            .unwrap_or(sent_id);
        return Outcome::Accepted { apns_id };
    }
    let parsed: Option<ErrorBody> = serde_json::from_slice(body).ok();
    let reason = Reason(
        parsed
            .as_ref()
            .and_then(|b| b.reason.clone())
            .unwrap_or_else(|| {
                status
                    .canonical_reason()
                    .unwrap_or("Unknown")
                    .replace(' ', "")
            }),
    );
    match status.as_u16() {
        429 | 500 | 503 => Outcome::Retryable {
            retry_after: headers
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs),
            cause: RetryCause::Status {
                status: status.as_u16(),
                reason,
            },
        },
        // Other 5xx: APNs answered, so it did not take it; treat like 500.
        s if status.is_server_error() => Outcome::Retryable {
            cause: RetryCause::Status { status: s, reason },
            retry_after: None,
        },
        s => Outcome::Rejected {
            status: s,
            timestamp: if s == 410 {
                parsed.and_then(|b| b.timestamp)
            } else {
                None
            },
            reason,
        },
    }
}

/// Classifies a connect failure (nothing was sent).
pub fn from_connect(e: &ConnectError) -> Outcome {
    let failure = match e {
        ConnectError::ProxyAuth { .. } | ConnectError::ProxyCredentials { .. } => {
            Some(ProxyFailure::AuthRequired)
        }
        ConnectError::ProxyUnreachable { .. } => Some(ProxyFailure::Unreachable),
        ConnectError::ProxyRefused { .. } => Some(ProxyFailure::Refused),
        ConnectError::ProxyProtocol { .. } => Some(ProxyFailure::Protocol),
        ConnectError::Timeout { .. } if e.is_proxy() => Some(ProxyFailure::Unreachable),
        _ => None,
    };
    match failure {
        Some(failure) => Outcome::ProxyError {
            failure,
            detail: e.to_string(),
        },
        None => Outcome::Retryable {
            cause: RetryCause::Connect(e.to_string()),
            retry_after: None,
        },
    }
}

/// What a failed request tells about its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnFate {
    /// Keep using it.
    Keep,
    /// Open a new one (GOAWAY, closed, 503 Shutdown).
    Replace,
}

/// Classifies an error from sending a request / reading its response.
pub(crate) fn from_error(e: &hyper::Error) -> (Outcome, ConnFate) {
    if e.is_canceled() {
        // hyper never handed the request to the connection (it was closing).
        return (
            Outcome::Retryable {
                cause: RetryCause::NotSent,
                retry_after: None,
            },
            ConnFate::Replace,
        );
    }
    if let Some(h2) = find_h2(e) {
        if h2.is_remote() && h2.is_go_away() {
            // h2 reports a remote GOAWAY only to streams above its last-stream-id, and to
            // requests it refused to open afterwards: neither was processed.
            return (
                Outcome::Retryable {
                    cause: RetryCause::GoAway,
                    retry_after: None,
                },
                ConnFate::Replace,
            );
        }
        if h2.is_remote() && h2.is_reset() && h2.reason() == Some(h2::Reason::REFUSED_STREAM) {
            return (
                Outcome::Retryable {
                    cause: RetryCause::RefusedStream,
                    retry_after: None,
                },
                ConnFate::Keep,
            );
        }
        return (
            Outcome::Unknown {
                cause: format!("stream error after the request was written: {h2}"),
            },
            if h2.is_reset() {
                ConnFate::Keep
            } else {
                ConnFate::Replace
            },
        );
    }
    (
        Outcome::Unknown {
            cause: format!("connection failed after the request was written: {e}"),
        },
        ConnFate::Replace,
    )
}

fn find_h2(e: &hyper::Error) -> Option<&h2::Error> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(h2) = s.downcast_ref::<h2::Error>() {
            return Some(h2);
        }
        source = s.source();
    }
    None
}

#[cfg(test)]
mod tests;
