//! Wiring: opens the store, starts the merge loop and every input and output task, and
//! stops them in order on shutdown. `main` only parses the command line and calls this.

use std::time::Duration;

use crate::config::ServeConfig;
use crate::ingest::watch::{self, WatchSettings};
use crate::merge::{self, Input, MergeHandle, MergeSettings};
use crate::shutdown::Shutdown;
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot open database {path}: {source}")]
    Store { path: String, source: StoreError },
    #[error(transparent)]
    Watch(#[from] watch::WatchError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Config(String),
}

/// A running daemon's handles (tests use them to reach inside).
pub struct Running {
    pub merge: MergeHandle,
    pub merge_task: tokio::task::JoinHandle<()>,
    pub local_addr: Option<std::net::SocketAddr>,
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
    pub watcher: Option<watch::SharedWatcherStatus>,
    pub sources: Vec<crate::ingest::tcp::SharedSourceStatus>,
    /// The bound address of `--tcp-listen` (port 0 resolved).
    pub tcp_listen_addr: Option<std::net::SocketAddr>,
}

/// Opens the store and starts the merge loop and its timer.
pub fn start_core(
    config: &ServeConfig,
    shutdown: &Shutdown,
) -> Result<
    (
        MergeHandle,
        tokio::task::JoinHandle<()>,
        tokio::task::JoinHandle<()>,
    ),
    DaemonError,
> {
    if let Some(parent) = config.db.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| DaemonError::Store {
            path: config.db.display().to_string(),
            source: StoreError::Corrupt(format!("cannot create folder: {e}")),
        })?;
    }
    let mut store =
        Store::open(&config.db, config.synchronous).map_err(|source| DaemonError::Store {
            path: config.db.display().to_string(),
            source,
        })?;
    if let Some(bytes) = config.max_db_bytes {
        let set = store
            .set_max_size(Some(bytes))
            .map_err(|source| DaemonError::Store {
                path: config.db.display().to_string(),
                source,
            })?;
        tracing::info!(max_bytes = set, "database size capped");
    }
    let settings = MergeSettings {
        default_strategy: config.merge_strategy,
        ..MergeSettings::default()
    };
    let (merge, merge_task) =
        merge::start(store, settings).map_err(|source| DaemonError::Store {
            path: config.db.display().to_string(),
            source,
        })?;
    let ticker = {
        let merge = merge.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = every.tick() => {
                        if merge.submit(Input::Tick).await.is_err() { return; }
                    }
                }
            }
        })
    };
    Ok((merge, merge_task, ticker))
}

/// The inputs that are running.
#[derive(Default)]
pub struct Inputs {
    pub watcher: Option<watch::SharedWatcherStatus>,
    pub sources: Vec<crate::ingest::tcp::SharedSourceStatus>,
    pub tcp_listen_addr: Option<std::net::SocketAddr>,
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Starts the inputs configured: the XML folder watcher and the Canoe123 TCP sources.
pub async fn start_inputs(
    config: &ServeConfig,
    merge: &MergeHandle,
    shutdown: &Shutdown,
) -> Result<Inputs, DaemonError> {
    use crate::ingest::tcp::{self, TcpSettings};
    let mut inputs = Inputs::default();
    if let Some(dir) = &config.xml_dir {
        let mut ws = WatchSettings::new(dir.clone());
        ws.event = config.event.clone();
        ws.poll = config.xml_poll;
        let (st, task) = watch::spawn(ws, merge.clone(), shutdown.clone())?;
        inputs.watcher = Some(st);
        inputs.tasks.push(task);
    }
    if (config.c123.is_some() || config.tcp_listen.is_some())
        && config.event.is_none()
        && config.xml_dir.is_none()
    {
        return Err(DaemonError::Config(
            "--c123/--tcp-listen need --event, or --xml-dir (they then feed the event of the export)"
                .into(),
        ));
    }
    let mut settings = TcpSettings::new(config.event.clone());
    settings.auto_status = config.auto_status;
    settings.allowed_peers = config.tcp_allow.clone();
    settings.max_sessions_per_ip = config.tcp_max_sessions_per_ip;
    settings.max_sessions = config.tcp_max_sessions;
    if let Some(target) = &config.c123 {
        let (st, task) = tcp::spawn_connect(
            target.clone(),
            settings.clone(),
            merge.clone(),
            shutdown.clone(),
        );
        inputs.sources.push(st);
        inputs.tasks.push(task);
    }
    if let Some(addr) = config.tcp_listen {
        let (st, local, task) = tcp::spawn_listen(addr, settings, merge.clone(), shutdown.clone())
            .await
            .map_err(|source| DaemonError::Listen { addr, source })?;
        tracing::info!(%local, "accepting Canoe123 TCP sources");
        inputs.sources.push(st);
        inputs.tcp_listen_addr = Some(local);
        inputs.tasks.push(task);
    }
    Ok(inputs)
}

/// The real event bundled into the binary, so `demo` works from any folder.
pub const DEMO_XML: &[u8] = include_bytes!("../fixtures/jarni-2024.xml");
/// The real TCP recording of the same event.
pub const DEMO_RECORDING: &str = include_str!("../fixtures/jarni-2024.tcp.jsonl");
pub const DEMO_EVENT: &str = "jarni-2024";

/// Runs the daemon until SIGTERM/SIGINT.
pub async fn serve(config: ServeConfig) -> Result<(), DaemonError> {
    let shutdown = Shutdown::new();
    let mut running = start(&config, &shutdown).await?;
    if let Some(addr) = running.local_addr {
        tracing::info!(%addr, db = %config.db.display(), "c123-live is up");
    }
    notify_systemd(&[sd_notify::NotifyState::Ready]);
    let result = tokio::select! {
        _ = crate::shutdown::signal() => Ok(()),
        // The merge loop only ends on its own after a bug (a panic): without it nothing can
        // be written, so exit non-zero and let systemd restart the daemon on the same data.
        ended = &mut running.merge_task => {
            running.merge_task = tokio::spawn(async {});
            tracing::error!(?ended, "the merge loop stopped unexpectedly");
            Err(DaemonError::Config("the merge loop stopped unexpectedly".into()))
        }
    };
    tracing::info!("shutting down");
    notify_systemd(&[sd_notify::NotifyState::Stopping]);
    stop(running, &shutdown).await;
    result
}

/// Starts everything; returns once the API is listening.
pub async fn start(config: &ServeConfig, shutdown: &Shutdown) -> Result<Running, DaemonError> {
    let settings = http_settings(config);
    settings
        .validate()
        .map_err(|e| DaemonError::Config(e.to_string()))?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| DaemonError::Listen {
            addr: config.listen,
            source,
        })?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| DaemonError::Listen {
            addr: config.listen,
            source,
        })?;
    // A bad `--static-dir` is refused before anything starts.
    let frontend = match &config.static_dir {
        Some(dir) => Some(
            crate::http::static_files::Frontend::dir(dir)
                .map_err(|e| DaemonError::Config(format!("--static-dir {}: {e}", dir.display())))?,
        ),
        None => None,
    };
    let (merge, merge_task, ticker) = start_core(config, shutdown)?;
    let inputs = start_inputs(config, &merge, shutdown).await?;
    let mut tasks = inputs.tasks;
    tasks.push(ticker);
    let status = crate::ingest::InputStatus {
        watcher: inputs.watcher.clone(),
        sources: inputs.sources.clone(),
    };
    let (hub, hub_task) = crate::hub::Hub::start(
        config.hub.clone(),
        std::sync::Arc::new(crate::hub::PublicWire),
        &merge,
        shutdown.clone(),
    );
    tasks.push(hub_task);
    let mut state =
        crate::http::AppState::with_inputs(merge.clone(), settings, status).with_hub(hub);
    if let Some(frontend) = frontend {
        state = state.with_frontend(frontend);
    }
    let http_shutdown = shutdown.clone();
    tasks.push(tokio::spawn(async move {
        if let Err(e) = crate::http::serve(listener, state, http_shutdown).await {
            tracing::error!(error = %e, "HTTP server stopped");
        }
    }));
    Ok(Running {
        merge,
        merge_task,
        local_addr: Some(local_addr),
        tasks,
        watcher: inputs.watcher,
        sources: inputs.sources,
        tcp_listen_addr: inputs.tcp_listen_addr,
    })
}

/// HTTP settings from the daemon's configuration.
pub fn http_settings(config: &ServeConfig) -> crate::http::HttpSettings {
    crate::http::HttpSettings {
        master_keys: config.master_keys.clone(),
        dev: config.dev,
        max_connections_per_ip: config.max_connections_per_ip,
        max_ws_per_ip: config.max_ws_per_ip,
        trusted_proxies: config.trusted_proxies.clone(),
        ..crate::http::HttpSettings::default()
    }
}

/// Stops inputs first, then lets the merge loop finish what is in flight and checkpoint.
pub async fn stop(running: Running, shutdown: &Shutdown) {
    shutdown.cancel();
    for t in running.tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
    }
    running.merge.shutdown().await;
    let _ = running.merge_task.await;
}

fn notify_systemd(state: &[sd_notify::NotifyState<'_>]) {
    // Outside systemd there is no socket; that is not an error.
    let _ = sd_notify::notify(state);
}

/// `demo`: the bundled real event on a temporary database.
pub async fn demo(args: crate::config::DemoArgs) -> Result<(), DaemonError> {
    let dir = std::env::temp_dir().join(format!("c123-live-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| DaemonError::Config(format!("temp folder: {e}")))?;
    let shutdown = Shutdown::new();
    // The bundled recording plays as a fake Canoe123 on a loopback port, and the daemon
    // connects to it exactly as it connects to the real one.
    let recording = crate::c123::recording::Recording::parse(DEMO_RECORDING)
        .map_err(|e| DaemonError::Config(format!("bundled recording: {e}")))?;
    let fake = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(|source| DaemonError::Listen {
            addr: ([127, 0, 0, 1], 0).into(),
            source,
        })?;
    let fake_addr = fake.local_addr().map_err(|source| DaemonError::Listen {
        addr: ([127, 0, 0, 1], 0).into(),
        source,
    })?;
    let replay = tokio::spawn(crate::ingest::replay::serve(
        fake,
        recording,
        crate::ingest::replay::ReplaySettings {
            speed: args.speed,
            looped: true,
        },
        shutdown.clone(),
    ));
    let config = ServeConfig {
        db: args.db.clone().unwrap_or_else(|| dir.join("demo.db")),
        synchronous: crate::store::Synchronous::Off,
        listen: args.listen,
        event: Some(DEMO_EVENT.into()),
        xml_dir: None,
        xml_poll: None,
        merge_strategy: Default::default(),
        master_keys: Vec::new(),
        dev: true,
        c123: None,
        tcp_listen: None,
        tcp_allow: Vec::new(),
        tcp_max_sessions_per_ip: crate::ingest::tcp::DEFAULT_MAX_SESSIONS_PER_IP,
        tcp_max_sessions: crate::ingest::tcp::DEFAULT_MAX_SESSIONS,
        auto_status: false,
        max_db_bytes: None,
        max_connections_per_ip: crate::http::DEFAULT_MAX_CONNECTIONS_PER_IP,
        max_ws_per_ip: crate::http::DEFAULT_MAX_WS_PER_IP,
        trusted_proxies: Vec::new(),
        hub: Default::default(),
        static_dir: None,
    };
    let mut running = start(&config, &shutdown).await?;
    prepare_demo_event(&running.merge).await?;
    // Connect only once the event exists, so the first frames are not lost.
    let (st, task) = crate::ingest::tcp::spawn_connect(
        fake_addr.to_string(),
        crate::ingest::tcp::TcpSettings::new(Some(DEMO_EVENT.into())),
        running.merge.clone(),
        shutdown.clone(),
    );
    running.sources.push(st);
    running.tasks.push(task);
    running.tasks.push(replay);
    // The bound address (a `--listen` with port 0 gets a free port).
    println!(
        "c123-live demo: open http://{}/ (Ctrl-C to stop)",
        running.local_addr.unwrap_or(args.listen)
    );
    crate::shutdown::signal().await;
    stop(running, &shutdown).await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Imports the bundled export and makes the event public and running.
pub async fn prepare_demo_event(merge: &MergeHandle) -> Result<(), DaemonError> {
    use crate::merge::{AdminCommand, XmlOrigin, XmlTarget};
    use crate::model::EventStatus;
    crate::ingest::import_bytes(
        merge,
        DEMO_XML.to_vec(),
        XmlTarget::ByExport {
            event_id: Some(DEMO_EVENT.into()),
        },
        XmlOrigin::Cli,
    )
    .await
    .map_err(|e| DaemonError::Config(format!("demo import: {e}")))?;
    for to in [EventStatus::Startlist, EventStatus::Running] {
        let current = merge.snapshot().event(DEMO_EVENT).map(|e| e.header.status);
        if current.is_some_and(|s| s.can_transition_to(to)) {
            merge
                .send(Input::Admin(AdminCommand::Transition {
                    event_id: DEMO_EVENT.into(),
                    to,
                }))
                .await
                .map_err(|e| DaemonError::Config(format!("demo status: {e}")))?;
        }
    }
    Ok(())
}
