//! One connected client after the upgrade: the raw socket (the hub writes prepared frames to
//! it, `hub::queue`), the frames the client sends (`hub::read`: pings answered, pongs noted,
//! the rest discarded), the heartbeat, the writes the publish path could not finish at once,
//! and the close. Runs on its own task; the slot is released when it returns.
//!
//! A client whose queue is empty is written by the publish path directly: its task is not
//! woken per message. The task wakes for what the socket did not take (then it waits for the
//! socket to be writable), for what the client sends, for its timers and for a close.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio::net::TcpStream;
use tokio::time::{sleep_until, timeout, Instant};

use super::frame::Frame;
use super::queue::{ClientQueue, Flush};
use super::read::{ClientReader, Event};
use super::{Hub, HubStats, Resume, Room, Slot};

/// How long a close handshake may take before the socket is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Close reason for a client whose socket did not drain in time (best effort: its socket is
/// full, so the frame rarely arrives; the connection is dropped after [`CLOSE_TIMEOUT`]).
const TOO_SLOW: &str = "Client too slow";

/// Bytes read from a client at once (on the stack: clients send almost nothing).
const READ_CHUNK: usize = 2048;

#[derive(Debug)]
enum End {
    /// Send this close frame after what is queued, then wait briefly for the peer's.
    Close(CloseCode, &'static str),
    /// The socket did not drain: drop what is queued (but a frame partly written), send
    /// the 1008 close, best effort.
    TooSlow,
    /// The client closed: answer with its code and drop the connection.
    Reply(Option<u16>),
    /// The socket is gone or the client broke the protocol: just drop it.
    Drop,
}

pub(super) async fn serve(
    hub: Hub,
    room: Arc<Room>,
    slot: Slot,
    sock: TcpStream,
    prefix: Bytes,
    resume: Option<Resume>,
) {
    let _slot = slot;
    let sock = Arc::new(sock);
    let stats = &hub.inner.stats;
    let mut reader = ClientReader::new(hub.inner.cfg.max_client_message);
    let (id, queue) = match hub.join(&room, resume.as_ref(), Arc::clone(&sock)) {
        Ok(joined) => joined,
        Err(reason) => {
            let alone = ClientQueue::new(Some(Arc::clone(&sock)));
            let end = End::Close(CloseCode::Normal, reason.text());
            finish(&sock, &alone, &mut reader, end, stats).await;
            return;
        }
    };
    let end = run(&hub, &room, &sock, &queue, &mut reader, prefix).await;
    hub.leave(&room, id);
    finish(&sock, &queue, &mut reader, end, stats).await;
}

/// Long (~85 lines) on purpose: one `select!` owns both directions of the socket, the queue's
/// wake-ups and the three timers (ping, pong deadline, drain deadline), so every way a
/// connection ends is decided in one place.
async fn run(
    hub: &Hub,
    room: &Room,
    sock: &TcpStream,
    queue: &ClientQueue,
    reader: &mut ClientReader,
    prefix: Bytes,
) -> End {
    let inner = &*hub.inner;
    let (cfg, stats) = (&inner.cfg, &inner.stats);
    let shutdown = inner.shutdown.clone();
    let mut ping = tokio::time::interval_at(Instant::now() + cfg.ping_interval, cfg.ping_interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pong_deadline: Option<Instant> = None;
    // Since when the socket has taken nothing of what is queued.
    let mut drain_deadline: Option<Instant> = None;
    // What hyper read past the request head is the start of the client's WebSocket stream.
    // Dropped at once: it shares the allocation of hyper's whole read buffer (8 KiB and
    // more), which it would otherwise keep alive for the life of the connection.
    let early = on_bytes(reader, &prefix, queue, &mut pong_deadline);
    drop(prefix);
    if let Some(end) = early {
        return end;
    }
    loop {
        // A queued pong stops the reading: a client that pings and never reads gets no
        // further than its own socket lets us write, and is closed when it does not drain.
        let (pending, pong_queued) = queue.pending();
        if !pending {
            drain_deadline = None;
        } else if drain_deadline.is_none() {
            drain_deadline = Some(Instant::now() + cfg.drain_timeout);
        }
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return End::Close(CloseCode::Away, "going away"),
            _ = queue.notify.notified() => {
                if let Some((code, reason)) = queue.close_requested() {
                    return End::Close(code, reason);
                }
                match queue.flush(stats) {
                    Err(_) => return End::Drop,
                    Ok(Flush::Blocked { progress: false }) => {}
                    Ok(_) => drain_deadline = None,
                }
            }
            ready = sock.writable(), if pending => {
                if ready.is_err() {
                    return End::Drop;
                }
                match queue.flush(stats) {
                    Err(_) => return End::Drop,
                    Ok(Flush::Blocked { progress: false }) => {}
                    Ok(_) => drain_deadline = None,
                }
            }
            _ = async { if let Some(d) = drain_deadline { sleep_until(d).await } }, if pending && drain_deadline.is_some() => {
                HubStats::add(&stats.slow_client_closes, 1);
                tracing::debug!(event = %room.event_id, "slow WebSocket client disconnected");
                return End::TooSlow;
            }
            ready = sock.readable(), if !pong_queued => {
                if ready.is_err() {
                    return End::Drop;
                }
                match read_now(sock, reader, queue, &mut pong_deadline) {
                    Ok(Some(end)) => return end,
                    Ok(None) => {}
                    Err(_) => return End::Drop,
                }
                if queue.flush(stats).is_err() {
                    return End::Drop;
                }
            }
            _ = ping.tick() => {
                queue.push_control(Frame::ping());
                if queue.flush(stats).is_err() {
                    return End::Drop;
                }
                if pong_deadline.is_none() {
                    pong_deadline = Some(Instant::now() + cfg.pong_timeout);
                }
            }
            _ = async { if let Some(d) = pong_deadline { sleep_until(d).await } }, if pong_deadline.is_some() => {
                HubStats::add(&stats.heartbeat_timeouts, 1);
                tracing::debug!(event = %room.event_id, "WebSocket client did not answer ping");
                return End::Close(CloseCode::Policy, "Ping timeout");
            }
        }
    }
}

/// One non-blocking read of what the client sent, parsed. `Ok(Some)`: the connection ends.
/// The buffer is a local of this (not async) function, so it is no part of the connection's
/// memory while it waits.
fn read_now(
    sock: &TcpStream,
    reader: &mut ClientReader,
    queue: &ClientQueue,
    pong_deadline: &mut Option<Instant>,
) -> io::Result<Option<End>> {
    let mut buf = [0u8; READ_CHUNK];
    match sock.try_read(&mut buf) {
        Ok(0) => Ok(Some(End::Drop)),
        Ok(n) => Ok(on_bytes(reader, &buf[..n], queue, pong_deadline)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(None),
        Err(e) => Err(e),
    }
}

/// Applies the client's frames: a pong clears the deadline, a ping queues its pong, a close
/// ends the connection, anything invalid drops it.
fn on_bytes(
    reader: &mut ClientReader,
    bytes: &[u8],
    queue: &ClientQueue,
    pong_deadline: &mut Option<Instant>,
) -> Option<End> {
    let mut ping: Option<Vec<u8>> = None;
    let mut close: Option<Option<u16>> = None;
    let res = reader.feed(bytes, &mut |e| match e {
        Event::Pong => *pong_deadline = None,
        Event::Ping(payload) => ping = Some(payload),
        Event::Close(code) => {
            close.get_or_insert(code);
        }
    });
    if res.is_err() {
        return Some(End::Drop);
    }
    if let Some(payload) = ping {
        queue.push_control(Frame::pong(&payload));
    }
    close.map(End::Reply)
}

/// Ends the connection as `end` says: the close frame after what is queued (for a slow
/// client: after the frame partly written only), then, for our own close, the peer's answer,
/// all within [`CLOSE_TIMEOUT`].
async fn finish(
    sock: &TcpStream,
    queue: &ClientQueue,
    reader: &mut ClientReader,
    end: End,
    stats: &HubStats,
) {
    let (frame, abandon, await_peer) = match end {
        End::Drop => return,
        End::Close(code, reason) => (Frame::close(code, reason), false, true),
        End::TooSlow => (Frame::close(CloseCode::Policy, TOO_SLOW), true, true),
        End::Reply(code) => {
            let code = code.map_or(CloseCode::Normal, CloseCode::from);
            (Frame::close(code, ""), false, false)
        }
    };
    queue.push_close(frame, abandon);
    let _ = timeout(CLOSE_TIMEOUT, async {
        loop {
            match queue.flush(stats) {
                Ok(Flush::Drained) => break,
                Ok(Flush::Blocked { .. }) => {
                    if sock.writable().await.is_err() {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
        if !await_peer {
            return;
        }
        // Let the peer answer, so our close is not lost to a reset.
        let mut ignored = None;
        loop {
            if sock.readable().await.is_err() {
                return;
            }
            match read_now(sock, reader, queue, &mut ignored) {
                Ok(None) => {}
                Ok(Some(_)) | Err(_) => return,
            }
        }
    })
    .await;
}
