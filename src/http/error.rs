//! The one error vocabulary of the HTTP API: every error body is `{"error","message"}` with
//! `error` one of the codes below (live-mini uses several spellings; we use one).

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
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
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::NotFound | ErrorCode::EventNotFound => StatusCode::NOT_FOUND,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
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
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'static str,
    message: &'a str,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    transition: Option<&'a TransitionDetail>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            transition: None,
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
        }
    }

    pub fn into_response(self) -> Response<Full<Bytes>> {
        let body = serde_json::to_vec(&Body {
            error: self.code.as_str(),
            message: &self.message,
            transition: self.transition.as_ref(),
        })
        .unwrap_or_else(|_| b"{\"error\":\"Unavailable\",\"message\":\"\"}".to_vec());
        super::json_response::json_bytes(self.code.status(), body)
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
