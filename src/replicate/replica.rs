//! A replica's side: the origin's state from the bucket, then every record from the stream,
//! into the replica's own merge loop.
//!
//! Start: wait for NATS and the origin's marker (its epoch: the replica's database takes it),
//! load every event's snapshot, and follow the stream with an ordered consumer from the
//! oldest snapshot's stream sequence + 1. Each record applies to the version the replica has
//! when it is that version's successor; an older one is skipped (already applied); a newer
//! one is a **gap**: the replica loads that event's snapshot and installs it whole (its
//! clients get a `full`), never a partial state. While NATS is unreachable the last state is
//! served, marked stale in `/readyz` and `/metrics`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{pull::OrderedConfig, DeliverPolicy};
use async_nats::jetstream::{self, kv};
use futures_util::StreamExt as _;

use super::wire::{self, Body, OriginValue, Record, SnapshotValue};
use super::{
    nats, Counter, NatsSettings, ReplicationError, ReplicationSettings, ReplicationStatus,
};
use crate::merge::{EventChange, Input, MergeHandle, Replicated};
use crate::model::Event;
use crate::shutdown::Shutdown;

/// Snapshots read from the bucket at most (a bound on what the bucket can make us hold).
const MAX_EVENTS: usize = 10_000;
/// Deleted event ids whose last `seq` is remembered (so a late copy of an older record of a
/// deleted event cannot bring it back); past this the oldest are forgotten.
const MAX_RETIRED: usize = 10_000;
/// A consumer that delivers nothing for this long while NATS is unreachable is recreated.
const IDLE: Duration = Duration::from_secs(10);
/// Pause before the consumer is recreated after an error.
const RETRY: Duration = Duration::from_millis(500);
/// Further behind than this many records, a replica reloads every snapshot instead of
/// replaying them all.
const RELOAD_BEHIND: u64 = 20_000;

/// What a replica starts from. The origin's epoch is for the replica's database.
pub struct Start {
    pub epoch: String,
    events: Vec<Event>,
    /// The stream sequence to follow after.
    position: u64,
    /// The stream's last sequence at start: caught up once it is applied.
    target: u64,
    conn: Conn,
}

struct Conn {
    stream: jetstream::stream::Stream,
    bucket: kv::Store,
}

/// Connects and loads the origin's state, waiting up to `start_timeout` for NATS, the stream
/// and the origin's marker.
pub async fn connect(
    settings: &ReplicationSettings,
    nats_settings: &NatsSettings,
    status: &ReplicationStatus,
) -> Result<Start, ReplicationError> {
    let client = nats::connect(nats_settings, "c123-live replica", status).await?;
    let js = nats::context(client, settings.ack_timeout);
    let deadline = Instant::now() + settings.start_timeout;
    loop {
        match try_start(&js, settings).await {
            Ok(Some(start)) => {
                status.add(Counter::SnapshotsLoaded, start.events.len() as u64);
                return Ok(start);
            }
            Ok(None) => tracing::debug!("waiting for the origin's first snapshot"),
            Err(e) => tracing::debug!(error = %e, "waiting for NATS"),
        }
        if Instant::now() >= deadline {
            return Err(ReplicationError::NoOrigin(settings.start_timeout));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn try_start(
    js: &jetstream::Context,
    settings: &ReplicationSettings,
) -> Result<Option<Start>, ReplicationError> {
    let (stream, bucket) = nats::open(js, settings).await?;
    let err = |e: &dyn std::fmt::Display| ReplicationError::Snapshot(e.to_string());
    let Some(origin) = bucket.get(wire::ORIGIN_KEY).await.map_err(|e| err(&e))? else {
        return Ok(None);
    };
    let origin = OriginValue::decode(&origin).map_err(|e| err(&e))?;
    let snapshots = load_all(&bucket, &origin.epoch).await?;
    let position = snapshots
        .iter()
        .map(|s| s.stream_seq)
        .min()
        .unwrap_or(origin.stream_seq);
    let target = stream
        .get_info()
        .await
        .map_err(|e| err(&e))?
        .state
        .last_sequence;
    Ok(Some(Start {
        epoch: origin.epoch,
        events: snapshots
            .into_iter()
            .map(|s| s.event.into_event())
            .collect(),
        position,
        target,
        conn: Conn { stream, bucket },
    }))
}

/// Every event snapshot of `epoch` in the bucket (others are a previous database's).
async fn load_all(bucket: &kv::Store, epoch: &str) -> Result<Vec<SnapshotValue>, ReplicationError> {
    let err = |e: &dyn std::fmt::Display| ReplicationError::Snapshot(e.to_string());
    let mut keys = bucket.keys().await.map_err(|e| err(&e))?;
    let mut names = Vec::new();
    while let Some(key) = keys.next().await {
        let key = key.map_err(|e| err(&e))?;
        if key.starts_with("event.") && names.len() < MAX_EVENTS {
            names.push(key);
        }
    }
    let mut out = Vec::new();
    for key in names {
        let Some(bytes) = bucket.get(key.as_str()).await.map_err(|e| err(&e))? else {
            continue;
        };
        match SnapshotValue::decode(&bytes) {
            Ok(s) if s.epoch == epoch => out.push(s),
            Ok(_) => {}
            Err(e) => tracing::warn!(%key, error = %e, "snapshot not readable, skipped"),
        }
    }
    Ok(out)
}

/// Installs the start's events into `merge` and follows the stream until `shutdown`.
pub fn spawn(
    start: Start,
    merge: MergeHandle,
    status: ReplicationStatus,
    shutdown: Shutdown,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let Start {
            epoch,
            events,
            position,
            target,
            conn,
        } = start;
        let mut f = Follower {
            epoch,
            merge,
            status,
            conn,
            retired: BTreeMap::new(),
            position,
            target,
        };
        for event in events {
            let change = wire::snapshot_change(&event.header.event_id, event.header.seq, true);
            if let Err(e) = f.install(Some(event), change).await {
                tracing::error!(error = %e, "replica: snapshot not installed");
                return;
            }
        }
        if f.position >= f.target {
            f.status.set_caught_up();
        }
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = f.run() => {}
        }
    })
}

/// Why following stopped.
#[derive(Debug, thiserror::Error)]
enum Stop {
    #[error("the origin's database changed (epoch {ours} → {theirs}): restart this replica")]
    EpochChanged { ours: String, theirs: String },
    #[error("the merge loop stopped")]
    Merge,
}

struct Follower {
    epoch: String,
    merge: MergeHandle,
    status: ReplicationStatus,
    conn: Conn,
    retired: BTreeMap<String, u64>,
    /// The last stream sequence handled.
    position: u64,
    target: u64,
}

impl Follower {
    async fn run(&mut self) {
        loop {
            match self.follow().await {
                Ok(()) => {}
                Err(stop) => {
                    tracing::error!(error = %stop, "replica stopped following the origin");
                    self.status.set_stopped(stop.to_string());
                    return;
                }
            }
            tokio::time::sleep(RETRY).await;
        }
    }

    /// One ordered consumer from `position + 1`, until it fails or goes quiet.
    async fn follow(&mut self) -> Result<(), Stop> {
        let config = OrderedConfig {
            filter_subject: format!("{}.>", ReplicationSettings::SUBJECT_PREFIX),
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: self.position + 1,
            },
            ..Default::default()
        };
        let consumer = match self.conn.stream.create_consumer(config).await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "replica: consumer not created");
                return Ok(());
            }
        };
        let mut messages = match consumer.messages().await {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(error = %e, "replica: no messages");
                return Ok(());
            }
        };
        loop {
            let next = match tokio::time::timeout(IDLE, messages.next()).await {
                // Quiet: nothing to follow. The ordered consumer keeps itself alive
                // (heartbeats, recreation); only without a connection is it made anew.
                Err(_) if self.status.report().connected => continue,
                Err(_) => return Ok(()),
                Ok(None) => return Ok(()),
                Ok(Some(Err(e))) => {
                    tracing::debug!(error = %e, "replica: consumer failed");
                    return Ok(());
                }
                Ok(Some(Ok(m))) => m,
            };
            let Ok(info) = next.info() else { continue };
            let (seq, pending) = (info.stream_sequence, info.pending);
            match Record::decode(&next.payload) {
                Ok(record) => self.record(record).await?,
                Err(e) => {
                    tracing::warn!(stream_seq = seq, error = %e, "record not readable, skipped")
                }
            }
            self.position = seq;
            self.status.set_last_stream_seq(seq);
            self.status.set_pending(pending);
            if pending == 0 || seq >= self.target {
                self.status.set_caught_up();
            }
            if pending > RELOAD_BEHIND {
                self.reload().await?;
                return Ok(());
            }
        }
    }

    /// Far behind: every snapshot newer than what the replica has, and on from the oldest.
    async fn reload(&mut self) -> Result<(), Stop> {
        let snapshots = match load_all(&self.conn.bucket, &self.epoch).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "replica: reload failed");
                return Ok(());
            }
        };
        if let Some(min) = snapshots.iter().map(|s| s.stream_seq).min() {
            for s in snapshots {
                self.install_snapshot(s).await?;
            }
            self.position = self.position.max(min);
        }
        Ok(())
    }

    fn have(&self, event_id: &str) -> Option<u64> {
        self.merge
            .snapshot()
            .event(event_id)
            .map(|e| e.header.seq)
            .or_else(|| self.retired.get(event_id).copied())
    }

    async fn record(&mut self, record: Record) -> Result<(), Stop> {
        if record.epoch != self.epoch {
            return Err(Stop::EpochChanged {
                ours: self.epoch.clone(),
                theirs: record.epoch,
            });
        }
        if self.have(&record.event_id).is_some_and(|h| h >= record.seq) {
            return Ok(());
        }
        let id = record.event_id.clone();
        match record.body {
            Body::Deleted => {
                // A deletion stands alone: whatever version the replica had is gone.
                if self.merge.snapshot().event(&id).is_some() {
                    self.install(None, record.change).await?;
                }
                self.retire(id, record.seq);
                self.status.add(Counter::Records, 1);
            }
            Body::Delta {
                full,
                header,
                parts,
            } => {
                let current = self.merge.snapshot().event(&id).cloned();
                match wire::apply_delta(
                    current.as_deref(),
                    record.seq,
                    full,
                    (*header).clone(),
                    parts.clone(),
                ) {
                    Ok(event) => {
                        self.install(Some(event), record.change).await?;
                        self.status.add(Counter::Records, 1);
                    }
                    Err(gap) => {
                        tracing::info!(error = %gap, event = %id, "gap: loading the snapshot");
                        self.fill_gap(&id).await?;
                        // The snapshot may end right before this record.
                        let current = self.merge.snapshot().event(&id).cloned();
                        if current
                            .as_ref()
                            .is_some_and(|c| c.header.seq + 1 == record.seq)
                        {
                            if let Ok(event) = wire::apply_delta(
                                current.as_deref(),
                                record.seq,
                                full,
                                *header,
                                parts,
                            ) {
                                self.install(Some(event), record.change).await?;
                                self.status.add(Counter::Records, 1);
                            }
                        }
                        if self.have(&id).is_none_or(|h| h < record.seq) {
                            self.status.add(Counter::UnfilledGaps, 1);
                            tracing::warn!(event = %id, seq = record.seq, "gap not filled yet: the event stays at its last version");
                        }
                    }
                }
            }
            Body::Snapshot => {
                self.fill_gap(&id).await?;
                if self.have(&id).is_none_or(|h| h < record.seq) {
                    self.status.add(Counter::UnfilledGaps, 1);
                }
            }
        }
        Ok(())
    }

    /// Installs the bucket's snapshot of `event_id` when it is newer than what the replica has.
    async fn fill_gap(&mut self, event_id: &str) -> Result<(), Stop> {
        let bytes = match self.conn.bucket.get(wire::event_key(event_id)).await {
            Ok(Some(b)) => b,
            Ok(None) => return Ok(()),
            Err(e) => {
                tracing::warn!(error = %e, "snapshot not read");
                return Ok(());
            }
        };
        match SnapshotValue::decode(&bytes) {
            Ok(s) => self.install_snapshot(s).await,
            Err(e) => {
                tracing::warn!(error = %e, event = event_id, "snapshot not readable");
                Ok(())
            }
        }
    }

    async fn install_snapshot(&mut self, s: SnapshotValue) -> Result<(), Stop> {
        if s.epoch != self.epoch {
            return Err(Stop::EpochChanged {
                ours: self.epoch.clone(),
                theirs: s.epoch,
            });
        }
        let id = s.event.header.event_id.clone();
        let seq = s.event.header.seq;
        if self.have(&id).is_some_and(|h| h >= seq) {
            return Ok(());
        }
        let created = self.merge.snapshot().event(&id).is_none();
        let change = wire::snapshot_change(&id, seq, created);
        self.install(Some(s.event.into_event()), change).await?;
        self.retired.remove(&id);
        self.status.add(Counter::SnapshotsLoaded, 1);
        Ok(())
    }

    fn retire(&mut self, event_id: String, seq: u64) {
        self.retired.insert(event_id, seq);
        while self.retired.len() > MAX_RETIRED {
            self.retired.pop_first();
        }
    }

    /// Hands one version to the merge loop and waits until readers see it.
    async fn install(&self, event: Option<Event>, change: EventChange) -> Result<(), Stop> {
        let r = Replicated {
            epoch: self.epoch.clone(),
            event_id: change.event_id.clone(),
            event,
            change,
        };
        match self.merge.send(Input::Replicate(Box::new(r))).await {
            Ok(_) => Ok(()),
            Err(crate::merge::MergeError::Stopped) => Err(Stop::Merge),
            Err(e) => {
                tracing::error!(error = %e, "replicated version refused");
                Ok(())
            }
        }
    }
}
