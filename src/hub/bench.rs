//! For `benches/fanout.rs` only: the hub's real client queues without sockets, to time the
//! part of a publish that runs under the room's lock (queue one message to every client).

use std::collections::HashMap;
use std::sync::Arc;

use hyper_tungstenite::tungstenite::Utf8Bytes;

use super::config::HubConfig;
use super::frame::Frame;
use super::queue::{ClientQueue, Sent};
use super::stats::HubStats;

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
                .map(|i| (i, Arc::new(ClientQueue::new(None))))
                .collect(),
            stats: HubStats::default(),
            limit: HubConfig::default().queue_bytes,
        }
    }

    /// Frames the message once (as the hub does when it builds it) and queues the same frames
    /// to every client as `Hub::apply` does (these queues have no socket: nothing is written
    /// directly); returns how many overflowed.
    pub fn publish(&self, msg: &[Utf8Bytes]) -> usize {
        let frames: Vec<Frame> = msg.iter().map(Frame::text).collect();
        let mut sent = Sent::default();
        self.clients
            .values()
            .filter(|q| !q.push_all(&frames, self.limit, &mut sent, &self.stats))
            .count()
    }

    /// What a write from each queue takes: every pending frame. Returns the number of
    /// frames taken.
    pub fn drain(&self) -> usize {
        self.clients.values().map(|q| q.take_all()).sum()
    }
}
