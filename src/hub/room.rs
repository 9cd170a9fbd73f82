//! One event's spectators: their queues, the event as they last saw it, the cached `full`
//! and the resume ring.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, MutexGuard};

use super::compose::{self, CloseReason};
use super::config::HubConfig;
use super::frame::Frame;
use super::queue::ClientQueue;
use super::stats::HubStats;
use super::Inner;
use crate::model::Event;

/// The spectators of one event.
pub(super) struct Room {
    pub(super) event_id: String,
    /// Reserved slots (connections being upgraded or connected).
    pub(super) slots: AtomicUsize,
    pub(super) state: Mutex<RoomState>,
}

pub(super) struct RoomState {
    /// The event as of the last change this room processed (`None`: deleted).
    pub(super) event: Option<Arc<Event>>,
    pub(super) clients: HashMap<u64, Arc<ClientQueue>>,
    /// Recent messages by seq (each its prepared frames), contiguous; `None` for a message
    /// that cannot be replayed (`full`, `refresh`).
    pub(super) ring: VecDeque<(u64, Option<Vec<Frame>>)>,
    pub(super) ring_bytes: usize,
    /// The `full` of the current seq, built (and framed) at most once.
    pub(super) full: Option<(u64, Frame)>,
    pub(super) closing: Option<CloseReason>,
}

impl Room {
    pub(super) fn lock(&self) -> MutexGuard<'_, RoomState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl RoomState {
    /// The `full` for the current state, cached per seq.
    pub(super) fn full(&mut self, inner: &Inner) -> Option<Frame> {
        let event = self.event.as_ref()?;
        let seq = event.header.seq;
        if let Some((s, msg)) = &self.full {
            if *s == seq {
                return Some(msg.clone());
            }
        }
        let msg = Frame::text(&compose::full_message(
            inner.wire.as_ref(),
            event,
            &inner.epoch,
        ));
        HubStats::add(&inner.stats.messages_built, 1);
        self.full = Some((seq, msg.clone()));
        Some(msg)
    }

    pub(super) fn remember(&mut self, seq: u64, msg: Option<Vec<Frame>>, cfg: &HubConfig) {
        fn size(m: &Option<Vec<Frame>>) -> usize {
            m.iter().flatten().map(|m| m.payload).sum()
        }
        if self.ring.back().is_some_and(|(s, _)| s + 1 != seq) {
            self.clear_ring();
        }
        self.ring_bytes += size(&msg);
        self.ring.push_back((seq, msg));
        while self.ring.len() > cfg.ring_len || self.ring_bytes > cfg.ring_bytes {
            match self.ring.pop_front() {
                Some((_, m)) => self.ring_bytes -= size(&m),
                None => break,
            }
        }
    }

    pub(super) fn clear_ring(&mut self) {
        self.ring.clear();
        self.ring_bytes = 0;
    }

    /// The diffs after `since` up to the current seq, if every one of them is in the ring.
    pub(super) fn replay(&self, since: u64) -> Option<Vec<Frame>> {
        let current = self.event.as_ref()?.header.seq;
        if since > current {
            return None;
        }
        if since == current {
            return Some(Vec::new());
        }
        let first = self.ring.front()?.0;
        let last = self.ring.back()?.0;
        if first > since + 1 || last != current {
            return None;
        }
        let mut frames = Vec::new();
        for (_, m) in self.ring.iter().filter(|(s, _)| *s > since) {
            frames.extend(m.as_ref()?.iter().cloned());
        }
        Some(frames)
    }
}
