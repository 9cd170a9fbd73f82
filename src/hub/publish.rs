//! Publishing: the follower and builder tasks, one event's changes applied to its room and
//! fanned out, the resynchronisation after lost changes, and closing rooms.

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use hyper_tungstenite::tungstenite::Utf8Bytes;
use tokio::sync::broadcast;

use super::backlog::Pending;
use super::compose::{self, CloseReason};
use super::room::{Room, RoomState};
use super::stats::HubStats;
use super::Hub;
use crate::merge::{EventChange, MergeHandle, Published, Snapshot};
use crate::model::Event;

impl Hub {
    /// Follows the merge loop's committed change sets into the backlog.
    pub(super) async fn follow(self, mut rx: broadcast::Receiver<Arc<Published>>) {
        let shutdown = self.inner.shutdown.clone();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                msg = rx.recv() => match msg {
                    Ok(published) => self.inner.enqueue(&published),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "hub fell behind the merge loop; resynchronising every room");
                        self.inner.lost_changes();
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
            }
        }
    }

    /// Builds and fans out the messages of the backlog, in order.
    pub(super) async fn run(self, merge: MergeHandle) {
        let shutdown = self.inner.shutdown.clone();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.inner.backlog_ready.notified() => loop {
                    let (pending, lagged) = {
                        let mut backlog = self.inner.backlog();
                        (std::mem::take(&mut backlog.pending), std::mem::take(&mut backlog.lagged))
                    };
                    if pending.is_empty() && !lagged {
                        break;
                    }
                    if lagged {
                        HubStats::add(&self.inner.stats.lagged, 1);
                        // At least as new as every change lost (the snapshot is installed
                        // before its change set is broadcast); later ones are skipped by seq.
                        self.resync_all(merge.snapshot());
                    }
                    for item in pending {
                        self.publish(item);
                    }
                },
            }
        }
        // Every connection task sees the same token and closes with 1001; wait for them.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let left = self.inner.left.notified();
            if self.connected() == 0 {
                break;
            }
            if tokio::time::timeout_at(deadline, left).await.is_err() {
                tracing::warn!(
                    remaining = self.connected(),
                    "WebSocket clients still open at shutdown"
                );
                break;
            }
        }
    }

    /// Applies one event's pending change(s) to its room.
    fn publish(&self, item: Pending) {
        let room = {
            let mut st = self.inner.lock();
            let id = &item.change.event_id;
            if item.change.deleted || item.event.is_none() {
                st.rooms.remove(id)
            } else {
                st.rooms.get(id).cloned()
            }
        };
        if let Some(room) = room {
            self.apply(&room, item);
        }
    }

    fn apply(&self, room: &Arc<Room>, item: Pending) {
        let Pending {
            change,
            first_seq,
            event: new,
            committed_at,
        } = item;
        let mut st = room.lock();
        if let (Some(cur), Some(_)) = (&st.event, &new) {
            if cur.header.seq >= change.seq {
                return; // already in the state this room started from
            }
        }
        // Changes before `change.seq` that this message also describes (the hub was behind):
        // each still gets its seq, as a superseded diff, unless there are too many.
        let first = st
            .event
            .as_ref()
            .map_or(first_seq, |cur| first_seq.max(cur.header.seq + 1))
            .min(change.seq);
        let superseded = first..change.seq;
        let old = std::mem::replace(&mut st.event, new.clone());
        let closing = closing_for(new.as_deref());
        if st.clients.is_empty() {
            // Nothing is built for nobody (FR-015); the ring can no longer be contiguous.
            st.clear_ring();
            st.full = None;
            st.closing = closing;
            return;
        }
        let frames = self.frames(&mut st, old.as_deref(), &change, superseded);
        if !frames.is_empty() {
            self.fan_out(&mut st, &frames, committed_at);
        }
        self.set_closing(room, &mut st, closing);
    }

    /// The frames of one change (after the superseded diffs it also describes, unless there
    /// are too many), remembered in the ring for resume.
    fn frames(
        &self,
        st: &mut RoomState,
        old: Option<&Event>,
        change: &EventChange,
        superseded: Range<u64>,
    ) -> Vec<Utf8Bytes> {
        let inner = &*self.inner;
        let new = st.event.clone();
        let too_many = superseded.end - superseded.start > inner.cfg.max_superseded;
        let plan = if too_many && new.is_some() {
            compose::Plan::Full
        } else {
            compose::plan(inner.wire.as_ref(), old, new.as_deref(), change)
        };
        let mut frames: Vec<Utf8Bytes> = Vec::new();
        if !too_many && !matches!(plan, compose::Plan::Deleted) {
            for seq in superseded {
                let msg = compose::superseded_message(seq, &inner.epoch);
                st.remember(seq, Some(vec![msg.clone()]), &inner.cfg);
                frames.push(msg);
            }
        }
        match plan {
            compose::Plan::Deleted => {}
            compose::Plan::Diff(data) => {
                let msgs = compose::diff_frames(change.seq, &inner.epoch, data);
                HubStats::add(&inner.stats.messages_built, 1);
                st.remember(change.seq, Some(msgs.clone()), &inner.cfg);
                frames.extend(msgs);
            }
            compose::Plan::Full => {
                frames.extend(st.full(inner));
                st.remember(change.seq, None, &inner.cfg);
            }
            compose::Plan::Refresh => {
                let msg = compose::refresh_message(change.seq, &inner.epoch);
                HubStats::add(&inner.stats.messages_built, 1);
                st.remember(change.seq, None, &inner.cfg);
                frames.push(msg);
            }
        }
        frames
    }

    /// Queues the frames to every client of the room; a client whose queue overflows gets
    /// the room's `full` instead.
    fn fan_out(&self, st: &mut RoomState, frames: &[Utf8Bytes], committed_at: Instant) {
        let inner = &*self.inner;
        let mut overflowed = Vec::new();
        for (id, q) in &st.clients {
            if !q.push_all(frames, inner.cfg.queue_bytes, &inner.stats) {
                overflowed.push(*id);
            }
        }
        if !overflowed.is_empty() {
            HubStats::add(&inner.stats.queue_overflows, overflowed.len() as u64);
            if let Some(full) = st.full(inner) {
                for id in overflowed {
                    if let Some(q) = st.clients.get(&id) {
                        q.replace_with(&full, &inner.stats);
                        HubStats::add(&inner.stats.resyncs, 1);
                    }
                }
            }
        }
        let micros = committed_at.elapsed().as_micros() as u64;
        HubStats::add(&inner.stats.fanout_micros_sum, micros);
        HubStats::add(&inner.stats.fanout_count, 1);
        HubStats::max(&inner.stats.fanout_micros_max, micros);
    }

    /// Records why the room now closes (`None`: it stays open); a new reason schedules the
    /// close after the grace period. The one place that does, after a change and a resync.
    fn set_closing(&self, room: &Arc<Room>, st: &mut RoomState, closing: Option<CloseReason>) {
        if closing != st.closing {
            st.closing = closing;
            if let Some(reason) = closing {
                self.close_room_later(Arc::clone(room), reason);
            }
        }
    }

    /// After the grace period, closes every client of the room with 1000 and the reason
    /// (if the room is still closing for that reason).
    fn close_room_later(&self, room: Arc<Room>, reason: CloseReason) {
        let grace = self.inner.cfg.close_grace;
        let shutdown = self.inner.shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(grace) => {}
                _ = shutdown.cancelled() => return,
            }
            let st = room.lock();
            if st.closing == Some(reason) {
                for q in st.clients.values() {
                    q.close(CloseCode::Normal, reason.text());
                }
            }
        });
    }

    /// The hub missed change sets: every room takes the current state and its clients a
    /// `full`.
    fn resync_all(&self, snapshot: Arc<Snapshot>) {
        let rooms: Vec<Arc<Room>> = {
            let st = self.inner.lock();
            st.rooms.values().cloned().collect()
        };
        for room in rooms {
            let new = snapshot.event(&room.event_id).cloned();
            let mut st = room.lock();
            let same = match (&st.event, &new) {
                (Some(a), Some(b)) => a.header.seq == b.header.seq,
                (None, None) => true,
                _ => false,
            };
            if same {
                continue;
            }
            st.event = new.clone();
            st.clear_ring();
            let closing = closing_for(new.as_deref());
            if let Some(full) = st.full(&self.inner) {
                for q in st.clients.values() {
                    q.replace_with(&full, &self.inner.stats);
                }
            }
            self.set_closing(&room, &mut st, closing);
        }
    }
}

/// Why a room closes for its event as it now is (`None`: it stays open).
fn closing_for(event: Option<&Event>) -> Option<CloseReason> {
    match event {
        None => Some(CloseReason::Deleted),
        Some(ev) => compose::admission(ev.header.status).err(),
    }
}
