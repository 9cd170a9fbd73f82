//! Publishing: the follower and builder tasks, one event's changes applied to its room and
//! fanned out, the resynchronisation after lost changes, and closing rooms.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use serde_json::Value;
use tokio::sync::broadcast;

use super::backlog::Pending;
use super::compose::{self, CloseReason};
use super::frame::Frame;
use super::queue::{ClientQueue, Sent};
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
    ) -> Vec<Frame> {
        let inner = &*self.inner;
        let new = st.event.clone();
        let too_many = superseded.end - superseded.start > inner.cfg.max_superseded;
        let plan = if too_many && new.is_some() {
            compose::Plan::Full
        } else {
            compose::plan(inner.wire.as_ref(), old, new.as_deref(), change)
        };
        let mut frames: Vec<Frame> = Vec::new();
        if !too_many && !matches!(plan, compose::Plan::Deleted) {
            for seq in superseded {
                let msg = Frame::superseded(&compose::superseded_message(seq, &inner.epoch));
                st.remember(seq, Some(vec![msg.clone()]), &inner.cfg);
                frames.push(msg);
            }
        }
        match plan {
            compose::Plan::Deleted => {}
            compose::Plan::Diff(data) => {
                let msgs = diff_frames(change.seq, &inner.epoch, data);
                HubStats::add(&inner.stats.messages_built, 1);
                st.remember(change.seq, Some(msgs.clone()), &inner.cfg);
                frames.extend(msgs);
            }
            compose::Plan::Full => {
                frames.extend(st.full(inner));
                st.remember(change.seq, None, &inner.cfg);
            }
            compose::Plan::Refresh => {
                let msg = Frame::text(&compose::refresh_message(change.seq, &inner.epoch));
                HubStats::add(&inner.stats.messages_built, 1);
                st.remember(change.seq, None, &inner.cfg);
                frames.push(msg);
            }
        }
        frames
    }

    /// Writes the frames to every client of the room whose queue is empty (one non-blocking
    /// write each) and queues them to the others; a client whose queue overflows gets the
    /// room's `full` instead.
    fn fan_out(&self, st: &mut RoomState, frames: &[Frame], committed_at: Instant) {
        let inner = &*self.inner;
        let limit = inner.cfg.queue_bytes;
        let (sent, overflowed) = push_to_all(
            &st.clients,
            frames,
            limit,
            &inner.stats,
            inner.fanout_threads,
        );
        // Counted per fan-out and added once: the per-client path touches no shared counter.
        sent.add_to(&inner.stats);
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

/// A room with fewer clients per thread than this is written by one thread (starting a
/// thread costs tens of µs; 512 direct writes take a few ms).
const CLIENTS_PER_THREAD: usize = 512;

/// Pushes `frames` to every client (a direct write to each whose queue is empty), the
/// clients split over up to `threads` threads. The threads are scoped: the publish path waits
/// for all of them under the room's lock, so each client still gets its messages in order,
/// from one thread at a time. Returns what was written and the clients that overflowed.
fn push_to_all(
    clients: &HashMap<u64, Arc<ClientQueue>>,
    frames: &[Frame],
    limit: usize,
    stats: &HubStats,
    threads: usize,
) -> (Sent, Vec<u64>) {
    let push =
        |part: &[(&u64, &Arc<ClientQueue>)]| push_part(part.iter().copied(), frames, limit, stats);
    let n = threads.min(clients.len() / CLIENTS_PER_THREAD).max(1);
    if n == 1 {
        return push_part(clients.iter(), frames, limit, stats);
    }
    let all: Vec<(&u64, &Arc<ClientQueue>)> = clients.iter().collect();
    let chunk = all.len().div_ceil(n);
    std::thread::scope(|s| {
        let others: Vec<_> = all
            .chunks(chunk)
            .skip(1)
            .map(|part| s.spawn(move || push(part)))
            .collect();
        let mut total = push(&all[..chunk.min(all.len())]);
        for other in others {
            // A panicked thread's clients are simply not counted (the panic is a bug).
            if let Ok((sent, overflowed)) = other.join() {
                total.0.merge(&sent);
                total.1.extend(overflowed);
            }
        }
        total
    })
}

fn push_part<'a>(
    part: impl Iterator<Item = (&'a u64, &'a Arc<ClientQueue>)>,
    frames: &[Frame],
    limit: usize,
    stats: &HubStats,
) -> (Sent, Vec<u64>) {
    let mut sent = Sent::default();
    let mut overflowed = Vec::new();
    for (id, q) in part {
        if !q.push_all(frames, limit, &mut sent, stats) {
            overflowed.push(*id);
        }
    }
    (sent, overflowed)
}

/// The prepared frames of one `diff`: the first carries the on-course list if the change
/// has one (`status` and `oncourse` ride in the first frame); a diff that is only the list
/// may be superseded per client by the next list (`hub::frame::Kind::ListOnly`), and carries
/// the `superseded` diff of its `seq` for that.
fn diff_frames(seq: u64, epoch: &str, data: Vec<Value>) -> Vec<Frame> {
    let first = data.first().and_then(Value::as_object);
    let list = first.is_some_and(|d| d.contains_key("oncourse"));
    let list_only = list && data.len() == 1 && first.is_some_and(|d| d.len() == 1);
    let stub = list_only.then(|| compose::superseded_message(seq, epoch));
    compose::diff_frames(seq, epoch, data)
        .iter()
        .enumerate()
        .map(|(i, msg)| Frame::diff(msg, list && i == 0, stub.as_ref()))
        .collect()
}

/// Why a room closes for its event as it now is (`None`: it stays open).
fn closing_for(event: Option<&Event>) -> Option<CloseReason> {
    match event {
        None => Some(CloseReason::Deleted),
        Some(ev) => compose::admission(ev.header.status).err(),
    }
}

#[cfg(test)]
mod tests {
    use hyper_tungstenite::tungstenite::Utf8Bytes;

    use super::*;

    #[test]
    fn a_large_room_is_split_over_threads_and_each_client_gets_the_message_once() {
        let clients: HashMap<u64, Arc<ClientQueue>> = (0..2048)
            .map(|i| (i, Arc::new(ClientQueue::new(None))))
            .collect();
        let stats = HubStats::default();
        let msg = [Frame::text(&Utf8Bytes::from_static("0123456789"))];
        // Client 7 already holds a message: the next one does not fit its bound of 10 bytes.
        let mut sent = Sent::default();
        assert!(clients[&7].push_all(&msg, 10, &mut sent, &stats));
        let (_, overflowed) = push_to_all(&clients, &msg, 10, &stats, 4);
        assert_eq!(overflowed, [7]);
        for (id, q) in &clients {
            assert_eq!(q.take_all(), 1, "client {id}");
        }
    }
}
