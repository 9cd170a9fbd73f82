//! The hub's tunables.

use std::time::Duration;

use hyper_tungstenite::tungstenite::protocol::WebSocketConfig;

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
    pub(super) fn ws_config(&self) -> WebSocketConfig {
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
