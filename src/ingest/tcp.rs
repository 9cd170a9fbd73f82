//! Canoe123 TCP sources: connect out to Canoe123 (`--c123 HOST[:PORT]`, the normal
//! deployment) or accept connections (`--tcp-listen ADDR`, for relays and test rigs).
//!
//! A session reads `|` frames, parses them, lets [`LiveStream`](super::live::LiveStream) turn them into inputs and
//! sends those to the merge loop in order, waiting for each commit (backpressure: a source
//! never runs ahead of the database). A connection that receives no byte for 10 s is dead
//! (Canoe123 sends TimeOfDay every second) and is reconnected with backoff.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};

mod admission;
mod session;

use admission::{OpenSessions, RefusalLog, SessionSlot};
use session::{run_session, SessionEnd};

use super::live::LiveCounters;
use crate::merge::MergeHandle;
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
    /// The last valid `<TimeOfDay>` (ms since local midnight) and when it arrived: the
    /// venue's wall clock, which the scoreboards show.
    #[serde(skip)]
    pub time_of_day: Option<(u32, Instant)>,
    pub last_frame_age_ms: Option<u64>,
    pub frames_total: u64,
    pub frames_by_type: BTreeMap<String, u64>,
    pub parse_errors: u64,
    pub connections: u64,
    /// Connect mode: attempts to connect, failed ones included (the back-off spaces them).
    pub connect_attempts: u64,
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
    /// Canoe123's wall clock now (`HH:MM:SS`, local to the venue): its last `<TimeOfDay>`
    /// plus the time since it arrived; `None` without one in the last 10 s.
    pub fn venue_time(&self) -> Option<String> {
        let (ms, at) = self.time_of_day?;
        let since = at.elapsed();
        if since > std::time::Duration::from_secs(10) {
            return None;
        }
        let now = (u64::from(ms) + since.as_millis() as u64) % 86_400_000;
        let secs = now / 1000;
        Some(format!(
            "{:02}:{:02}:{:02}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        ))
    }

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
            update(&st, |s| {
                s.state = SourceState::Connecting;
                s.connect_attempts += 1;
            });
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
