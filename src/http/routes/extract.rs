//! Typed extractors: the path's ids, the master key and the event API keys. Each one's
//! rejection is an [`ApiError`], so a handler sees only checked input.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{FromRequestParts, Path};
use hyper::http::request::Parts;

use crate::http::auth::{check_api_key, check_api_key_for, check_master, MASTER_KEY_HEADER};
use crate::http::error::ApiError;
use crate::http::AppState;
use crate::model::Event;

/// The percent-decoded path parameters of the matched route (`{eventId}`, `{raceId}`).
struct Params(HashMap<String, String>);

impl Params {
    async fn from_parts(parts: &mut Parts, state: &AppState) -> Result<Params, ApiError> {
        Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map(|Path(p)| Params(p))
            .map_err(|_| ApiError::invalid("Path is not valid percent-encoded UTF-8"))
    }

    fn take(&mut self, name: &str) -> String {
        // The router only runs a handler whose template names the parameter.
        self.0.remove(name).unwrap_or_default()
    }
}

/// `{eventId}` of the route.
pub struct EventId(pub String);

impl FromRequestParts<AppState> for EventId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(EventId(
            Params::from_parts(parts, state).await?.take("eventId"),
        ))
    }
}

/// `{raceId}` of a route without an event (the scoreboard's `/api/xml/races/{raceId}`).
pub struct RaceId(pub String);

impl FromRequestParts<AppState> for RaceId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(RaceId(
            Params::from_parts(parts, state).await?.take("raceId"),
        ))
    }
}

/// `{eventId}` and `{raceId}` of the route.
pub struct RaceIds {
    pub event_id: String,
    pub race_id: String,
}

impl FromRequestParts<AppState> for RaceIds {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let mut p = Params::from_parts(parts, state).await?;
        Ok(RaceIds {
            event_id: p.take("eventId"),
            race_id: p.take("raceId"),
        })
    }
}

/// Proof that the request carries a valid `X-Master-Key` (or that the admin API is open in
/// dev mode with no key configured).
pub struct MasterKey;

impl FromRequestParts<AppState> for MasterKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        check_master(
            &parts.headers,
            &state.settings.master_keys,
            state.settings.dev,
        )?;
        Ok(MasterKey)
    }
}

/// The event whose API key (`X-API-Key`) the request carries, valid now.
pub struct EventKey(pub Arc<Event>);

impl FromRequestParts<AppState> for EventKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        check_api_key(&parts.headers, &state.merge.snapshot()).map(EventKey)
    }
}

/// The event the URL names (`{eventId}`), when the request's API key is that event's own.
pub struct EventKeyFor(pub Arc<Event>);

impl FromRequestParts<AppState> for EventKeyFor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let EventId(id) = EventId::from_request_parts(parts, state).await?;
        check_api_key_for(&parts.headers, &state.merge.snapshot(), &id).map(EventKeyFor)
    }
}

/// The event the URL names, for a request that may change it: with the event's own
/// `X-API-Key` (live-mini's rule), or with `X-Master-Key` (the operator console, which must
/// still act on an event whose key is outside its validity window, e.g. to make it official
/// the day after). A request that sends a master key is judged by it alone: a wrong one is a
/// 401, never a fall-back to the API key.
pub struct EventAdmin(pub Arc<Event>);

impl FromRequestParts<AppState> for EventAdmin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if !parts.headers.contains_key(MASTER_KEY_HEADER) {
            return EventKeyFor::from_request_parts(parts, state)
                .await
                .map(|EventKeyFor(e)| EventAdmin(e));
        }
        let EventId(id) = EventId::from_request_parts(parts, state).await?;
        MasterKey::from_request_parts(parts, state).await?;
        state
            .merge
            .snapshot()
            .event(&id)
            .cloned()
            .map(EventAdmin)
            .ok_or_else(|| ApiError::not_found(format!("Event not found: {id}")))
    }
}
