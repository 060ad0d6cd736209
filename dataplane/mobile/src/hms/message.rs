//! A notification as a Push Kit message for a set of tokens, and Push Kit's replies
//! classified once, one verdict per token:
//!
//! | reply (`code`) | verdict |
//! | --- | --- |
//! | 80000000 success | every token accepted (`requestId` is the vendor id) |
//! | 80100000 partial success, `msg.illegal_tokens` | the listed tokens: again (alone); the others accepted |
//! | 80300007 all tokens invalid | every token rejected, dead |
//! | 80200001 / 80200003 (HTTP 401) OAuth token invalid / expired | a new token, once more |
//! | HTTP 429, 5xx, 81000001 internal error | retry after `Retry-After` or a back-off |
//! | any other code (80100001 bad parameters, 80100003 bad structure, 80300008 too large, …) | rejected |

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::payload;
use crate::retry::Verdict;
use crate::sender::MobileRequest;

/// Largest message without its tokens (Push Kit's limit is 4096 bytes).
pub const MAX_MESSAGE: usize = 4096;

/// Whether the notification can be sent at all (checked before batching).
pub fn check(req: &MobileRequest) -> Result<(), String> {
    body(req, &[]).map(|_| ())
}

/// The JSON body of `messages:send` for `tokens` (all devices of one message).
pub fn body(req: &MobileRequest, tokens: &[&str]) -> Result<Bytes, String> {
    let n = &req.notification;
    let mut android = Map::new();
    android.insert(
        "ttl".into(),
        json!(format!("{}s", payload::ttl(req).as_secs())),
    );
    android.insert("urgency".into(), json!("HIGH"));
    if let Some(c) = &n.collapse_id {
        // Push Kit's offline cache groups are 0–100.
        android.insert("collapse_key".into(), json!(payload::small_number(c) % 101));
    }
    if n.title.is_some() || n.body.is_some() {
        // Push Kit needs both; one stands in for a missing other.
        let title = n.title.as_ref().or(n.body.as_ref());
        let text = n.body.as_ref().or(n.title.as_ref());
        let mut notification = Map::new();
        notification.insert("title".into(), json!(title));
        notification.insert("body".into(), json!(text));
        notification.insert("tag".into(), json!(payload::tag(req)));
        notification.insert("click_action".into(), json!({"type": 3}));
        if n.sound.is_some() {
            notification.insert("default_sound".into(), json!(true));
        }
        android.insert("notification".into(), Value::Object(notification));
    }
    let mut message = Map::new();
    if let Some(data) = &n.data {
        message.insert("data".into(), json!(data.to_string()));
    }
    message.insert("android".into(), Value::Object(android));
    let size = serde_json::to_vec(&message).map_or(0, |v| v.len());
    if size > MAX_MESSAGE {
        return Err(format!("80300008 message body too large: {size} bytes"));
    }
    message.insert("token".into(), json!(tokens));
    let body = json!({"validate_only": false, "message": message});
    serde_json::to_vec(&body)
        .map(Bytes::from)
        .map_err(|e| e.to_string())
}

#[derive(Deserialize)]
struct Reply {
    code: Option<String>,
    msg: Option<String>,
    #[serde(rename = "requestId")]
    request_id: Option<String>,
}

#[derive(Deserialize)]
struct Partial {
    #[serde(default)]
    illegal_tokens: Vec<String>,
}

/// Classifies one answered request that carried `tokens`.
pub fn classify(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    tokens: &[&str],
) -> Vec<Verdict> {
    let reply = serde_json::from_slice::<Reply>(body).ok();
    let code = reply
        .as_ref()
        .and_then(|r| r.code.clone())
        .unwrap_or_else(|| status.as_str().to_owned());
    let msg = reply
        .as_ref()
        .and_then(|r| r.msg.clone())
        .unwrap_or_default();
    let id = reply.as_ref().and_then(|r| r.request_id.clone());
    let all = |v: Verdict| vec![v; tokens.len()];
    let reason = format!("{code} {msg}").trim().to_owned();
    match code.as_str() {
        "80000000" if status.is_success() => all(Verdict::Accepted { id }),
        "80100000" => {
            let failed = serde_json::from_str::<Partial>(&msg)
                .map(|p| p.illegal_tokens)
                .unwrap_or_default();
            tokens
                .iter()
                .map(|t| {
                    if failed.iter().any(|f| f == t) {
                        Verdict::Retry {
                            reason: "80100000 partial success: this token failed".into(),
                            after: None,
                            now: true,
                        }
                    } else {
                        Verdict::Accepted { id: id.clone() }
                    }
                })
                .collect()
        }
        "80300007" => all(Verdict::Rejected { reason, dead: true }),
        "80200001" | "80200003" => all(Verdict::AuthRefused { reason }),
        _ if status.as_u16() == 429 || status.is_server_error() || code == "81000001" => {
            all(Verdict::Retry {
                reason,
                after: crate::http::retry_after(headers),
                now: false,
            })
        }
        _ if status.as_u16() == 401 => all(Verdict::AuthRefused { reason }),
        _ => all(Verdict::Rejected {
            reason,
            dead: false,
        }),
    }
}
