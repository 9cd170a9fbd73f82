//! The composition root: the one place that wires the components into a running daemon.
//! `main` (`serve`, `demo`) and the integration-test harnesses all start the daemon through
//! [`App::start`], so what the tests run is what production runs.
//!
//! Start order: the static-file folder and the HTTP settings are checked and the API port
//! (and `--scoreboard-listen`) are bound before anything else starts (a bad setting changes
//! nothing); then the store and the merge loop with its 1 s tick, the inputs, the WebSocket
//! hub, the scoreboard service and the HTTP server(s).
//! [`RunningApp::stop`] reverses it: inputs, servers and timers first, then the merge loop
//! finishes what is in flight and checkpoints.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::c123::recording::RecordingError;
use crate::http::static_files::Frontend;
use crate::http::{AppState, SettingsError};
use crate::hub::{Hub, PublicWire, WireBuilder};
use crate::ingest::tcp::{self, SharedSourceStatus, TcpSettings};
use crate::ingest::watch::{self, SharedWatcherStatus, WatchError, WatchSettings};
use crate::ingest::{BytesImportError, InputStatus};
use crate::merge::{self, Input, MergeError, MergeHandle};
use crate::replicate::{ReplicationError, ReplicationStatus};
use crate::scoreboard::{Scoreboard, SourceProbe, SourceView};
use crate::settings::Settings;
use crate::shutdown::Shutdown;
use crate::store::{Store, StoreError};

/// How often the merge loop is ticked (on-course expiry, timed state changes).
const TICK: Duration = Duration::from_secs(1);
/// How long `stop` waits for each task before it moves on (the HTTP server's own grace is
/// shorter, so this only bounds a stuck task).
const TASK_STOP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("cannot open database {path}: cannot create its folder: {source}")]
    DbFolder {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open database {path}: {source}")]
    Store { path: PathBuf, source: StoreError },
    #[error(transparent)]
    Http(#[from] SettingsError),
    #[error("--static-dir {dir}: {source}")]
    StaticDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Watch(#[from] WatchError),
    #[error(
        "--c123/--tcp-listen need --event, or --xml-dir (they then feed the event of the export)"
    )]
    SourceWithoutEvent,
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the merge loop stopped unexpectedly")]
    MergeLoopStopped,
    #[error("demo: cannot create the temporary folder {path}: {source}")]
    DemoFolder {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("demo: bundled recording: {0}")]
    DemoRecording(#[from] RecordingError),
    #[error("demo import: {0}")]
    DemoImport(#[from] BytesImportError),
    #[error("demo status: {0}")]
    DemoStatus(#[from] MergeError),
    #[error("replication: {0}")]
    Replication(#[from] ReplicationError),
    #[error("a replica takes no input (--xml-dir, --c123, --tcp-listen, --event): it serves the origin's state")]
    ReplicaInputs,
    #[error("a replica needs --nats")]
    ReplicaWithoutNats,
    #[error("replica: {0}")]
    ReplicaStopped(String),
}

/// The daemon's wiring. Stateless: everything it starts is in the [`RunningApp`].
pub struct App;

/// A running daemon. Its fields are the handles tests and `demo` reach inside with.
pub struct RunningApp {
    pub merge: MergeHandle,
    pub hub: Hub,
    /// The bound API address (`listen` with port 0 resolved).
    pub local_addr: SocketAddr,
    pub watcher: Option<SharedWatcherStatus>,
    pub sources: Vec<SharedSourceStatus>,
    /// The bound address of `tcp_listen` (port 0 resolved).
    pub tcp_listen_addr: Option<SocketAddr>,
    pub scoreboard: Option<Scoreboard>,
    /// The bound address of the scoreboard's second listener (port 0 resolved).
    pub scoreboard_addr: Option<SocketAddr>,
    /// Replication's state (`--nats`): publishing on an origin, following on a replica.
    pub replication: Option<ReplicationStatus>,
    /// Every TCP source, also those `connect_source` adds later (the scoreboard's probe).
    probed_sources: Arc<std::sync::Mutex<Vec<SharedSourceStatus>>>,
    shutdown: Shutdown,
    merge_task: JoinHandle<()>,
    /// Everything but the merge loop; each ends when `shutdown` fires.
    tasks: Vec<JoinHandle<()>>,
}

impl App {
    /// Starts everything; returns once the API is listening.
    pub async fn start(settings: Settings) -> Result<RunningApp, AppError> {
        App::start_with_wire(settings, Arc::new(PublicWire)).await
    }

    /// [`App::start`] with another builder of the hub's messages (tests use a deliberately
    /// slow one).
    pub async fn start_with_wire(
        settings: Settings,
        wire: Arc<dyn WireBuilder>,
    ) -> Result<RunningApp, AppError> {
        // Everything that can be refused is checked before anything starts.
        replication::validate(&settings)?;
        let sources_wanted = settings.c123.is_some() || settings.tcp_listen.is_some();
        if sources_wanted && settings.event.is_none() && settings.xml_dir.is_none() {
            return Err(AppError::SourceWithoutEvent);
        }
        let frontend = match &settings.static_dir {
            Some(dir) => Some(Frontend::dir(dir).map_err(|source| AppError::StaticDir {
                dir: dir.clone(),
                source,
            })?),
            None => None,
        };
        let listen_error = |source| AppError::Listen {
            addr: settings.listen,
            source,
        };
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .map_err(listen_error)?;
        let local_addr = listener.local_addr().map_err(listen_error)?;
        let second = bind_scoreboard(&settings).await?;

        let shutdown = Shutdown::new();
        let replication = replication::status(&settings);
        // A replica's database is an empty in-memory one with the origin's epoch.
        let (store, replica) = match &replication {
            Some(status) if status.is_replica() => {
                let (store, start) = replication::replica_store(&settings, status).await?;
                (store, Some(start))
            }
            _ => (open_store(&settings)?, None),
        };
        let (merge, merge_task) =
            merge::start(store, settings.merge.clone()).map_err(|source| AppError::Store {
                path: settings.db.clone(),
                source,
            })?;
        // The hub and the publisher subscribe to the loop before any input can commit.
        let (hub, hub_task) = Hub::start(settings.hub.clone(), wire, &merge, shutdown.clone());
        let replication_task =
            replication::spawn(&settings, replication.as_ref(), replica, &merge, &shutdown);
        let mut running = RunningApp {
            merge,
            hub,
            local_addr,
            watcher: None,
            sources: Vec::new(),
            tcp_listen_addr: None,
            scoreboard: None,
            scoreboard_addr: None,
            replication: replication.clone(),
            probed_sources: Arc::default(),
            shutdown,
            merge_task,
            tasks: replication_task.into_iter().collect(),
        };
        if let Err(e) = running.start_inputs(&settings).await {
            running.tasks.push(hub_task);
            running.stop().await;
            return Err(e);
        }
        running.start_ticker();
        running.tasks.push(hub_task);
        running.scoreboard_addr = second.as_ref().map(|(_, addr)| *addr);
        let scoreboard = running.start_scoreboard(&settings);
        let status = InputStatus {
            watcher: running.watcher.clone(),
            sources: running.sources.clone(),
        };
        let mut state = AppState::with_inputs(
            running.merge.clone(),
            replication::http_settings(&settings),
            status,
        )
        .with_hub(running.hub.clone())
        .with_store_info(settings.db.clone(), settings.merge.default_strategy);
        if let Some(frontend) = frontend {
            state = state.with_frontend(frontend);
        }
        if let Some(status) = replication {
            state = state.with_replication(status);
        }
        state = state.with_scoreboard(scoreboard);
        if let Some((listener, _)) = second {
            // The scoreboard's routes only (this port is often open on every address, where
            // the admin and ingest API must not be), within the main listener's caps.
            let (state, shutdown) = (state.clone(), running.shutdown.clone());
            running.tasks.push(tokio::spawn(async move {
                let only = crate::http::Surface::ScoreboardOnly;
                if let Err(e) = crate::http::serve_surface(listener, state, shutdown, only).await {
                    tracing::error!(error = %e, "scoreboard listener stopped");
                }
            }));
        }
        let http_shutdown = running.shutdown.clone();
        running.tasks.push(tokio::spawn(async move {
            if let Err(e) = crate::http::serve(listener, state, http_shutdown).await {
                tracing::error!(error = %e, "HTTP server stopped");
            }
        }));
        Ok(running)
    }
}

mod replication;

/// `--scoreboard-listen`, bound with the API port (port 0 allowed), before anything starts.
async fn bind_scoreboard(
    settings: &Settings,
) -> Result<Option<(tokio::net::TcpListener, SocketAddr)>, AppError> {
    let Some(addr) = settings.scoreboard.listen else {
        return Ok(None);
    };
    let error = |source| AppError::Listen { addr, source };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(error)?;
    let local = listener.local_addr().map_err(error)?;
    tracing::info!(%local, "serving scoreboards");
    Ok(Some((listener, local)))
}

/// Opens (creating its folder if needed) and caps the database.
fn open_store(settings: &Settings) -> Result<Store, AppError> {
    let path = &settings.db;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| AppError::DbFolder {
            path: path.clone(),
            source,
        })?;
    }
    let store_error = |source| AppError::Store {
        path: path.clone(),
        source,
    };
    let mut store = Store::open(path, settings.synchronous).map_err(store_error)?;
    if let Some(bytes) = settings.max_db_bytes {
        let set = store.set_max_size(Some(bytes)).map_err(store_error)?;
        tracing::info!(max_bytes = set, "database size capped");
    }
    Ok(store)
}

impl RunningApp {
    /// The signal every task of this daemon stops on.
    pub fn shutdown(&self) -> &Shutdown {
        &self.shutdown
    }

    /// Adds a task that ends when [`RunningApp::shutdown`] fires; `stop` waits for it.
    pub fn add_task(&mut self, task: JoinHandle<()>) {
        self.tasks.push(task);
    }

    /// Connects one more Canoe123 source (connect mode) to the merge loop.
    pub fn connect_source(&mut self, target: String, settings: TcpSettings) {
        let (status, task) =
            tcp::spawn_connect(target, settings, self.merge.clone(), self.shutdown.clone());
        self.probe(&status);
        self.sources.push(status);
        self.tasks.push(task);
    }

    fn probe(&self, status: &SharedSourceStatus) {
        self.probed_sources
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::clone(status));
    }

    /// The scoreboard service, serving `--event` or else the direct-mode event.
    fn start_scoreboard(&mut self, settings: &Settings) -> Scoreboard {
        let sources = Arc::clone(&self.probed_sources);
        let probe: SourceProbe = Arc::new(move || {
            let sources = sources.lock().unwrap_or_else(|e| e.into_inner());
            let mut view = SourceView::default();
            for s in sources.iter() {
                let s = s.lock().unwrap_or_else(|e| e.into_inner());
                view.connected |= s.state == tcp::SourceState::Connected;
                view.venue_time = view.venue_time.or_else(|| s.venue_time());
            }
            view
        });
        let (sb, task) = Scoreboard::start(
            settings.scoreboard.clone(),
            settings.event.clone(),
            probe,
            &self.merge,
            self.shutdown.clone(),
        );
        self.tasks.push(task);
        self.scoreboard = Some(sb.clone());
        sb
    }

    fn start_ticker(&mut self) {
        let merge = self.merge.clone();
        let shutdown = self.shutdown.clone();
        self.tasks.push(tokio::spawn(async move {
            let mut every = tokio::time::interval(TICK);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = every.tick() => {
                        if merge.submit(Input::Tick).await.is_err() { return; }
                    }
                }
            }
        }));
    }

    /// The XML folder watcher and the Canoe123 TCP sources configured.
    async fn start_inputs(&mut self, settings: &Settings) -> Result<(), AppError> {
        if let Some(dir) = &settings.xml_dir {
            let mut ws = WatchSettings::new(dir.clone());
            ws.event = settings.event.clone();
            ws.poll = settings.xml_poll;
            let (status, task) = watch::spawn(ws, self.merge.clone(), self.shutdown.clone())?;
            self.watcher = Some(status);
            self.tasks.push(task);
        }
        let source_settings = TcpSettings {
            event_id: settings.event.clone(),
            ..settings.tcp.clone()
        };
        if let Some(target) = &settings.c123 {
            self.connect_source(target.clone(), source_settings.clone());
        }
        if let Some(addr) = settings.tcp_listen {
            let (status, local, task) = tcp::spawn_listen(
                addr,
                source_settings,
                self.merge.clone(),
                self.shutdown.clone(),
            )
            .await
            .map_err(|source| AppError::Listen { addr, source })?;
            tracing::info!(%local, "accepting Canoe123 TCP sources");
            self.probe(&status);
            self.sources.push(status);
            self.tcp_listen_addr = Some(local);
            self.tasks.push(task);
        }
        Ok(())
    }

    /// Stops inputs, servers and timers first, then lets the merge loop finish what is in
    /// flight and checkpoint.
    pub async fn stop(self) {
        self.shutdown.cancel();
        for task in self.tasks {
            let _ = tokio::time::timeout(TASK_STOP_TIMEOUT, task).await;
        }
        self.merge.shutdown().await;
        let _ = self.merge_task.await;
    }

    /// Runs until SIGTERM/SIGINT, then stops in order. Fails only when the merge loop ended
    /// on its own.
    async fn run_until_signal(mut self) -> Result<(), AppError> {
        let replication = self.replication.clone();
        let replica_stopped = async move {
            match replication.filter(|r| r.is_replica()) {
                Some(r) => r.wait_stopped().await,
                None => std::future::pending().await,
            }
        };
        let result = tokio::select! {
            _ = crate::shutdown::signal() => Ok(()),
            // A replica whose origin replaced its database cannot follow it: exit non-zero so
            // the supervisor starts it again on the new epoch.
            why = replica_stopped => Err(AppError::ReplicaStopped(why)),
            // The merge loop only ends on its own after a bug (a panic): without it nothing
            // can be written, so exit non-zero and let systemd restart the daemon on the same
            // data.
            ended = &mut self.merge_task => {
                self.merge_task = tokio::spawn(async {});
                tracing::error!(?ended, "the merge loop stopped unexpectedly");
                Err(AppError::MergeLoopStopped)
            }
        };
        tracing::info!("shutting down");
        notify_systemd(&[sd_notify::NotifyState::Stopping]);
        self.stop().await;
        result
    }
}

/// `serve`: runs the daemon until SIGTERM/SIGINT.
pub async fn serve(settings: Settings) -> Result<(), AppError> {
    let db = settings.db.clone();
    let running = App::start(settings).await?;
    tracing::info!(addr = %running.local_addr, db = %db.display(), "c123-live is up");
    notify_systemd(&[sd_notify::NotifyState::Ready]);
    running.run_until_signal().await
}

fn notify_systemd(state: &[sd_notify::NotifyState<'_>]) {
    // Outside systemd there is no socket; that is not an error.
    let _ = sd_notify::notify(state);
}

mod demo;
pub use demo::{
    demo, play_demo_recording, prepare_demo_event, DemoSettings, DEMO_EVENT, DEMO_RECORDING,
    DEMO_XML,
};
