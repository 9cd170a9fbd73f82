//! Request bodies and JSON replies: the body limit and deadline, the strict JSON decoder
//! whose 400 names the field, and the [`StrictJson`] extractor that combines them.

use axum::body::Body;
use axum::extract::{FromRequest, Request};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::header::{HeaderMap, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::StatusCode;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

use crate::http::error::{ApiError, ErrorCode, JSON_CONTENT_TYPE};
use crate::http::{AppState, BodyDeadline, DEFAULT_BODY_READ_TIMEOUT};

/// What a handler returns.
pub type Res = Result<Response, ApiError>;

/// A JSON reply with `status`.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Res {
    let body = serde_json::to_vec(value)
        .map_err(|e| ApiError::new(ErrorCode::Unavailable, format!("serialization failed: {e}")))?;
    let mut r = (status, body).into_response();
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(JSON_CONTENT_TYPE));
    Ok(r)
}

/// A `200` JSON reply.
pub fn ok<T: Serialize>(value: &T) -> Res {
    json(StatusCode::OK, value)
}

/// The whole body, at most `limit` bytes (413 beyond, from `Content-Length` before reading
/// when it is announced), within the request's [`BodyDeadline`] (408 after it).
pub async fn read_body(
    headers: &HeaderMap,
    deadline: Option<BodyDeadline>,
    body: Body,
    limit: usize,
) -> Result<Bytes, ApiError> {
    if let Some(len) = headers.get(CONTENT_LENGTH) {
        let len: u64 = len
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| ApiError::invalid("Content-Length is not a number"))?;
        if len > limit as u64 {
            return Err(ApiError::too_large(limit));
        }
    }
    // Requests built without the server (unit tests) get the default deadline.
    let deadline = deadline
        .map(|d| d.0)
        .unwrap_or_else(|| tokio::time::Instant::now() + DEFAULT_BODY_READ_TIMEOUT);
    let collected = tokio::time::timeout_at(deadline, Limited::new(body, limit).collect()).await;
    let Ok(collected) = collected else {
        return Err(ApiError::new(
            ErrorCode::RequestTimeout,
            "The request body did not arrive in time",
        ));
    };
    match collected {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                Err(ApiError::too_large(limit))
            } else {
                Err(ApiError::invalid(format!(
                    "Could not read the request body: {e}"
                )))
            }
        }
    }
}

/// The body of `req` under the JSON body limit.
pub async fn read_limited(req: Request, limit: usize) -> Result<Bytes, ApiError> {
    let deadline = req.extensions().get::<BodyDeadline>().copied();
    let (parts, body) = req.into_parts();
    read_body(&parts.headers, deadline, body, limit).await
}

/// A body decoded by [`decode`] under [`crate::http::HttpSettings::body_limit`]: the
/// rejection is the same 400/408/413 the API has always given.
pub struct StrictJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for StrictJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let bytes = read_limited(req, state.settings.body_limit).await?;
        decode(&bytes).map(StrictJson)
    }
}

/// Strict JSON decoding; the error names the field (`results[3].time: ...`).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid(
            "Request body is empty; a JSON object is expected",
        ));
    }
    // Every body is an object; serde would also accept a struct as an array.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::invalid(
            "Body is not valid JSON for this endpoint: a JSON object is expected",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let msg = if inner.is_syntax() || inner.is_eof() {
            format!("Body is not valid JSON: {inner}")
        } else {
            let text = inner.to_string();
            let text = text.split(" at line ").next().unwrap_or(&text).to_owned();
            // Say what the type means to a client: an unsigned field refuses `-2` because it
            // must be non-negative, which "expected u32" says only to a Rust programmer.
            let text = text
                .replace("expected u32", "expected non-negative integer")
                .replace("expected u16", "expected non-negative integer")
                .replace("expected i64", "expected integer")
                .replace("expected u64", "expected non-negative integer");
            if path.is_empty() || path == "." {
                text
            } else {
                format!("{path}: {text}")
            }
        };
        ApiError::invalid(msg)
    })?;
    de.end()
        .map_err(|e| ApiError::invalid(format!("Body is not valid JSON: {e}")))?;
    Ok(value)
}

/// `Some(None)` for an explicit `null`, `None` (via `#[serde(default)]`) when omitted.
pub fn explicit<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}
