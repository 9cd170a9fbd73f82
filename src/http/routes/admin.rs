//! The admin API: events (create, list, delete), their status and config, the operator
//! status and the storage cap. Event creation and listing need the master key; status and
//! config need the event's own API key.

use axum::extract::State;
use axum::routing::{get, patch, post, put};
use axum::Router;
use hyper::StatusCode;
use serde::Serialize;

use super::admin_body::{
    validate_config, validate_create, validate_status, validate_storage, CreateEventBody, NewEvent,
    StatusBody, StorageBody,
};
use super::body::{json, ok, Res, StrictJson};
use super::extract::{EventAdmin, EventId, EventKeyFor, MasterKey};
use crate::http::auth::validity_iso;
use crate::http::error::{ApiError, ErrorCode};
use crate::http::AppState;
use crate::merge::{config_patch_allowed, AdminCommand, DataKind, Input, MergeError, Outcome};
use crate::model::{EventConfig, EventStatus};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/admin/events", post(create_event).get(list))
        .route("/api/v1/admin/status", get(super::admin_status::status))
        .route("/api/v1/admin/log", get(super::admin_status::log))
        .route("/api/v1/admin/storage", put(set_storage))
        .route(
            "/api/v1/admin/events/{eventId}",
            axum::routing::delete(delete_event),
        )
        .route("/api/v1/admin/events/{eventId}/status", patch(set_status))
        .route(
            "/api/v1/admin/events/{eventId}/config",
            get(get_config).patch(set_config),
        )
}

/// The merge loop answered with an outcome of another command (a bug, never the client's).
pub fn unexpected() -> ApiError {
    ApiError::new(
        ErrorCode::Unavailable,
        "unexpected outcome from the merge loop",
    )
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Validity {
    valid_from: Option<String>,
    valid_until: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Created {
    id: i64,
    event_id: String,
    api_key: String,
    validity: Validity,
}

async fn create_event(
    State(state): State<AppState>,
    _: MasterKey,
    StrictJson(body): StrictJson<CreateEventBody>,
) -> Res {
    let NewEvent {
        event_id,
        meta,
        image,
    } = validate_create(body)?;
    let (start_date, end_date) = (meta.start_date.clone(), meta.end_date.clone());
    let api_key = crate::keys::generate_api_key();
    let outcome = state
        .merge
        .send(Input::Admin(AdminCommand::CreateEvent {
            event_id,
            meta,
            image,
            api_key,
        }))
        .await?;
    let Outcome::EventCreated {
        id,
        event_id,
        api_key,
    } = outcome
    else {
        return Err(unexpected());
    };
    let (valid_from, valid_until) = validity_iso(start_date.as_deref(), end_date.as_deref());
    json(
        StatusCode::CREATED,
        &Created {
            id,
            event_id,
            api_key,
            validity: Validity {
                valid_from,
                valid_until,
            },
        },
    )
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AdminEvent {
    event_id: String,
    main_title: String,
    sub_title: Option<String>,
    location: Option<String>,
    start_date: Option<String>,
    end_date: Option<String>,
    discipline: Option<String>,
    status: String,
    api_key: String,
    has_xml_data: bool,
    has_image: bool,
    created_at: String,
}

/// `PUT /api/v1/admin/storage` `{"maxDbSizeMb": N|null}`: changes the `--max-db-size` cap at
/// runtime (X-Master-Key), so refused inputs apply again without a restart.
async fn set_storage(
    State(state): State<AppState>,
    _: MasterKey,
    StrictJson(body): StrictJson<StorageBody>,
) -> Res {
    let b = validate_storage(body)?;
    match state
        .merge
        .send(Input::Admin(AdminCommand::SetStorageLimit {
            max_bytes: b.max_db_size_mb().map(|mb| mb.saturating_mul(1024 * 1024)),
        }))
        .await?
    {
        Outcome::StorageLimit { max_bytes } => ok(&serde_json::json!({ "maxDbBytes": max_bytes })),
        _ => Err(unexpected()),
    }
}

async fn list(State(state): State<AppState>, _: MasterKey) -> Res {
    let snap = state.merge.snapshot();
    let mut events: Vec<_> = snap.events.values().collect();
    events.sort_by_key(|e| e.header.id);
    let events: Vec<AdminEvent> = events
        .into_iter()
        .map(|e| {
            let h = &e.header;
            AdminEvent {
                event_id: h.event_id.clone(),
                main_title: h.meta.main_title.clone(),
                sub_title: h.meta.sub_title.clone(),
                location: h.meta.location.clone(),
                start_date: h.meta.start_date.clone(),
                end_date: h.meta.end_date.clone(),
                discipline: h.meta.discipline.clone(),
                status: h.status.as_str().to_owned(),
                api_key: h.api_key.clone(),
                has_xml_data: h.has_xml_data,
                has_image: h.image.is_some(),
                created_at: h.created_at.clone(),
            }
        })
        .collect();
    ok(&serde_json::json!({ "events": events }))
}

async fn delete_event(State(state): State<AppState>, EventId(id): EventId, _: MasterKey) -> Res {
    match state
        .merge
        .send(Input::Admin(AdminCommand::DeleteEvent { event_id: id }))
        .await?
    {
        Outcome::EventDeleted { event_id } => {
            ok(&serde_json::json!({"deleted": true, "eventId": event_id}))
        }
        _ => Err(unexpected()),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusChanged {
    event_id: String,
    previous_status: EventStatus,
    status: EventStatus,
    status_changed_at: String,
}

async fn set_status(
    State(state): State<AppState>,
    EventAdmin(event): EventAdmin,
    StrictJson(body): StrictJson<StatusBody>,
) -> Res {
    let to = validate_status(body)?;
    match state
        .merge
        .send(Input::Admin(AdminCommand::Transition {
            event_id: event.header.event_id.clone(),
            to,
        }))
        .await?
    {
        Outcome::Transitioned {
            event_id,
            previous,
            status,
            changed_at,
        } => ok(&StatusChanged {
            event_id,
            previous_status: previous,
            status,
            status_changed_at: changed_at,
        }),
        _ => Err(unexpected()),
    }
}

async fn get_config(EventKeyFor(event): EventKeyFor) -> Res {
    ok(&event.header.config)
}

async fn set_config(
    State(state): State<AppState>,
    EventAdmin(event): EventAdmin,
    StrictJson(body): StrictJson<EventConfig>,
) -> Res {
    let patch = validate_config(body)?;
    // Early guard from the snapshot; the merge loop checks again at commit.
    if !config_patch_allowed(event.header.status, &patch) {
        return Err(MergeError::Forbidden {
            data: DataKind::Config,
            status: event.header.status,
        }
        .into());
    }
    // The patch itself goes to the loop, which merges it into the config it holds: a config
    // read here could be overtaken by a concurrent patch and would undo it.
    match state
        .merge
        .send(Input::Admin(AdminCommand::SetConfig {
            event_id: event.header.event_id.clone(),
            patch,
        }))
        .await?
    {
        Outcome::ConfigSet { config, .. } => ok(&config),
        _ => Err(unexpected()),
    }
}
