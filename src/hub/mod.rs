//! The WebSocket hub: one room per event, a bounded queue per client, heartbeat, resume ring.
//!
//! One task ([`Hub::start`]) follows the merge loop's committed change sets in order. For each
//! event a change set touches, it builds **one** message under the room's lock (nothing at all
//! when the room has no client), serializes it once, and queues the same bytes to every
//! client of the room (invariant 4). Each client has its own write task that drains its queue
//! in one batch per wake-up (feed + flush). A queue that would exceed its byte bound is
//! emptied and given one `full` instead; a client whose socket does not drain within
//! `drain_timeout` is disconnected (invariant 5).
//!
//! The room's lock orders everything: a client joins (gets its `full` or its replay) under
//! it, and every later message is queued under it, so a client never sees a gap or a message
//! older than its `full`.
//!
//! Upgrades are refused before the 101 with a typed [`Refusal`] (404/410/503/400), which the
//! HTTP layer turns into its one error body; slots are reserved
//! atomically before the upgrade and released when the connection task ends, whatever the
//! reason.

pub mod compose;
mod conn;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use hyper_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use hyper_tungstenite::tungstenite::protocol::WebSocketConfig;
use hyper_tungstenite::tungstenite::Utf8Bytes;
use tokio::sync::{broadcast, Notify};

pub use compose::{CloseReason, PublicWire, WireBuilder};

use crate::merge::{EventChange, MergeHandle, Published, Snapshot};
use crate::model::Event;
use crate::shutdown::Shutdown;
use crate::uri::query_param;

/// Tunables of the hub. Every duration is tokio time (tests pause or shorten it).
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Connections per event (exact, also under concurrent upgrades).
    pub max_per_event: usize,
    /// Connections over all events.
    pub max_total: usize,
    /// Bytes a client may have queued before its pending diffs are replaced by one `full`.
    pub queue_bytes: usize,
    /// A client whose socket does not accept a batch within this time is disconnected.
    pub drain_timeout: Duration,
    pub ping_interval: Duration,
    /// No pong this long after a ping: disconnect.
    pub pong_timeout: Duration,
    /// Delay between the `official` (or delete) message and the close.
    pub close_grace: Duration,
    /// Diffs kept per event for `?since=N&epoch=E` resume.
    pub ring_len: usize,
    /// …and at most this many bytes of them per event.
    pub ring_bytes: usize,
    /// tungstenite read buffer per connection (clients send nothing worth reading).
    pub read_buffer: usize,
    /// Largest client message accepted (bigger ones close the connection).
    pub max_client_message: usize,
    /// tungstenite's outgoing buffer per connection. Our frames are at most
    /// `conn::FRAGMENT` and flushed per batch, so only the automatic replies to a client's
    /// pings could grow it; with the bound tungstenite keeps one pending pong instead of one
    /// per ping (issue 11, finding 2).
    pub max_write_buffer: usize,
    /// Change sets received from the merge loop and not yet turned into messages. Changes of
    /// one event coalesce into one entry while the hub is behind, so this only fills up with
    /// event creations and deletions; past it the hub resynchronises every room (`full`).
    pub backlog_len: usize,
    /// Superseded changes (`"superseded":true` diffs) sent before one coalesced message; a
    /// longer run goes out as one `full` instead.
    pub max_superseded: u64,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            max_per_event: 10_000,
            max_total: 20_000,
            queue_bytes: 256 * 1024,
            drain_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(15),
            pong_timeout: Duration::from_secs(10),
            close_grace: Duration::from_secs(5),
            ring_len: 1024,
            ring_bytes: 4 * 1024 * 1024,
            read_buffer: 4096,
            max_client_message: 4096,
            max_write_buffer: 64 * 1024,
            backlog_len: 256,
            max_superseded: 64,
        }
    }
}

impl HubConfig {
    fn ws_config(&self) -> WebSocketConfig {
        WebSocketConfig::default()
            .read_buffer_size(self.read_buffer)
            // Small diffs queued together go out in one write at the flush; see conn::FRAGMENT.
            .write_buffer_size(4 * 1024)
            // Must exceed `write_buffer_size` (tungstenite panics otherwise).
            .max_write_buffer_size(self.max_write_buffer.max(16 * 1024))
            .max_message_size(Some(self.max_client_message))
            .max_frame_size(Some(self.max_client_message))
    }
}

/// Counters for `/metrics`. Gauges and counters are plain atomics (relaxed).
#[derive(Debug, Default)]
pub struct HubStats {
    /// Currently connected clients (all events); per event see [`Hub::clients_per_event`].
    pub connected: AtomicU64,
    /// Upgrades accepted since start.
    pub connections_total: AtomicU64,
    /// Upgrades refused with 503.
    pub refused_limit: AtomicU64,
    /// Messages built (serialized once each, whatever the number of recipients).
    pub messages_built: AtomicU64,
    /// Frames written to sockets, and their bytes.
    pub messages_sent: AtomicU64,
    pub bytes_sent: AtomicU64,
    /// A client's queue overflowed (its pending diffs were dropped)…
    pub queue_overflows: AtomicU64,
    /// …and it was given a `full` instead.
    pub resyncs: AtomicU64,
    /// Clients disconnected because their socket did not drain in time.
    pub slow_client_closes: AtomicU64,
    /// Clients disconnected for not answering a ping.
    pub heartbeat_timeouts: AtomicU64,
    /// Largest queue (bytes) any single client has had.
    pub queue_bytes_peak: AtomicU64,
    /// Fan-out latency, commit → queued to every client of the room, in microseconds.
    pub fanout_micros_sum: AtomicU64,
    pub fanout_count: AtomicU64,
    pub fanout_micros_max: AtomicU64,
    /// The hub fell behind the merge loop's broadcast and resynchronised every room.
    pub lagged: AtomicU64,
    /// Changes folded into a later message of the same event because the hub was behind
    /// (each went out as a `"superseded":true` diff, or inside a `full`).
    pub coalesced: AtomicU64,
}

impl HubStats {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
    fn max(counter: &AtomicU64, v: u64) {
        counter.fetch_max(v, Ordering::Relaxed);
    }
}

/// One client's pending frames.
struct ClientQueue {
    state: Mutex<QueueState>,
    notify: Notify,
}

#[derive(Default)]
struct QueueState {
    frames: VecDeque<Utf8Bytes>,
    bytes: usize,
    /// Set when the client must be closed once its queue is written.
    close: Option<(CloseCode, &'static str)>,
}

impl ClientQueue {
    fn new() -> ClientQueue {
        ClientQueue {
            state: Mutex::new(QueueState::default()),
            notify: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues the frames of one message, all or none; `false` when they do not fit in
    /// `limit` (the queue is left as is).
    fn push_all(&self, msgs: &[Utf8Bytes], limit: usize, stats: &HubStats) -> bool {
        let mut q = self.lock();
        if q.close.is_some() {
            return true;
        }
        let len: usize = msgs.iter().map(|m| m.len()).sum();
        if !q.frames.is_empty() && q.bytes + len > limit {
            return false;
        }
        q.bytes += len;
        q.frames.extend(msgs.iter().cloned());
        HubStats::max(&stats.queue_bytes_peak, q.bytes as u64);
        drop(q);
        self.notify.notify_one();
        true
    }

    /// Drops everything pending and queues `full` alone.
    fn replace_with(&self, full: &Utf8Bytes, stats: &HubStats) {
        let mut q = self.lock();
        q.frames.clear();
        q.frames.push_back(full.clone());
        q.bytes = full.len();
        HubStats::max(&stats.queue_bytes_peak, q.bytes as u64);
        drop(q);
        self.notify.notify_one();
    }

    fn close(&self, code: CloseCode, reason: &'static str) {
        self.lock().close.get_or_insert((code, reason));
        self.notify.notify_one();
    }

    /// Everything pending, and whether to close afterwards.
    fn take(&self) -> (Vec<Utf8Bytes>, Option<(CloseCode, &'static str)>) {
        let mut q = self.lock();
        q.bytes = 0;
        let frames = q.frames.drain(..).collect();
        (frames, q.close)
    }
}

/// The spectators of one event.
struct Room {
    event_id: String,
    /// Reserved slots (connections being upgraded or connected).
    slots: AtomicUsize,
    state: Mutex<RoomState>,
}

struct RoomState {
    /// The event as of the last change this room processed (`None`: deleted).
    event: Option<Arc<Event>>,
    clients: HashMap<u64, Arc<ClientQueue>>,
    /// Recent messages by seq (each its frames), contiguous; `None` for a message that
    /// cannot be replayed (`full`, `refresh`).
    ring: VecDeque<(u64, Option<Vec<Utf8Bytes>>)>,
    ring_bytes: usize,
    /// The `full` of the current seq, built at most once.
    full: Option<(u64, Utf8Bytes)>,
    closing: Option<CloseReason>,
}

impl Room {
    fn lock(&self) -> MutexGuard<'_, RoomState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl RoomState {
    /// The `full` for the current state, cached per seq.
    fn full(&mut self, inner: &Inner) -> Option<Utf8Bytes> {
        let event = self.event.as_ref()?;
        let seq = event.header.seq;
        if let Some((s, msg)) = &self.full {
            if *s == seq {
                return Some(msg.clone());
            }
        }
        let msg = compose::full_message(inner.wire.as_ref(), event, &inner.epoch);
        HubStats::add(&inner.stats.messages_built, 1);
        self.full = Some((seq, msg.clone()));
        Some(msg)
    }

    fn remember(&mut self, seq: u64, msg: Option<Vec<Utf8Bytes>>, cfg: &HubConfig) {
        fn size(m: &Option<Vec<Utf8Bytes>>) -> usize {
            m.iter().flatten().map(|m| m.len()).sum()
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

    fn clear_ring(&mut self) {
        self.ring.clear();
        self.ring_bytes = 0;
    }

    /// The diffs after `since` up to the current seq, if every one of them is in the ring.
    fn replay(&self, since: u64) -> Option<Vec<Utf8Bytes>> {
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

struct HubState {
    rooms: HashMap<String, Arc<Room>>,
}

/// One event's committed changes that the hub has received but not yet turned into
/// messages: only the event as of the newest of them is kept (not the merge loop's whole
/// snapshot), so a hub that is behind holds one version per event, whatever the backlog.
struct Pending {
    /// The union of the changes, `seq` the newest one's.
    change: EventChange,
    /// `seq` of the oldest change folded in.
    first_seq: u64,
    /// The event after `change.seq` (`None`: deleted).
    event: Option<Arc<Event>>,
    /// Commit time of the oldest change folded in (fan-out latency is measured from it).
    committed_at: Instant,
}

impl Pending {
    /// Folds a newer change of the same event in, unless one of them creates or deletes the
    /// event or changes its status (those keep their own message, in order: spectators see
    /// every lifecycle step). Everything else a diff carries is state (rows upserted by bib,
    /// the whole on-course list), so one message from the older state to the newest is exact.
    fn absorb(&mut self, change: &EventChange, event: Option<&Arc<Event>>) -> bool {
        let plain = |c: &EventChange| !c.created && !c.deleted && c.status.is_none();
        if !plain(&self.change) || !plain(change) || self.event.is_none() || event.is_none() {
            return false;
        }
        let c = &mut self.change;
        c.seq = change.seq;
        c.structure |= change.structure;
        c.oncourse |= change.oncourse;
        c.config |= change.config;
        // Deduplicated, so the union is bounded by the event's own rows.
        for (acc, new) in [
            (&mut c.results, &change.results),
            (&mut c.removed_results, &change.removed_results),
        ] {
            if !new.is_empty() {
                acc.extend(new.iter().cloned());
                acc.sort_unstable();
                acc.dedup();
            }
        }
        self.event = event.cloned();
        true
    }
}

/// What the follower has queued for the builder.
#[derive(Default)]
struct Backlog {
    pending: VecDeque<Pending>,
    /// Changes were lost (the broadcast lagged, or `pending` overflowed): resynchronise.
    lagged: bool,
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

/// A reserved connection slot; released on drop, whatever ends the connection.
struct Slot {
    inner: Arc<Inner>,
    room: Arc<Room>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.room.slots.fetch_sub(1, Ordering::AcqRel);
        self.inner.total.fetch_sub(1, Ordering::AcqRel);
        self.inner.stats.connected.fetch_sub(1, Ordering::Relaxed);
        self.inner.left.notify_waiters();
    }
}

/// `?since=N&epoch=E` of a reconnecting client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resume {
    pub since: u64,
    pub epoch: String,
}

/// Reads `since` and `epoch` from a WebSocket URL's query; both are needed for a resume.
/// The query is parsed as the REST routes parse theirs ([`crate::uri::query_param`]).
pub fn parse_resume(query: Option<&str>) -> Option<Resume> {
    Some(Resume {
        since: query_param(query, "since")?.parse::<u64>().ok()?,
        epoch: query_param(query, "epoch")?,
    })
}

/// Whether `name` lists `token` (comma-separated, case-insensitive).
fn header_has_token(
    headers: &hyper::HeaderMap,
    name: hyper::header::HeaderName,
    token: &str,
) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

/// The opening handshake as RFC 6455 4.2.1 requires it (`Upgrade: websocket`, `Connection:
/// Upgrade`, one `Sec-WebSocket-Key` that is base64 of 16 bytes, version 13); the message names
/// the header at fault. hyper-tungstenite checks only that a key and the version are present.
fn check_handshake(headers: &hyper::HeaderMap) -> Result<(), String> {
    use base64::Engine as _;
    if !header_has_token(headers, hyper::header::UPGRADE, "websocket") {
        return Err(
            "Not a WebSocket upgrade request: the Upgrade header must be 'websocket'".into(),
        );
    }
    if !header_has_token(headers, hyper::header::CONNECTION, "upgrade") {
        return Err(
            "Not a WebSocket upgrade request: the Connection header must include 'Upgrade'".into(),
        );
    }
    let mut keys = headers.get_all(hyper::header::SEC_WEBSOCKET_KEY).iter();
    let key_ok = match (keys.next(), keys.next()) {
        (Some(key), None) => base64::engine::general_purpose::STANDARD
            .decode(key.as_bytes())
            .is_ok_and(|k| k.len() == 16),
        _ => false,
    };
    if !key_ok {
        return Err("Not a WebSocket upgrade request: Sec-WebSocket-Key must be one base64-encoded 16-byte value".into());
    }
    if headers
        .get(hyper::header::SEC_WEBSOCKET_VERSION)
        .map(|v| v.as_bytes())
        != Some(b"13")
    {
        return Err("Not a WebSocket upgrade request: Sec-WebSocket-Version must be 13".into());
    }
    Ok(())
}

/// Why an upgrade was refused before the 101. The HTTP layer turns it into its error body
/// (the hub writes no HTTP error bodies of its own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Unknown, draft or deleted event (404).
    NotFound,
    /// The results are official: no live updates (410).
    Official,
    /// The room or the server is full (503).
    RoomFull { max_connections: usize },
    /// Not a valid WebSocket handshake (400); the text says what is wrong.
    NotWebSocket(String),
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
        let inner = Arc::new(Inner {
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

    /// Follows the merge loop's committed change sets into the backlog.
    async fn follow(self, mut rx: broadcast::Receiver<Arc<Published>>) {
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
    async fn run(self, merge: MergeHandle) {
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
        let inner = &*self.inner;
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
        let closing = match new.as_deref() {
            None => Some(CloseReason::Deleted),
            Some(ev) => compose::admission(ev.header.status).err(),
        };
        if st.clients.is_empty() {
            // Nothing is built for nobody (FR-015); the ring can no longer be contiguous.
            st.clear_ring();
            st.full = None;
            st.closing = closing;
            return;
        }
        let too_many = superseded.end - superseded.start > inner.cfg.max_superseded;
        let plan = if too_many && new.is_some() {
            compose::Plan::Full
        } else {
            compose::plan(inner.wire.as_ref(), old.as_deref(), new.as_deref(), &change)
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
        if !frames.is_empty() {
            let mut overflowed = Vec::new();
            for (id, q) in &st.clients {
                if !q.push_all(&frames, inner.cfg.queue_bytes, &inner.stats) {
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
            let closing = match new.as_deref() {
                None => Some(CloseReason::Deleted),
                Some(ev) => compose::admission(ev.header.status).err(),
            };
            if let Some(full) = st.full(&self.inner) {
                for q in st.clients.values() {
                    q.replace_with(&full, &self.inner.stats);
                }
            }
            if closing != st.closing {
                st.closing = closing;
                if let Some(reason) = closing {
                    self.close_room_later(Arc::clone(&room), reason);
                }
            }
        }
    }

    /// `GET /api/v1/events/{eventId}/ws`: refuses with a JSON HTTP response (404 unknown or
    /// draft, 410 official, 503 room or server full, 400 not a WebSocket request), or
    /// answers 101 and serves the connection on its own task.
    pub fn upgrade<B>(
        &self,
        req: Request<B>,
        event_id: &str,
    ) -> Result<Response<Full<Bytes>>, Refusal> {
        self.upgrade_guarded(req, event_id, ())
    }

    /// [`Hub::upgrade`], keeping `guard` alive as long as the connection (the HTTP layer's
    /// per-address slot); dropped at once when the upgrade is refused.
    pub fn upgrade_guarded<B, G: Send + 'static>(
        &self,
        mut req: Request<B>,
        event_id: &str,
        guard: G,
    ) -> Result<Response<Full<Bytes>>, Refusal> {
        let inner = &self.inner;
        let room = {
            // The freshest committed state: a new room starts from it, and changes the hub has
            // not processed yet are recognised by their seq and skipped.
            let snapshot = inner.merge.snapshot();
            let mut st = inner.lock();
            let status = snapshot.event(event_id).map(|e| e.header.status);
            match status.map(compose::admission) {
                None | Some(Err(CloseReason::NotPublic)) | Some(Err(CloseReason::Deleted)) => {
                    return Err(Refusal::NotFound)
                }
                Some(Err(CloseReason::Official)) => return Err(Refusal::Official),
                Some(Ok(())) => {}
            }
            Arc::clone(st.rooms.entry(event_id.to_owned()).or_insert_with(|| {
                Arc::new(Room {
                    event_id: event_id.to_owned(),
                    slots: AtomicUsize::new(0),
                    state: Mutex::new(RoomState {
                        event: snapshot.event(event_id).cloned(),
                        clients: HashMap::new(),
                        ring: VecDeque::new(),
                        ring_bytes: 0,
                        full: None,
                        closing: None,
                    }),
                })
            }))
        };
        let Some(slot) = self.reserve(&room) else {
            HubStats::add(&inner.stats.refused_limit, 1);
            return Err(Refusal::RoomFull {
                max_connections: inner.cfg.max_per_event,
            });
        };
        check_handshake(req.headers()).map_err(Refusal::NotWebSocket)?;
        let resume = parse_resume(req.uri().query());
        let (response, websocket) =
            match hyper_tungstenite::upgrade(&mut req, Some(inner.cfg.ws_config())) {
                Ok(pair) => pair,
                Err(e) => {
                    return Err(Refusal::NotWebSocket(format!(
                        "Not a WebSocket upgrade request: {e}"
                    )))
                }
            };
        HubStats::add(&inner.stats.connections_total, 1);
        let hub = self.clone();
        tokio::spawn(async move {
            let _guard = guard;
            let ws = match tokio::time::timeout(Duration::from_secs(10), websocket).await {
                Ok(Ok(ws)) => ws,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "WebSocket upgrade failed");
                    return;
                }
                Err(_) => return,
            };
            conn::serve(hub, room, slot, ws, resume).await;
        });
        Ok(response)
    }

    /// Reserves a slot in the room and in the global budget, or none (exact under
    /// concurrency: compare-and-swap on both counters).
    fn reserve(&self, room: &Arc<Room>) -> Option<Slot> {
        let inner = &self.inner;
        let take = |counter: &AtomicUsize, limit: usize| {
            counter
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (n < limit).then_some(n + 1)
                })
                .is_ok()
        };
        if !take(&inner.total, inner.cfg.max_total) {
            return None;
        }
        if !take(&room.slots, inner.cfg.max_per_event) {
            inner.total.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        inner.stats.connected.fetch_add(1, Ordering::Relaxed);
        Some(Slot {
            inner: Arc::clone(inner),
            room: Arc::clone(room),
        })
    }

    /// Registers a connected client: queues its `full` (or its replay) and adds it to the
    /// room, atomically with respect to publishing. `Err` when the room is closing.
    fn join(
        &self,
        room: &Room,
        resume: Option<&Resume>,
    ) -> Result<(u64, Arc<ClientQueue>), CloseReason> {
        let inner = &*self.inner;
        let mut st = room.lock();
        if let Some(reason) = st.closing {
            return Err(reason);
        }
        if st.event.is_none() {
            return Err(CloseReason::Deleted);
        }
        let queue = Arc::new(ClientQueue::new());
        let replay = resume
            .filter(|r| r.epoch == inner.epoch)
            .and_then(|r| st.replay(r.since));
        let frames = match replay {
            Some(frames) => frames,
            None => st.full(inner).into_iter().collect(),
        };
        {
            let mut q = queue.lock();
            for f in frames {
                q.bytes += f.len();
                q.frames.push_back(f);
            }
        }
        queue.notify.notify_one();
        let id = inner.next_client.fetch_add(1, Ordering::Relaxed);
        st.clients.insert(id, Arc::clone(&queue));
        Ok((id, queue))
    }

    fn leave(&self, room: &Room, id: u64) {
        room.lock().clients.remove(&id);
    }
}

/// For `benches/fanout.rs` only: the hub's real client queues without sockets, to time the
/// part of a publish that runs under the room's lock (queue one message to every client).
#[doc(hidden)]
pub mod bench {
    use super::*;

    pub struct Queues {
        clients: HashMap<u64, Arc<ClientQueue>>,
        stats: HubStats,
        limit: usize,
    }

    impl Queues {
        /// `n` clients with the default queue bound.
        pub fn new(n: usize) -> Queues {
            Queues {
                clients: (0..n as u64)
                    .map(|i| (i, Arc::new(ClientQueue::new())))
                    .collect(),
                stats: HubStats::default(),
                limit: HubConfig::default().queue_bytes,
            }
        }

        /// Queues the frames of one message to every client as `Hub::apply` does; returns
        /// how many overflowed.
        pub fn publish(&self, msg: &[Utf8Bytes]) -> usize {
            self.clients
                .values()
                .filter(|q| !q.push_all(msg, self.limit, &self.stats))
                .count()
        }

        /// What the clients' write tasks do first: take their pending frames. Returns the
        /// number of frames taken.
        pub fn drain(&self) -> usize {
            self.clients.values().map(|q| q.take().0.len()).sum()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_query_needs_both_fields() {
        assert_eq!(
            parse_resume(Some("since=12&epoch=abc")),
            Some(Resume {
                since: 12,
                epoch: "abc".into()
            })
        );
        assert_eq!(parse_resume(Some("since=12")), None);
        assert_eq!(parse_resume(Some("since=x&epoch=abc")), None);
        assert_eq!(parse_resume(None), None);
    }

    #[test]
    fn queue_overflow_leaves_queue_untouched_and_replace_bounds_it() {
        let stats = HubStats::default();
        let q = ClientQueue::new();
        let m = Utf8Bytes::from("x".repeat(40));
        assert!(q.push_all(std::slice::from_ref(&m), 100, &stats));
        assert!(q.push_all(std::slice::from_ref(&m), 100, &stats));
        assert!(!q.push_all(std::slice::from_ref(&m), 100, &stats));
        q.replace_with(&Utf8Bytes::from("full"), &stats);
        let (frames, close) = q.take();
        assert_eq!(frames, vec![Utf8Bytes::from("full")]);
        assert!(close.is_none());
        assert_eq!(stats.queue_bytes_peak.load(Ordering::Relaxed), 80);
    }
}
