//! One connected scoreboard: writes its queue, pings, reads and discards what it sends
//! (`ClientState`), and closes with a reason.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hyper_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use hyper_tungstenite::tungstenite::protocol::CloseFrame;
use hyper_tungstenite::tungstenite::{Bytes, Message};
use hyper_tungstenite::HyperWebsocketStream;
use tokio::time::{sleep_until, timeout, Instant};

use super::Scoreboard;

/// How long a close handshake may take before the socket is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

pub(super) async fn serve(sb: Scoreboard, ws: HyperWebsocketStream) {
    let (mut sink, mut stream) = ws.split();
    let Some((id, mut queue)) = sb.join() else {
        let _ = timeout(
            CLOSE_TIMEOUT,
            sink.send(close(CloseCode::Again, "Server full")),
        )
        .await;
        return;
    };
    let cfg = sb.settings().clone();
    let shutdown = sb.inner.shutdown.clone();
    let mut ping = tokio::time::interval_at(Instant::now() + cfg.ping_interval, cfg.ping_interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pong_deadline: Option<Instant> = None;
    let end: Option<(CloseCode, &'static str)> = loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break Some((CloseCode::Away, "going away")),
            msg = queue.recv() => match msg {
                Some(text) => {
                    match timeout(cfg.drain_timeout, sink.send(Message::Text(text))).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => break None,
                        Err(_) => break Some((CloseCode::Policy, "Client too slow")),
                    }
                }
                // The service dropped this scoreboard: its queue was full.
                None => break Some((CloseCode::Policy, "Client too slow")),
            },
            msg = stream.next() => match msg {
                Some(Ok(Message::Pong(_))) => pong_deadline = None,
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break None,
                // Pings are answered by tungstenite on the next write; anything else (the
                // scoreboard's ClientState) is read and discarded, bounded by the frame limit.
                Some(Ok(_)) => {}
            },
            _ = ping.tick() => {
                match timeout(cfg.drain_timeout, sink.send(Message::Ping(Bytes::new()))).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => break None,
                    Err(_) => break Some((CloseCode::Policy, "Client too slow")),
                }
                pong_deadline.get_or_insert(Instant::now() + cfg.pong_timeout);
            }
            _ = async { if let Some(d) = pong_deadline { sleep_until(d).await } }, if pong_deadline.is_some() => {
                break Some((CloseCode::Policy, "Ping timeout"));
            }
        }
    };
    sb.leave(id);
    if let Some((code, reason)) = end {
        let _ = timeout(CLOSE_TIMEOUT, async {
            if sink.send(close(code, reason)).await.is_err() {
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

fn close(code: CloseCode, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}
