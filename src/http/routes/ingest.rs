//! The ingest API (c123-server's push, `X-API-Key`): the XML export, on-course and results.
//! Every call is counted in `ingest_requests` by outcome.

use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use hyper::header::CONTENT_TYPE;
use hyper::StatusCode;

use super::admin::unexpected;
use super::body::{ok, read_limited, Res, StrictJson};
use super::extract::EventKey;
use super::ingest_body::{
    parse_xml_body, validate_oncourse, validate_results, OnCourseBody, ResultsBody,
};
use crate::http::error::{ApiError, ErrorCode};
use crate::http::AppState;
use crate::merge::{
    ingest_allowed, DataKind, Input, MergeError, Outcome, Via, XmlOrigin, XmlTarget,
};

pub fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/api/v1/ingest/xml", post(xml))
        .route("/api/v1/ingest/oncourse", post(oncourse))
        .route("/api/v1/ingest/results", post(results))
        .route_layer(middleware::from_fn_with_state(state, count))
}

/// Counts every call by outcome (also those its extractors refused): applied, forbidden by
/// the state guard, failed on our side, or rejected.
async fn count(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let kind = match req.uri().path() {
        "/api/v1/ingest/xml" => "xml",
        "/api/v1/ingest/oncourse" => "oncourse",
        _ => "results",
    };
    let resp = next.run(req).await;
    let status = resp.status();
    let outcome = if status.is_success() {
        "applied"
    } else if status == StatusCode::FORBIDDEN {
        "forbidden"
    } else if status.is_server_error() {
        "error"
    } else {
        "rejected"
    };
    state.metrics.ingest(kind, outcome);
    resp
}

async fn xml(State(state): State<AppState>, EventKey(event): EventKey, req: Request) -> Res {
    if !ingest_allowed(event.header.status, DataKind::Xml) {
        return Err(MergeError::Forbidden {
            data: DataKind::Xml,
            status: event.header.status,
        }
        .into());
    }
    let raw_xml = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|ct| {
            let ct = ct.to_ascii_lowercase();
            ct.starts_with("application/xml") || ct.starts_with("text/xml")
        })
        .unwrap_or(false);
    let body = read_limited(req, state.settings.body_limit_xml).await?;
    let xml = parse_xml_body(body, raw_xml)?;
    let export = tokio::task::spawn_blocking(move || crate::xml::parse_export(&xml))
        .await
        .map_err(|e| ApiError::new(ErrorCode::Unavailable, format!("XML parser failed: {e}")))?
        .map_err(|e| ApiError::invalid(format!("Invalid XML: {e}")))?;
    export.note_unknown_statuses("ingest/xml");
    let outcome = state
        .merge
        .send(Input::Xml {
            target: XmlTarget::Event(event.header.event_id.clone()),
            export: Box::new(export),
            origin: XmlOrigin::IngestApi,
        })
        .await?;
    match outcome {
        Outcome::XmlImported { counts, .. } => ok(&serde_json::json!({ "imported": counts })),
        _ => Err(unexpected()),
    }
}

async fn oncourse(
    State(state): State<AppState>,
    EventKey(event): EventKey,
    StrictJson(body): StrictJson<OnCourseBody>,
) -> Res {
    let entries = validate_oncourse(body)?;
    let outcome = state
        .merge
        .send(Input::OnCourse {
            event_id: event.header.event_id.clone(),
            entries,
            via: Via::IngestApi,
        })
        .await?;
    match outcome {
        Outcome::OnCourse {
            ignored_no_xml: true,
            ..
        } => ok(&serde_json::json!({"active": 0, "ignored": true})),
        Outcome::OnCourse { active, .. } => ok(&serde_json::json!({ "active": active })),
        _ => Err(unexpected()),
    }
}

async fn results(
    State(state): State<AppState>,
    EventKey(event): EventKey,
    StrictJson(body): StrictJson<ResultsBody>,
) -> Res {
    let updates = validate_results(body)?;
    let statuses: Vec<String> = updates
        .iter()
        .filter_map(|u| u.status.clone().flatten())
        .collect();
    let outcome = state
        .merge
        .send(Input::Results {
            event_id: event.header.event_id.clone(),
            updates,
            via: Via::IngestApi,
        })
        .await?;
    for s in &statuses {
        crate::result_status::unknown().note(s, "ingest/results");
    }
    match outcome {
        Outcome::Results {
            ignored_no_xml: true,
            ..
        } => ok(&serde_json::json!({"updated": 0, "ignored": true})),
        Outcome::Results {
            updated,
            ignored_unknown,
            ..
        } => ok(&serde_json::json!({"updated": updated, "skipped": ignored_unknown})),
        _ => Err(unexpected()),
    }
}
