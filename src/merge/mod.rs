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

mod apply;
mod input;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc, oneshot, watch};

pub use apply::{config_patch_allowed, ingest_allowed, DataKind};
pub use input::{
    AdminCommand, Envelope, Input, Outcome, Reply, ResultUpdate, Via, XmlOrigin, XmlTarget,
};

use crate::model::{Event, EventHeader, EventMeta, EventStatus, MergeStrategy};
use crate::store::{LastExport, Store, StoreError};
use crate::time::{now_iso, now_sql};
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

/// What changed in one event with one commit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
            } => {
                let old = Arc::clone(self.event(&event_id)?);
                let data = match via {
                    Via::IngestApi => DataKind::JsonOncourse,
                    Via::Tcp => DataKind::Tcp,
                };
                if !ingest_allowed(old.header.status, data) {
                    return Err(MergeError::Forbidden {
                        data,
                        status: old.header.status,
                    });
                }
                if !old.header.has_xml_data {
                    return Ok(Outcome::OnCourse {
                        active: 0,
                        ignored_no_xml: true,
                    });
                }
                let active = entries.len();
                self.oncourse_seen.insert(event_id.clone(), now);
                let mut new = (*old).clone();
                new.oncourse = Arc::new(entries);
                self.commit_events(vec![(Some(old), Some(new))])?;
                Ok(Outcome::OnCourse {
                    active,
                    ignored_no_xml: false,
                })
            }
            Input::Results {
                event_id,
                updates,
                via,
            } => {
                let old = Arc::clone(self.event(&event_id)?);
                let status = old.header.status;
                let data = match via {
                    Via::IngestApi => DataKind::JsonResults,
                    Via::Tcp => DataKind::Tcp,
                };
                if !ingest_allowed(status, data) {
                    return Err(MergeError::Forbidden { data, status });
                }
                if !old.header.has_xml_data {
                    return Ok(Outcome::Results {
                        updated: 0,
                        ignored_unknown: 0,
                        ignored_no_xml: true,
                    });
                }
                let mut new = (*old).clone();
                let (updated, ignored_unknown) = apply::apply_results(&mut new, &updates);
                self.commit_events(vec![(Some(old), Some(new))])?;
                Ok(Outcome::Results {
                    updated,
                    ignored_unknown,
                    ignored_no_xml: false,
                })
            }
            Input::Admin(cmd) => self.admin(cmd),
            Input::Tick => {
                let ttl = self.settings.oncourse_ttl;
                let expired: Vec<String> = self
                    .oncourse_seen
                    .iter()
                    .filter(|(_, seen)| now.duration_since(**seen) > ttl)
                    .map(|(id, _)| id.clone())
                    .collect();
                let mut changes = Vec::new();
                for id in expired {
                    self.oncourse_seen.remove(&id);
                    if let Some(old) = self.state.events.get(&id) {
                        if !old.oncourse.is_empty() {
                            let mut new = (**old).clone();
                            new.oncourse = Arc::default();
                            changes.push((Some(Arc::clone(old)), Some(new)));
                        }
                    }
                }
                if !changes.is_empty() {
                    self.commit_events(changes)?;
                }
                Ok(Outcome::Ticked)
            }
        }
    }

    fn import(
        &mut self,
        target: XmlTarget,
        export: Arc<Export>,
        origin: XmlOrigin,
    ) -> Result<Outcome, MergeError> {
        let xml_id = &export.event.event_id;
        let (existing, wanted_id) = match &target {
            XmlTarget::Event(id) => (Some(Arc::clone(self.event(id)?)), id.clone()),
            XmlTarget::ByExport { event_id: Some(id) } => {
                (self.state.events.get(id).cloned(), id.clone())
            }
            XmlTarget::ByExport { event_id: None } => {
                let found = self
                    .state
                    .events
                    .values()
                    .find(|e| e.header.xml_event_id.as_deref() == Some(xml_id.as_str()))
                    .or_else(|| self.state.events.get(xml_id))
                    .cloned();
                let id = found
                    .as_ref()
                    .map(|e| e.header.event_id.clone())
                    .unwrap_or_else(|| xml_id.clone());
                (found, id)
            }
        };
        if let Some(e) = &existing {
            if !ingest_allowed(e.header.status, DataKind::Xml) {
                return Err(MergeError::Forbidden {
                    data: DataKind::Xml,
                    status: e.header.status,
                });
            }
        }
        let created = existing.is_none();
        let base = match &existing {
            Some(e) => (**e).clone(),
            None => Event::new(self.new_header(
                wanted_id.clone(),
                EventMeta {
                    main_title: export.event.meta.main_title.clone(),
                    ..EventMeta::default()
                },
                crate::keys::generate_api_key(),
                None,
            )),
        };
        let strategy = base.merge_strategy(self.settings.default_strategy);
        let bound_export_id = base.header.xml_event_id.clone();
        let mut new = base;
        apply::merge_export(&mut new, &export, strategy);
        if matches!(target, XmlTarget::Event(_)) {
            // A keyed import (ingest API) writes only the key's event, and its `EventId` is
            // ignored: it never binds the event to the venue's folder or TCP feed, which find
            // their event by the `EventId` of the exports they fed (direct mode).
            new.header.xml_event_id = bound_export_id;
        }
        let remember = LastExportOwned {
            event_row: new.header.id,
            event_id: wanted_id.clone(),
            export: Arc::clone(&export),
        };
        let rows = self.commit_events_with(vec![(existing, Some(new))], Some(remember))?;
        // Only the folder's exports pick the event TCP feeds: a key holder posting its own
        // event's export must not redirect the venue's timing.
        if matches!(origin, XmlOrigin::File(_)) {
            self.note_latest_import(&wanted_id);
        }
        tracing::info!(
            event = %wanted_id, created, rows_changed = rows, origin = ?origin,
            "XML export imported"
        );
        Ok(Outcome::XmlImported {
            event_id: wanted_id,
            created_event: created,
            counts: export.counts(),
            rows_changed: rows,
        })
    }

    /// Records the event of the latest folder import in the snapshot, also when the export
    /// changed nothing (then without a commit: it is not stored data).
    fn note_latest_import(&mut self, event_id: &str) {
        if self.state.latest_import.as_deref() == Some(event_id) {
            return;
        }
        let mut snapshot = (*self.state).clone();
        snapshot.latest_import = Some(event_id.to_owned());
        self.state = Arc::new(snapshot);
        self.snap_tx.send_replace(Arc::clone(&self.state));
    }

    fn new_header(
        &self,
        event_id: String,
        meta: EventMeta,
        api_key: String,
        image: Option<crate::model::EventImage>,
    ) -> EventHeader {
        let id = self
            .state
            .events
            .values()
            .map(|e| e.header.id)
            .max()
            .unwrap_or(0)
            + 1;
        // Only an admin create passes dates here; they bound the API key for good.
        let key_dates = crate::model::KeyDates {
            start_date: meta.start_date.clone(),
            end_date: meta.end_date.clone(),
        };
        EventHeader {
            id,
            event_id,
            xml_event_id: None,
            meta,
            key_dates,
            status: EventStatus::Draft,
            status_changed_at: None,
            api_key,
            config: Default::default(),
            image,
            has_xml_data: false,
            seq: 0,
            created_at: now_sql(),
        }
    }

    fn admin(&mut self, cmd: AdminCommand) -> Result<Outcome, MergeError> {
        match cmd {
            AdminCommand::CreateEvent {
                event_id,
                meta,
                image,
                api_key,
            } => {
                if self.state.events.contains_key(&event_id) {
                    return Err(MergeError::Conflict(format!(
                        "Event already exists: {event_id}"
                    )));
                }
                if self
                    .state
                    .events
                    .values()
                    .any(|e| e.header.api_key == api_key)
                {
                    return Err(MergeError::Conflict("API key already in use".into()));
                }
                let header = self.new_header(event_id.clone(), meta, api_key.clone(), image);
                let id = header.id;
                self.commit_events(vec![(None, Some(Event::new(header)))])?;
                Ok(Outcome::EventCreated {
                    id,
                    event_id,
                    api_key,
                })
            }
            AdminCommand::DeleteEvent { event_id } => {
                let old = Arc::clone(self.event(&event_id)?);
                self.commit_events(vec![(Some(old), None)])?;
                self.oncourse_seen.remove(&event_id);
                self.last_exports.remove(&event_id);
                Ok(Outcome::EventDeleted { event_id })
            }
            AdminCommand::Transition { event_id, to } => {
                let old = Arc::clone(self.event(&event_id)?);
                let from = old.header.status;
                if !from.can_transition_to(to) {
                    return Err(MergeError::InvalidTransition { from, to });
                }
                let mut new = (*old).clone();
                let changed_at = now_iso();
                new.header.status = to;
                new.header.status_changed_at = Some(changed_at.clone());
                self.commit_events(vec![(Some(old), Some(new))])?;
                Ok(Outcome::Transitioned {
                    event_id,
                    previous: from,
                    status: to,
                    changed_at,
                })
            }
            AdminCommand::SetConfig { event_id, patch } => {
                let old = Arc::clone(self.event(&event_id)?);
                if !config_patch_allowed(old.header.status, &patch) {
                    return Err(MergeError::Forbidden {
                        data: DataKind::Config,
                        status: old.header.status,
                    });
                }
                let default = self.settings.default_strategy;
                let mut new = (*old).clone();
                new.header.config = apply::patch_config(&old.header.config, patch);
                let config = new.header.config.clone();
                let strategy = new.merge_strategy(default);
                if strategy != old.merge_strategy(default) && new.header.has_xml_data {
                    // Same commit: spectators see the config and the re-merged results
                    // together, with one seq.
                    if let Some(export) = self.last_exports.get(&event_id) {
                        let keep_binding = new.header.xml_event_id.clone();
                        apply::merge_export(&mut new, export, strategy);
                        new.header.xml_event_id = keep_binding;
                    }
                }
                self.commit_events(vec![(Some(old), Some(new))])?;
                Ok(Outcome::ConfigSet { event_id, config })
            }
            AdminCommand::SetStorageLimit { max_bytes } => {
                let max_bytes = self
                    .store
                    .set_max_size(max_bytes)
                    .map_err(|e| MergeError::Store(e.to_string()))?;
                tracing::info!(max_bytes, "database size cap changed");
                Ok(Outcome::StorageLimit { max_bytes })
            }
        }
    }

    /// Commits new versions of events and publishes them. Events whose content did not
    /// change are left alone (no write, no `seq` bump, nothing published). Returns the
    /// number of rows written.
    fn commit_events(
        &mut self,
        changes: Vec<(Option<Arc<Event>>, Option<Event>)>,
    ) -> Result<usize, MergeError> {
        self.commit_events_with(changes, None)
    }

    /// [`Self::commit_events`], also storing `export` as the event's last export in the same
    /// transaction when it differs from the one kept (written even if no row changed).
    fn commit_events_with(
        &mut self,
        changes: Vec<(Option<Arc<Event>>, Option<Event>)>,
        export: Option<LastExportOwned>,
    ) -> Result<usize, MergeError> {
        let export = export.filter(|e| {
            self.last_exports
                .get(&e.event_id)
                .is_none_or(|kept| **kept != *e.export)
        });
        let mut pending: Vec<(Option<Arc<Event>>, Option<Event>, EventChange)> = Vec::new();
        for (old, new) in changes {
            match (old, new) {
                (None, None) => {}
                (Some(old), None) => {
                    let change = EventChange {
                        event_id: old.header.event_id.clone(),
                        seq: old.header.seq + 1,
                        deleted: true,
                        ..EventChange::default()
                    };
                    pending.push((Some(old), None, change));
                }
                (old, Some(mut new)) => {
                    if let Some(o) = &old {
                        apply::reuse_unchanged(o, &mut new);
                    }
                    let Some(mut change) = describe(old.as_deref(), &new) else {
                        continue;
                    };
                    // A re-created id continues after the deleted event's last seq.
                    let base = match &old {
                        Some(o) => o.header.seq,
                        None => self
                            .retired_seqs
                            .get(&new.header.event_id)
                            .copied()
                            .unwrap_or(0),
                    };
                    new.header.seq = base + 1;
                    change.seq = new.header.seq;
                    pending.push((old, Some(new), change));
                }
            }
        }
        if pending.is_empty() && export.is_none() {
            return Ok(0);
        }
        let started = Instant::now();
        let stamp = now_iso();
        let pairs: Vec<(Option<&Event>, Option<&Event>)> = pending
            .iter()
            .map(|(o, n, _)| (o.as_deref(), n.as_ref()))
            .collect();
        let last = export.as_ref().map(|e| LastExport {
            event_row: e.event_row,
            export: &e.export,
        });
        let written = match self.store.commit(&pairs, last, &stamp) {
            Ok(w) => {
                self.stats
                    .last_commit_failed
                    .store(false, Ordering::Relaxed);
                w
            }
            Err(e) => {
                self.stats.last_commit_failed.store(true, Ordering::Relaxed);
                let msg = if e.is_full() {
                    format!("the database is full (disk or --max-db-size): {e}")
                } else {
                    e.to_string()
                };
                return Err(MergeError::Store(msg));
            }
        };
        let took = started.elapsed();
        self.stats
            .commit_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        self.stats.commit_seconds.observe(took.as_secs_f64());
        self.stats.commits.fetch_add(1, Ordering::Relaxed);

        if let Some(e) = export {
            self.last_exports.insert(e.event_id, e.export);
        }
        if pending.is_empty() {
            return Ok(written.rows);
        }
        let mut events = self.state.events.clone();
        let mut changeset = ChangeSet::default();
        for (old, new, change) in pending {
            match new {
                Some(new) => {
                    if old.is_none() {
                        self.retired_seqs.remove(&new.header.event_id);
                    }
                    events.insert(new.header.event_id.clone(), Arc::new(new));
                }
                None => {
                    if let Some(old) = old {
                        self.retired_seqs
                            .insert(old.header.event_id.clone(), change.seq);
                        events.remove(&old.header.event_id);
                    }
                }
            }
            changeset.events.push(change);
        }
        let snapshot = Arc::new(Snapshot {
            epoch: self.state.epoch.clone(),
            events,
            committed_at: Instant::now(),
            latest_import: self.state.latest_import.clone(),
        });
        self.state = Arc::clone(&snapshot);
        self.snap_tx.send_replace(Arc::clone(&snapshot));
        // No subscriber (no WebSocket hub) is fine: nothing is serialized then.
        let _ = self.pub_tx.send(Arc::new(Published {
            changes: changeset,
            snapshot,
        }));
        Ok(written.rows)
    }
}

/// An export to keep as an event's last one, with what the store needs to write it.
struct LastExportOwned {
    event_row: i64,
    event_id: String,
    export: Arc<Export>,
}

/// What differs between two versions of an event; `None` when nothing does.
fn describe(old: Option<&Event>, new: &Event) -> Option<EventChange> {
    let Some(old) = old else {
        return Some(EventChange {
            event_id: new.header.event_id.clone(),
            created: true,
            structure: true,
            ..EventChange::default()
        });
    };
    let mut header_old = old.header.clone();
    header_old.seq = new.header.seq;
    let structure = old.classes != new.classes
        || old.participants != new.participants
        || old.races != new.races
        || old.courses != new.courses
        || old.header.meta != new.header.meta
        || old.header.image != new.header.image
        || old.header.has_xml_data != new.header.has_xml_data
        || old.header.xml_event_id != new.header.xml_event_id;
    let (results, removed_results) = apply::changed_results(old, new);
    let oncourse = old.oncourse != new.oncourse;
    let status = (old.header.status != new.header.status).then_some(new.header.status);
    let config = old.header.config != new.header.config;
    let other_header = header_old != new.header;
    if !structure
        && results.is_empty()
        && removed_results.is_empty()
        && !oncourse
        && status.is_none()
        && !config
        && !other_header
    {
        return None;
    }
    Some(EventChange {
        event_id: new.header.event_id.clone(),
        seq: 0,
        created: false,
        deleted: false,
        structure,
        results,
        removed_results,
        oncourse,
        status,
        config,
    })
}
