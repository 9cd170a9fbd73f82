//! One client's queue of frames, bounded in bytes.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use hyper_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use hyper_tungstenite::tungstenite::Utf8Bytes;
use tokio::sync::Notify;

use super::stats::HubStats;

/// One client's pending frames.
pub(super) struct ClientQueue {
    pub(super) state: Mutex<QueueState>,
    pub(super) notify: Notify,
}

#[derive(Default)]
pub(super) struct QueueState {
    pub(super) frames: VecDeque<Utf8Bytes>,
    pub(super) bytes: usize,
    /// Set when the client must be closed once its queue is written.
    pub(super) close: Option<(CloseCode, &'static str)>,
}

impl ClientQueue {
    pub(super) fn new() -> ClientQueue {
        ClientQueue {
            state: Mutex::new(QueueState::default()),
            notify: Notify::new(),
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues the frames of one message, all or none; `false` when they do not fit in
    /// `limit` (the queue is left as is).
    pub(super) fn push_all(&self, msgs: &[Utf8Bytes], limit: usize, stats: &HubStats) -> bool {
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
    pub(super) fn replace_with(&self, full: &Utf8Bytes, stats: &HubStats) {
        let mut q = self.lock();
        q.frames.clear();
        q.frames.push_back(full.clone());
        q.bytes = full.len();
        HubStats::max(&stats.queue_bytes_peak, q.bytes as u64);
        drop(q);
        self.notify.notify_one();
    }

    pub(super) fn close(&self, code: CloseCode, reason: &'static str) {
        self.lock().close.get_or_insert((code, reason));
        self.notify.notify_one();
    }

    /// Everything pending, and whether to close afterwards.
    pub(super) fn take(&self) -> (Vec<Utf8Bytes>, Option<(CloseCode, &'static str)>) {
        let mut q = self.lock();
        q.bytes = 0;
        let frames = q.frames.drain(..).collect();
        (frames, q.close)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;

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
