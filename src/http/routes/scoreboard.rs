//! c123-server's routes for c123-scoreboard (`protocol/scoreboard.md`): the `/ws` upgrade
//! into [`crate::scoreboard`] and the REST a scoreboard reads at start-up and reconnect.
//! Every answer allows any origin: a scoreboard page is usually served from elsewhere.
//! Without the scoreboard service every route is 404.

use axum::extract::{RawQuery, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use hyper::header::{HeaderValue, ACCESS_CONTROL_ALLOW_ORIGIN, HOST};

use super::body::{ok, Res};
use super::extract::{MasterKey, RaceId};
use super::{not_found_route, Head};
use crate::http::error::{ApiError, ErrorCode};
use crate::http::{AppState, ClientAddr, PerIp};
use crate::model::Event;
use crate::scoreboard::{rest, Scoreboard, UpgradeError};
use crate::uri::query_param;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ws", get(ws_upgrade))
        .route("/api/discover", get(discover))
        .route("/api/status", get(status))
        .route("/api/xml/status", get(xml_status))
        .route("/api/xml/schedule", get(schedule))
        .route("/api/xml/races/{raceId}", get(race))
        .route("/api/xml/races/{raceId}/results", get(results))
        .route("/api/broadcast/refresh", post(refresh))
}

fn service(state: &AppState) -> Result<&Scoreboard, ApiError> {
    state
        .scoreboard
        .as_ref()
        .ok_or_else(|| ApiError::not_found("Scoreboard service not available"))
}

fn cors(res: Res) -> Res {
    let mut r = res?;
    r.headers_mut()
        .insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    Ok(r)
}

/// The served event, or 404 naming why.
fn served(state: &AppState) -> Result<std::sync::Arc<Event>, ApiError> {
    let sb = service(state)?;
    let snap = state.merge.snapshot();
    sb.served(&snap)
        .cloned()
        .ok_or_else(|| ApiError::not_found("No event is served: import an export first"))
}

/// The port the client reached us on (`Host`), which is what c123-server reports.
fn request_port(req: &Request) -> u16 {
    req.headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.rsplit_once(':'))
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or(80)
}

async fn discover(State(state): State<AppState>, req: Request) -> Res {
    let sb = service(&state)?;
    let snap = state.merge.snapshot();
    let body = rest::discover(sb.served(&snap).map(|e| &**e), request_port(&req));
    cors(ok(&body))
}

async fn status(State(state): State<AppState>) -> Res {
    let sb = service(&state)?;
    let snap = state.merge.snapshot();
    let live = rest::Live {
        uptime_s: sb.uptime().as_secs(),
        c123_connected: sb.c123_connected(),
        scoreboards: sb.connected(),
        current_race: sb.current_race(),
    };
    cors(ok(&rest::status(sb.served(&snap).map(|e| &**e), &live)))
}

async fn xml_status(State(state): State<AppState>) -> Res {
    let sb = service(&state)?;
    let snap = state.merge.snapshot();
    cors(ok(&rest::xml_status(sb.served(&snap).map(|e| &**e))))
}

async fn schedule(State(state): State<AppState>) -> Res {
    cors(ok(&rest::schedule(&*served(&state)?)))
}

async fn race(State(state): State<AppState>, RaceId(race_id): RaceId) -> Res {
    let ev = served(&state)?;
    let body = rest::race_detail(&ev, &race_id)
        .ok_or_else(|| ApiError::not_found(format!("Race not found: {race_id}")))?;
    cors(ok(&body))
}

async fn results(
    State(state): State<AppState>,
    RaceId(race_id): RaceId,
    RawQuery(query): RawQuery,
) -> Res {
    let ev = served(&state)?;
    let merged = match query_param(query.as_deref(), "merged").as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::invalid("merged must be 'true' or 'false'")),
    };
    let body = if merged {
        rest::merged_results(&ev, &race_id)
    } else {
        rest::race_results(&ev, &race_id)
    }
    .ok_or_else(|| ApiError::not_found(format!("Race not found: {race_id}")))?;
    cors(ok(&body))
}

/// `POST /api/broadcast/refresh` (master key): every scoreboard reloads. An optional JSON
/// body `{"reason": "..."}` is not read; the reason is fixed.
async fn refresh(State(state): State<AppState>, _: MasterKey) -> Res {
    let sb = service(&state)?;
    let n = sb.force_refresh("Admin triggered refresh");
    ok(&serde_json::json!({ "success": true, "clientsNotified": n }))
}

/// `GET /ws` (`?clientId=` is accepted and not needed: every scoreboard gets the same feed).
async fn ws_upgrade(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    if req.extensions().get::<Head>().is_some() {
        return Err(not_found_route("HEAD", req.uri().path()));
    }
    let sb = service(&state)?.clone();
    if let Some(id) = query_param(req.uri().query(), "clientId") {
        tracing::debug!(client_id = %id.chars().take(64).collect::<String>(), "scoreboard connects");
    }
    // The same per-address budget as the spectators' sockets.
    let client = req
        .extensions()
        .get::<ClientAddr>()
        .map(|c| c.0)
        .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
    let Some(slot) = PerIp::try_acquire(&state.ws_per_ip, client, state.settings.max_ws_per_ip)
    else {
        return Err(ApiError::new(
            ErrorCode::ConnectionLimitReached,
            "Too many WebSocket connections from this address",
        ));
    };
    match sb.upgrade(req, slot) {
        Ok(r) => Ok(r.into_response()),
        Err(e @ UpgradeError::NotWebSocket(_)) => Err(ApiError::invalid(e.to_string())),
        Err(e @ UpgradeError::Full { .. }) => Err(ApiError::new(
            ErrorCode::ConnectionLimitReached,
            e.to_string(),
        )),
    }
}
