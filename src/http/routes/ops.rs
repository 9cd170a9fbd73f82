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
    let replication = state.replication.as_ref().map(|r| r.report());
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
    } else if let Some(stopped) = replication.as_ref().and_then(|r| r.stopped.clone()) {
        Err(ApiError::new(ErrorCode::Unavailable, stopped))
    } else if replication
        .as_ref()
        .is_some_and(|r| r.replica && !r.caught_up)
    {
        Err(ApiError::new(
            ErrorCode::Unavailable,
            "The replica is catching up with the origin's stream",
        ))
    } else {
        match replication {
            None => ok(&serde_json::json!({"status": "ready"})),
            // The origin stays ready whatever NATS does; a replica that caught up stays ready
            // while the stream is unreachable (it serves its last state, marked stale).
            Some(r) => ok(&serde_json::json!({
                "status": "ready",
                "replication": {
                    "role": if r.replica { "replica" } else { "origin" },
                    "connected": r.connected,
                    "stale": r.replica && !r.connected,
                    "disconnectedSeconds": r.disconnected_for,
                    "lastStreamSeq": r.last_stream_seq,
                    "pending": r.pending,
                    "records": r.records,
                    "lastRecordAgeSeconds": r.last_record_age,
                    "snapshotsLoaded": r.snapshots_loaded,
                    "snapshotsWritten": r.snapshots_written,
                }
            })),
        }
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
