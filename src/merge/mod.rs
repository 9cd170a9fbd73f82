//! The merge loop: the only writer of the database and of the in-memory state.
//!
//! Every change arrives as an [`Input`] on one bounded channel. The loop applies it to a copy
//! of the affected event (pure functions in `apply`), writes the difference in one SQLite
//! transaction, and only after the commit: bumps the event's `seq`, publishes a new immutable
//! [`Snapshot`] for readers, broadcasts a [`Published`] change set for the WebSocket hub and
//! answers the sender. A failed input changes nothing: the transaction rolls back and the
//! in-memory state is the one from before.
//!
//! The loop runs on a blocking thread of the runtime because SQLite's commits block on
//! fsync; readers never wait for it (they clone the current snapshot `Arc`).

mod admin;
mod apply;
mod commit;
mod import;
mod input;
mod live;
mod replicate;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc, oneshot, watch};

pub use apply::{config_patch_allowed, ingest_allowed, DataKind};
pub use input::{
    AdminCommand, Envelope, Input, Outcome, Replicated, Reply, ResultUpdate, Via, XmlOrigin,
    XmlTarget,
};

use crate::model::{Event, EventStatus, MergeStrategy};
use crate::store::{Store, StoreError};
use crate::xml::Export;

/// Why an input was refused. Nothing was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    #[error("Event not found: {0}")]
    EventNotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("Cannot transition from '{from}' to '{to}'")]
    InvalidTransition { from: EventStatus, to: EventStatus },
    #[error("Data type '{data}' not accepted in '{status}' state")]
    Forbidden { data: DataKind, status: EventStatus },
    #[error("{0}")]
    Invalid(String),
    #[error("storage failed, nothing was changed: {0}")]
    Store(String),
    #[error("the merge loop is not running")]
    Stopped,
}

/// What changed in one event with one commit. Serialized into replication records
/// (`crate::replicate::wire`), so that a replica's hub composes the origin's messages.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EventChange {
    pub event_id: String,
    /// The event's `seq` after this change.
    pub seq: u64,
    pub created: bool,
    pub deleted: bool,
    /// Classes, categories, participants, races, courses or event metadata changed.
    pub structure: bool,
    /// `(race_id, participant_id)` of rows added or changed (rank shifts included).
    pub results: Vec<(String, String)>,
    /// `(race_id, participant_id)` of rows removed.
    pub removed_results: Vec<(String, String)>,
    pub oncourse: bool,
    /// The new status, on a lifecycle transition.
    pub status: Option<EventStatus>,
    pub config: bool,
}

/// Everything one commit changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeSet {
    pub events: Vec<EventChange>,
}

impl ChangeSet {
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

/// The committed state, immutable; readers clone the `Arc`.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Identifies the database (and so the `seq` space).
    pub epoch: String,
    pub events: BTreeMap<String, Arc<Event>>,
    pub committed_at: Instant,
    /// The event the XML folder imported an export into last (since start): direct-mode
    /// TCP sources feed it. Kept in memory only; at start the folder is imported again.
    pub latest_import: Option<String>,
}

impl Snapshot {
    pub fn event(&self, event_id: &str) -> Option<&Arc<Event>> {
        self.events.get(event_id)
    }

    /// The event a TCP source without an event binding feeds (README: "the event of the
    /// newest export"): the one the folder imported into last, before any import since start
    /// the newest event that came from an export. The scoreboard serves the same one.
    pub fn direct_event(&self) -> Option<&Arc<Event>> {
        self.latest_import
            .as_deref()
            .and_then(|id| self.event(id))
            .filter(|e| e.header.xml_event_id.is_some())
            .or_else(|| {
                self.events
                    .values()
                    .filter(|e| e.header.xml_event_id.is_some())
                    .max_by_key(|e| e.header.id)
            })
    }
}

/// A committed change set with the snapshot it produced.
#[derive(Debug)]
pub struct Published {
    pub changes: ChangeSet,
    pub snapshot: Arc<Snapshot>,
}

#[derive(Debug, Clone)]
pub struct MergeSettings {
    pub default_strategy: MergeStrategy,
    /// On-course entries from the ingest API expire when not refreshed for this long.
    pub oncourse_ttl: Duration,
    pub channel_capacity: usize,
}

impl Default for MergeSettings {
    fn default() -> Self {
        MergeSettings {
            default_strategy: MergeStrategy::TcpWins,
            oncourse_ttl: Duration::from_secs(10),
            channel_capacity: 1024,
        }
    }
}

/// Cheap to clone; how everything else talks to the merge loop.
#[derive(Clone)]
pub struct MergeHandle {
    tx: mpsc::Sender<Envelope>,
    snapshot: watch::Receiver<Arc<Snapshot>>,
    published: broadcast::Sender<Arc<Published>>,
    stopping: Arc<AtomicBool>,
    stats: Arc<LoopStats>,
    /// Rows the start-up load could not read and left out (`/api/v1/admin/status`).
    skipped_rows: Arc<crate::store::SkippedRows>,
}

/// Counters the loop keeps for `/metrics`.
#[derive(Debug)]
pub struct LoopStats {
    pub applied: std::sync::atomic::AtomicU64,
    pub rejected: std::sync::atomic::AtomicU64,
    pub store_errors: std::sync::atomic::AtomicU64,
    /// Sum and count of commit durations in microseconds.
    pub commit_micros: std::sync::atomic::AtomicU64,
    pub commits: std::sync::atomic::AtomicU64,
    pub running: AtomicBool,
    /// The last commit attempt failed (disk full, `--max-db-size` reached, I/O error);
    /// cleared by the next successful commit. `/readyz` reports not-ready while it is set.
    pub last_commit_failed: AtomicBool,
    /// Commit durations in seconds.
    pub commit_seconds: prometheus_client::metrics::histogram::Histogram,
}

impl Default for LoopStats {
    fn default() -> Self {
        LoopStats {
            applied: Default::default(),
            rejected: Default::default(),
            store_errors: Default::default(),
            commit_micros: Default::default(),
            commits: Default::default(),
            running: Default::default(),
            last_commit_failed: Default::default(),
            commit_seconds: prometheus_client::metrics::histogram::Histogram::new([
                0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0,
            ]),
        }
    }
}

impl MergeHandle {
    /// Sends an input and waits until it is committed (or refused).
    pub async fn send(&self, input: Input) -> Result<Outcome, MergeError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Envelope {
                input,
                reply: Some(reply),
            })
            .await
            .map_err(|_| MergeError::Stopped)?;
        rx.await.map_err(|_| MergeError::Stopped)?
    }

    /// Sends an input without waiting for its outcome (timers, fire-and-forget sources).
    pub async fn submit(&self, input: Input) -> Result<(), MergeError> {
        self.tx
            .send(Envelope { input, reply: None })
            .await
            .map_err(|_| MergeError::Stopped)
    }

    /// Stored rows the start-up load skipped because they could not be read.
    pub fn skipped_rows(&self) -> &crate::store::SkippedRows {
        &self.skipped_rows
    }

    /// The latest committed state.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.borrow().clone()
    }

    /// A watch that changes with every commit.
    pub fn watch(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.snapshot.clone()
    }

    /// Every committed change set, in commit order.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Published>> {
        self.published.subscribe()
    }

    pub fn stats(&self) -> &LoopStats {
        &self.stats
    }

    pub fn is_running(&self) -> bool {
        self.stats.running.load(Ordering::Relaxed)
    }

    /// The last commit attempt failed and none succeeded since.
    pub fn last_commit_failed(&self) -> bool {
        self.stats.last_commit_failed.load(Ordering::Relaxed)
    }

    /// Asks the loop to finish the input in flight, checkpoint and stop.
    pub async fn shutdown(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wake the loop if it is idle.
        let _ = self
            .tx
            .send(Envelope {
                input: Input::Tick,
                reply: None,
            })
            .await;
    }
}

/// Loads the database and starts the loop on a blocking thread.
pub fn start(
    store: Store,
    settings: MergeSettings,
) -> Result<(MergeHandle, tokio::task::JoinHandle<()>), StoreError> {
    let loaded = store.load()?;
    let retired_seqs = loaded.retired_seqs;
    let last_exports = loaded.last_exports;
    let snapshot = Arc::new(Snapshot {
        epoch: loaded.epoch,
        events: loaded.events,
        committed_at: Instant::now(),
        latest_import: None,
    });
    let (tx, rx) = mpsc::channel(settings.channel_capacity.max(1));
    let (snap_tx, snap_rx) = watch::channel(Arc::clone(&snapshot));
    let (pub_tx, _) = broadcast::channel(4096);
    let stopping = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(LoopStats::default());
    stats.running.store(true, Ordering::SeqCst);
    let handle = MergeHandle {
        tx,
        snapshot: snap_rx,
        published: pub_tx.clone(),
        stopping: Arc::clone(&stopping),
        stats: Arc::clone(&stats),
        skipped_rows: Arc::new(loaded.skipped),
    };
    let mut merge = MergeLoop {
        store,
        settings,
        state: snapshot,
        snap_tx,
        pub_tx,
        oncourse_seen: BTreeMap::new(),
        retired_seqs,
        last_exports,
        stats,
    };
    let join = tokio::task::spawn_blocking(move || {
        merge.run(rx, &stopping);
    });
    Ok((handle, join))
}

struct MergeLoop {
    store: Store,
    settings: MergeSettings,
    state: Arc<Snapshot>,
    snap_tx: watch::Sender<Arc<Snapshot>>,
    pub_tx: broadcast::Sender<Arc<Published>>,
    /// When each event's on-course list was last refreshed by the ingest API.
    oncourse_seen: BTreeMap<String, Instant>,
    /// The last `seq` of each deleted event id (stored): an event created again under that id
    /// is numbered after it, so no spectator of the old event can resume into the new one.
    /// One entry per deleted id, removed when the id is created again.
    retired_seqs: BTreeMap<String, u64>,
    /// The last export merged into each event (also stored), for a merge-strategy change.
    /// One per event.
    last_exports: BTreeMap<String, Arc<Export>>,
    stats: Arc<LoopStats>,
}

impl MergeLoop {
    fn run(&mut self, mut rx: mpsc::Receiver<Envelope>, stopping: &AtomicBool) {
        /// Clears the running flag however the loop ends, a panic included, so readiness
        /// and the daemon see it.
        struct Running(Arc<LoopStats>);
        impl Drop for Running {
            fn drop(&mut self) {
                self.0.running.store(false, Ordering::SeqCst);
            }
        }
        let _running = Running(Arc::clone(&self.stats));
        while let Some(env) = rx.blocking_recv() {
            let kind = env.input.kind();
            let result = self.handle(env.input);
            match &result {
                Ok(_) => self.stats.applied.fetch_add(1, Ordering::Relaxed),
                Err(e) => {
                    if matches!(e, MergeError::Store(_)) {
                        self.stats.store_errors.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(input = kind, error = %e, "input not applied");
                    } else {
                        tracing::debug!(input = kind, error = %e, "input refused");
                    }
                    self.stats.rejected.fetch_add(1, Ordering::Relaxed)
                }
            };
            if let Some(reply) = env.reply {
                let _ = reply.send(result);
            }
            if stopping.load(Ordering::SeqCst) {
                break;
            }
        }
        self.stats.running.store(false, Ordering::SeqCst);
        if let Err(e) = self.store.checkpoint() {
            tracing::warn!(error = %e, "WAL checkpoint at shutdown failed");
        }
        tracing::info!("merge loop stopped");
    }

    fn event(&self, event_id: &str) -> Result<&Arc<Event>, MergeError> {
        self.state
            .events
            .get(event_id)
            .ok_or_else(|| MergeError::EventNotFound(event_id.to_owned()))
    }

    /// One input, dispatched to the method that applies it.
    fn handle(&mut self, input: Input) -> Result<Outcome, MergeError> {
        let now = Instant::now();
        match input {
            Input::Xml {
                target,
                export,
                origin,
            } => self.import(target, Arc::new(*export), origin),
            Input::OnCourse {
                event_id,
                entries,
                via,
            } => self.oncourse(event_id, entries, via, now),
            Input::Results {
                event_id,
                updates,
                via,
            } => self.results(event_id, updates, via),
            Input::Admin(cmd) => self.admin(cmd),
            Input::Replicate(r) => self.replicate(*r),
            Input::Tick => self.tick(now),
        }
    }
}
