//! Operations: liveness, readiness and the Prometheus metrics.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper::header::{HeaderValue, CONTENT_TYPE};

use super::body::{ok, Res};
use crate::http::error::{ApiError, ErrorCode};
use crate::http::AppState;

pub fn routes() -> Router<AppState> {
    health_routes().route("/metrics", get(metrics))
}

/// Liveness and readiness, for every listener (load balancers probe them).
pub fn health_routes() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/healthz", get(health))
        .route("/readyz", get(readyz))
}

async fn health() -> Res {
    ok(&serde_json::json!({"status": "ok"}))
}

async fn readyz(State(state): State<AppState>) -> Res {
    if !state.merge.is_running() {
        Err(ApiError::new(
            ErrorCode::Unavailable,
            "The merge loop is not running",
        ))
    } else if state.merge.last_commit_failed() {
        Err(ApiError::new(
            ErrorCode::Unavailable,
            "The last commit failed (disk full or --max-db-size reached?); reads are served, writes are refused until a commit succeeds",
        ))
    } else {
        ok(&serde_json::json!({"status": "ready"}))
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let mut r = state.metrics.render().into_response();
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    r
}
