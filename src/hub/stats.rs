//! The hub's counters for `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters for `/metrics`. Gauges and counters are plain atomics (relaxed).
#[derive(Debug, Default)]
pub struct HubStats {
    /// Currently connected clients (all events); per event see [`Hub::clients_per_event`](super::Hub::clients_per_event).
    pub connected: AtomicU64,
    /// Upgrades accepted since start.
    pub connections_total: AtomicU64,
    /// Upgrades refused with 503.
    pub refused_limit: AtomicU64,
    /// Messages built (serialized once each, whatever the number of recipients).
    pub messages_built: AtomicU64,
    /// Messages (frames of messages, not pings or pongs) written to sockets, and their
    /// payload bytes.
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
    /// Fan-out latency, commit → written to (or queued for) every client of the room, in
    /// microseconds.
    pub fanout_micros_sum: AtomicU64,
    pub fanout_count: AtomicU64,
    pub fanout_micros_max: AtomicU64,
    /// The hub fell behind the merge loop's broadcast and resynchronised every room.
    pub lagged: AtomicU64,
    /// Changes folded into a later message of the same event because the hub was behind
    /// (each went out as a `"superseded":true` diff, or inside a `full`).
    pub coalesced: AtomicU64,
    /// Messages written to a client straight from the publish path (its queue was empty),
    /// without waking its task.
    pub direct_writes: AtomicU64,
    /// On-course lists a client had queued and not yet been sent when the next list was
    /// queued right behind: sent as their `superseded` diff instead.
    pub lists_superseded: AtomicU64,
}

impl HubStats {
    pub(super) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
    pub(super) fn max(counter: &AtomicU64, v: u64) {
        counter.fetch_max(v, Ordering::Relaxed);
    }
}
