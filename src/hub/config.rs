//! The hub's tunables.

use std::time::Duration;

/// Tunables of the hub. Every duration is tokio time (tests pause or shorten it).
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Connections per event (exact, also under concurrent upgrades).
    pub max_per_event: usize,
    /// Connections over all events.
    pub max_total: usize,
    /// Bytes a client may have queued before its pending diffs are replaced by one `full`.
    pub queue_bytes: usize,
    /// A client whose socket takes none of its queued bytes for this long is disconnected.
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
    /// Largest client message accepted, over all its fragments (bigger ones close the
    /// connection). Client frames are read by `hub::read` without buffering data payloads.
    pub max_client_message: usize,
    /// Change sets received from the merge loop and not yet turned into messages. Changes of
    /// one event coalesce into one entry while the hub is behind, so this only fills up with
    /// event creations and deletions; past it the hub resynchronises every room (`full`).
    pub backlog_len: usize,
    /// Superseded changes (`"superseded":true` diffs) sent before one coalesced message; a
    /// longer run goes out as one `full` instead.
    pub max_superseded: u64,
    /// Threads that write one message to a large room's clients (at least 512 clients each);
    /// 0: as many as the machine has cores.
    pub fanout_threads: usize,
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
            max_client_message: 4096,
            backlog_len: 256,
            max_superseded: 64,
            fanout_threads: 0,
        }
    }
}
