//! One connected client: writes its queue in batches, pings, discards what it sends, and
//! closes with a reason. Runs on its own task; the slot is released when it returns.

use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use hyper_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use hyper_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use hyper_tungstenite::tungstenite::protocol::frame::Frame;
use hyper_tungstenite::tungstenite::protocol::CloseFrame;
use hyper_tungstenite::tungstenite::{Bytes, Message, Utf8Bytes};
use hyper_tungstenite::HyperWebsocketStream;
use tokio::time::{sleep_until, timeout, Instant};

use super::{Hub, HubConfig, HubStats, Resume, Room, Slot};

/// How long a close handshake may take before the socket is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Close reason for a client whose socket did not drain in time (best effort: its socket is
/// full, so the frame rarely arrives; the connection is dropped after [`CLOSE_TIMEOUT`]).
const TOO_SLOW: &str = "Client too slow";

enum End {
    /// Send this close frame, then wait briefly for the peer's.
    Close(CloseCode, &'static str),
    /// The socket is gone or stuck: just drop it.
    Drop,
}

/// Long (~95 lines) on purpose: one `select!` loop owns the socket, the queue and both
/// timers, so every way a connection ends is decided in one place.
pub(super) async fn serve(
    hub: Hub,
    room: Arc<Room>,
    slot: Slot,
    ws: HyperWebsocketStream,
    resume: Option<Resume>,
) {
    // Over 80 lines: one `select!` over the connection's event sources (shutdown, queue,
    // client frames, ping tick, pong deadline) sharing the sink and the pong deadline; the
    // batch write is `write_batch`.
    let _slot = slot;
    let (mut sink, mut stream) = ws.split();
    let (id, queue) = match hub.join(&room, resume.as_ref()) {
        Ok(joined) => joined,
        Err(reason) => {
            let code = CloseCode::Normal;
            let _ = timeout(CLOSE_TIMEOUT, sink.send(close_msg(code, reason.text()))).await;
            return;
        }
    };
    let inner = &*hub.inner;
    let stats: &HubStats = &inner.stats;
    let cfg = &inner.cfg;
    let shutdown = inner.shutdown.clone();
    let mut ping = tokio::time::interval_at(Instant::now() + cfg.ping_interval, cfg.ping_interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pong_deadline: Option<Instant> = None;

    let end = loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break End::Close(CloseCode::Away, "going away"),
            _ = queue.notify.notified() => {
                let (frames, close) = queue.take();
                if let Some(end) = write_batch(&mut sink, frames, cfg, stats, &room.event_id).await {
                    break end;
                }
                if let Some((code, reason)) = close {
                    break End::Close(code, reason);
                }
            }
            msg = stream.next() => match msg {
                // Everything a client sends is read and discarded (bounded by the frame
                // size limit); a pong answers our ping.
                Some(Ok(Message::Pong(_))) => pong_deadline = None,
                // tungstenite queued the pong; write it out before reading on, so a client
                // that pings and never reads gets no further than its own socket lets us
                // write, and is closed like any socket that does not drain.
                Some(Ok(Message::Ping(_))) => {
                    match timeout(cfg.drain_timeout, sink.flush()).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => break End::Drop,
                        Err(_) => {
                            HubStats::add(&stats.slow_client_closes, 1);
                            tracing::debug!(event = %room.event_id, "WebSocket client pings but does not read; disconnected");
                            break End::Close(CloseCode::Policy, TOO_SLOW);
                        }
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break End::Drop,
                Some(Ok(_)) => {}
            },
            _ = ping.tick() => {
                match timeout(cfg.drain_timeout, sink.send(Message::Ping(Bytes::new()))).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => break End::Drop,
                    Err(_) => {
                        HubStats::add(&stats.slow_client_closes, 1);
                        break End::Close(CloseCode::Policy, TOO_SLOW);
                    }
                }
                if pong_deadline.is_none() {
                    pong_deadline = Some(Instant::now() + cfg.pong_timeout);
                }
            }
            _ = async { if let Some(d) = pong_deadline { sleep_until(d).await } }, if pong_deadline.is_some() => {
                HubStats::add(&stats.heartbeat_timeouts, 1);
                tracing::debug!(event = %room.event_id, "WebSocket client did not answer ping");
                break End::Close(CloseCode::Policy, "Ping timeout");
            }
        }
    };
    hub.leave(&room, id);
    if let End::Close(code, reason) = end {
        // Send the close frame, then let the peer answer so our close is not lost to a reset.
        let _ = timeout(CLOSE_TIMEOUT, async {
            if sink.send(close_msg(code, reason)).await.is_err() {
                return;
            }
            while let Some(Ok(msg)) = stream.next().await {
                if matches!(msg, Message::Close(_)) {
                    break;
                }
            }
        })
        .await;
    }
}

/// Writes one batch of frames (feed, then one flush) within the drain timeout; `Some` when
/// the connection must end.
async fn write_batch(
    sink: &mut SplitSink<HyperWebsocketStream, Message>,
    frames: Vec<Utf8Bytes>,
    cfg: &HubConfig,
    stats: &HubStats,
    event_id: &str,
) -> Option<End> {
    if frames.is_empty() {
        return None;
    }
    let n = frames.len() as u64;
    let bytes: u64 = frames.iter().map(|f| f.len() as u64).sum();
    let write = async {
        for f in frames {
            for m in fragments(f) {
                sink.feed(m).await?;
            }
        }
        sink.flush().await
    };
    match timeout(cfg.drain_timeout, write).await {
        Ok(Ok(())) => {
            HubStats::add(&stats.messages_sent, n);
            HubStats::add(&stats.bytes_sent, bytes);
            None
        }
        Ok(Err(_)) => Some(End::Drop),
        Err(_) => {
            HubStats::add(&stats.slow_client_closes, 1);
            tracing::debug!(event = %event_id, "slow WebSocket client disconnected");
            Some(End::Close(CloseCode::Policy, TOO_SLOW))
        }
    }
}

/// Largest frame written. A bigger message (a `full`) goes out as continuation frames that
/// share its bytes, so tungstenite's output buffer (which keeps its capacity for the life of
/// the connection) never grows beyond about `write_buffer_size + FRAGMENT`.
const FRAGMENT: usize = 4096;

fn fragments(msg: Utf8Bytes) -> Vec<Message> {
    if msg.len() <= FRAGMENT {
        return vec![Message::Text(msg)];
    }
    let bytes = Bytes::from(msg);
    let n = bytes.len().div_ceil(FRAGMENT);
    (0..n)
        .map(|i| {
            let part = bytes.slice(i * FRAGMENT..((i + 1) * FRAGMENT).min(bytes.len()));
            let opcode = if i == 0 {
                OpCode::Data(Data::Text)
            } else {
                OpCode::Data(Data::Continue)
            };
            Message::Frame(Frame::message(part, opcode, i + 1 == n))
        })
        .collect()
}

fn close_msg(code: CloseCode, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}
