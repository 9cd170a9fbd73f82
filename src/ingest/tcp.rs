//! Canoe123 TCP sources: connect out to Canoe123 (`--c123 HOST[:PORT]`, the normal
//! deployment) or accept connections (`--tcp-listen ADDR`, for relays and test rigs).
//!
//! A session reads `|` frames, parses them, lets [`LiveStream`] turn them into inputs and
//! sends those to the merge loop in order, waiting for each commit (backpressure: a source
//! never runs ahead of the database). A connection that receives no byte for 10 s is dead
//! (Canoe123 sends TimeOfDay every second) and is reconnected with backoff.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::FramedRead;

use super::live::{LiveCounters, LiveStream};
use crate::c123::codec::{C123Codec, Frame};
use crate::c123::frame::parse_frame;
use crate::merge::{MergeError, MergeHandle};
use crate::shutdown::Shutdown;

/// The port Canoe123 listens on.
pub const C123_PORT: u16 = 27333;

/// Listen mode: sessions from one address at most. A venue has one Canoe123 or relay per
/// address; 4 leaves room for a source reconnecting while its old, half-open session waits
/// out the 10 s silence timeout.
pub const DEFAULT_MAX_SESSIONS_PER_IP: usize = 4;
/// Listen mode: sessions in all at most. Each may hold a partial frame of up to
/// `max_frame` (4 MiB), so 16 bound the sources' buffers to ~64 MiB.
pub const DEFAULT_MAX_SESSIONS: usize = 16;

#[derive(Debug, Clone)]
pub struct TcpSettings {
    /// The event every frame of this source belongs to; `None`: the event the XML folder
    /// imported an export into last (direct mode).
    pub event_id: Option<String>,
    /// No byte received for this long: the connection is dead.
    pub silence: Duration,
    pub max_frame: usize,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Derive the event's lifecycle from the TCP schedule (forward only).
    pub auto_status: bool,
    /// Listen mode: accept only these peers (empty: any).
    pub allowed_peers: Vec<IpAddr>,
    /// Listen mode: open sessions per peer address at most (further ones are refused).
    pub max_sessions_per_ip: usize,
    /// Listen mode: open sessions in all at most.
    pub max_sessions: usize,
}

impl Default for TcpSettings {
    /// A source with no fixed event (direct mode) and the default limits.
    fn default() -> Self {
        TcpSettings::new(None)
    }
}

impl TcpSettings {
    pub fn new(event_id: Option<String>) -> TcpSettings {
        TcpSettings {
            event_id,
            silence: Duration::from_secs(10),
            max_frame: crate::c123::codec::DEFAULT_MAX_FRAME_BYTES,
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
            auto_status: false,
            allowed_peers: Vec::new(),
            max_sessions_per_ip: DEFAULT_MAX_SESSIONS_PER_IP,
            max_sessions: DEFAULT_MAX_SESSIONS,
        }
    }
}

/// Where a source is in its life; serialized as the lower-case name (`"connected"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceState {
    /// Connect mode: dialling the address.
    #[default]
    Connecting,
    /// A session is open (either mode).
    Connected,
    /// Connect mode: backing off before the next attempt.
    Waiting,
    /// Listen mode: no session, waiting for a peer.
    Listening,
    /// The source ended (shutdown).
    Stopped,
}

impl SourceState {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceState::Connecting => "connecting",
            SourceState::Connected => "connected",
            SourceState::Waiting => "waiting",
            SourceState::Listening => "listening",
            SourceState::Stopped => "stopped",
        }
    }
}

/// What an operator sees of a source (`/api/v1/admin/status`, `/metrics`).
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceStatus {
    pub mode: &'static str,
    /// The address connected to (connect mode) or listened on (listen mode).
    pub address: String,
    pub event_id: String,
    pub state: SourceState,
    pub peer: Option<String>,
    pub connected_since: Option<String>,
    #[serde(skip)]
    pub last_frame_at: Option<Instant>,
    pub last_frame_age_ms: Option<u64>,
    pub frames_total: u64,
    pub frames_by_type: BTreeMap<String, u64>,
    pub parse_errors: u64,
    pub connections: u64,
    pub refused_peers: u64,
    /// Listen mode: sessions open now.
    pub sessions: u64,
    /// Listen mode: connections refused because a session cap was reached.
    pub refused_sessions: u64,
    pub last_error: Option<String>,
    pub unused: LiveCounters,
}

pub type SharedSourceStatus = Arc<Mutex<SourceStatus>>;

impl SourceStatus {
    /// A copy with the frame age filled in (for display).
    pub fn report(&self) -> SourceStatus {
        let mut s = self.clone();
        s.last_frame_age_ms = self.last_frame_at.map(|t| t.elapsed().as_millis() as u64);
        s
    }
}

fn update(status: &SharedSourceStatus, f: impl FnOnce(&mut SourceStatus)) {
    if let Ok(mut s) = status.lock() {
        f(&mut s);
    }
}

/// Milliseconds on one monotonic clock shared by every source (the tracker's time base).
fn now_ms() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    BASE.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// `HOST`, `HOST:PORT`, `[v6]:PORT`; the port defaults to Canoe123's.
pub fn with_default_port(target: &str) -> String {
    let t = target.trim();
    if t.parse::<SocketAddr>().is_ok() {
        return t.to_owned();
    }
    if let Ok(ip) = t.parse::<IpAddr>() {
        return SocketAddr::new(ip, C123_PORT).to_string();
    }
    if t.rsplit_once(':')
        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
    {
        t.to_owned()
    } else {
        format!("{t}:{C123_PORT}")
    }
}

/// Connect mode: keeps a connection to Canoe123 up until `shutdown`.
pub fn spawn_connect(
    target: String,
    settings: TcpSettings,
    merge: MergeHandle,
    shutdown: Shutdown,
) -> (SharedSourceStatus, tokio::task::JoinHandle<()>) {
    let target = with_default_port(&target);
    let status = Arc::new(Mutex::new(SourceStatus {
        mode: "connect",
        address: target.clone(),
        event_id: settings.event_id.clone().unwrap_or_default(),
        state: SourceState::Connecting,
        ..SourceStatus::default()
    }));
    let st = Arc::clone(&status);
    let join = tokio::spawn(async move {
        let mut delay = settings.backoff_min;
        loop {
            update(&st, |s| s.state = SourceState::Connecting);
            let attempt = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = TcpStream::connect(&target) => r,
            };
            match attempt {
                Ok(stream) => {
                    delay = settings.backoff_min;
                    let peer = stream
                        .peer_addr()
                        .map(|a| a.to_string())
                        .unwrap_or_default();
                    tracing::info!(%peer, event = ?settings.event_id, "connected to Canoe123");
                    let end = run_session(stream, &settings, &merge, &st, &shutdown).await;
                    tracing::warn!(%peer, reason = %end, "Canoe123 connection ended");
                    update(&st, |s| s.last_error = Some(end.to_string()));
                    if matches!(end, SessionEnd::Shutdown) {
                        break;
                    }
                }
                Err(e) => {
                    update(&st, |s| {
                        s.last_error = Some(format!("connect {target}: {e}"))
                    });
                    tracing::debug!(%target, error = %e, "cannot connect to Canoe123");
                }
            }
            update(&st, |s| {
                s.state = SourceState::Waiting;
                s.peer = None;
                s.connected_since = None;
            });
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(settings.backoff_max);
        }
        update(&st, |s| s.state = SourceState::Stopped);
    });
    (status, join)
}

/// Listen mode: accepts sources until `shutdown`; each connection is its own session.
pub async fn spawn_listen(
    addr: SocketAddr,
    settings: TcpSettings,
    merge: MergeHandle,
    shutdown: Shutdown,
) -> std::io::Result<(SharedSourceStatus, SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let status = Arc::new(Mutex::new(SourceStatus {
        mode: "listen",
        address: local.to_string(),
        event_id: settings.event_id.clone().unwrap_or_default(),
        state: SourceState::Listening,
        ..SourceStatus::default()
    }));
    let st = Arc::clone(&status);
    let join = tokio::spawn(async move {
        let mut sessions = tokio::task::JoinSet::new();
        let open = Arc::new(Mutex::new(OpenSessions::default()));
        let mut refusals = RefusalLog::default();
        loop {
            let Some((stream, peer)) = crate::shutdown::accept(&listener, &shutdown).await else {
                break;
            };
            let peer_ip = peer.ip().to_canonical();
            if !settings.allowed_peers.is_empty()
                && !settings
                    .allowed_peers
                    .iter()
                    .any(|a| a.to_canonical() == peer_ip)
            {
                update(&st, |s| s.refused_peers += 1);
                tracing::warn!(%peer, "TCP source refused: not an allowed address");
                continue;
            }
            let slot = match SessionSlot::take(&open, &st, peer_ip, &settings) {
                Ok(slot) => slot,
                Err(refusal) => {
                    // Dropping the stream closes it at once: a refused peer holds nothing.
                    drop(stream);
                    update(&st, |s| s.refused_sessions += 1);
                    refusals.log(peer, &refusal);
                    continue;
                }
            };
            let (settings, merge, st, shutdown) = (
                settings.clone(),
                merge.clone(),
                Arc::clone(&st),
                shutdown.clone(),
            );
            sessions.spawn(async move {
                let _slot = slot;
                tracing::info!(%peer, "TCP source connected");
                let end = run_session(stream, &settings, &merge, &st, &shutdown).await;
                tracing::info!(%peer, reason = %end, "TCP source ended");
                update(&st, |s| s.last_error = Some(end.to_string()));
            });
            while sessions.try_join_next().is_some() {}
        }
        sessions.shutdown().await;
        update(&st, |s| s.state = SourceState::Stopped);
    });
    Ok((status, local, join))
}

/// The sessions a listener has open, per peer address (an address is listed only while it
/// has one, so the map is bounded by the total cap).
#[derive(Debug, Default)]
struct OpenSessions {
    per_ip: HashMap<IpAddr, usize>,
    total: usize,
}

/// Why a connection was refused by the session caps.
#[derive(Debug)]
enum Refusal {
    PerAddress { open: usize },
    Total { open: usize },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::PerAddress { open } => write!(
                f,
                "{open} sessions from this address are open, the most --tcp-max-sessions-per-ip allows"
            ),
            Refusal::Total { open } => write!(
                f,
                "{open} sessions are open, the most --tcp-max-sessions allows"
            ),
        }
    }
}

/// One open session's place in [`OpenSessions`], given back when the session ends (however
/// it ends: the slot lives in the session's task).
struct SessionSlot {
    open: Arc<Mutex<OpenSessions>>,
    status: SharedSourceStatus,
    ip: IpAddr,
}

impl SessionSlot {
    fn take(
        open: &Arc<Mutex<OpenSessions>>,
        status: &SharedSourceStatus,
        ip: IpAddr,
        settings: &TcpSettings,
    ) -> Result<SessionSlot, Refusal> {
        let total = {
            let mut o = open.lock().unwrap_or_else(|e| e.into_inner());
            let from_ip = o.per_ip.get(&ip).copied().unwrap_or(0);
            if from_ip >= settings.max_sessions_per_ip {
                return Err(Refusal::PerAddress { open: from_ip });
            }
            if o.total >= settings.max_sessions {
                return Err(Refusal::Total { open: o.total });
            }
            *o.per_ip.entry(ip).or_insert(0) += 1;
            o.total += 1;
            o.total
        };
        update(status, |s| s.sessions = total as u64);
        Ok(SessionSlot {
            open: Arc::clone(open),
            status: Arc::clone(status),
            ip,
        })
    }
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        let total = {
            let mut o = self.open.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = o.per_ip.get_mut(&self.ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    o.per_ip.remove(&self.ip);
                }
            }
            o.total = o.total.saturating_sub(1);
            o.total
        };
        update(&self.status, |s| s.sessions = total as u64);
    }
}

/// Logs refused connections: the first at once, then at most one line per 10 s with the
/// number refused meanwhile (a connection flood must not flood the journal).
#[derive(Default)]
struct RefusalLog {
    last: Option<Instant>,
    unlogged: u64,
}

impl RefusalLog {
    fn log(&mut self, peer: SocketAddr, refusal: &Refusal) {
        if self
            .last
            .is_some_and(|t| t.elapsed() < Duration::from_secs(10))
        {
            self.unlogged += 1;
            return;
        }
        tracing::warn!(
            %peer,
            also_refused = self.unlogged,
            "TCP source refused: {refusal} (more refusals are counted in /metrics, logged at most every 10 s)"
        );
        self.last = Some(Instant::now());
        self.unlogged = 0;
    }
}

#[derive(Debug)]
enum SessionEnd {
    Closed,
    Silent(Duration),
    Codec(String),
    Shutdown,
    MergeStopped,
}

impl std::fmt::Display for SessionEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SessionEnd::Closed => write!(f, "closed by the peer"),
            SessionEnd::Silent(d) => write!(f, "nothing received for {} s", d.as_secs()),
            SessionEnd::Codec(e) => write!(f, "stream error: {e}"),
            SessionEnd::Shutdown => write!(f, "shutting down"),
            SessionEnd::MergeStopped => write!(f, "merge loop stopped"),
        }
    }
}

/// A reader that remembers when it last received bytes: the silence deadline counts from
/// there, so only the peer can move it (not the session's own timer).
struct LastReceived<R> {
    inner: R,
    at: tokio::time::Instant,
}

impl<R: AsyncRead + Unpin> AsyncRead for LastReceived<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.at = tokio::time::Instant::now();
        }
        polled
    }
}

async fn run_session(
    stream: TcpStream,
    settings: &TcpSettings,
    merge: &MergeHandle,
    status: &SharedSourceStatus,
    shutdown: &Shutdown,
) -> SessionEnd {
    let _ = stream.set_nodelay(true);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(10))
        .with_interval(Duration::from_secs(5));
    let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive);
    let peer = stream.peer_addr().map(|a| a.to_string()).ok();
    update(status, |s| {
        s.state = SourceState::Connected;
        s.peer = peer;
        s.connected_since = Some(crate::time::now_iso());
        s.connections += 1;
    });
    let received = LastReceived {
        inner: stream,
        at: tokio::time::Instant::now(),
    };
    let mut frames = FramedRead::new(received, C123Codec::with_max_frame(settings.max_frame));
    let mut live = LiveStream::new(settings.event_id.clone(), settings.auto_status);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_error_log: Option<Instant> = None;
    let end = loop {
        // Recomputed every turn from the last received byte; the tick below must not
        // restart it (it once did, and a silent peer was never dropped).
        let silent_at = frames.get_ref().at + settings.silence;
        let next = tokio::select! {
            // Reading before the deadline: bytes that waited in the socket while a commit
            // was slow count as received, not as silence.
            biased;
            _ = shutdown.cancelled() => break SessionEnd::Shutdown,
            _ = tick.tick() => {
                let inputs = live.on_tick(now_ms(), &merge.snapshot());
                if deliver(merge, inputs).await.is_err() {
                    break SessionEnd::MergeStopped;
                }
                continue;
            }
            next = frames.next() => Some(next),
            _ = tokio::time::sleep_until(silent_at) => None,
        };
        let Some(next) = next else {
            if frames.get_ref().at + settings.silence <= tokio::time::Instant::now() {
                break SessionEnd::Silent(settings.silence);
            }
            continue; // bytes arrived meanwhile: a later deadline
        };
        let frame = match next {
            None => break SessionEnd::Closed,
            Some(Err(e)) => break SessionEnd::Codec(e.to_string()),
            Some(Ok(frame)) => frame,
        };
        let parsed = match frame {
            Frame::Text(text) => parse_frame(&text).map_err(|e| e.to_string()),
            Frame::InvalidUtf8 { len, valid_up_to } => Err(format!(
                "frame of {len} bytes is not UTF-8 (from byte {valid_up_to})"
            )),
        };
        let messages = match parsed {
            Ok(m) => m,
            Err(e) => {
                update(status, |s| {
                    s.parse_errors += 1;
                    s.last_frame_at = Some(Instant::now());
                });
                // Bounded log rate: a source sending garbage must not flood the journal.
                if last_error_log.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                    tracing::warn!(error = %e, "unparseable Canoe123 frame (more are counted, not logged, for 10 s)");
                    last_error_log = Some(Instant::now());
                }
                continue;
            }
        };
        let arrived = Instant::now();
        let snapshot = merge.snapshot();
        let now = now_ms();
        let mut inputs = Vec::new();
        for m in &messages {
            inputs.extend(live.on_message(m, now, &snapshot));
        }
        // One lock per frame, taken before waiting for the commit so the status shows
        // arrivals even while the database is slow.
        update(status, |s| {
            s.frames_total += 1;
            s.last_frame_at = Some(arrived);
            for m in &messages {
                match s.frames_by_type.get_mut(m.kind()) {
                    Some(n) => *n += 1,
                    None => {
                        s.frames_by_type.insert(m.kind().to_owned(), 1);
                    }
                }
            }
            s.unused = live.counters.clone();
        });
        if deliver(merge, inputs).await.is_err() {
            break SessionEnd::MergeStopped;
        }
    };
    update(status, |s| {
        s.peer = None;
        s.connected_since = None;
    });
    end
}

/// Sends inputs in order, each after the previous committed. Refusals (an official event,
/// an unknown event) are expected and only logged at debug level.
async fn deliver(merge: &MergeHandle, inputs: Vec<crate::merge::Input>) -> Result<(), ()> {
    for input in inputs {
        match merge.send(input).await {
            Ok(_) => {}
            Err(MergeError::Stopped) => return Err(()),
            Err(e) => tracing::debug!(error = %e, "TCP input refused"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_get_the_canoe123_port() {
        assert_eq!(with_default_port("192.168.68.108"), "192.168.68.108:27333");
        assert_eq!(with_default_port("timing.local"), "timing.local:27333");
        assert_eq!(with_default_port("timing.local:4000"), "timing.local:4000");
        assert_eq!(with_default_port("::1"), "[::1]:27333");
        assert_eq!(with_default_port("[::1]:5000"), "[::1]:5000");
    }
}

#[cfg(test)]
mod state_tests {
    use super::SourceState;

    #[test]
    fn source_states_serialize_as_their_names() {
        use SourceState::*;
        for s in [Connecting, Connected, Waiting, Listening, Stopped] {
            assert_eq!(
                serde_json::to_value(s).ok(),
                Some(serde_json::json!(s.as_str()))
            );
        }
    }
}
