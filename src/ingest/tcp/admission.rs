//! The listener's session caps (per peer address and in total) and its rate-limited log of
//! refusals.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{update, SharedSourceStatus, TcpSettings};

/// The sessions a listener has open, per peer address (an address is listed only while it
/// has one, so the map is bounded by the total cap).
#[derive(Debug, Default)]
pub(super) struct OpenSessions {
    per_ip: HashMap<IpAddr, usize>,
    total: usize,
}

/// Why a connection was refused by the session caps.
#[derive(Debug)]
pub(super) enum Refusal {
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
pub(super) struct SessionSlot {
    open: Arc<Mutex<OpenSessions>>,
    status: SharedSourceStatus,
    ip: IpAddr,
}

impl SessionSlot {
    pub(super) fn take(
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
pub(super) struct RefusalLog {
    last: Option<Instant>,
    unlogged: u64,
}

impl RefusalLog {
    pub(super) fn log(&mut self, peer: SocketAddr, refusal: &Refusal) {
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
