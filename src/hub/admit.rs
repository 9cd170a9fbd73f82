//! Upgrade and admission: the handshake check, the typed refusals, the slot reservation and a
//! client's join (its `full` or its replay) and leave.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use hyper_tungstenite::tungstenite::protocol::WebSocketConfig;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::compose::{self, CloseReason};
use super::conn;
use super::frame::Frame;
use super::queue::{ClientQueue, Sent};
use super::room::{Room, RoomState};
use super::stats::HubStats;
use super::{Hub, Inner};
use crate::uri::query_param;

/// A reserved connection slot; released on drop, whatever ends the connection.
pub(super) struct Slot {
    pub(super) inner: Arc<Inner>,
    pub(super) room: Arc<Room>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.room.slots.fetch_sub(1, Ordering::AcqRel);
        self.inner.total.fetch_sub(1, Ordering::AcqRel);
        self.inner.stats.connected.fetch_sub(1, Ordering::Relaxed);
        self.inner.left.notify_waiters();
    }
}

/// `?since=N&epoch=E` of a reconnecting client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resume {
    pub since: u64,
    pub epoch: String,
}

/// Reads `since` and `epoch` from a WebSocket URL's query; both are needed for a resume.
/// The query is parsed as the REST routes parse theirs ([`crate::uri::query_param`]).
pub fn parse_resume(query: Option<&str>) -> Option<Resume> {
    Some(Resume {
        since: query_param(query, "since")?.parse::<u64>().ok()?,
        epoch: query_param(query, "epoch")?,
    })
}

/// Whether `name` lists `token` (comma-separated, case-insensitive).
fn header_has_token(
    headers: &hyper::HeaderMap,
    name: hyper::header::HeaderName,
    token: &str,
) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

/// The opening handshake as RFC 6455 4.2.1 requires it (`Upgrade: websocket`, `Connection:
/// Upgrade`, one `Sec-WebSocket-Key` that is base64 of 16 bytes, version 13); the message names
/// the header at fault. hyper-tungstenite checks only that a key and the version are present.
fn check_handshake(headers: &hyper::HeaderMap) -> Result<(), String> {
    use base64::Engine as _;
    if !header_has_token(headers, hyper::header::UPGRADE, "websocket") {
        return Err(
            "Not a WebSocket upgrade request: the Upgrade header must be 'websocket'".into(),
        );
    }
    if !header_has_token(headers, hyper::header::CONNECTION, "upgrade") {
        return Err(
            "Not a WebSocket upgrade request: the Connection header must include 'Upgrade'".into(),
        );
    }
    let mut keys = headers.get_all(hyper::header::SEC_WEBSOCKET_KEY).iter();
    let key_ok = match (keys.next(), keys.next()) {
        (Some(key), None) => base64::engine::general_purpose::STANDARD
            .decode(key.as_bytes())
            .is_ok_and(|k| k.len() == 16),
        _ => false,
    };
    if !key_ok {
        return Err("Not a WebSocket upgrade request: Sec-WebSocket-Key must be one base64-encoded 16-byte value".into());
    }
    if headers
        .get(hyper::header::SEC_WEBSOCKET_VERSION)
        .map(|v| v.as_bytes())
        != Some(b"13")
    {
        return Err("Not a WebSocket upgrade request: Sec-WebSocket-Version must be 13".into());
    }
    Ok(())
}

/// Why an upgrade was refused before the 101. The HTTP layer turns it into its error body
/// (the hub writes no HTTP error bodies of its own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Unknown, draft or deleted event (404).
    NotFound,
    /// The results are official: no live updates (410).
    Official,
    /// The room or the server is full (503).
    RoomFull { max_connections: usize },
    /// Not a valid WebSocket handshake (400); the text says what is wrong.
    NotWebSocket(String),
}

impl Hub {
    /// `GET /api/v1/events/{eventId}/ws`: refuses with a JSON HTTP response (404 unknown or
    /// draft, 410 official, 503 room or server full, 400 not a WebSocket request), or
    /// answers 101 and serves the connection on its own task.
    pub fn upgrade<B>(
        &self,
        req: Request<B>,
        event_id: &str,
    ) -> Result<Response<Full<Bytes>>, Refusal> {
        self.upgrade_guarded(req, event_id, ())
    }

    /// [`Hub::upgrade`], keeping `guard` alive as long as the connection (the HTTP layer's
    /// per-address slot); dropped at once when the upgrade is refused.
    pub fn upgrade_guarded<B, G: Send + 'static>(
        &self,
        mut req: Request<B>,
        event_id: &str,
        guard: G,
    ) -> Result<Response<Full<Bytes>>, Refusal> {
        let inner = &self.inner;
        let room = {
            // The freshest committed state: a new room starts from it, and changes the hub has
            // not processed yet are recognised by their seq and skipped.
            let snapshot = inner.merge.snapshot();
            let mut st = inner.lock();
            let status = snapshot.event(event_id).map(|e| e.header.status);
            match status.map(compose::admission) {
                None | Some(Err(CloseReason::NotPublic)) | Some(Err(CloseReason::Deleted)) => {
                    return Err(Refusal::NotFound)
                }
                Some(Err(CloseReason::Official)) => return Err(Refusal::Official),
                Some(Ok(())) => {}
            }
            Arc::clone(st.rooms.entry(event_id.to_owned()).or_insert_with(|| {
                Arc::new(Room {
                    event_id: event_id.to_owned(),
                    slots: AtomicUsize::new(0),
                    state: Mutex::new(RoomState {
                        event: snapshot.event(event_id).cloned(),
                        clients: HashMap::new(),
                        ring: VecDeque::new(),
                        ring_bytes: 0,
                        full: None,
                        closing: None,
                    }),
                })
            }))
        };
        let Some(slot) = self.reserve(&room) else {
            HubStats::add(&inner.stats.refused_limit, 1);
            return Err(Refusal::RoomFull {
                max_connections: inner.cfg.max_per_event,
            });
        };
        check_handshake(req.headers()).map_err(Refusal::NotWebSocket)?;
        let resume = parse_resume(req.uri().query());
        // The tungstenite stream is unwrapped at once (below): give it no buffers to allocate
        // (its default read buffer is 128 KiB per connection).
        let unused = WebSocketConfig::default()
            .read_buffer_size(0)
            .write_buffer_size(0)
            .max_write_buffer_size(1);
        let (response, websocket) = match hyper_tungstenite::upgrade(&mut req, Some(unused)) {
            Ok(pair) => pair,
            Err(e) => {
                return Err(Refusal::NotWebSocket(format!(
                    "Not a WebSocket upgrade request: {e}"
                )))
            }
        };
        HubStats::add(&inner.stats.connections_total, 1);
        tokio::spawn(serve_upgraded(
            self.clone(),
            room,
            slot,
            websocket,
            resume,
            guard,
        ));
        Ok(response)
    }

    /// Reserves a slot in the room and in the global budget, or none (exact under
    /// concurrency: compare-and-swap on both counters).
    pub(super) fn reserve(&self, room: &Arc<Room>) -> Option<Slot> {
        let inner = &self.inner;
        let take = |counter: &AtomicUsize, limit: usize| {
            counter
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (n < limit).then_some(n + 1)
                })
                .is_ok()
        };
        if !take(&inner.total, inner.cfg.max_total) {
            return None;
        }
        if !take(&room.slots, inner.cfg.max_per_event) {
            inner.total.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        inner.stats.connected.fetch_add(1, Ordering::Relaxed);
        Some(Slot {
            inner: Arc::clone(inner),
            room: Arc::clone(room),
        })
    }

    /// Registers a connected client: queues its `full` (or its replay) and adds it to the
    /// room, atomically with respect to publishing. `Err` when the room is closing.
    pub(super) fn join(
        &self,
        room: &Room,
        resume: Option<&Resume>,
        sock: Arc<TcpStream>,
    ) -> Result<(u64, Arc<ClientQueue>), CloseReason> {
        let inner = &*self.inner;
        let mut st = room.lock();
        if let Some(reason) = st.closing {
            return Err(reason);
        }
        if st.event.is_none() {
            return Err(CloseReason::Deleted);
        }
        let queue = Arc::new(ClientQueue::new(Some(sock)));
        let replay = resume
            .filter(|r| r.epoch == inner.epoch)
            .and_then(|r| st.replay(r.since));
        let frames: Vec<Frame> = match replay {
            Some(frames) => frames,
            None => st.full(inner).into_iter().collect(),
        };
        // Unbounded on purpose: a replay is bounded by the ring (`ring_bytes`).
        let mut sent = Sent::default();
        queue.push_all(&frames, usize::MAX, &mut sent, &inner.stats);
        sent.add_to(&inner.stats);
        let id = inner.next_client.fetch_add(1, Ordering::Relaxed);
        st.clients.insert(id, Arc::clone(&queue));
        Ok((id, queue))
    }

    pub(super) fn leave(&self, room: &Room, id: u64) {
        room.lock().clients.remove(&id);
    }
}

/// After the 101: waits for hyper's upgrade (bounded), takes the TCP stream back and serves
/// the connection; `guard` lives as long as it.
async fn serve_upgraded<G>(
    hub: Hub,
    room: Arc<Room>,
    slot: Slot,
    websocket: hyper_tungstenite::HyperWebsocket,
    resume: Option<Resume>,
    guard: G,
) {
    let _guard = guard;
    let ws = match tokio::time::timeout(Duration::from_secs(10), websocket).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "WebSocket upgrade failed");
            return;
        }
        Err(_) => return,
    };
    // hyper-tungstenite did the handshake; the hub writes its prepared frames to the socket
    // itself (conn.rs), so it takes the TCP stream back (nothing was read or written through
    // tungstenite yet) with the bytes hyper read past the request.
    let upgraded = ws.into_inner().into_inner();
    match upgraded.downcast::<TokioIo<TcpStream>>() {
        Ok(parts) => {
            let sock = parts.io.into_inner();
            conn::serve(hub, room, slot, sock, parts.read_buf, resume).await;
        }
        // Our HTTP server serves `TokioIo<TcpStream>` connections; anything else is a wiring
        // mistake a test catches, not a client's doing.
        Err(_) => tracing::error!("WebSocket upgrade on a connection that is not TCP; dropped"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_query_needs_both_fields() {
        assert_eq!(
            parse_resume(Some("since=12&epoch=abc")),
            Some(Resume {
                since: 12,
                epoch: "abc".into()
            })
        );
        assert_eq!(parse_resume(Some("since=12")), None);
        assert_eq!(parse_resume(Some("since=x&epoch=abc")), None);
        assert_eq!(parse_resume(None), None);
    }
}
