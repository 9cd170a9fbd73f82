//! The public API (no key): events, results, start lists, on-course, categories, the event
//! image, and the WebSocket route's dispatch into the hub.

use std::sync::Arc;

use axum::extract::{RawQuery, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper::header::{HeaderMap, HeaderValue, CACHE_CONTROL, CONTENT_TYPE};

use super::body::Res;
use super::extract::{EventId, RaceIds};
use super::{not_found_route, Head};
use crate::api as wire;
use crate::http::cache::Key;
use crate::http::error::{ApiError, ErrorCode};
use crate::http::{AppState, ClientAddr, PerIp};
use crate::uri::query_param;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/events", get(list))
        .route("/api/v1/events/{eventId}", get(detail))
        .route("/api/v1/events/{eventId}/results/{raceId}", get(results))
        .route(
            "/api/v1/events/{eventId}/startlist/{raceId}",
            get(startlist),
        )
        .route("/api/v1/events/{eventId}/oncourse", get(oncourse))
        .route("/api/v1/events/{eventId}/categories", get(categories))
        .route("/api/v1/events/{eventId}/image", get(image))
        .route("/api/v1/events/{eventId}/ws", get(ws_upgrade))
}

fn public_event(state: &AppState, id: &str) -> Result<Arc<crate::model::Event>, ApiError> {
    let snap = state.merge.snapshot();
    match snap.event(id) {
        Some(e) if e.header.status.is_public() => Ok(Arc::clone(e)),
        _ => Err(ApiError::not_found("Event not found")),
    }
}

/// Serializes `value` for the cache.
fn to_json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(value)
        .map_err(|e| ApiError::new(ErrorCode::Unavailable, format!("serialization failed: {e}")))
}

fn key(route: &'static str, event: &str, race: &str, variant: String) -> Key {
    Key {
        route,
        event: event.to_owned(),
        race: race.to_owned(),
        variant,
    }
}

// The handlers take the `Request` (last) rather than a `HeaderMap`: axum's `HeaderMap`
// extractor clones every header of the request, and a cache hit has little else to do.

/// One public event's reply from the cache: computed at most once per `seq` of the event.
fn cached_event_reply<T: serde::Serialize>(
    state: &AppState,
    headers: &HeaderMap,
    key: Key,
    compute: impl FnOnce(&crate::model::Event) -> Result<T, ApiError>,
) -> Res {
    let snap = state.merge.snapshot();
    let e = match snap.event(&key.event) {
        Some(e) if e.header.status.is_public() => Arc::clone(e),
        _ => return Err(ApiError::not_found("Event not found")),
    };
    let version = e.header.seq;
    state.cache.reply(key, &snap.epoch, version, headers, || {
        to_json(&compute(&e)?)
    })
}

async fn list(State(state): State<AppState>, req: Request) -> Res {
    let snap = state.merge.snapshot();
    let mut events: Vec<_> = snap
        .events
        .values()
        .filter(|e| e.header.status.is_public())
        .collect();
    // What the list shows changes only with an event's commit (its seq), or when an event
    // becomes public or goes: a digest of the public ids and their seqs is its version.
    let mut digest = std::hash::DefaultHasher::new();
    for e in &events {
        std::hash::Hash::hash(&(&e.header.event_id, e.header.seq), &mut digest);
    }
    let version = std::hash::Hasher::finish(&digest);
    state.cache.reply(
        key("/api/v1/events", "", "", String::new()),
        &snap.epoch,
        version,
        req.headers(),
        || {
            // start_date descending, events without a date last.
            events.sort_by(|a, b| {
                let (da, db) = (&a.header.meta.start_date, &b.header.meta.start_date);
                da.is_none()
                    .cmp(&db.is_none())
                    .then_with(|| db.cmp(da))
                    .then_with(|| a.header.event_id.cmp(&b.header.event_id))
            });
            let list: Vec<wire::EventSummary> =
                events.into_iter().map(|e| wire::event_summary(e)).collect();
            to_json(&serde_json::json!({ "events": list }))
        },
    )
}

async fn detail(State(state): State<AppState>, EventId(id): EventId, req: Request) -> Res {
    cached_event_reply(
        &state,
        req.headers(),
        key("detail", &id, "", String::new()),
        |e| Ok(wire::event_detail(e)),
    )
}

fn flag(v: Option<String>) -> bool {
    matches!(v.as_deref(), Some("true") | Some("1"))
}

async fn results(
    State(state): State<AppState>,
    ids: RaceIds,
    RawQuery(q): RawQuery,
    req: Request,
) -> Res {
    let q = q.as_deref();
    let cat = query_param(q, "catId");
    let detailed = flag(query_param(q, "detailed"));
    // An unknown category is a small entry (no rows); its length counts against the bound.
    let variant = format!("{detailed}:{}", cat.as_deref().unwrap_or(""));
    let k = key("results", &ids.event_id, &ids.race_id, variant);
    cached_event_reply(&state, req.headers(), k, |e| {
        wire::race_results(e, &ids.race_id, cat.as_deref(), detailed)
            .ok_or_else(|| ApiError::not_found("Race not found"))
    })
}

async fn startlist(State(state): State<AppState>, ids: RaceIds, req: Request) -> Res {
    let k = key("startlist", &ids.event_id, &ids.race_id, String::new());
    cached_event_reply(&state, req.headers(), k, |e| {
        wire::startlist(e, &ids.race_id).ok_or_else(|| ApiError::not_found("Race not found"))
    })
}

async fn oncourse(State(state): State<AppState>, EventId(id): EventId, req: Request) -> Res {
    cached_event_reply(
        &state,
        req.headers(),
        key("oncourse", &id, "", String::new()),
        |e| Ok(serde_json::json!({ "oncourse": wire::oncourse(e) })),
    )
}

async fn categories(State(state): State<AppState>, EventId(id): EventId, req: Request) -> Res {
    cached_event_reply(
        &state,
        req.headers(),
        key("categories", &id, "", String::new()),
        |e| Ok(serde_json::json!({ "categories": wire::categories(e) })),
    )
}

async fn image(State(state): State<AppState>, EventId(id): EventId) -> Res {
    // Unlike live-mini, a draft event's image is not public either.
    let e = public_event(&state, &id).map_err(|_| ApiError::not_found("Image not found"))?;
    let img = e
        .header
        .image
        .as_ref()
        .ok_or_else(|| ApiError::not_found("Image not found"))?;
    let mut r = img.bytes.as_ref().clone().into_response();
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_str(&img.content_type).unwrap_or(HeaderValue::from_static("image/png")),
    );
    h.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    // An SVG opened directly must not run scripts on our origin.
    h.insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; sandbox"),
    );
    Ok(r)
}

/// `GET /api/v1/events/{eventId}/ws`.
///
/// DISPATCH POINT for the WebSocket hub (`src/hub/`): the hub checks the event (404 unknown
/// or draft, 410 official, 503 room full) and performs the upgrade here; its refusals become
/// [`ApiError`]s. The connection is served `with_upgrades()`, and hyper's `OnUpgrade` travels
/// in the request's extensions. Without a hub: 404.
async fn ws_upgrade(
    State(state): State<AppState>,
    EventId(event_id): EventId,
    req: Request,
) -> Result<Response, ApiError> {
    // A WebSocket is opened with GET only; HEAD reaches this handler as GET (see [`Head`]).
    if req.extensions().get::<Head>().is_some() {
        return Err(not_found_route("HEAD", req.uri().path()));
    }
    let Some(hub) = &state.hub else {
        return Err(ApiError::not_found("WebSocket endpoint not available"));
    };
    // One address may hold at most `max_ws_per_ip` sockets (the client address is the
    // trusted proxy's X-Forwarded-For when it comes through one). The slot lives as long as
    // the socket.
    let client = req
        .extensions()
        .get::<ClientAddr>()
        .map(|c| c.0)
        .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
    let Some(slot) = PerIp::try_acquire(&state.ws_per_ip, client, state.settings.max_ws_per_ip)
    else {
        tracing::debug!(%client, "WebSocket refused: per-address limit");
        return Err(ApiError::new(
            ErrorCode::ConnectionLimitReached,
            "Too many WebSocket connections from this address",
        ));
    };
    Ok(hub.upgrade_guarded(req, &event_id, slot)?.into_response())
}
