//! Read replicas in the cloud, fed by the venue daemon over NATS JetStream
//! (`protocol/replication.md`).
//!
//! - The **origin** (`serve --nats URL`): [`publish`] follows the merge loop's committed
//!   change sets (never blocking it: its own bounded queue, filled by a task that only
//!   serializes) and publishes one record per changed event to the stream, plus a snapshot
//!   per event in a KV bucket on structure changes, every
//!   [`ReplicationSettings::snapshot_every`] commits or [`ReplicationSettings::snapshot_interval`].
//! - A **replica** (`replica --nats URL`): [`replica`] loads the snapshots, follows the stream
//!   from the oldest snapshot's position with an ordered consumer and hands every event
//!   version to its own merge loop as [`crate::merge::Input::Replicate`], so the hub, the REST
//!   cache and the pages serve what the origin serves, at the origin's `seq` and `epoch`.
//! - [`wire`]: the record and snapshot formats, pure (model in, bytes out, and back).
//!
//! A client of the merge loop like `ingest` and `hub` (layer 4): it imports `merge`, `model`
//! and `shutdown`, never `http` (which reads its [`ReplicationStatus`]).

mod nats;
pub mod publish;
mod queue;
pub mod replica;
pub mod wire;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use nats::NatsSettings;

/// The replication settings (`--nats …`; `replica` sets [`ReplicationSettings::replica`]).
#[derive(Debug, Clone)]
pub struct ReplicationSettings {
    /// `None`: no replication (the daemon as before).
    pub nats: Option<NatsSettings>,
    /// Serve as a read-only replica of the stream instead of taking inputs.
    pub replica: bool,
    /// The JetStream stream of records.
    pub stream: String,
    /// The KV bucket of snapshots.
    pub bucket: String,
    /// A snapshot of an event after this many of its commits since its last snapshot.
    pub snapshot_every: u64,
    /// A snapshot of an event that changed and has had none for this long.
    pub snapshot_interval: Duration,
    /// Records waiting for NATS at most (count and bytes); past either the queue is dropped
    /// and the publisher resynchronises with snapshots once NATS is back.
    pub queue_records: usize,
    pub queue_bytes: usize,
    /// A record larger than this is replaced by a snapshot (NATS' default `max_payload` is
    /// 1 MiB; the server's own limit is used when it is lower).
    pub max_record_bytes: usize,
    /// How long a publish waits for its acknowledgement before it is retried.
    pub ack_timeout: Duration,
    /// A replica waits this long at start for NATS and the origin's state, then fails
    /// (systemd restarts it).
    pub start_timeout: Duration,
    /// Records older than this leave the stream (replicas then start from snapshots).
    pub stream_max_age: Duration,
}

impl Default for ReplicationSettings {
    fn default() -> Self {
        ReplicationSettings {
            nats: None,
            replica: false,
            stream: "C123_LIVE_RECORDS".into(),
            bucket: "c123-snapshots".into(),
            snapshot_every: 100,
            snapshot_interval: Duration::from_secs(30),
            queue_records: 10_000,
            queue_bytes: 64 * 1024 * 1024,
            max_record_bytes: 1024 * 1024 - 16 * 1024,
            ack_timeout: Duration::from_secs(5),
            start_timeout: Duration::from_secs(60),
            stream_max_age: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

impl ReplicationSettings {
    /// Records go to `c123.records.<event token>`.
    pub const SUBJECT_PREFIX: &'static str = "c123.records";
}

/// Why replication could not start.
#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    #[error("NATS {url}: {message}")]
    Connect { url: String, message: String },
    #[error("--nats-creds {path}: {source}")]
    Creds {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--nats-tls-cert and --nats-tls-key go together")]
    TlsPair,
    #[error("JetStream: {0}")]
    JetStream(String),
    #[error(
        "the origin's state did not arrive within {0:?} (is the origin publishing to this NATS?)"
    )]
    NoOrigin(Duration),
    #[error("snapshot bucket: {0}")]
    Snapshot(String),
}

/// Counters and state of replication, for `/metrics` and `/readyz`. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct ReplicationStatus {
    inner: Arc<StatusInner>,
}

#[derive(Debug, Default)]
struct StatusInner {
    replica: AtomicBool,
    connected: AtomicBool,
    /// Replica: caught up with the stream once (ready).
    caught_up: AtomicBool,
    /// Origin: records acknowledged by the stream. Replica: records applied.
    records: AtomicU64,
    /// The stream sequence of the last acknowledged (origin) or applied (replica) record.
    last_stream_seq: AtomicU64,
    /// Origin: records waiting for NATS. Replica: records the stream still holds for it.
    pending: AtomicU64,
    snapshots_written: AtomicU64,
    snapshots_loaded: AtomicU64,
    /// Origin: resynchronisations (queue overflow, lagged, reconnect after a gap).
    resyncs: AtomicU64,
    oversized: AtomicU64,
    /// Replica: gaps it could not fill from a snapshot (yet).
    unfilled_gaps: AtomicU64,
    publish_errors: AtomicU64,
    /// When the last record was acknowledged (origin) or applied (replica), and when the
    /// connection to NATS was last lost.
    times: Mutex<Times>,
    /// Woken when a replica stops following ([`ReplicationStatus::wait_stopped`]).
    stop_signal: tokio::sync::Notify,
}

#[derive(Debug, Default)]
struct Times {
    last_record: Option<Instant>,
    disconnected_since: Option<Instant>,
    /// Why a replica stopped following (origin epoch changed), shown in `/readyz`.
    stopped: Option<String>,
}

/// A counter of [`ReplicationStatus`].
#[derive(Debug, Clone, Copy)]
pub enum Counter {
    Records,
    SnapshotsWritten,
    SnapshotsLoaded,
    Resyncs,
    Oversized,
    UnfilledGaps,
    PublishErrors,
}

/// What `/metrics` and `/readyz` show.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusReport {
    pub replica: bool,
    pub connected: bool,
    pub caught_up: bool,
    pub records: u64,
    pub last_stream_seq: u64,
    pub pending: u64,
    pub snapshots_written: u64,
    pub snapshots_loaded: u64,
    pub resyncs: u64,
    pub oversized: u64,
    pub unfilled_gaps: u64,
    pub publish_errors: u64,
    /// Seconds since the last record (acknowledged or applied); `None`: none yet.
    pub last_record_age: Option<f64>,
    /// Seconds NATS has been unreachable; `None`: connected.
    pub disconnected_for: Option<f64>,
    pub stopped: Option<String>,
}

impl ReplicationStatus {
    pub fn new(replica: bool) -> ReplicationStatus {
        let s = ReplicationStatus::default();
        s.inner.replica.store(replica, Ordering::Relaxed);
        s
    }

    fn times(&self) -> std::sync::MutexGuard<'_, Times> {
        self.inner.times.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn add(&self, counter: Counter, n: u64) {
        let i = &self.inner;
        let c = match counter {
            Counter::Records => &i.records,
            Counter::SnapshotsWritten => &i.snapshots_written,
            Counter::SnapshotsLoaded => &i.snapshots_loaded,
            Counter::Resyncs => &i.resyncs,
            Counter::Oversized => &i.oversized,
            Counter::UnfilledGaps => &i.unfilled_gaps,
            Counter::PublishErrors => &i.publish_errors,
        };
        c.fetch_add(n, Ordering::Relaxed);
        if matches!(counter, Counter::Records) {
            self.times().last_record = Some(Instant::now());
        }
    }

    pub fn set_connected(&self, connected: bool) {
        let was = self.inner.connected.swap(connected, Ordering::Relaxed);
        let mut t = self.times();
        if connected {
            t.disconnected_since = None;
        } else if was || t.disconnected_since.is_none() {
            t.disconnected_since = Some(Instant::now());
        }
    }

    pub fn set_caught_up(&self) {
        self.inner.caught_up.store(true, Ordering::Relaxed);
    }

    pub fn set_last_stream_seq(&self, seq: u64) {
        self.inner.last_stream_seq.store(seq, Ordering::Relaxed);
    }

    pub fn set_pending(&self, n: u64) {
        self.inner.pending.store(n, Ordering::Relaxed);
    }

    pub fn set_stopped(&self, why: String) {
        self.times().stopped = Some(why);
        self.inner.stop_signal.notify_waiters();
    }

    /// Returns once a replica stopped following the origin (its database was replaced): the
    /// daemon then exits, and its supervisor starts it again on the new epoch.
    pub async fn wait_stopped(&self) -> String {
        loop {
            let signal = self.inner.stop_signal.notified();
            if let Some(why) = self.times().stopped.clone() {
                return why;
            }
            signal.await;
        }
    }

    pub fn is_replica(&self) -> bool {
        self.inner.replica.load(Ordering::Relaxed)
    }

    /// A replica is ready once it caught up with the stream (and stays ready while the stream
    /// is unreachable: it serves the last state, shown as stale).
    pub fn is_ready(&self) -> bool {
        !self.is_replica() || self.inner.caught_up.load(Ordering::Relaxed)
    }

    pub fn report(&self) -> StatusReport {
        let i = &self.inner;
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let t = self.times();
        StatusReport {
            replica: i.replica.load(Ordering::Relaxed),
            connected: i.connected.load(Ordering::Relaxed),
            caught_up: i.caught_up.load(Ordering::Relaxed),
            records: n(&i.records),
            last_stream_seq: n(&i.last_stream_seq),
            pending: n(&i.pending),
            snapshots_written: n(&i.snapshots_written),
            snapshots_loaded: n(&i.snapshots_loaded),
            resyncs: n(&i.resyncs),
            oversized: n(&i.oversized),
            unfilled_gaps: n(&i.unfilled_gaps),
            publish_errors: n(&i.publish_errors),
            last_record_age: t.last_record.map(|at| at.elapsed().as_secs_f64()),
            disconnected_for: t.disconnected_since.map(|at| at.elapsed().as_secs_f64()),
            stopped: t.stopped.clone(),
        }
    }
}
