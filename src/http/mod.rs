//! The HTTP server: REST API (live-mini compatible), health, metrics, and the dispatch point
//! of the WebSocket route.
//!
//! Handlers never touch SQLite: reads use the merge loop's immutable snapshot, writes go
//! through [`MergeHandle::send`] and are answered only after the commit.
//!
//! - This module: the connection layer, ours on purpose (accept loop, global and per-address
//!   caps with a raw 503 written before hyper, head-size cap, header-read timeout, body
//!   deadline, graceful stop). Each connection is served by hyper with the axum `Router` as
//!   its service (`TowerToHyperService`).
//! - [`routes`]: the declarative `Router`, extractors, body limits, handlers.
//! - [`error`]: the one error vocabulary (`ApiError`, the only writer of error bodies).
//! - [`auth`]: master key, event API keys and their validity window.
//! - [`metrics`]: Prometheus metrics.
//! - [`static_files`]: the front end on non-API paths.

pub mod auth;
pub mod cache;
pub mod error;
pub mod log_ring;
pub mod metrics;
pub mod routes;
pub mod static_files;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::merge::MergeHandle;
use crate::shutdown::Shutdown;
pub use metrics::Metrics;

/// Default of [`HttpSettings::max_connections_per_ip`].
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 1000;
/// Default of [`HttpSettings::max_ws_per_ip`].
pub const DEFAULT_MAX_WS_PER_IP: usize = 1000;
/// The largest request head (request line and headers) a client may send; hyper answers
/// `431` beyond it. It is checked on the parsed head (`max_header_size`): the read buffer
/// limit alone let heads of ~100 KB through, as one read may fill the buffer past it.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Default of [`HttpSettings::body_read_timeout`]: the real 2.4 MB export arrives in it at
/// 640 kbit/s (a poor mobile uplink from the timing PC); the 10 MiB XML cap needs 2.8 Mbit/s.
/// It frees a connection that a client keeps open by trickling its body.
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Server settings.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Accepted `X-Master-Key` values. Empty: the admin API is open in `dev` mode only.
    pub master_keys: Vec<String>,
    /// Development mode: allows an open admin API when no master key is configured.
    pub dev: bool,
    /// Body limit of `POST /api/v1/ingest/xml`.
    pub body_limit_xml: usize,
    /// Body limit of every other request.
    pub body_limit: usize,
    /// A client must send a complete request head within this time (slowloris guard).
    pub header_read_timeout: Duration,
    /// A request body must arrive whole within this time, counted from its complete head;
    /// later it is answered `408 RequestTimeout` and the connection closed.
    pub body_read_timeout: Duration,
    /// Open connections at most; more are answered 503 `ConnectionLimitReached` and closed.
    pub max_connections: usize,
    /// On shutdown, in-flight requests get this long to finish.
    pub shutdown_grace: Duration,
    /// Open connections from one client address at most (0: no cap). Connections from a
    /// trusted proxy are not capped per address (they carry many clients); only
    /// `max_connections` bounds them.
    pub max_connections_per_ip: usize,
    /// WebSocket clients per client address at most (0: no cap); the client address is the
    /// one [`client_ip`] gives. Enforced by the WebSocket hub.
    pub max_ws_per_ip: usize,
    /// Peers whose `X-Forwarded-For` is believed. From anyone else the header is ignored.
    pub trusted_proxies: Vec<IpAddr>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            master_keys: Vec::new(),
            dev: false,
            body_limit_xml: 10 * 1024 * 1024,
            body_limit: 1024 * 1024,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
            max_connections: 20_000,
            shutdown_grace: Duration::from_secs(10),
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            max_ws_per_ip: DEFAULT_MAX_WS_PER_IP,
            trusted_proxies: Vec::new(),
        }
    }
}

/// The client's address: the TCP peer, unless the peer is a trusted proxy; then the
/// right-most `X-Forwarded-For` entry that is not itself a trusted proxy (entries further left
/// were written by the client and prove nothing). An unparseable entry stops the walk and the
/// last trusted hop is used. Pure (fuzzed with the request-target parser).
pub fn client_ip<'a>(
    peer: IpAddr,
    forwarded_for: impl IntoIterator<Item = &'a [u8]>,
    trusted: &[IpAddr],
) -> IpAddr {
    let peer = peer.to_canonical();
    let is_trusted = |ip: IpAddr| trusted.iter().any(|t| t.to_canonical() == ip);
    if !is_trusted(peer) {
        return peer;
    }
    // Several header lines are one comma-separated list, in order.
    let mut hops: Vec<&[u8]> = Vec::new();
    for value in forwarded_for {
        hops.extend(value.split(|b| *b == b','));
    }
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Some(ip) = std::str::from_utf8(hop)
            .ok()
            .map(str::trim)
            .and_then(|t| t.parse::<IpAddr>().ok())
            .map(|ip| ip.to_canonical())
        else {
            break;
        };
        client = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    client
}

/// Counts open connections per client address.
#[derive(Debug, Default)]
pub struct PerIp {
    open: std::sync::Mutex<HashMap<IpAddr, usize>>,
}

/// One counted connection; uncounted on drop.
#[derive(Debug)]
pub struct PerIpSlot {
    table: Arc<PerIp>,
    ip: IpAddr,
}

impl PerIp {
    /// Counts one more connection of `ip`, unless `cap` (> 0) are already open.
    pub fn try_acquire(table: &Arc<PerIp>, ip: IpAddr, cap: usize) -> Option<PerIpSlot> {
        let mut open = table.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_insert(0);
        if cap > 0 && *n >= cap {
            return None;
        }
        *n += 1;
        Some(PerIpSlot {
            table: Arc::clone(table),
            ip,
        })
    }

    /// Connections open from `ip` now.
    pub fn open(&self, ip: IpAddr) -> usize {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.get(&ip).copied().unwrap_or(0)
    }
}

impl Drop for PerIpSlot {
    fn drop(&mut self) {
        let mut open = self.table.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Per-request extension: when the body must have arrived whole (the head's arrival plus
/// [`HttpSettings::body_read_timeout`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyDeadline(pub tokio::time::Instant);

/// Per-request extension: the client's address as [`client_ip`] resolved it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("no master key configured: the admin API would be open to anyone (configure a master key, or use dev mode)")]
    NoMasterKey,
    #[error("a master key is empty")]
    EmptyMasterKey,
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
}

impl HttpSettings {
    /// Refuses settings that would run an open admin API outside dev mode, or make no sense.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.master_keys.iter().any(|k| k.trim().is_empty()) {
            return Err(SettingsError::EmptyMasterKey);
        }
        if self.master_keys.is_empty() && !self.dev {
            return Err(SettingsError::NoMasterKey);
        }
        if self.max_connections == 0 {
            return Err(SettingsError::Zero("max_connections"));
        }
        if self.body_limit == 0 || self.body_limit_xml == 0 {
            return Err(SettingsError::Zero("body limit"));
        }
        if self.header_read_timeout.is_zero() {
            return Err(SettingsError::Zero("header_read_timeout"));
        }
        if self.body_read_timeout.is_zero() {
            return Err(SettingsError::Zero("body_read_timeout"));
        }
        Ok(())
    }
}

/// The connection caps of one daemon: at most `max_connections` open, and at most
/// `max_connections_per_ip` per client address, across all its listeners.
pub struct ConnectionLimits {
    permits: Arc<Semaphore>,
    /// The permits in all: a graceful stop waits until every one is back.
    total: u32,
    per_ip: Arc<PerIp>,
}

/// What every handler gets. Cheap to clone. (The WebSocket hub adds its handle here.)
#[derive(Clone)]
pub struct AppState {
    pub merge: MergeHandle,
    pub settings: Arc<HttpSettings>,
    pub metrics: Metrics,
    /// The XML watcher and TCP sources, for the operator status.
    pub inputs: crate::ingest::InputStatus,
    /// The WebSocket hub; without it the WS route answers 404.
    pub hub: Option<crate::hub::Hub>,
    /// What non-API GET paths serve: the built-in page or `--static-dir`.
    pub frontend: static_files::Frontend,
    /// Open WebSocket clients per client address (`max_ws_per_ip`).
    pub ws_per_ip: Arc<PerIp>,
    /// Public GET bodies as bytes, per event version.
    pub cache: Arc<cache::ResponseCache>,
    /// Open connections, shared by every listener of this state.
    pub limits: Arc<ConnectionLimits>,
    /// The database file, for the operator status's sizes (`None`: not reported).
    pub db_path: Option<std::path::PathBuf>,
    /// The daemon's `--merge-strategy`, for the operator status (events may override it).
    pub default_strategy: crate::model::MergeStrategy,
    /// c123-scoreboard's `/ws` and REST; without it those routes answer 404.
    pub scoreboard: Option<crate::scoreboard::Scoreboard>,
    /// Replication (`--nats`): its state in `/readyz` and `/metrics`; on a replica the admin
    /// and ingest API are refused.
    pub replication: Option<crate::replicate::ReplicationStatus>,
}

impl AppState {
    pub fn new(merge: MergeHandle, settings: HttpSettings) -> AppState {
        AppState::with_inputs(merge, settings, crate::ingest::InputStatus::default())
    }

    pub fn with_inputs(
        merge: MergeHandle,
        settings: HttpSettings,
        inputs: crate::ingest::InputStatus,
    ) -> AppState {
        let metrics = Metrics::new(&merge, &inputs);
        let cache = Arc::new(cache::ResponseCache::new(
            cache::MAX_CACHED_BYTES,
            metrics.response_cache.clone(),
        ));
        let total = settings
            .max_connections
            .min(Semaphore::MAX_PERMITS)
            .min(u32::MAX as usize);
        let limits = Arc::new(ConnectionLimits {
            permits: Arc::new(Semaphore::new(total)),
            total: total as u32,
            per_ip: Arc::new(PerIp::default()),
        });
        AppState {
            merge,
            limits,
            settings: Arc::new(settings),
            metrics,
            inputs,
            hub: None,
            frontend: static_files::Frontend::default(),
            ws_per_ip: Arc::default(),
            cache,
            db_path: None,
            default_strategy: crate::model::MergeStrategy::default(),
            scoreboard: None,
            replication: None,
        }
    }

    /// Reports `status` in `/readyz` and `/metrics`; a replica's status also makes the admin
    /// and ingest API refuse (403 `ReadOnlyReplica`).
    pub fn with_replication(mut self, status: crate::replicate::ReplicationStatus) -> AppState {
        self.metrics.set_replication(status.clone());
        self.replication = Some(status);
        self
    }

    /// This daemon is a read-only replica.
    pub fn is_replica(&self) -> bool {
        self.replication.as_ref().is_some_and(|r| r.is_replica())
    }

    /// What the operator status reports of storage and merging.
    pub fn with_store_info(
        mut self,
        db_path: std::path::PathBuf,
        default_strategy: crate::model::MergeStrategy,
    ) -> AppState {
        self.db_path = Some(db_path);
        self.default_strategy = default_strategy;
        self
    }

    /// Serves `GET /api/v1/events/{eventId}/ws` with this hub and adds its numbers to
    /// `/metrics`.
    pub fn with_hub(mut self, hub: crate::hub::Hub) -> AppState {
        self.metrics.set_hub(hub.clone());
        self.hub = Some(hub);
        self
    }

    /// Serves c123-scoreboard's routes with this service.
    pub fn with_scoreboard(mut self, scoreboard: crate::scoreboard::Scoreboard) -> AppState {
        self.scoreboard = Some(scoreboard);
        self
    }

    /// Serves `frontend` on non-API paths instead of the built-in page.
    pub fn with_frontend(mut self, frontend: static_files::Frontend) -> AppState {
        self.frontend = frontend;
        self
    }
}

/// Serves HTTP/1.1 on `listener` until `shutdown` fires, then lets in-flight requests finish
/// (up to `shutdown_grace`). Fails at once if the settings are invalid.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    serve_surface(listener, state, shutdown, Surface::Everything).await
}

/// What one listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// The whole API, the pages and the scoreboard routes (`--listen`).
    Everything,
    /// Only the scoreboard's routes and the health checks (`--scoreboard-listen`, often on
    /// every address at port 27123): no admin or ingest API there.
    ScoreboardOnly,
}

/// Serves `surface` on `listener`. Every listener of one `state` shares its connection
/// limits (`max_connections`, `max_connections_per_ip`): a second listener does not double
/// them.
pub async fn serve_surface(
    listener: TcpListener,
    state: AppState,
    shutdown: Shutdown,
    surface: Surface,
) -> std::io::Result<()> {
    state
        .settings
        .validate()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
    let permits = Arc::clone(&state.limits.permits);
    let per_ip = Arc::clone(&state.limits.per_ip);
    let app = match surface {
        Surface::Everything => routes::router(state.clone()),
        Surface::ScoreboardOnly => routes::scoreboard_router(state.clone()),
    };
    loop {
        let Some((stream, peer)) = crate::shutdown::accept(&listener, &shutdown).await else {
            break;
        };
        let _ = stream.set_nodelay(true);
        let peer_ip = peer.ip().to_canonical();
        let proxied = state
            .settings
            .trusted_proxies
            .iter()
            .any(|t| t.to_canonical() == peer_ip);
        let cap = if proxied {
            0
        } else {
            state.settings.max_connections_per_ip
        };
        let Some(slot) = PerIp::try_acquire(&per_ip, peer_ip, cap) else {
            tracing::debug!(peer = %peer_ip, "connection refused: per-address limit");
            state.metrics.refused_connection();
            tokio::spawn(refuse_connection(stream));
            continue;
        };
        match Arc::clone(&permits).try_acquire_owned() {
            Ok(permit) => {
                tokio::spawn(serve_connection(
                    stream,
                    peer_ip,
                    app.clone(),
                    state.clone(),
                    shutdown.clone(),
                    (permit, slot),
                ));
            }
            Err(_) => {
                state.metrics.refused_connection();
                tokio::spawn(refuse_connection(stream));
            }
        }
    }
    drop(listener);
    let grace = state.settings.shutdown_grace;
    // Every connection of this daemon, the other listener's too (they stop together).
    let _ = tokio::time::timeout(grace, permits.acquire_many(state.limits.total)).await;
    Ok(())
}

/// Answers a connection over the limits with a 503 written directly: hyper never sees it,
/// so refusing costs no task beyond this short write. The body is [`error::ApiError`]'s.
async fn refuse_connection(mut stream: TcpStream) {
    let refusal = error::ApiError::new(
        error::ErrorCode::ConnectionLimitReached,
        "Too many open connections",
    );
    let body = refusal.body();
    let status = refusal.code.status();
    let head = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        error::JSON_CONTENT_TYPE,
        body.len()
    );
    let write = async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(&body).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), write).await;
}

struct OpenConnection(Metrics);
impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.connections.dec();
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: IpAddr,
    app: axum::Router,
    state: AppState,
    shutdown: Shutdown,
    _permits: (OwnedSemaphorePermit, PerIpSlot),
) {
    state.metrics.connections.inc();
    let _open = OpenConnection(state.metrics.clone());
    let settings = Arc::clone(&state.settings);
    // The router as hyper's service (axum's serve-with-hyper); our connection layer adds the
    // per-request facts only it knows: the client address and the body deadline.
    let trusted = settings.trusted_proxies.clone();
    let body_read_timeout = settings.body_read_timeout;
    let svc = tower::ServiceBuilder::new()
        .map_request(move |mut req: hyper::Request<hyper::body::Incoming>| {
            let client = client_ip(
                peer,
                req.headers()
                    .get_all("x-forwarded-for")
                    .iter()
                    .map(|v| v.as_bytes()),
                &trusted,
            );
            req.extensions_mut().insert(ClientAddr(client));
            req.extensions_mut().insert(BodyDeadline(
                tokio::time::Instant::now() + body_read_timeout,
            ));
            req
        })
        .service(app);
    let svc = TowerToHyperService::new(svc);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        .keep_alive(true)
        .max_buf_size(MAX_HEAD_BYTES)
        .max_header_size(MAX_HEAD_BYTES);
    let conn = builder
        .serve_connection(TokioIo::new(stream), svc)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        res = conn.as_mut() => {
            if let Err(e) = res {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(settings.shutdown_grace, conn.as_mut()).await;
        }
    }
}
