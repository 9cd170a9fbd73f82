//! One client's queue of prepared frames, bounded in bytes, and the writes to its socket.
//!
//! Every write to a client's socket happens under its queue's lock and only from the queue's
//! head, whoever writes (the publish path or the client's task), so frames never interleave.
//! The publish path writes directly (one non-blocking vectored write) to a client whose queue
//! is empty; only what the socket did not take is queued, and the client's task is woken to
//! write it when the socket is writable again.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::sync::{Arc, Mutex, MutexGuard};

use hyper_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio::net::TcpStream;
use tokio::sync::Notify;

use super::frame::{Frame, Kind};
use super::stats::HubStats;

/// Frames handed to the kernel in one `writev` (well under `IOV_MAX`, 1024 on Linux).
const MAX_IOV: usize = 64;

/// One client's pending frames and its socket.
pub(super) struct ClientQueue {
    state: Mutex<QueueState>,
    /// Woken when the queue goes from empty to non-empty, or a close is requested.
    pub(super) notify: Notify,
    /// `None` only for the in-process benchmark queues (`hub::bench`): everything is queued.
    sock: Option<Arc<TcpStream>>,
}

#[derive(Default)]
pub(super) struct QueueState {
    frames: VecDeque<Frame>,
    /// Bytes of `frames[0].wire` already written (a partial write; the rest must follow
    /// before any other frame).
    head_written: usize,
    /// Payload bytes of the frames not started (the bound; a frame partly written is in
    /// flight, like the bytes in the socket's buffer).
    bytes: usize,
    /// Set when the client must be closed once its queue is written.
    close: Option<(CloseCode, &'static str)>,
    /// A pong is queued (at most one).
    pong: bool,
    /// The close frame is queued: nothing may follow it.
    sealed: bool,
}

/// What one push did.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Sent {
    /// Frames and payload bytes written to sockets.
    pub(super) frames: u64,
    pub(super) bytes: u64,
    /// Messages written whole straight from the publish path (the client's queue was empty).
    pub(super) direct: u64,
    /// On-course lists replaced by their `superseded` diff (see [`Kind::ListOnly`]).
    pub(super) superseded: u64,
}

impl Sent {
    pub(super) fn merge(&mut self, other: &Sent) {
        self.frames += other.frames;
        self.bytes += other.bytes;
        self.direct += other.direct;
        self.superseded += other.superseded;
    }

    pub(super) fn add_to(&self, stats: &HubStats) {
        HubStats::add(&stats.messages_sent, self.frames);
        HubStats::add(&stats.bytes_sent, self.bytes);
        HubStats::add(&stats.direct_writes, self.direct);
        HubStats::add(&stats.lists_superseded, self.superseded);
    }
}

/// Why writing stopped.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Flush {
    /// Everything queued is written.
    Drained,
    /// The socket takes no more now; `progress` when it took some bytes first.
    Blocked { progress: bool },
}

impl ClientQueue {
    pub(super) fn new(sock: Option<Arc<TcpStream>>) -> ClientQueue {
        ClientQueue {
            state: Mutex::new(QueueState::default()),
            notify: Notify::new(),
            sock,
        }
    }

    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The frames of one message, all or none; `false` when they do not fit in `limit` (the
    /// queue is left as is). An empty queue is written directly, once, without blocking.
    pub(super) fn push_all(
        &self,
        msgs: &[Frame],
        limit: usize,
        sent: &mut Sent,
        stats: &HubStats,
    ) -> bool {
        if msgs.is_empty() {
            return true;
        }
        let mut q = self.lock();
        if q.close.is_some() || q.sealed {
            return true;
        }
        let mut skip = 0;
        let mut start = 0;
        if q.frames.is_empty() {
            if let Some(sock) = &self.sock {
                match write_direct(sock, msgs) {
                    Ok((done, partial)) => {
                        sent.frames += done as u64;
                        sent.bytes += msgs[..done].iter().map(|f| f.payload as u64).sum::<u64>();
                        if done == msgs.len() {
                            sent.direct += 1;
                            return true;
                        }
                        (start, skip) = (done, partial);
                    }
                    // The client's task sees the error on its next write or read and ends.
                    Err(_) => return true,
                }
            }
        } else if msgs
            .iter()
            .find(|m| m.kind != Kind::Superseded)
            .is_some_and(|m| m.list)
        {
            // The first message with content carries a list: nothing but skips between it
            // and the queue's last frame, which it supersedes if that is a list alone.
            let head_started = q.head_written > 0 && q.frames.len() == 1;
            if !head_started {
                if let Some(saved) = q.frames.back_mut().and_then(Frame::supersede) {
                    q.bytes -= saved;
                    sent.superseded += 1;
                }
            }
        }
        let rest = &msgs[start..];
        let started = if skip > 0 { rest[0].payload } else { 0 };
        let len: usize = rest.iter().map(|m| m.payload).sum::<usize>() - started;
        if !q.frames.is_empty() && q.bytes + len > limit {
            return false;
        }
        let was_empty = q.frames.is_empty();
        q.bytes += len;
        q.frames.extend(rest.iter().cloned());
        q.head_written = if was_empty { skip } else { q.head_written };
        HubStats::max(&stats.queue_bytes_peak, q.bytes as u64);
        drop(q);
        if was_empty {
            self.notify.notify_one();
        }
        true
    }

    /// Drops everything pending (but the rest of a frame partly written: it is in flight) and
    /// queues `full`.
    pub(super) fn replace_with(&self, full: &Frame, stats: &HubStats) {
        let mut q = self.lock();
        if q.sealed {
            return;
        }
        let was_empty = q.frames.is_empty();
        q.truncate_to_started();
        q.bytes += full.payload;
        q.frames.push_back(full.clone());
        HubStats::max(&stats.queue_bytes_peak, q.bytes as u64);
        drop(q);
        if was_empty {
            self.notify.notify_one();
        }
    }

    /// Queues a control frame (ping, pong) behind the messages. A pong replaces a queued
    /// pong not yet started (RFC 6455 5.5.3: answering the latest ping is enough), so a
    /// client that pings and never reads holds at most one.
    pub(super) fn push_control(&self, frame: Frame) {
        let mut q = self.lock();
        if q.close.is_some() || q.sealed {
            return;
        }
        let first_free = usize::from(q.head_written > 0);
        let same = q
            .frames
            .iter()
            .skip(first_free)
            .position(|f| f.kind == frame.kind);
        q.pong |= frame.kind == Kind::Pong;
        match same {
            Some(i) => q.frames[i + first_free] = frame,
            None => q.frames.push_back(frame),
        }
    }

    /// Asks the client's task to write what is queued, then close.
    pub(super) fn close(&self, code: CloseCode, reason: &'static str) {
        self.lock().close.get_or_insert((code, reason));
        self.notify.notify_one();
    }

    /// The close requested with [`ClientQueue::close`], if any.
    pub(super) fn close_requested(&self) -> Option<(CloseCode, &'static str)> {
        self.lock().close
    }

    /// Queues the close frame last; `abandon` first drops every message not started (a
    /// client too slow to drain them).
    pub(super) fn push_close(&self, frame: Frame, abandon: bool) {
        let mut q = self.lock();
        if q.sealed {
            return;
        }
        if abandon {
            q.truncate_to_started();
        }
        q.frames.push_back(frame);
        q.sealed = true;
    }

    /// (something is queued, a pong is queued): the task reads no further client frames
    /// while its pong waits for the socket.
    pub(super) fn pending(&self) -> (bool, bool) {
        let q = self.lock();
        (!q.frames.is_empty(), q.pong)
    }

    /// Writes from the head until the queue is empty or the socket would block.
    pub(super) fn flush(&self, stats: &HubStats) -> io::Result<Flush> {
        let Some(sock) = &self.sock else {
            return Ok(Flush::Drained);
        };
        let mut q = self.lock();
        let mut sent = Sent::default();
        let mut progress = false;
        let result = loop {
            if q.frames.is_empty() {
                break Ok(Flush::Drained);
            }
            let mut iov = [IoSlice::new(&[]); MAX_IOV];
            let n = q.frames.len().min(MAX_IOV);
            for (i, (slot, f)) in iov.iter_mut().zip(&q.frames).enumerate() {
                let skip = if i == 0 { q.head_written } else { 0 };
                *slot = IoSlice::new(&f.wire[skip..]);
            }
            match sock.try_write_vectored(&iov[..n]) {
                Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
                Ok(written) => {
                    progress = true;
                    q.consume(written, &mut sent);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    break Ok(Flush::Blocked { progress })
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        drop(q);
        sent.add_to(stats);
        result
    }

    /// For `hub::bench`: takes every queued frame (what a write would send).
    pub(super) fn take_all(&self) -> usize {
        let mut q = self.lock();
        let n = q.frames.len();
        q.frames.clear();
        q.head_written = 0;
        q.bytes = 0;
        q.pong = false;
        n
    }
}

impl QueueState {
    /// Removes what a write of `written` bytes from the head sent.
    fn consume(&mut self, mut written: usize, sent: &mut Sent) {
        while let Some(head) = self.frames.front() {
            if written == 0 {
                return;
            }
            if self.head_written == 0 {
                // Started now: in flight from here on.
                self.bytes -= head.payload;
            }
            let left = head.wire.len() - self.head_written;
            if written < left {
                self.head_written += written;
                return;
            }
            written -= left;
            self.head_written = 0;
            match head.kind {
                Kind::Data | Kind::Superseded | Kind::ListOnly { .. } => {
                    sent.frames += 1;
                    sent.bytes += head.payload as u64;
                }
                Kind::Pong => self.pong = false,
                Kind::Ping | Kind::Close => {}
            }
            self.frames.pop_front();
        }
    }

    /// Keeps only the frame partly written (it must be finished before any other).
    fn truncate_to_started(&mut self) {
        let keep = usize::from(self.head_written > 0);
        self.frames.truncate(keep);
        self.bytes = 0;
        self.pong = self.frames.front().is_some_and(|f| f.kind == Kind::Pong);
    }
}

/// One non-blocking vectored write of a message's frames to a socket with nothing queued:
/// (frames written whole, bytes of the next one written).
fn write_direct(sock: &TcpStream, msgs: &[Frame]) -> io::Result<(usize, usize)> {
    let mut iov = [IoSlice::new(&[]); MAX_IOV];
    let n = msgs.len().min(MAX_IOV);
    for (slot, f) in iov.iter_mut().zip(msgs) {
        *slot = IoSlice::new(&f.wire);
    }
    let mut written = match sock.try_write_vectored(&iov[..n]) {
        Ok(w) => w,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
        Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
        Err(e) => return Err(e),
    };
    let mut done = 0;
    for f in msgs {
        if written < f.wire.len() {
            break;
        }
        written -= f.wire.len();
        done += 1;
    }
    Ok((done, written))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use hyper_tungstenite::tungstenite::Utf8Bytes;

    use super::*;

    fn text(s: &str) -> Frame {
        Frame::text(&Utf8Bytes::from(s.to_owned()))
    }

    #[test]
    fn queue_overflow_leaves_queue_untouched_and_replace_bounds_it() {
        let stats = HubStats::default();
        let mut sent = Sent::default();
        let q = ClientQueue::new(None);
        let m = text(&"x".repeat(40));
        assert!(q.push_all(std::slice::from_ref(&m), 100, &mut sent, &stats));
        assert!(q.push_all(std::slice::from_ref(&m), 100, &mut sent, &stats));
        assert!(!q.push_all(std::slice::from_ref(&m), 100, &mut sent, &stats));
        q.replace_with(&text("full"), &stats);
        assert_eq!(q.take_all(), 1);
        assert_eq!(stats.queue_bytes_peak.load(Ordering::Relaxed), 80);
    }

    #[test]
    fn a_queued_list_only_diff_is_superseded_by_the_next_list_right_behind_it() {
        let stats = HubStats::default();
        let mut sent = Sent::default();
        let q = ClientQueue::new(None);
        let stub = Utf8Bytes::from_static(r#"{"type":"diff","seq":1,"superseded":true,"data":{}}"#);
        let list = |seq: u64| {
            let msg = Utf8Bytes::from(format!(
                r#"{{"seq":{seq},"data":{{"oncourse":[{}]}}}}"#,
                "0,".repeat(200) + "0"
            ));
            Frame::diff(&msg, true, Some(&stub))
        };
        let rows = Frame::diff(
            &Utf8Bytes::from_static(r#"{"seq":3,"data":{"results":[]}}"#),
            false,
            None,
        );
        for f in [list(1), list(2), rows.clone(), list(4)] {
            assert!(q.push_all(&[f], 1 << 20, &mut sent, &stats));
        }
        let st = q.lock();
        let kinds: Vec<bool> = st.frames.iter().map(|f| f.payload == stub.len()).collect();
        // 1 superseded by 2; 2 stays (a result diff is behind it, 4 is not right behind it).
        assert_eq!(kinds, [true, false, false, false]);
        assert_eq!(sent.superseded, 1);
        assert_eq!(st.bytes, st.frames.iter().map(|f| f.payload).sum::<usize>());
    }

    #[test]
    fn one_pending_pong_at_most_and_it_is_seen() {
        let q = ClientQueue::new(None);
        assert_eq!(q.pending(), (false, false));
        q.push_control(Frame::pong(b"1"));
        q.push_control(Frame::pong(b"2"));
        assert_eq!(q.pending(), (true, true));
        let st = q.lock();
        assert_eq!(st.frames.len(), 1);
        assert_eq!(&st.frames[0].wire[2..], b"2", "the latest ping is answered");
    }
}
