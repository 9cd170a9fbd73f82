//! The application layer: a declarative axum [`Router`] over [`AppState`], and the layers
//! every request passes through. Every handler returns a response; bad input never panics
//! and never becomes a 500.
//!
//! - `ops`: health, readiness, metrics. `public`: the public API and the WebSocket
//!   route. `admin`: the admin API. `ingest`: c123-server's push. `scoreboard`:
//!   c123-server's own routes for c123-scoreboard (`/ws`, `/api/discover`, `/api/xml/...`).
//! - [`extract`]: typed extractors (path ids, `MasterKey`, `EventKey`); [`body`]: the body
//!   limit and deadline and the strict JSON decoder ([`body::StrictJson`]).
//! - Wrong methods: live-mini answers 404 where it has no such route, so a wrong method on a
//!   known path is the same JSON 404 as an unknown path (never 405).
//! - Non-API `GET`s are the front end's ([`crate::http::static_files`]); unknown `/api/...`
//!   stays a JSON 404.

mod admin;
mod admin_body;
mod admin_status;
pub mod body;
pub mod extract;
mod ingest;
mod ingest_body;
mod ops;
mod public;
mod scoreboard;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper::header::{
    HeaderMap, HeaderValue, ACCEPT_ENCODING, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE,
};
use hyper::Method;
use tower_http::compression::predicate::{Predicate, SizeAbove};
use tower_http::compression::CompressionLayer;

use super::error::ApiError;
use super::static_files::accepts_gzip;
use super::AppState;

pub use admin_body::{
    decode_image, parse_config_body, parse_create_body, parse_status_body, parse_storage_body,
    sniff_image, valid_event_id, NewEvent, StorageBody, MAX_IMAGE_BYTES,
};
pub use body::decode;
pub use ingest_body::{
    parse_oncourse_body, parse_results_body, parse_xml_body, MAX_ONCOURSE_ITEMS, MAX_RESULT_ITEMS,
};

/// JSON bodies smaller than this are sent as they are (not worth compressing).
pub const MIN_GZIP: u64 = super::static_files::MIN_GZIP as u64;

/// The whole application: routes, fallbacks and layers, ready to be served per connection.
pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .merge(ops::routes())
        .merge(public::routes())
        .merge(admin::routes())
        .merge(ingest::routes(state.clone()))
        .merge(scoreboard::routes());
    finish(routes, state)
}

/// The second listener's application (`--scoreboard-listen`): the scoreboard's routes and the
/// health checks only, with the same layers and fallbacks.
pub fn scoreboard_router(state: AppState) -> Router {
    finish(
        Router::new()
            .merge(ops::health_routes())
            .merge(scoreboard::routes()),
        state,
    )
}

fn finish(routes: Router<AppState>, state: AppState) -> Router {
    let routes = routes
        .route_layer(middleware::from_fn(label_route))
        .fallback(fallback)
        .method_not_allowed_fallback(fallback)
        .with_state(state.clone());
    // Around the routing, not per route (`Router::layer` would run after it): HEAD must be
    // GET before a route is chosen, and every answer, fallbacks included, passes `outer`.
    let app = tower::ServiceBuilder::new()
        .layer(middleware::from_fn_with_state(state.clone(), outer))
        .layer(middleware::from_fn_with_state(state, read_only))
        // Phones on venue networks fetch the results tables (tens of KB of repetitive JSON)
        // after every (re)connect: gzip them when the client accepts it.
        .layer(CompressionLayer::new().compress_when(SizeAbove::new(MIN_GZIP).and(is_json)))
        .service(routes);
    Router::new().fallback_service(app)
}

fn is_json(
    _: hyper::StatusCode,
    _: hyper::Version,
    headers: &HeaderMap,
    _: &hyper::http::Extensions,
) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// Request extension: the request came as `HEAD` and is served as `GET`.
#[derive(Debug, Clone, Copy)]
pub struct Head;

/// Response extension: the metrics label of the route that answered. `MatchedPath` is an
/// `Arc<str>` inside, so labelling a request allocates nothing.
#[derive(Debug, Clone)]
enum RouteLabel {
    Matched(MatchedPath),
    Static,
}

impl RouteLabel {
    fn as_str(&self) -> &str {
        match self {
            RouteLabel::Matched(p) => p.as_str(),
            RouteLabel::Static => "static",
        }
    }
}

/// The route template (`/api/v1/events/{eventId}`) as the metrics label.
async fn label_route(path: MatchedPath, req: Request, next: Next) -> Response {
    let label = RouteLabel::Matched(path);
    let mut resp = next.run(req).await;
    resp.extensions_mut().insert(label);
    resp
}

pub fn not_found_route(method: &str, path: &str) -> ApiError {
    ApiError::not_found(format!("Route {method} {path} not found"))
}

/// Unknown paths and wrong methods: unknown `/api/...` stays a JSON 404; every other GET is
/// the front end's.
async fn fallback(State(state): State<AppState>, req: Request) -> Response {
    let head = req.extensions().get::<Head>().is_some();
    let path = req.uri().path();
    let api = path == "/api" || path.starts_with("/api/");
    if req.method() == Method::GET && !api {
        let mut resp = state.frontend.serve(path, req.headers()).await;
        resp.extensions_mut().insert(RouteLabel::Static);
        return resp;
    }
    let method = if head { "HEAD" } else { req.method().as_str() };
    not_found_route(method, path).into_response()
}

/// What every request passes first (and its response last): HEAD is served as GET and
/// answered with GET's headers (the compressed length included, since compression runs
/// inside), an error answered before the body was read closes the connection, and the
/// request is counted and logged.
async fn outer(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let method = req.method().clone();
    // The path only: a query string could carry anything, and headers (keys) are never
    // logged. Copied only when the line will be written.
    let path = tracing::enabled!(tracing::Level::DEBUG).then(|| req.uri().path().to_owned());
    let has_body = req
        .headers()
        .get(CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() != b"0")
        || req.headers().contains_key(hyper::header::TRANSFER_ENCODING);
    let client = req.extensions().get::<super::ClientAddr>().map(|c| c.0);
    let head = method == Method::HEAD;
    if head {
        *req.method_mut() = Method::GET;
        req.extensions_mut().insert(Head);
    }
    normalize_accept_encoding(req.headers_mut());
    let mut resp = next.run(req).await;
    // An error may be answered before the body was read (401 before a 10 MiB upload); hyper
    // then closes the connection, and a client that reuses it would lose its next request.
    // Saying so lets the client open a new connection instead.
    let status = resp.status();
    // axum lists the route's methods on a wrong-method answer; ours is a 404, as live-mini's.
    if status == hyper::StatusCode::NOT_FOUND {
        resp.headers_mut().remove(hyper::header::ALLOW);
    }
    if has_body && (status.is_client_error() || status.is_server_error()) {
        resp.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    if head {
        resp = strip_body(resp).await;
    }
    let route = resp.extensions_mut().remove::<RouteLabel>();
    state.metrics.request(
        route.as_ref().map_or("unmatched", RouteLabel::as_str),
        method.as_str(),
        status.as_u16(),
    );
    if let Some(path) = path {
        tracing::debug!(client = ?client, %method, %path, status = status.as_u16(), "request");
    }
    resp
}

/// A replica serves the origin's state and changes nothing itself: the admin and ingest API
/// answer 403 `ReadOnlyReplica` (before any key is looked at: the replica has none).
async fn read_only(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let writes = ["/api/v1/admin", "/api/v1/ingest"].iter().any(|p| {
        path == *p
            || path
                .strip_prefix(p)
                .is_some_and(|rest| rest.starts_with('/'))
    });
    if state.is_replica() && writes {
        return ApiError::new(
            super::error::ErrorCode::ReadOnlyReplica,
            "This is a read-only replica of the venue's c123-live: the admin and ingest API are on the origin",
        )
        .into_response();
    }
    next.run(req).await
}

/// Reduces `Accept-Encoding` to the one decision that matters here, gzip or not, taken by
/// [`accepts_gzip`] (RFC 9110 §12.5.3: `x-gzip`, `*`, `q=0` wins over `*`). The compression
/// layer and the front end then agree, and a client that excludes identity (`*;q=0`) still
/// gets a plain body rather than tower-http's 406, as it always has.
fn normalize_accept_encoding(headers: &mut HeaderMap) {
    let value = if accepts_gzip(headers) {
        "gzip"
    } else {
        "identity"
    };
    headers.insert(ACCEPT_ENCODING, HeaderValue::from_static(value));
}

/// A HEAD answer: GET's headers with the length of the body GET sends, and no body.
async fn strip_body(resp: Response) -> Response {
    let (mut parts, body) = resp.into_parts();
    // Bodies here are in memory already (JSON, a file, an image); compressing one is what
    // takes the time, and GET pays the same.
    let len = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b.len(),
        Err(_) => 0,
    };
    parts.headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
    Response::from_parts(parts, axum::body::Body::empty())
}

#[cfg(test)]
mod tests;
