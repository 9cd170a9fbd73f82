//! Routing and handlers. Every handler returns a response; bad input never panics and never
//! becomes a 500.

use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

use super::auth::{check_api_key, check_api_key_for, check_master, validity_iso};
use super::error::{ApiError, ErrorCode};
use super::json_response::json_bytes;
use super::{wire, AppState};
use crate::merge::{
    config_patch_allowed, ingest_allowed, AdminCommand, DataKind, Input, MergeError, Outcome,
    ResultUpdate, Via, XmlOrigin, XmlTarget,
};
use crate::model::{
    EventConfig, EventImage, EventMeta, EventStatus, Gates, OnCourseEntry, MAX_RANK,
    MAX_RUN_PENALTY_S, MAX_TIME_MS,
};
use crate::time::parse_date_days;
use crate::uri::{query_param, split_path};

type Resp = Response<Full<Bytes>>;
type Res = Result<Resp, ApiError>;

/// Most items one oncourse POST may carry.
pub const MAX_ONCOURSE_ITEMS: usize = 1_000;
/// Most items one results POST may carry.
pub const MAX_RESULT_ITEMS: usize = 10_000;
/// Largest event image (decoded).
pub const MAX_IMAGE_BYTES: usize = 1024 * 1024;

fn json<T: Serialize>(status: StatusCode, value: &T) -> Res {
    let body = serde_json::to_vec(value)
        .map_err(|e| ApiError::new(ErrorCode::Unavailable, format!("serialization failed: {e}")))?;
    Ok(json_bytes(status, body))
}

fn ok<T: Serialize>(value: &T) -> Res {
    json(StatusCode::OK, value)
}

/// Entry point for every request.
pub async fn handle(req: Request<Incoming>, state: AppState) -> Resp {
    let method = req.method().clone();
    let has_body = req
        .headers()
        .get(CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() != b"0")
        || req.headers().contains_key(hyper::header::TRANSFER_ENCODING);
    let gzip_ok = super::static_files::accepts_gzip(req.headers());
    let (route, result) = dispatch(req, &state).await;
    let mut resp = result.unwrap_or_else(ApiError::into_response);
    // An error may be answered before the body was read (401 before a 10 MiB upload); hyper
    // then closes the connection, and a client that reuses it would lose its next request.
    // Saying so lets the client open a new connection instead.
    if has_body && (resp.status().is_client_error() || resp.status().is_server_error()) {
        resp.headers_mut()
            .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
    }
    // HEAD too: its headers (Content-Encoding, Content-Length) must be those of GET.
    if gzip_ok {
        resp = compress_json(resp).await;
    }
    state
        .metrics
        .request(route, method.as_str(), resp.status().as_u16());
    if method == Method::HEAD {
        let size = hyper::body::Body::size_hint(resp.body())
            .exact()
            .unwrap_or(0);
        *resp.body_mut() = Full::default();
        resp.headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from(size));
    }
    resp
}

/// Gzips a JSON body for clients that accept it: phones on venue networks fetch the results
/// tables (tens of KB of repetitive JSON) over REST after every (re)connect.
async fn compress_json(resp: Resp) -> Resp {
    use hyper::header::{CONTENT_ENCODING, VARY};
    let is_json = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json || resp.headers().contains_key(CONTENT_ENCODING) {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let Ok(collected) = body.collect().await;
    let bytes = collected.to_bytes();
    match super::gzip::gzip_with(&bytes, flate2::Compression::default()) {
        Some(gz) if gz.len() < bytes.len() => {
            parts
                .headers
                .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            parts
                .headers
                .insert(VARY, HeaderValue::from_static("accept-encoding"));
            Response::from_parts(parts, Full::new(gz))
        }
        _ => Response::from_parts(parts, Full::new(bytes)),
    }
}

fn not_found_route(method: &Method, path: &str) -> ApiError {
    ApiError::not_found(format!("Route {method} {path} not found"))
}

async fn dispatch(req: Request<Incoming>, state: &AppState) -> (&'static str, Res) {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let get = method == Method::GET || method == Method::HEAD;
    let Some(segs) = split_path(&path) else {
        return (
            "unmatched",
            Err(ApiError::invalid("Path is not valid percent-encoded UTF-8")),
        );
    };
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    match s.as_slice() {
        ["health"] if get => ("/health", ok(&serde_json::json!({"status": "ok"}))),
        ["healthz"] if get => ("/healthz", ok(&serde_json::json!({"status": "ok"}))),
        ["readyz"] if get => ("/readyz", readyz(state)),
        ["metrics"] if get => ("/metrics", Ok(metrics(state))),
        ["api", "v1", rest @ ..] => match rest {
            ["admin", "events"] if method == Method::POST => {
                ("/api/v1/admin/events", create_event(req, state).await)
            }
            ["admin", "events"] if get => ("/api/v1/admin/events", admin_list(&req, state)),
            ["admin", "status"] if get => ("/api/v1/admin/status", admin_status(&req, state)),
            ["admin", "storage"] if method == Method::PUT => {
                ("/api/v1/admin/storage", set_storage(req, state).await)
            }
            ["admin", "events", id] if method == Method::DELETE => (
                "/api/v1/admin/events/{eventId}",
                delete_event(&req, state, id).await,
            ),
            ["admin", "events", id, "status"] if method == Method::PATCH => (
                "/api/v1/admin/events/{eventId}/status",
                set_status(req, state, id).await,
            ),
            ["admin", "events", id, "config"] if get => (
                "/api/v1/admin/events/{eventId}/config",
                get_config(&req, state, id),
            ),
            ["admin", "events", id, "config"] if method == Method::PATCH => (
                "/api/v1/admin/events/{eventId}/config",
                set_config(req, state, id).await,
            ),
            ["ingest", "xml"] if method == Method::POST => {
                ("/api/v1/ingest/xml", ingest_xml(req, state).await)
            }
            ["ingest", "oncourse"] if method == Method::POST => {
                ("/api/v1/ingest/oncourse", ingest_oncourse(req, state).await)
            }
            ["ingest", "results"] if method == Method::POST => {
                ("/api/v1/ingest/results", ingest_results(req, state).await)
            }
            ["events"] if get => ("/api/v1/events", public_list(state)),
            ["events", id] if get => ("/api/v1/events/{eventId}", public_detail(state, id)),
            ["events", id, "results", race] if get => (
                "/api/v1/events/{eventId}/results/{raceId}",
                public_results(&req, state, id, race),
            ),
            ["events", id, "startlist", race] if get => (
                "/api/v1/events/{eventId}/startlist/{raceId}",
                public_startlist(state, id, race),
            ),
            ["events", id, "oncourse"] if get => (
                "/api/v1/events/{eventId}/oncourse",
                public_oncourse(state, id),
            ),
            ["events", id, "categories"] if get => (
                "/api/v1/events/{eventId}/categories",
                public_categories(state, id),
            ),
            ["events", id, "image"] if get => {
                ("/api/v1/events/{eventId}/image", public_image(state, id))
            }
            ["events", id, "ws"] if method == Method::GET => (
                "/api/v1/events/{eventId}/ws",
                Ok(ws_upgrade(req, state.clone(), id).await),
            ),
            _ => ("unmatched", Err(not_found_route(&method, &path))),
        },
        // Unknown `/api/...` stays a JSON 404; every other GET is the front end's.
        ["api", ..] => ("unmatched", Err(not_found_route(&method, &path))),
        _ if get => (
            "static",
            Ok(state.frontend.serve(&path, req.headers()).await),
        ),
        _ => ("unmatched", Err(not_found_route(&method, &path))),
    }
}

// ---------------------------------------------------------------------------------------------
// WebSocket dispatch point

/// `GET /api/v1/events/{eventId}/ws`.
///
/// DISPATCH POINT for the WebSocket hub (`src/hub/`): the hub checks the event (404 unknown
/// or draft, 410 official, 503 room full) and performs the upgrade here. The connection is
/// served `with_upgrades()`, so `hyper::upgrade::on(req)` works. Without a hub: 404.
pub async fn ws_upgrade(req: Request<Incoming>, state: AppState, event_id: &str) -> Resp {
    let Some(hub) = &state.hub else {
        return ApiError::not_found("WebSocket endpoint not available").into_response();
    };
    // One address may hold at most `max_ws_per_ip` sockets (the client address is the
    // trusted proxy's X-Forwarded-For when it comes through one). The slot lives as long as
    // the socket.
    let client = req
        .extensions()
        .get::<super::ClientAddr>()
        .map(|c| c.0)
        .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
    let Some(slot) =
        super::PerIp::try_acquire(&state.ws_per_ip, client, state.settings.max_ws_per_ip)
    else {
        tracing::debug!(%client, "WebSocket refused: per-address limit");
        return ApiError::new(
            ErrorCode::ConnectionLimitReached,
            "Too many WebSocket connections from this address",
        )
        .into_response();
    };
    hub.upgrade_guarded(req, event_id, slot)
}

// ---------------------------------------------------------------------------------------------
// Bodies

async fn read_body(
    req: Request<Incoming>,
    limit: usize,
) -> Result<(hyper::http::request::Parts, Bytes), ApiError> {
    let (parts, body) = req.into_parts();
    if let Some(len) = parts.headers.get(CONTENT_LENGTH) {
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
    let deadline = parts
        .extensions
        .get::<super::BodyDeadline>()
        .map(|d| d.0)
        .unwrap_or_else(|| tokio::time::Instant::now() + super::DEFAULT_BODY_READ_TIMEOUT);
    let collected = tokio::time::timeout_at(deadline, Limited::new(body, limit).collect()).await;
    let Ok(collected) = collected else {
        return Err(ApiError::new(
            ErrorCode::RequestTimeout,
            "The request body did not arrive in time",
        ));
    };
    match collected {
        Ok(c) => Ok((parts, c.to_bytes())),
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
fn explicit<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

// ---------------------------------------------------------------------------------------------
// Health and metrics

fn readyz(state: &AppState) -> Res {
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

fn metrics(state: &AppState) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(state.metrics.render())));
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    r
}

// ---------------------------------------------------------------------------------------------
// Admin

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateEventBody {
    event_id: String,
    main_title: String,
    #[serde(default)]
    sub_title: Option<String>,
    #[serde(default)]
    location: Option<String>,
    #[serde(default)]
    facility: Option<String>,
    #[serde(default)]
    start_date: Option<String>,
    #[serde(default)]
    end_date: Option<String>,
    #[serde(default)]
    discipline: Option<String>,
    #[serde(default)]
    image_data: Option<String>,
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

/// Event ids appear in URLs: 1–100 characters of `A-Z a-z 0-9 . _ -` (RFC 3986 unreserved,
/// so never percent-encoded), except `.` and `..`: clients remove those dot-segments from a
/// URL path (RFC 3986 §5.2.4), so such an event could never be reached.
pub fn valid_event_id(id: &str) -> bool {
    !id.is_empty()
        && id != "."
        && id != ".."
        && id.len() <= 100
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn text_field(name: &str, v: Option<String>) -> Result<Option<String>, ApiError> {
    match v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()) {
        Some(s) if s.chars().count() > 500 => Err(ApiError::invalid(format!(
            "{name}: longer than 500 characters"
        ))),
        other => Ok(other),
    }
}

fn date_field(name: &str, v: Option<String>) -> Result<Option<String>, ApiError> {
    match text_field(name, v)? {
        None => Ok(None),
        Some(s) => {
            if parse_date_days(&s).is_none() {
                return Err(ApiError::invalid(format!(
                    "{name}: '{s}' is not a date (YYYY-MM-DD)"
                )));
            }
            Ok(Some(s[..10].to_owned()))
        }
    }
}

/// Decodes `imageData` (data URI or raw base64) and checks that it is really an image.
pub fn decode_image(data: &str) -> Result<EventImage, ApiError> {
    let b64 = match data.strip_prefix("data:") {
        Some(rest) => {
            let (meta, payload) = rest
                .split_once(',')
                .ok_or_else(|| ApiError::invalid("imageData: data URI without ','"))?;
            if !meta.starts_with("image/") || !meta.ends_with(";base64") {
                return Err(ApiError::invalid(
                    "imageData: expected data:image/<type>;base64,<data>",
                ));
            }
            payload
        }
        None => data,
    };
    let cleaned: String = b64.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(cleaned.as_bytes())
        .map_err(|e| ApiError::invalid(format!("imageData: not valid base64 ({e})")))?;
    if bytes.is_empty() {
        return Err(ApiError::invalid("imageData: empty image"));
    }
    if bytes.len() > MAX_IMAGE_BYTES {
        return Err(ApiError::invalid(format!(
            "imageData: image is {} bytes, over the limit of {MAX_IMAGE_BYTES}",
            bytes.len()
        )));
    }
    let content_type = sniff_image(&bytes)
        .ok_or_else(|| ApiError::invalid("imageData: not a PNG, JPEG, GIF, WebP or SVG image"))?;
    Ok(EventImage {
        content_type: content_type.to_owned(),
        bytes: Arc::new(bytes),
    })
}

/// The image type from its leading bytes.
pub fn sniff_image(b: &[u8]) -> Option<&'static str> {
    if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if b.len() >= 12 && &b[..4] == b"RIFF" && &b[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        let text = std::str::from_utf8(b).ok()?;
        let t = text.trim_start_matches('\u{feff}').trim_start();
        let head: String = t.chars().take(4096).collect();
        let looks_xml = t.starts_with('<');
        (looks_xml && head.contains("<svg")).then_some("image/svg+xml")
    }
}

/// A validated `POST /api/v1/admin/events` body.
#[derive(Debug)]
pub struct NewEvent {
    pub event_id: String,
    pub meta: EventMeta,
    pub image: Option<EventImage>,
}

/// The body of `POST /api/v1/admin/events`, decoded and validated (ids, dates, image).
/// Pure (fuzzed).
pub fn parse_create_body(body: &[u8]) -> Result<NewEvent, ApiError> {
    let b: CreateEventBody = decode(body)?;
    let event_id = b.event_id.trim().to_owned();
    if event_id.is_empty() {
        return Err(ApiError::invalid("Missing required field: eventId"));
    }
    if !valid_event_id(&event_id) {
        return Err(ApiError::invalid(
            "eventId: use 1-100 characters of A-Z, a-z, 0-9, '.', '_' and '-' (not '.' or '..')",
        ));
    }
    let main_title = text_field("mainTitle", Some(b.main_title))?
        .ok_or_else(|| ApiError::invalid("Missing required field: mainTitle"))?;
    let start_date = date_field("startDate", b.start_date)?;
    let end_date = date_field("endDate", b.end_date)?;
    if let (Some(s), Some(e)) = (&start_date, &end_date) {
        if s > e {
            return Err(ApiError::invalid("endDate: before startDate"));
        }
    }
    let image = match b.image_data.as_deref().filter(|s| !s.is_empty()) {
        Some(d) => Some(decode_image(d)?),
        None => None,
    };
    let meta = EventMeta {
        main_title,
        sub_title: text_field("subTitle", b.sub_title)?,
        location: text_field("location", b.location)?,
        facility: text_field("facility", b.facility)?,
        start_date: start_date.clone(),
        end_date: end_date.clone(),
        discipline: text_field("discipline", b.discipline)?,
    };
    Ok(NewEvent {
        event_id,
        meta,
        image,
    })
}

async fn create_event(req: Request<Incoming>, state: &AppState) -> Res {
    check_master(
        req.headers(),
        &state.settings.master_keys,
        state.settings.dev,
    )?;
    let (_, body) = read_body(req, state.settings.body_limit).await?;
    let NewEvent {
        event_id,
        meta,
        image,
    } = parse_create_body(&body)?;
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

fn unexpected() -> ApiError {
    ApiError::new(
        ErrorCode::Unavailable,
        "unexpected outcome from the merge loop",
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

/// `GET /api/v1/admin/status`: what the operator needs to see of the inputs.
fn admin_status(req: &Request<Incoming>, state: &AppState) -> Res {
    check_master(
        req.headers(),
        &state.settings.master_keys,
        state.settings.dev,
    )?;
    let sources: Vec<crate::ingest::tcp::SourceStatus> = state
        .inputs
        .sources
        .iter()
        .filter_map(|s| s.lock().ok().map(|s| s.report()))
        .collect();
    let watcher = state
        .inputs
        .watcher
        .as_ref()
        .and_then(|w| w.lock().ok().map(|w| w.clone()));
    let snap = state.merge.snapshot();
    ok(&serde_json::json!({
        "mergeLoopRunning": state.merge.is_running(),
        "lastCommitFailed": state.merge.last_commit_failed(),
        "snapshotAgeMs": snap.committed_at.elapsed().as_millis() as u64,
        "epoch": snap.epoch,
        "events": snap.events.values().map(|e| serde_json::json!({
            "eventId": e.header.event_id,
            "status": e.header.status.as_str(),
            "seq": e.header.seq,
            "hasXmlData": e.header.has_xml_data,
            "onCourse": e.oncourse.len(),
        })).collect::<Vec<_>>(),
        "tcpSources": sources,
        "xmlWatcher": watcher,
        // Stored rows start-up could not read and left out (count, first 100 listed).
        "skippedRows": state.merge.skipped_rows(),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StorageBody {
    /// The new database size cap in MB; `null` lifts it. Required.
    #[serde(default, deserialize_with = "explicit")]
    max_db_size_mb: Option<Option<u64>>,
}

impl StorageBody {
    /// The cap in MB; `None`: no cap.
    pub fn max_db_size_mb(&self) -> Option<u64> {
        self.max_db_size_mb.flatten()
    }
}

/// `PUT /api/v1/admin/storage` `{"maxDbSizeMb": N|null}`: changes the `--max-db-size` cap at
/// runtime (X-Master-Key), so refused inputs apply again without a restart.
async fn set_storage(req: Request<Incoming>, state: &AppState) -> Res {
    check_master(
        req.headers(),
        &state.settings.master_keys,
        state.settings.dev,
    )?;
    let (_, body) = read_body(req, state.settings.body_limit).await?;
    let b = parse_storage_body(&body)?;
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

/// The body of `PUT /api/v1/admin/storage`, validated.
pub fn parse_storage_body(bytes: &[u8]) -> Result<StorageBody, ApiError> {
    let b: StorageBody = decode(bytes)?;
    match b.max_db_size_mb {
        None => return Err(ApiError::invalid("Missing required field: maxDbSizeMb")),
        Some(Some(0)) => return Err(ApiError::invalid("maxDbSizeMb: must be at least 1")),
        _ => {}
    }
    Ok(b)
}

fn admin_list(req: &Request<Incoming>, state: &AppState) -> Res {
    check_master(
        req.headers(),
        &state.settings.master_keys,
        state.settings.dev,
    )?;
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

async fn delete_event(req: &Request<Incoming>, state: &AppState, id: &str) -> Res {
    check_master(
        req.headers(),
        &state.settings.master_keys,
        state.settings.dev,
    )?;
    match state
        .merge
        .send(Input::Admin(AdminCommand::DeleteEvent {
            event_id: id.to_owned(),
        }))
        .await?
    {
        Outcome::EventDeleted { event_id } => {
            ok(&serde_json::json!({"deleted": true, "eventId": event_id}))
        }
        _ => Err(unexpected()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusBody {
    status: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusChanged {
    event_id: String,
    previous_status: EventStatus,
    status: EventStatus,
    status_changed_at: String,
}

/// The body of `PATCH /api/v1/admin/events/{id}/status`. Pure (fuzzed).
pub fn parse_status_body(body: &[u8]) -> Result<EventStatus, ApiError> {
    let b: StatusBody = decode(body)?;
    b.status
        .parse()
        .map_err(|e| ApiError::invalid(format!("status: {e}")))
}

async fn set_status(req: Request<Incoming>, state: &AppState, id: &str) -> Res {
    check_api_key_for(req.headers(), &state.merge.snapshot(), id)?;
    let (_, body) = read_body(req, state.settings.body_limit).await?;
    let to = parse_status_body(&body)?;
    match state
        .merge
        .send(Input::Admin(AdminCommand::Transition {
            event_id: id.to_owned(),
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

fn get_config(req: &Request<Incoming>, state: &AppState, id: &str) -> Res {
    let event = check_api_key_for(req.headers(), &state.merge.snapshot(), id)?;
    ok(&event.header.config)
}

/// The body of `PATCH /api/v1/admin/events/{id}/config`. Pure (fuzzed).
pub fn parse_config_body(body: &[u8]) -> Result<EventConfig, ApiError> {
    let patch: EventConfig = decode(body)?;
    if let Some(m) = &patch.display_mode {
        if m != "simple" && m != "detailed" {
            return Err(ApiError::invalid(format!(
                "displayMode: '{m}' is not one of simple, detailed"
            )));
        }
    }
    Ok(patch)
}

async fn set_config(req: Request<Incoming>, state: &AppState, id: &str) -> Res {
    let event = check_api_key_for(req.headers(), &state.merge.snapshot(), id)?;
    let (_, body) = read_body(req, state.settings.body_limit).await?;
    let patch = parse_config_body(&body)?;
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
            event_id: id.to_owned(),
            patch,
        }))
        .await?
    {
        Outcome::ConfigSet { config, .. } => ok(&config),
        _ => Err(unexpected()),
    }
}

// ---------------------------------------------------------------------------------------------
// Ingest

#[derive(Deserialize)]
struct XmlBody {
    xml: String,
}

fn ingest_outcome(state: &AppState, kind: &'static str, r: &Result<Resp, ApiError>) {
    let outcome = match r {
        Ok(_) => "applied",
        Err(e) => match e.code {
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::Unavailable => "error",
            _ => "rejected",
        },
    };
    state.metrics.ingest(kind, outcome);
}

/// The export bytes of `POST /api/v1/ingest/xml`: the body itself (`raw`, for an XML
/// content type) or the `xml` field of a JSON object. Pure (fuzzed, then through
/// `xml::parse_export`).
pub fn parse_xml_body(body: Bytes, raw: bool) -> Result<Bytes, ApiError> {
    let xml: Bytes = if raw {
        body
    } else {
        let b: XmlBody = decode(&body)?;
        Bytes::from(b.xml.into_bytes())
    };
    if xml.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid("Missing required field: xml"));
    }
    Ok(xml)
}

async fn ingest_xml(req: Request<Incoming>, state: &AppState) -> Res {
    let r = ingest_xml_inner(req, state).await;
    ingest_outcome(state, "xml", &r);
    r
}

async fn ingest_xml_inner(req: Request<Incoming>, state: &AppState) -> Res {
    let event = check_api_key(req.headers(), &state.merge.snapshot())?;
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
    let (_, body) = read_body(req, state.settings.body_limit_xml).await?;
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

#[derive(Deserialize)]
struct OnCourseBody {
    oncourse: Vec<OnCourseIn>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OnCourseIn {
    participant_id: String,
    race_id: String,
    bib: u32,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    club: Option<String>,
    #[serde(default)]
    position: Option<u32>,
    #[serde(default)]
    gates: Option<Vec<Option<u16>>>,
    #[serde(default)]
    dt_start: Option<String>,
    #[serde(default)]
    dt_finish: Option<String>,
    #[serde(default)]
    time: Option<u32>,
    #[serde(default)]
    pen: Option<u32>,
    #[serde(default)]
    total: Option<u32>,
    #[serde(default)]
    rank: Option<u32>,
    #[serde(default)]
    ttb_diff: Option<String>,
    #[serde(default)]
    ttb_name: Option<String>,
}

fn cs_to_ms(cs: u32) -> i64 {
    i64::from(cs) * 10
}

/// A time or total in centiseconds, refused over [`MAX_TIME_MS`] (24 h).
fn time_cs_to_ms(field: &str, cs: u32) -> Result<i64, ApiError> {
    let ms = cs_to_ms(cs);
    if ms > MAX_TIME_MS {
        return Err(ApiError::invalid(format!(
            "{field}: {cs} is over {} centiseconds (24 hours)",
            MAX_TIME_MS / 10
        )));
    }
    Ok(ms)
}

/// A rank, refused over [`MAX_RANK`].
fn check_rank(field: &str, rank: u32) -> Result<u32, ApiError> {
    if i64::from(rank) > MAX_RANK {
        return Err(ApiError::invalid(format!(
            "{field}: {rank} is over {MAX_RANK}"
        )));
    }
    Ok(rank)
}

/// One gate penalty (seconds), refused over [`Gates::MAX_PENALTY_S`].
fn check_gate_penalty(field: &str, pen: u16) -> Result<u16, ApiError> {
    Gates::check_penalty(u64::from(pen)).map_err(|e| ApiError::invalid(format!("{field}: {e}")))
}

fn pen_cs_to_s(field: &str, cs: u32) -> Result<i64, ApiError> {
    if cs % 100 != 0 {
        return Err(ApiError::invalid(format!(
            "{field}: {cs} is not whole seconds (penalties are centiseconds, multiples of 100)"
        )));
    }
    let s = i64::from(cs / 100);
    if s > MAX_RUN_PENALTY_S {
        return Err(ApiError::invalid(format!(
            "{field}: {cs} is over {} centiseconds (24 hours)",
            MAX_RUN_PENALTY_S * 100
        )));
    }
    Ok(s)
}

fn nonempty(field: &str, s: &str) -> Result<(), ApiError> {
    if s.trim().is_empty() {
        return Err(ApiError::invalid(format!("{field}: must not be empty")));
    }
    Ok(())
}

/// Refuses a string field longer than `max` characters: the bounds of the TCP parser
/// ([`crate::c123::frame::MAX_ID_CHARS`], [`crate::c123::frame::MAX_TEXT_CHARS`]).
fn bounded_len(field: &str, value: Option<&String>, max: usize) -> Result<(), ApiError> {
    match value {
        Some(v) if crate::c123::frame::longer_than(v, max) => Err(ApiError::invalid(format!(
            "{field}: longer than {max} characters"
        ))),
        _ => Ok(()),
    }
}

/// The body of `POST /api/v1/ingest/oncourse`, decoded and validated into domain entries
/// (ms, s). Pure: bytes in, entries or a 400 naming the field out (fuzzed).
pub fn parse_oncourse_body(body: &[u8]) -> Result<Vec<OnCourseEntry>, ApiError> {
    let b: OnCourseBody = decode(body)?;
    if b.oncourse.len() > MAX_ONCOURSE_ITEMS {
        return Err(ApiError::invalid(format!(
            "oncourse: {} items, at most {MAX_ONCOURSE_ITEMS} are accepted",
            b.oncourse.len()
        )));
    }
    let mut entries: Vec<OnCourseEntry> = Vec::with_capacity(b.oncourse.len());
    for (i, e) in b.oncourse.into_iter().enumerate() {
        let f = |name: &str| format!("oncourse[{i}].{name}");
        nonempty(&f("participantId"), &e.participant_id)?;
        nonempty(&f("raceId"), &e.race_id)?;
        {
            use crate::c123::frame::{MAX_ID_CHARS as ID, MAX_TEXT_CHARS as TEXT};
            for (name, value, max) in [
                ("participantId", Some(&e.participant_id), ID),
                ("raceId", Some(&e.race_id), ID),
                ("name", e.name.as_ref(), TEXT),
                ("club", e.club.as_ref(), TEXT),
                ("dtStart", e.dt_start.as_ref(), ID),
                ("dtFinish", e.dt_finish.as_ref(), ID),
                ("ttbDiff", e.ttb_diff.as_ref(), ID),
                ("ttbName", e.ttb_name.as_ref(), TEXT),
            ] {
                bounded_len(&f(name), value, max)?;
            }
        }
        if let Some(g) = &e.gates {
            Gates::check_slots(g.len())
                .map_err(|err| ApiError::invalid(format!("{}: {err}", f("gates"))))?;
            for (k, pen) in g.iter().enumerate() {
                if let Some(pen) = pen {
                    check_gate_penalty(&f(&format!("gates[{k}]")), *pen)?;
                }
            }
        }
        let pen_s = e.pen.map(|p| pen_cs_to_s(&f("pen"), p)).transpose()?;
        let time_ms = e.time.map(|t| time_cs_to_ms(&f("time"), t)).transpose()?;
        let total_ms = e.total.map(|t| time_cs_to_ms(&f("total"), t)).transpose()?;
        let rank = e.rank.map(|r| check_rank(&f("rank"), r)).transpose()?;
        let entry = OnCourseEntry {
            participant_id: Some(e.participant_id),
            race_id: e.race_id,
            bib: e.bib,
            name: e.name.unwrap_or_default(),
            club: e.club,
            position: e.position.unwrap_or(i as u32 + 1),
            gates: e.gates.unwrap_or_default(),
            dt_start: e.dt_start,
            dt_finish: e.dt_finish,
            time_ms,
            pen_s,
            total_ms,
            rank,
            ttb_diff: e.ttb_diff,
            ttb_name: e.ttb_name,
        };
        // One rider once per race: a later entry replaces an earlier one.
        entries.retain(|x| !(x.race_id == entry.race_id && x.bib == entry.bib));
        entries.push(entry);
    }
    Ok(entries)
}

async fn ingest_oncourse(req: Request<Incoming>, state: &AppState) -> Res {
    let r = ingest_oncourse_inner(req, state).await;
    ingest_outcome(state, "oncourse", &r);
    r
}

async fn ingest_oncourse_inner(req: Request<Incoming>, state: &AppState) -> Res {
    let event = check_api_key(req.headers(), &state.merge.snapshot())?;
    let (_, body) = read_body(req, state.settings.body_limit).await?;
    let entries = parse_oncourse_body(&body)?;
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

#[derive(Deserialize)]
struct ResultsBody {
    results: Vec<ResultIn>,
}

#[derive(Deserialize)]
struct GateIn {
    gate: u32,
    #[serde(default)]
    #[allow(dead_code)]
    time: Option<u32>,
    #[serde(default)]
    pen: Option<u16>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResultIn {
    race_id: String,
    participant_id: String,
    bib: u32,
    #[serde(default, deserialize_with = "explicit")]
    time: Option<Option<u32>>,
    #[serde(default, deserialize_with = "explicit")]
    pen: Option<Option<u32>>,
    #[serde(default, deserialize_with = "explicit")]
    total: Option<Option<u32>>,
    /// Accepted and checked, but ranks are always recomputed from the totals.
    #[serde(default)]
    #[allow(dead_code)]
    rnk: Option<u32>,
    #[serde(default, deserialize_with = "explicit")]
    status: Option<Option<String>>,
    #[serde(default)]
    gates: Option<Vec<GateIn>>,
    #[serde(default, deserialize_with = "explicit")]
    dt_start: Option<Option<String>>,
    #[serde(default, deserialize_with = "explicit")]
    dt_finish: Option<Option<String>>,
}

/// The body of `POST /api/v1/ingest/results`, decoded and validated into domain updates
/// (ms, s; `null` clears, omitted leaves). Pure (fuzzed).
pub fn parse_results_body(body: &[u8]) -> Result<Vec<ResultUpdate>, ApiError> {
    let b: ResultsBody = decode(body)?;
    if b.results.len() > MAX_RESULT_ITEMS {
        return Err(ApiError::invalid(format!(
            "results: {} items, at most {MAX_RESULT_ITEMS} are accepted",
            b.results.len()
        )));
    }
    let mut updates = Vec::with_capacity(b.results.len());
    for (i, r) in b.results.into_iter().enumerate() {
        let f = |name: &str| format!("results[{i}].{name}");
        nonempty(&f("raceId"), &r.race_id)?;
        nonempty(&f("participantId"), &r.participant_id)?;
        {
            use crate::c123::frame::MAX_ID_CHARS as ID;
            for (name, value) in [
                ("raceId", Some(&r.race_id)),
                ("participantId", Some(&r.participant_id)),
                ("status", r.status.as_ref().and_then(Option::as_ref)),
                ("dtStart", r.dt_start.as_ref().and_then(Option::as_ref)),
                ("dtFinish", r.dt_finish.as_ref().and_then(Option::as_ref)),
            ] {
                bounded_len(&f(name), value, ID)?;
            }
        }
        // Any status the timing system sends is taken (Canoe123 may add codes): one unknown
        // value must not refuse the whole batch (c123-server would stop pushing).
        let status = match r.status {
            None => None,
            Some(None) => Some(None),
            Some(Some(s)) => Some(
                crate::result_status::normalize(&s)
                    .map_err(|e| ApiError::invalid(format!("{}: {e}", f("status"))))?,
            ),
        };
        let pen_s = match r.pen {
            None => None,
            Some(None) => Some(None),
            Some(Some(p)) => Some(Some(pen_cs_to_s(&f("pen"), p)?)),
        };
        let time_ms = match r.time {
            None => None,
            Some(None) => Some(None),
            Some(Some(t)) => Some(Some(time_cs_to_ms(&f("time"), t)?)),
        };
        let total_ms = match r.total {
            None => None,
            Some(None) => Some(None),
            Some(Some(t)) => Some(Some(time_cs_to_ms(&f("total"), t)?)),
        };
        if let Some(rnk) = r.rnk {
            check_rank(&f("rnk"), rnk)?;
        }
        let gates = match r.gates {
            None => None,
            Some(list) => {
                Gates::check_slots(list.len())
                    .map_err(|err| ApiError::invalid(format!("{}: {err}", f("gates"))))?;
                let mut slots: Vec<Option<u16>> = Vec::new();
                for (k, g) in list.iter().enumerate() {
                    if g.gate == 0 || g.gate as usize > Gates::MAX_SLOTS {
                        return Err(ApiError::invalid(format!(
                            "{}: gate number {} is not in 1..={}",
                            f(&format!("gates[{k}].gate")),
                            g.gate,
                            Gates::MAX_SLOTS
                        )));
                    }
                    if let Some(pen) = g.pen {
                        check_gate_penalty(&f(&format!("gates[{k}].pen")), pen)?;
                    }
                    let idx = g.gate as usize - 1;
                    if slots.len() <= idx {
                        slots.resize(idx + 1, None);
                    }
                    slots[idx] = g.pen;
                }
                Some(Gates(slots))
            }
        };
        updates.push(ResultUpdate {
            race_id: r.race_id,
            participant_id: r.participant_id,
            bib: Some(r.bib),
            time_ms,
            pen_s,
            total_ms,
            status,
            gates,
            dt_start: r.dt_start,
            dt_finish: r.dt_finish,
        });
    }
    Ok(updates)
}

async fn ingest_results(req: Request<Incoming>, state: &AppState) -> Res {
    let r = ingest_results_inner(req, state).await;
    ingest_outcome(state, "results", &r);
    r
}

async fn ingest_results_inner(req: Request<Incoming>, state: &AppState) -> Res {
    let event = check_api_key(req.headers(), &state.merge.snapshot())?;
    let (_, body) = read_body(req, state.settings.body_limit).await?;
    let updates = parse_results_body(&body)?;
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

// ---------------------------------------------------------------------------------------------
// Public API

fn public_event(state: &AppState, id: &str) -> Result<Arc<crate::model::Event>, ApiError> {
    let snap = state.merge.snapshot();
    match snap.event(id) {
        Some(e) if e.header.status.is_public() => Ok(Arc::clone(e)),
        _ => Err(ApiError::not_found("Event not found")),
    }
}

fn public_list(state: &AppState) -> Res {
    let snap = state.merge.snapshot();
    let mut events: Vec<_> = snap
        .events
        .values()
        .filter(|e| e.header.status.is_public())
        .collect();
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
    ok(&serde_json::json!({ "events": list }))
}

fn public_detail(state: &AppState, id: &str) -> Res {
    let e = public_event(state, id)?;
    ok(&wire::event_detail(&e))
}

fn flag(v: Option<String>) -> bool {
    matches!(v.as_deref(), Some("true") | Some("1"))
}

fn public_results(req: &Request<Incoming>, state: &AppState, id: &str, race: &str) -> Res {
    let e = public_event(state, id)?;
    let q = req.uri().query();
    let cat = query_param(q, "catId");
    let detailed = flag(query_param(q, "detailed"));
    let r = wire::race_results(&e, race, cat.as_deref(), detailed)
        .ok_or_else(|| ApiError::not_found("Race not found"))?;
    ok(&r)
}

fn public_startlist(state: &AppState, id: &str, race: &str) -> Res {
    let e = public_event(state, id)?;
    let r = wire::startlist(&e, race).ok_or_else(|| ApiError::not_found("Race not found"))?;
    ok(&r)
}

fn public_oncourse(state: &AppState, id: &str) -> Res {
    let e = public_event(state, id)?;
    ok(&serde_json::json!({ "oncourse": wire::oncourse(&e) }))
}

fn public_categories(state: &AppState, id: &str) -> Res {
    let e = public_event(state, id)?;
    ok(&serde_json::json!({ "categories": wire::categories(&e) }))
}

fn public_image(state: &AppState, id: &str) -> Res {
    // Unlike live-mini, a draft event's image is not public either.
    let e = public_event(state, id).map_err(|_| ApiError::not_found("Image not found"))?;
    let img = e
        .header
        .image
        .as_ref()
        .ok_or_else(|| ApiError::not_found("Image not found"))?;
    let mut r = Response::new(Full::new(Bytes::from(img.bytes.as_ref().clone())));
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
