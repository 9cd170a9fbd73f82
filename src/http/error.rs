//! The one error vocabulary of the HTTP API: every error body is `{"error","message"}` with
//! `error` one of the codes below (live-mini uses several spellings; we use one).
//!
//! [`ApiError`] is the only writer of error bodies: handlers and extractors return it
//! (`IntoResponse`), the WebSocket hub's refusals are mapped into it, and the raw 503 the
//! accept loop writes before hyper sees the connection uses [`ApiError::body`].

use axum::response::{IntoResponse, Response};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::StatusCode;
use serde::Serialize;

use crate::merge::MergeError;
use crate::model::EventStatus;

/// Error codes, exactly as they appear in the `error` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    NotFound,
    Unauthorized,
    Forbidden,
    InvalidRequest,
    Conflict,
    InvalidTransition,
    EventNotFound,
    EventOfficial,
    ConnectionLimitReached,
    PayloadTooLarge,
    /// The request body did not arrive within the body-read deadline (408).
    RequestTimeout,
    /// Not a client error: storage failed or the merge loop is gone (503/500).
    Unavailable,
    /// A read-only replica was asked to change something (403).
    ReadOnlyReplica,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NotFound => "NotFound",
            ErrorCode::Unauthorized => "Unauthorized",
            ErrorCode::Forbidden => "Forbidden",
            ErrorCode::InvalidRequest => "InvalidRequest",
            ErrorCode::Conflict => "Conflict",
            ErrorCode::InvalidTransition => "InvalidTransition",
            ErrorCode::EventNotFound => "EventNotFound",
            ErrorCode::EventOfficial => "EventOfficial",
            ErrorCode::ConnectionLimitReached => "ConnectionLimitReached",
            ErrorCode::PayloadTooLarge => "PayloadTooLarge",
            ErrorCode::RequestTimeout => "RequestTimeout",
            ErrorCode::Unavailable => "Unavailable",
            ErrorCode::ReadOnlyReplica => "ReadOnlyReplica",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::NotFound | ErrorCode::EventNotFound => StatusCode::NOT_FOUND,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden | ErrorCode::ReadOnlyReplica => StatusCode::FORBIDDEN,
            ErrorCode::InvalidRequest | ErrorCode::InvalidTransition => StatusCode::BAD_REQUEST,
            ErrorCode::Conflict => StatusCode::CONFLICT,
            ErrorCode::EventOfficial => StatusCode::GONE,
            ErrorCode::ConnectionLimitReached | ErrorCode::Unavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        }
    }
}

/// Extra fields of an `InvalidTransition` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TransitionDetail {
    pub current_status: EventStatus,
    pub requested_status: EventStatus,
    pub valid_transitions: Vec<EventStatus>,
}

/// An error response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub transition: Option<TransitionDetail>,
    /// `maxConnections` of a WebSocket room that is full.
    pub max_connections: Option<usize>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    error: &'static str,
    message: &'a str,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    transition: Option<&'a TransitionDetail>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_connections: Option<usize>,
}

/// The content type of every JSON body.
pub const JSON_CONTENT_TYPE: &str = "application/json; charset=utf-8";

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            transition: None,
            max_connections: None,
        }
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::NotFound, message)
    }
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::InvalidRequest, message)
    }
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::Unauthorized, message)
    }
    pub fn too_large(limit: usize) -> ApiError {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("Request body is larger than the limit of {limit} bytes"),
        )
    }

    pub fn invalid_transition(from: EventStatus, to: EventStatus) -> ApiError {
        let valid: Vec<EventStatus> = from.valid_transitions().to_vec();
        let list = if valid.is_empty() {
            "none".to_owned()
        } else {
            valid
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        ApiError {
            code: ErrorCode::InvalidTransition,
            message: format!(
                "Cannot transition from '{from}' to '{to}'. Valid transitions: {list}"
            ),
            transition: Some(TransitionDetail {
                current_status: from,
                requested_status: to,
                valid_transitions: valid,
            }),
            max_connections: None,
        }
    }

    /// The JSON body (`{"error","message",…}`).
    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(&Body {
            error: self.code.as_str(),
            message: &self.message,
            transition: self.transition.as_ref(),
            max_connections: self.max_connections,
        })
        .unwrap_or_else(|_| b"{\"error\":\"Unavailable\",\"message\":\"\"}".to_vec())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.code.status(), self.body()).into_response();
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(JSON_CONTENT_TYPE));
        r
    }
}

impl From<crate::hub::Refusal> for ApiError {
    fn from(r: crate::hub::Refusal) -> ApiError {
        use crate::hub::Refusal;
        match r {
            Refusal::NotFound => ApiError::new(
                ErrorCode::EventNotFound,
                "Event not found or not publicly available",
            ),
            Refusal::Official => ApiError::new(
                ErrorCode::EventOfficial,
                "Event results are official. No live updates available.",
            ),
            Refusal::RoomFull { max_connections } => ApiError {
                max_connections: Some(max_connections),
                ..ApiError::new(
                    ErrorCode::ConnectionLimitReached,
                    "Maximum number of concurrent connections reached for this event",
                )
            },
            Refusal::NotWebSocket(message) => ApiError::invalid(message),
        }
    }
}

impl From<MergeError> for ApiError {
    fn from(e: MergeError) -> ApiError {
        match e {
            MergeError::EventNotFound(id) => ApiError::not_found(format!("Event not found: {id}")),
            MergeError::Conflict(m) => ApiError::new(ErrorCode::Conflict, m),
            MergeError::InvalidTransition { from, to } => ApiError::invalid_transition(from, to),
            e @ MergeError::Forbidden { .. } => ApiError::new(ErrorCode::Forbidden, e.to_string()),
            MergeError::Invalid(m) => ApiError::invalid(m),
            e @ (MergeError::Store(_) | MergeError::Stopped) => {
                ApiError::new(ErrorCode::Unavailable, e.to_string())
            }
        }
    }
}
