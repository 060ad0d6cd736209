//! Responses: every error is `{"error": "...", "field": "..."}` with a 4xx/5xx status.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use pushcluster_proto::api::ErrorBody;
use serde::Serialize;

pub type Body = Full<Bytes>;
pub type Resp = Response<Body>;

/// A JSON response.
pub fn json<T: Serialize>(status: StatusCode, body: &T) -> Resp {
    let bytes = serde_json::to_vec(body).expect("response bodies serialize");
    let mut resp = Response::new(Full::new(Bytes::from(bytes)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// A JSON error naming the problem and, when there is one, the field.
pub fn error(status: StatusCode, message: impl Into<String>, field: Option<&str>) -> Resp {
    json(
        status,
        &ErrorBody {
            error: message.into(),
            field: field.map(str::to_owned),
        },
    )
}

/// A plain-text response (metrics, health).
pub fn text(status: StatusCode, body: impl Into<Bytes>, content_type: &'static str) -> Resp {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("request body is larger than {0} bytes")]
    TooLarge(usize),
    #[error("failed to read the request body: {0}")]
    Read(String),
}

impl BodyError {
    pub fn into_response(self) -> Resp {
        match &self {
            BodyError::TooLarge(_) => error(StatusCode::PAYLOAD_TOO_LARGE, self.to_string(), None),
            BodyError::Read(_) => error(StatusCode::BAD_REQUEST, self.to_string(), None),
        }
    }
}

/// Reads a whole body, refusing more than `limit` bytes.
pub async fn read_body<B>(body: B, limit: usize) -> Result<Bytes, BodyError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge(limit)),
        Err(e) => Err(BodyError::Read(e.to_string())),
    }
}

/// The bearer token of an `Authorization` header, if any.
pub fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}
