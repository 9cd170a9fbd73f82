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
    let store =
        Store::open(&config.db, config.synchronous).map_err(|source| DaemonError::Store {
            path: config.db.display().to_string(),
            source,
        })?;
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

/// Starts the inputs configured: the XML folder watcher.
pub fn start_inputs(
    config: &ServeConfig,
    merge: &MergeHandle,
    shutdown: &Shutdown,
) -> Result<
    (
        Option<watch::SharedWatcherStatus>,
        Vec<tokio::task::JoinHandle<()>>,
    ),
    DaemonError,
> {
    let mut tasks = Vec::new();
    let mut status = None;
    if let Some(dir) = &config.xml_dir {
        let mut ws = WatchSettings::new(dir.clone());
        ws.event = config.event.clone();
        ws.poll = config.xml_poll;
        let (st, task) = watch::spawn(ws, merge.clone(), shutdown.clone())?;
        status = Some(st);
        tasks.push(task);
    }
    Ok((status, tasks))
}

/// The real event bundled into the binary, so `demo` works from any folder.
pub const DEMO_XML: &[u8] = include_bytes!("../fixtures/jarni-2024.xml");
/// The real TCP recording of the same event.
pub const DEMO_RECORDING: &str = include_str!("../fixtures/jarni-2024.tcp.jsonl");
pub const DEMO_EVENT: &str = "jarni-2024";

/// Runs the daemon until SIGTERM/SIGINT.
pub async fn serve(config: ServeConfig) -> Result<(), DaemonError> {
    let shutdown = Shutdown::new();
    let running = start(&config, &shutdown).await?;
    if let Some(addr) = running.local_addr {
        tracing::info!(%addr, db = %config.db.display(), "c123-live is up");
    }
    notify_systemd(&[sd_notify::NotifyState::Ready]);
    crate::shutdown::signal().await;
    tracing::info!("shutting down");
    notify_systemd(&[sd_notify::NotifyState::Stopping]);
    stop(running, &shutdown).await;
    Ok(())
}

/// Starts everything; returns once the API is listening.
pub async fn start(config: &ServeConfig, shutdown: &Shutdown) -> Result<Running, DaemonError> {
    let (merge, merge_task, ticker) = start_core(config, shutdown)?;
    let (watcher, mut tasks) = start_inputs(config, &merge, shutdown)?;
    tasks.push(ticker);
    Ok(Running {
        merge,
        merge_task,
        local_addr: None,
        tasks,
        watcher,
    })
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
    let config = ServeConfig {
        db: dir.join("demo.db"),
        synchronous: crate::store::Synchronous::Off,
        listen: args.listen,
        event: Some(DEMO_EVENT.into()),
        xml_dir: None,
        xml_poll: None,
        merge_strategy: Default::default(),
        master_keys: Vec::new(),
        dev: true,
    };
    let shutdown = Shutdown::new();
    let running = start(&config, &shutdown).await?;
    prepare_demo_event(&running.merge).await?;
    println!(
        "c123-live demo: open http://{}/ (Ctrl-C to stop)",
        args.listen
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
