//! The WebSocket hub: one room per event, a bounded queue per client, heartbeat, resume ring.
//!
//! One task ([`Hub::start`]) follows the merge loop's committed change sets in order. For each
//! event a change set touches, it builds **one** message under the room's lock (nothing at all
//! when the room has no client), serializes and frames it once (`frame.rs`: server frames are
//! unmasked, so header + payload are the same bytes for everyone), and writes those bytes to
//! every client of the room (invariant 4): directly, one non-blocking write, to a client whose
//! queue is empty; into the queue of the others, whose tasks write what is pending in one
//! vectored write when their socket is writable. An on-course list a client has not yet been
//! sent when the next list is queued behind it goes out as its `superseded` diff. A queue
//! that would exceed its byte bound is emptied and given one `full` instead; a client whose
//! socket takes nothing for `drain_timeout` is disconnected (invariant 5).
//!
//! The room's lock orders everything: a client joins (gets its `full` or its replay) under
//! it, and every later message is queued under it, so a client never sees a gap or a message
//! older than its `full`.
//!
//! Upgrades are refused before the 101 with a typed [`Refusal`] (404/410/503/400), which the
//! HTTP layer turns into its one error body; slots are reserved
//! atomically before the upgrade and released when the connection task ends, whatever the
//! reason.

mod admit;
mod backlog;
pub mod bench;
pub mod compose;
mod config;
mod conn;
mod frame;
mod publish;
mod queue;
mod read;
mod room;
mod stats;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

pub use admit::{parse_resume, Refusal, Resume};
pub use compose::{CloseReason, PublicWire, WireBuilder};
pub use config::HubConfig;
pub use stats::HubStats;

use admit::Slot;
use backlog::{Backlog, Pending};
use room::Room;

use crate::merge::{MergeHandle, Published};
use crate::shutdown::Shutdown;

struct HubState {
    rooms: HashMap<String, Arc<Room>>,
}

struct Inner {
    cfg: HubConfig,
    wire: Arc<dyn WireBuilder>,
    stats: HubStats,
    epoch: String,
    /// Admission and new rooms read the freshest committed state, so a client that connects
    /// right after a transition was acknowledged is not refused on a stale view.
    merge: MergeHandle,
    state: Mutex<HubState>,
    total: AtomicUsize,
    next_client: AtomicU64,
    shutdown: Shutdown,
    /// Signalled whenever a connection ends.
    left: Notify,
    /// Between the task that follows the merge loop and the one that builds messages.
    backlog: Mutex<Backlog>,
    backlog_ready: Notify,
    /// `cfg.fanout_threads`, 0 resolved to the number of cores.
    fanout_threads: usize,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn backlog(&self) -> MutexGuard<'_, Backlog> {
        self.backlog.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a committed change set for the builder: keeps each changed event (not the
    /// snapshot) and folds it into that event's pending entry if there is one.
    fn enqueue(&self, published: &Published) {
        let mut backlog = self.backlog();
        for change in &published.changes.events {
            let event = published.snapshot.event(&change.event_id);
            let absorbed = backlog
                .pending
                .iter_mut()
                .rev()
                .find(|p| p.change.event_id == change.event_id)
                .is_some_and(|p| p.absorb(change, event));
            if absorbed {
                HubStats::add(&self.stats.coalesced, 1);
                continue;
            }
            backlog.pending.push_back(Pending {
                change: change.clone(),
                first_seq: change.seq,
                event: event.cloned(),
                committed_at: published.snapshot.committed_at,
            });
            if backlog.pending.len() > self.cfg.backlog_len {
                backlog.pending.clear();
                backlog.lagged = true;
            }
        }
        drop(backlog);
        self.backlog_ready.notify_one();
    }

    fn lost_changes(&self) {
        let mut backlog = self.backlog();
        backlog.pending.clear();
        backlog.lagged = true;
        drop(backlog);
        self.backlog_ready.notify_one();
    }
}

/// The hub. Cheap to clone.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

impl Hub {
    /// Creates the hub and starts the task that follows the merge loop. The task returns
    /// after `shutdown` fired and every client was sent 1001 and disconnected (bounded wait).
    pub fn start(
        cfg: HubConfig,
        wire: Arc<dyn WireBuilder>,
        merge: &MergeHandle,
        shutdown: Shutdown,
    ) -> (Hub, tokio::task::JoinHandle<()>) {
        // Subscribe before reading the snapshot: nothing committed in between is lost
        // (changes already in the snapshot are recognised by their seq and skipped).
        let rx = merge.subscribe();
        let snapshot = merge.snapshot();
        let fanout_threads = match cfg.fanout_threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let inner = Arc::new(Inner {
            fanout_threads,
            cfg,
            wire,
            stats: HubStats::default(),
            epoch: snapshot.epoch.clone(),
            merge: merge.clone(),
            state: Mutex::new(HubState {
                rooms: HashMap::new(),
            }),
            total: AtomicUsize::new(0),
            next_client: AtomicU64::new(1),
            shutdown,
            left: Notify::new(),
            backlog: Mutex::new(Backlog::default()),
            backlog_ready: Notify::new(),
        });
        let hub = Hub { inner };
        // Two tasks: the follower only moves change sets into the backlog (cheap, so the
        // merge loop's broadcast never holds a backlog of snapshots); the builder composes
        // and fans out, and may fall behind without costing memory.
        tokio::spawn(hub.clone().follow(rx));
        let task = tokio::spawn(hub.clone().run(merge.clone()));
        (hub, task)
    }

    pub fn stats(&self) -> &HubStats {
        &self.inner.stats
    }

    pub fn config(&self) -> &HubConfig {
        &self.inner.cfg
    }

    /// Connected (or upgrading) clients per event, for `/metrics`.
    pub fn clients_per_event(&self) -> Vec<(String, usize)> {
        let st = self.inner.lock();
        let mut v: Vec<(String, usize)> = st
            .rooms
            .values()
            .map(|r| (r.event_id.clone(), r.slots.load(Ordering::Acquire)))
            .collect();
        v.sort();
        v
    }

    /// Connected clients of all events.
    pub fn connected(&self) -> usize {
        self.inner.total.load(Ordering::Acquire)
    }
}
