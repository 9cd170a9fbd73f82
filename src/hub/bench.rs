//! For `benches/fanout.rs` only: the hub's real client queues without sockets, to time the
//! part of a publish that runs under the room's lock (queue one message to every client).

use std::collections::HashMap;
use std::sync::Arc;

use hyper_tungstenite::tungstenite::Utf8Bytes;

use super::config::HubConfig;
use super::queue::ClientQueue;
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
