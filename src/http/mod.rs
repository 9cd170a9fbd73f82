//! The HTTP server: REST API (live-mini compatible), health, metrics, and the dispatch point
//! of the WebSocket route.
//!
//! Handlers never touch SQLite: reads use the merge loop's immutable snapshot, writes go
//! through [`MergeHandle::send`] and are answered only after the commit.
//!
//! - [`routes`]: request routing, body limits, handlers.
//! - [`wire`]: the public JSON types and their pure builders (reused by the WebSocket hub).
//! - [`error`]: the one error vocabulary.
//! - [`auth`]: master key, event API keys and their validity window.
//! - [`metrics`]: Prometheus metrics.

pub mod auth;
pub mod error;
pub mod metrics;
pub mod routes;
pub mod static_files;
pub mod wire;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::merge::MergeHandle;
use crate::shutdown::Shutdown;
pub use metrics::Metrics;

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
    /// Open connections at most; more are answered 503 `ConnectionLimitReached` and closed.
    pub max_connections: usize,
    /// On shutdown, in-flight requests get this long to finish.
    pub shutdown_grace: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            master_keys: Vec::new(),
            dev: false,
            body_limit_xml: 10 * 1024 * 1024,
            body_limit: 1024 * 1024,
            header_read_timeout: Duration::from_secs(10),
            max_connections: 20_000,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

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
        Ok(())
    }
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
        AppState {
            merge,
            settings: Arc::new(settings),
            metrics,
            inputs,
            hub: None,
            frontend: static_files::Frontend::default(),
        }
    }

    /// Serves `GET /api/v1/events/{eventId}/ws` with this hub and adds its numbers to
    /// `/metrics`.
    pub fn with_hub(mut self, hub: crate::hub::Hub) -> AppState {
        self.metrics.set_hub(hub.clone());
        self.hub = Some(hub);
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
    state
        .settings
        .validate()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
    let max = state
        .settings
        .max_connections
        .min(Semaphore::MAX_PERMITS)
        .min(u32::MAX as usize);
    let permits = Arc::new(Semaphore::new(max));
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        match Arc::clone(&permits).try_acquire_owned() {
            Ok(permit) => {
                tokio::spawn(serve_connection(
                    stream,
                    state.clone(),
                    shutdown.clone(),
                    permit,
                ));
            }
            Err(_) => {
                tokio::spawn(refuse_connection(stream));
            }
        }
    }
    drop(listener);
    let grace = state.settings.shutdown_grace;
    let _ = tokio::time::timeout(grace, permits.acquire_many(max as u32)).await;
    Ok(())
}

async fn refuse_connection(mut stream: TcpStream) {
    let body = br#"{"error":"ConnectionLimitReached","message":"Too many open connections"}"#;
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let write = async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body).await?;
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
    state: AppState,
    shutdown: Shutdown,
    _permit: OwnedSemaphorePermit,
) {
    state.metrics.connections.inc();
    let _open = OpenConnection(state.metrics.clone());
    let settings = Arc::clone(&state.settings);
    let svc = service_fn(move |req| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(routes::handle(req, state).await) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        .keep_alive(true)
        .max_buf_size(64 * 1024);
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
