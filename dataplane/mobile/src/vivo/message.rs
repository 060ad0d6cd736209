//! A notification as a vivo single-device message, and vivo's replies (HTTP 200 with a
//! JSON `result`) classified once:
//!
//! | reply (`result`) | verdict |
//! | --- | --- |
//! | 0 | accepted (`taskId` is the vendor id) |
//! | 10000 authToken invalid or expired | a new token, once more |
//! | 10070 daily quota exhausted | rejected with the code: surfaced, never retried |
//! | 10302 invalid regId | rejected, token dead |
//! | HTTP 429, 5xx | retry after `Retry-After` or a back-off |
//! | any other code | rejected with the code |

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Map, json};

use crate::payload;
use crate::retry::Verdict;
use crate::sender::MobileRequest;

/// vivo's limits: title 40, content 100 display units (a CJK character counts two).
const MAX_TITLE_UNITS: usize = 40;
const MAX_CONTENT_UNITS: usize = 100;
/// vivo keeps a message between a minute and a week.
const MIN_TTL_S: u64 = 60;
const MAX_TTL_S: u64 = 7 * 24 * 3600;

/// The JSON body of `/message/send` for one device.
pub fn body(req: &MobileRequest) -> Result<Bytes, String> {
    let n = &req.notification;
    let (Some(title), Some(text)) = (
        n.title.as_ref().or(n.body.as_ref()),
        n.body.as_ref().or(n.title.as_ref()),
    ) else {
        return Err(
            "NotificationNeedsText: vivo shows only notifications with a title or body".into(),
        );
    };
    let mut m = Map::new();
    m.insert("regId".into(), json!(req.device.token));
    m.insert("notifyType".into(), json!(4));
    m.insert(
        "title".into(),
        json!(payload::truncate_units(title, MAX_TITLE_UNITS)),
    );
    m.insert(
        "content".into(),
        json!(payload::truncate_units(text, MAX_CONTENT_UNITS)),
    );
    let ttl = payload::ttl(req).as_secs().clamp(MIN_TTL_S, MAX_TTL_S);
    m.insert("timeToLive".into(), json!(ttl));
    m.insert("skipType".into(), json!(1));
    m.insert("networkType".into(), json!(-1));
    m.insert("requestId".into(), json!(payload::device_key(req, 32)));
    if let Some(data) = &n.data {
        m.insert("clientCustomMap".into(), json!(payload::data_map(data)));
    }
    serde_json::to_vec(&m)
        .map(Bytes::from)
        .map_err(|e| e.to_string())
}

#[derive(Deserialize)]
struct Reply {
    result: Option<i64>,
    desc: Option<String>,
    #[serde(rename = "taskId")]
    task_id: Option<String>,
}

/// Classifies one answered request.
pub fn classify(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Verdict {
    if status.as_u16() == 429 || status.is_server_error() {
        return Verdict::Retry {
            reason: format!("HTTP {}", status.as_u16()),
            after: crate::http::retry_after(headers),
            now: false,
        };
    }
    let Ok(reply) = serde_json::from_slice::<Reply>(body) else {
        return Verdict::Rejected {
            reason: format!("HTTP {}: not a vivo reply", status.as_u16()),
            dead: false,
        };
    };
    let code = reply.result.unwrap_or(-1);
    let reason = format!("{code} {}", reply.desc.unwrap_or_default())
        .trim()
        .to_owned();
    match code {
        0 => Verdict::Accepted { id: reply.task_id },
        10000 => Verdict::AuthRefused { reason },
        10302 => Verdict::Rejected { reason, dead: true },
        _ => Verdict::Rejected {
            reason,
            dead: false,
        },
    }
}
