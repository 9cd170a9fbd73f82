//! The origin's bounded queue between the follower (which fills it) and the publisher (which
//! empties it into NATS).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::Notify;

use super::{Counter, ReplicationSettings, ReplicationStatus};
use crate::merge::Snapshot;
use crate::model::Event;

/// What the publisher sends, in order.
#[derive(Clone)]
pub(super) enum Item {
    Record {
        subject: String,
        msg_id: String,
        payload: Bytes,
        event_id: String,
        seq: u64,
        /// The record says the event was deleted (its snapshot key goes too).
        deleted: bool,
    },
    /// Write this version's snapshot.
    Snapshot(Arc<Event>),
    /// Snapshots of every event, a marker record for each, the extra keys removed.
    Resync(Arc<Snapshot>),
}

impl Item {
    fn size(&self) -> usize {
        match self {
            Item::Record { payload, .. } => payload.len(),
            _ => 0,
        }
    }
}

/// The bounded queue between the follower and the publisher. Each item has a number, so the
/// publisher removes the item it sent, not one a resync put in its place.
pub(super) struct Queue {
    state: Mutex<QueueState>,
    ready: Notify,
    max_items: usize,
    max_bytes: usize,
    pub(super) status: ReplicationStatus,
}

#[derive(Default)]
struct QueueState {
    items: VecDeque<(u64, Item)>,
    bytes: usize,
    next: u64,
}

impl Queue {
    pub(super) fn new(s: &ReplicationSettings, status: ReplicationStatus) -> Queue {
        Queue {
            state: Mutex::default(),
            ready: Notify::new(),
            max_items: s.queue_records.max(1),
            max_bytes: s.queue_bytes.max(1),
            status,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `item`; when that would pass a bound, everything queued is dropped and
    /// replaced by a resync of `latest` (the state `item` belongs to). Returns false then.
    pub(super) fn push(&self, item: Item, latest: &Arc<Snapshot>) -> bool {
        let mut q = self.lock();
        let fits = q.items.len() < self.max_items && q.bytes + item.size() <= self.max_bytes;
        let item = if fits {
            item
        } else {
            q.items.clear();
            q.bytes = 0;
            self.status.add(Counter::Resyncs, 1);
            tracing::warn!(
                "replication queue full (NATS unreachable?): replicas will get snapshots"
            );
            Item::Resync(Arc::clone(latest))
        };
        q.bytes += item.size();
        let id = q.next;
        q.next += 1;
        q.items.push_back((id, item));
        self.status.set_pending(q.items.len() as u64);
        drop(q);
        self.ready.notify_one();
        fits
    }

    /// Drops everything queued for a resync of `latest`.
    pub(super) fn resync(&self, latest: Arc<Snapshot>) {
        let mut q = self.lock();
        q.items.clear();
        q.bytes = 0;
        let id = q.next;
        q.next += 1;
        q.items.push_back((id, Item::Resync(latest)));
        self.status.set_pending(1);
        drop(q);
        self.ready.notify_one();
    }

    pub(super) fn front(&self) -> Option<(u64, Item)> {
        self.lock().items.front().cloned()
    }

    pub(super) fn done(&self, id: u64) {
        let mut q = self.lock();
        if q.items.front().is_some_and(|(i, _)| *i == id) {
            if let Some((_, item)) = q.items.pop_front() {
                q.bytes -= item.size();
            }
        }
        self.status.set_pending(q.items.len() as u64);
    }

    pub(super) async fn wait(&self) -> (u64, Item) {
        loop {
            let notified = self.ready.notified();
            if let Some(front) = self.front() {
                return front;
            }
            notified.await;
        }
    }
}
