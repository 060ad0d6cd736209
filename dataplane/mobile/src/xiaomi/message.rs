//! A notification as MiPush's form, and MiPush's replies (HTTP 200 with a JSON `result`)
//! classified once:
//!
//! | reply | verdict |
//! | --- | --- |
//! | `{"result":"ok","code":0,"data":{"id"}}` | accepted (`data.id` is the vendor id) |
//! | `ok` with our regId in `data.bad_regids` | rejected, token dead |
//! | code 20301 "No valid targets!" | rejected, token dead |
//! | code 21301 authentication failed | not sent: pending (fix `--xiaomi-app-secret-file`) |
//! | HTTP 429, 5xx | retry after `Retry-After` or a back-off |
//! | any other code (quota, bad package, bad parameters, …) | rejected with the code: surfaced, not retried |

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use crate::payload;
use crate::retry::Verdict;
use crate::sender::MobileRequest;

/// Longest `title` / `description` MiPush takes, in characters.
const MAX_TITLE: usize = 50;
const MAX_DESCRIPTION: usize = 128;
/// Largest `payload` (MiPush: 4 KB).
const MAX_PAYLOAD: usize = 4096;
/// MiPush keeps a message at most two weeks.
const MAX_TTL_MS: u128 = 14 * 24 * 3600 * 1000;

/// The form body of `/v3/message/regid` for one device.
pub fn form(req: &MobileRequest, package: &str) -> Result<Bytes, String> {
    let n = &req.notification;
    let data = n.data.as_ref().map(Value::to_string).unwrap_or_default();
    if data.len() > MAX_PAYLOAD {
        return Err(format!("PayloadTooLarge: {} bytes", data.len()));
    }
    let ttl = payload::ttl(req).as_millis().min(MAX_TTL_MS);
    let notify_id = payload::small_number(n.collapse_id.as_deref().unwrap_or(&req.message_id));
    let mut f = form_urlencoded::Serializer::new(String::new());
    f.append_pair("registration_id", &req.device.token)
        .append_pair("restricted_package_name", package)
        .append_pair("time_to_live", &ttl.to_string())
        .append_pair("notify_id", &notify_id.to_string())
        .append_pair("extra.jobkey", &payload::device_key(req, 20));
    if n.title.is_some() || n.body.is_some() {
        let title = n
            .title
            .as_ref()
            .or(n.body.as_ref())
            .map_or("", String::as_str);
        let text = n
            .body
            .as_ref()
            .or(n.title.as_ref())
            .map_or("", String::as_str);
        f.append_pair("pass_through", "0")
            .append_pair("notify_type", "-1")
            .append_pair("title", &cut(title, MAX_TITLE))
            .append_pair("description", &cut(text, MAX_DESCRIPTION))
            .append_pair("extra.notify_effect", "1");
    } else {
        // Data only: a pass-through message for the app.
        f.append_pair("pass_through", "1");
    }
    if !data.is_empty() {
        f.append_pair("payload", &data);
    }
    Ok(Bytes::from(f.finish()))
}

fn cut(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

#[derive(Deserialize)]
struct Reply {
    result: Option<String>,
    code: Option<i64>,
    reason: Option<String>,
    description: Option<String>,
    data: Option<Data>,
}

#[derive(Deserialize)]
struct Data {
    id: Option<String>,
    #[serde(alias = "badRegIds")]
    bad_regids: Option<String>,
}

/// Classifies one answered request for `token`.
pub fn classify(status: StatusCode, headers: &HeaderMap, body: &[u8], token: &str) -> Verdict {
    if status.as_u16() == 429 || status.is_server_error() {
        return Verdict::Retry {
            reason: format!("HTTP {}", status.as_u16()),
            after: crate::http::retry_after(headers),
            now: false,
        };
    }
    let Some(reply) = serde_json::from_slice::<Reply>(body).ok() else {
        return Verdict::Rejected {
            reason: format!("HTTP {}: not a MiPush reply", status.as_u16()),
            dead: false,
        };
    };
    let code = reply.code.unwrap_or(-1);
    if reply.result.as_deref() == Some("ok") && (code == 0 || reply.code.is_none()) {
        let data = reply.data.unwrap_or(Data {
            id: None,
            bad_regids: None,
        });
        let bad = data
            .bad_regids
            .as_deref()
            .is_some_and(|b| b.split(',').any(|r| r.trim() == token));
        if bad {
            return Verdict::Rejected {
                reason: "bad_regids: invalid regId".into(),
                dead: true,
            };
        }
        return Verdict::Accepted { id: data.id };
    }
    let text = reply.reason.or(reply.description).unwrap_or_default();
    let reason = format!("{code} {text}").trim().to_owned();
    match code {
        20301 => Verdict::Rejected { reason, dead: true },
        21301 => Verdict::Later {
            reason: format!("{reason}: check the Xiaomi app secret"),
            after: None,
        },
        _ => Verdict::Rejected {
            reason,
            dead: false,
        },
    }
}
