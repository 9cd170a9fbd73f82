//! c123-scoreboard's protocol (c123-server's `/ws` JSON and `/api/xml/...` REST), served from
//! the merge loop's committed state (`protocol/scoreboard.md`).
//!
//! One task follows the loop's change sets like the hub does: the [`feed::Feed`] turns each
//! into the messages c123-server would send, each message is serialized once and the same
//! bytes are queued to every scoreboard (invariant 4). A scoreboard's queue is bounded; one
//! that is full is disconnected (the scoreboard reconnects and resynchronises over REST, as it
//! does after any reconnect). A 1 s timer sends `TimeOfDay`.
//!
//! The REST bodies are pure builders in [`rest`]; the HTTP layer routes to them.

mod conn;
pub mod feed;
pub mod rest;
pub mod wire;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use hyper_tungstenite::tungstenite::protocol::WebSocketConfig;
use hyper_tungstenite::tungstenite::Utf8Bytes;
use tokio::sync::{broadcast, mpsc, watch};

use crate::merge::{MergeHandle, Snapshot};
use crate::shutdown::Shutdown;
use feed::{Feed, Msg};

/// The scoreboard service's settings; the defaults live here only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScoreboardSettings {
    /// A second listener serving the same routes (c123-server's port is 27123, which the
    /// scoreboard's discovery probes); `None`: the main listener only.
    pub listen: Option<SocketAddr>,
    /// Scoreboards connected at once, at most.
    pub max_clients: usize,
    /// Messages queued per scoreboard; a scoreboard whose queue is full is disconnected.
    pub queue_len: usize,
    pub ping_interval: Duration,
    /// A scoreboard that has not answered a ping within this is disconnected.
    pub pong_timeout: Duration,
    /// A write that does not complete within this disconnects the scoreboard.
    pub drain_timeout: Duration,
    /// Largest message a scoreboard may send (`ClientState`; read and discarded).
    pub max_client_message: usize,
}

impl Default for ScoreboardSettings {
    fn default() -> Self {
        ScoreboardSettings {
            listen: None,
            max_clients: 256,
            queue_len: 256,
            ping_interval: Duration::from_secs(15),
            pong_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(10),
            max_client_message: 64 * 1024,
        }
    }
}

impl ScoreboardSettings {
    fn ws_config(&self) -> WebSocketConfig {
        WebSocketConfig::default()
            .max_message_size(Some(self.max_client_message))
            .max_frame_size(Some(self.max_client_message))
    }
}

/// Why a `/ws` upgrade was refused before the 101.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpgradeError {
    #[error("Not a WebSocket upgrade request: {0}")]
    NotWebSocket(String),
    #[error("Scoreboard limit reached ({max} connected)")]
    Full { max: usize },
}

/// What the scoreboards need of the Canoe123 TCP sources now.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceView {
    /// A source has a session (for `Connected` and `/api/status`).
    pub connected: bool,
    /// Canoe123's wall clock (`HH:MM:SS`, the venue's local time), when a source sends it.
    pub venue_time: Option<String>,
}

/// Reads [`SourceView`] from the sources (the composition root builds it).
pub type SourceProbe = Arc<dyn Fn() -> SourceView + Send + Sync>;

struct State {
    feed: Feed,
    /// The snapshot the feed last processed: greetings are built from it, under the same
    /// lock as the broadcast, so a new scoreboard never misses or repeats a change.
    snapshot: Arc<Snapshot>,
    clients: HashMap<u64, mpsc::Sender<Utf8Bytes>>,
}

struct Inner {
    cfg: ScoreboardSettings,
    state: Mutex<State>,
    next_id: AtomicU64,
    sources: SourceProbe,
    shutdown: Shutdown,
    started: Instant,
}

/// The scoreboard service. Cheap to clone.
#[derive(Clone)]
pub struct Scoreboard {
    inner: Arc<Inner>,
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` now.
fn timestamp() -> String {
    crate::time::iso_millis(SystemTime::now())
}

fn encode(kind: &str, ts: &str, data: serde_json::Value) -> Utf8Bytes {
    Utf8Bytes::from(wire::envelope(kind, ts, data).to_string())
}

impl Scoreboard {
    /// Starts the follower; it returns when `shutdown` fires or the merge loop stops.
    /// `event`: the daemon's `--event` (the scoreboard serves it), else the direct-mode event.
    pub fn start(
        cfg: ScoreboardSettings,
        event: Option<String>,
        sources: SourceProbe,
        merge: &MergeHandle,
        shutdown: Shutdown,
    ) -> (Scoreboard, tokio::task::JoinHandle<()>) {
        // Subscribe before reading the snapshot: nothing committed in between is lost.
        let rx = merge.subscribe();
        let snapshot = merge.snapshot();
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                feed: Feed::new(event, &snapshot),
                snapshot,
                clients: HashMap::new(),
            }),
            cfg,
            next_id: AtomicU64::new(1),
            sources,
            shutdown,
            started: Instant::now(),
        });
        let sb = Scoreboard { inner };
        let task = tokio::spawn(sb.clone().follow(rx, merge.watch()));
        (sb, task)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn follow(
        self,
        mut rx: broadcast::Receiver<Arc<crate::merge::Published>>,
        mut fresh: watch::Receiver<Arc<Snapshot>>,
    ) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let shutdown = self.inner.shutdown.clone();
        // Changes were missed: the next change set is answered with the whole state.
        let mut lagged = false;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                got = rx.recv() => match got {
                    Ok(published) => {
                        // Take everything already committed off the broadcast at once and
                        // drop it (each holds a snapshot): one build for all of it, from the
                        // freshest state.
                        let mut pending = BTreeMap::new();
                        feed::absorb(&mut pending, &published.changes);
                        drop(published);
                        loop {
                            match rx.try_recv() {
                                Ok(p) => feed::absorb(&mut pending, &p.changes),
                                Err(broadcast::error::TryRecvError::Lagged(_)) => lagged = true,
                                Err(_) => break,
                            }
                        }
                        let snapshot = Arc::clone(&fresh.borrow_and_update());
                        let mut st = self.lock();
                        if st.clients.is_empty() {
                            st.feed.observe(&snapshot);
                            st.snapshot = snapshot;
                            lagged = false;
                            continue;
                        }
                        let mut msgs = st.feed.on_changes(&pending, &snapshot);
                        if std::mem::take(&mut lagged) {
                            msgs = st.feed.greeting(&snapshot);
                        }
                        st.snapshot = snapshot;
                        broadcast_msgs(&mut st, msgs);
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::debug!(missed = n, "scoreboard feed lagged; resending state");
                        lagged = true;
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                // A new snapshot without a change set: the folder's latest import noted.
                changed = fresh.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let snapshot = Arc::clone(&fresh.borrow_and_update());
                    let mut st = self.lock();
                    if let Some(msgs) = st.feed.on_snapshot(&snapshot) {
                        st.snapshot = snapshot;
                        broadcast_msgs(&mut st, msgs);
                    }
                }
                _ = tick.tick() => {
                    let mut st = self.lock();
                    if !st.clients.is_empty() {
                        // The venue's clock from Canoe123 when a source sends it (as
                        // c123-server relays it); else this machine's, in UTC.
                        let hms = (self.inner.sources)().venue_time.unwrap_or_else(|| {
                            timestamp().get(11..19).unwrap_or("00:00:00").to_owned()
                        });
                        broadcast_msgs(&mut st, vec![("TimeOfDay", wire::time_of_day(&hms))]);
                    }
                }
            }
        }
        // Dropping the senders ends every connection (each also sees the shutdown itself).
        self.lock().clients.clear();
    }

    /// `ForceRefresh` to every scoreboard (they reload their page).
    pub fn force_refresh(&self, reason: &str) -> usize {
        let mut st = self.lock();
        broadcast_msgs(&mut st, vec![("ForceRefresh", wire::force_refresh(reason))]);
        st.clients.len()
    }

    /// Scoreboards connected now.
    pub fn connected(&self) -> usize {
        self.lock().clients.len()
    }

    /// The race the feed calls current (`/api/status`).
    pub fn current_race(&self) -> Option<String> {
        self.lock().feed.current().map(str::to_owned)
    }

    pub fn c123_connected(&self) -> bool {
        (self.inner.sources)().connected
    }

    pub fn uptime(&self) -> Duration {
        self.inner.started.elapsed()
    }

    pub fn settings(&self) -> &ScoreboardSettings {
        &self.inner.cfg
    }

    /// The event served, from `snapshot`.
    pub fn served<'s>(&self, snapshot: &'s Snapshot) -> Option<&'s Arc<crate::model::Event>> {
        let st = self.lock();
        feed::served_event(snapshot, st.feed.explicit())
    }

    /// `GET /ws`: answers 101 and serves the scoreboard on its own task, keeping `guard`
    /// (the HTTP layer's per-address slot) as long as the connection.
    pub fn upgrade<B, G: Send + 'static>(
        &self,
        mut req: Request<B>,
        guard: G,
    ) -> Result<Response<Full<Bytes>>, UpgradeError> {
        if self.connected() >= self.inner.cfg.max_clients {
            return Err(UpgradeError::Full {
                max: self.inner.cfg.max_clients,
            });
        }
        if !hyper_tungstenite::is_upgrade_request(&req) {
            return Err(UpgradeError::NotWebSocket(
                "the Upgrade header must be 'websocket'".into(),
            ));
        }
        let (response, websocket) =
            hyper_tungstenite::upgrade(&mut req, Some(self.inner.cfg.ws_config()))
                .map_err(|e| UpgradeError::NotWebSocket(e.to_string()))?;
        let sb = self.clone();
        tokio::spawn(async move {
            let _guard = guard;
            let ws = match tokio::time::timeout(Duration::from_secs(10), websocket).await {
                Ok(Ok(ws)) => ws,
                _ => return,
            };
            conn::serve(sb, ws).await;
        });
        Ok(response)
    }

    /// Registers a scoreboard: queues `Connected` and the greeting, then adds it, atomically
    /// with respect to the broadcast. `None` when the service is full.
    fn join(&self) -> Option<(u64, mpsc::Receiver<Utf8Bytes>)> {
        let mut st = self.lock();
        if st.clients.len() >= self.inner.cfg.max_clients {
            return None;
        }
        // The greeting (at most five messages) must fit the queue.
        let (tx, rx) = mpsc::channel(self.inner.cfg.queue_len.max(8));
        let ts = timestamp();
        let xml_loaded = feed::served_event(&st.snapshot, st.feed.explicit())
            .is_some_and(|e| e.header.has_xml_data);
        let mut msgs: Vec<Msg> = vec![(
            "Connected",
            wire::connected(env!("CARGO_PKG_VERSION"), self.c123_connected(), xml_loaded),
        )];
        msgs.extend(st.feed.greeting(&st.snapshot));
        for (kind, data) in msgs {
            // Cannot fail: the receiver is here and the queue is larger than the greeting.
            let _ = tx.try_send(encode(kind, &ts, data));
        }
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        st.clients.insert(id, tx);
        Some((id, rx))
    }

    fn leave(&self, id: u64) {
        self.lock().clients.remove(&id);
    }
}

/// Serializes each message once and queues the same bytes to every scoreboard; a scoreboard
/// whose queue is full (or gone) is dropped, which ends its connection.
fn broadcast_msgs(st: &mut State, msgs: Vec<Msg>) {
    if msgs.is_empty() || st.clients.is_empty() {
        return;
    }
    let ts = timestamp();
    for (kind, data) in msgs {
        let bytes = encode(kind, &ts, data);
        st.clients
            .retain(|_, tx| tx.try_send(bytes.clone()).is_ok());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty_state() -> State {
        State {
            feed: Feed::default(),
            snapshot: Arc::new(Snapshot {
                epoch: "e".into(),
                events: Default::default(),
                committed_at: Instant::now(),
                latest_import: None,
            }),
            clients: HashMap::new(),
        }
    }

    #[test]
    fn a_scoreboard_whose_queue_is_full_is_dropped_and_the_others_get_the_same_bytes() {
        let mut st = empty_state();
        let (slow_tx, _slow_rx) = mpsc::channel(2);
        let (fast_tx, mut fast_rx) = mpsc::channel(16);
        st.clients.insert(1, slow_tx);
        st.clients.insert(2, fast_tx);
        for i in 0..3 {
            broadcast_msgs(
                &mut st,
                vec![("TimeOfDay", wire::time_of_day(&format!("10:00:0{i}")))],
            );
        }
        assert_eq!(
            st.clients.keys().collect::<Vec<_>>(),
            vec![&2],
            "the full queue is dropped"
        );
        let got: Vec<String> = std::iter::from_fn(|| fast_rx.try_recv().ok())
            .map(|b| b.as_str().to_owned())
            .collect();
        assert_eq!(got.len(), 3);
        assert!(
            got[2].contains("\"time\":\"10:00:02\"") && got[2].contains("\"type\":\"TimeOfDay\"")
        );
    }

    #[test]
    fn the_default_queue_holds_the_greeting() {
        let d = ScoreboardSettings::default();
        // Connected + Schedule + RaceConfig + OnCourse + Results.
        assert!(d.queue_len >= 5 && d.max_clients > 0);
        assert_eq!(d.listen, None, "the second listener is off by default");
    }
}
