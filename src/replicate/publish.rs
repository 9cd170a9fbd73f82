//! The origin's side: every committed change of an event becomes a record in the stream, and
//! each event has a snapshot in the bucket.
//!
//! Two tasks, so the merge loop is never slowed: the **follower** takes committed change sets
//! from the loop's broadcast and turns them into records (serializing only), in order, into a
//! bounded queue; the **publisher** sends the queue to JetStream one item at a time and waits
//! for each acknowledgement, retrying the same item (same `Nats-Msg-Id`, so never twice in
//! the stream) until NATS takes it. When the queue overflows (NATS away for long) or the
//! follower lags behind the broadcast, what is queued is dropped and replaced by a **resync**:
//! a snapshot of every event and a marker record pointing replicas to it.
//!
//! The one rule that makes snapshots safe: a snapshot of an event at `seq` S carries a stream
//! sequence X such that every record of that event after S lies after X in the stream. The
//! publisher writes snapshots in queue order after every earlier item was acknowledged, and
//! takes X = the last acknowledged sequence (or the stream's last one), so this holds.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use futures_util::StreamExt as _;
use tokio::sync::broadcast;

use super::queue::{Item, Queue};
use super::wire::{self, OriginValue, Record, SnapshotValue, WireEvent};
use super::{nats, Counter, NatsSettings, ReplicationSettings, ReplicationStatus};
use crate::merge::{EventChange, MergeHandle, Published, Snapshot};
use crate::model::Event;
use crate::shutdown::Shutdown;

/// How often the follower looks for events that changed and had no snapshot for
/// [`ReplicationSettings::snapshot_interval`].
const IDLE_CHECK: Duration = Duration::from_secs(5);
/// Retry pauses after a failed publish: doubling from the first to the last.
const RETRY_FIRST: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(2);
/// Keys of events the origin no longer has, removed per resync at most.
const MAX_STALE_KEYS: usize = 10_000;
/// Room left in a message for its headers (`Nats-Msg-Id`) under the server's `max_payload`.
const HEADER_ROOM: usize = 4096;

/// Starts publishing the loop's commits to NATS; ends when `shutdown` fires.
pub fn spawn(
    settings: ReplicationSettings,
    nats: NatsSettings,
    merge: &MergeHandle,
    status: ReplicationStatus,
    shutdown: Shutdown,
) -> tokio::task::JoinHandle<()> {
    // Subscribe now, before any input can commit: nothing is missed between start and the
    // first snapshot (changes the snapshot already holds are skipped by their seq).
    let rx = merge.subscribe();
    let first = merge.snapshot();
    let queue = Arc::new(Queue::new(&settings, status.clone()));
    let follower = Follower {
        settings: settings.clone(),
        queue: Arc::clone(&queue),
        seen: BTreeMap::new(),
    };
    let merge = merge.clone();
    tokio::spawn(async move {
        let publisher = Publisher {
            settings,
            merge: merge.clone(),
            queue,
            status,
            epoch: first.epoch.clone(),
            last_stream_seq: 0,
        };
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = follower.run(rx, first, merge) => {}
            _ = publisher.run(nats) => {}
        }
    })
}

/// What the follower knows of an event: the last version it queued, and since when it has
/// had no snapshot.
struct Seen {
    event: Arc<Event>,
    since_snapshot: u64,
    snapshot_at: Instant,
}

struct Follower {
    settings: ReplicationSettings,
    queue: Arc<Queue>,
    seen: BTreeMap<String, Seen>,
}

impl Follower {
    async fn run(
        mut self,
        mut rx: broadcast::Receiver<Arc<Published>>,
        first: Arc<Snapshot>,
        merge: MergeHandle,
    ) {
        self.reset(&first);
        self.queue.resync(first);
        let mut idle = tokio::time::interval(IDLE_CHECK);
        idle.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                got = rx.recv() => match got {
                    Ok(p) => self.published(&p),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "replication fell behind the merge loop: resync");
                        self.queue.status.add(Counter::Resyncs, 1);
                        let now = merge.snapshot();
                        self.reset(&now);
                        self.queue.resync(now);
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = idle.tick() => self.idle_snapshots(&merge.snapshot()),
            }
        }
    }

    /// After a resync every event's version is the snapshot's.
    fn reset(&mut self, snapshot: &Snapshot) {
        let now = Instant::now();
        self.seen = snapshot
            .events
            .iter()
            .map(|(id, e)| {
                let seen = Seen {
                    event: Arc::clone(e),
                    since_snapshot: 0,
                    snapshot_at: now,
                };
                (id.clone(), seen)
            })
            .collect();
    }

    fn published(&mut self, p: &Arc<Published>) {
        for change in &p.changes.events {
            let known = self.seen.get(&change.event_id);
            // Already in the resync's snapshot.
            if known.is_some_and(|s| s.event.header.seq >= change.seq) {
                continue;
            }
            let new = p.snapshot.event(&change.event_id).cloned();
            if !self.record(change, known.map(|s| &*s.event), new.clone(), &p.snapshot) {
                // The queue overflowed: it now holds a resync of this very snapshot.
                self.reset(&p.snapshot);
                return;
            }
            let Some(new) = new else {
                self.seen.remove(&change.event_id);
                continue;
            };
            let seen = self
                .seen
                .entry(change.event_id.clone())
                .or_insert_with(|| Seen {
                    event: Arc::clone(&new),
                    since_snapshot: 0,
                    // A new event gets its snapshot at once (below: a creation is structure).
                    snapshot_at: Instant::now(),
                });
            seen.event = Arc::clone(&new);
            seen.since_snapshot += 1;
            let due = change.created
                || change.structure
                || seen.since_snapshot >= self.settings.snapshot_every
                || seen.snapshot_at.elapsed() >= self.settings.snapshot_interval;
            if due {
                seen.since_snapshot = 0;
                seen.snapshot_at = Instant::now();
                if !self.queue.push(Item::Snapshot(new), &p.snapshot) {
                    self.reset(&p.snapshot);
                    return;
                }
            }
        }
    }

    /// Queues the record of one change; false when the queue overflowed instead.
    fn record(
        &self,
        change: &EventChange,
        old: Option<&Event>,
        new: Option<Arc<Event>>,
        latest: &Arc<Snapshot>,
    ) -> bool {
        let record = Record::of(&latest.epoch, change, old, new.as_deref());
        let payload = match record.encode() {
            Ok(p) => p,
            Err(e) => {
                // Serializing our own model cannot fail in practice; a snapshot still brings
                // the replicas there.
                tracing::error!(error = %e, event = %change.event_id, "record not encoded");
                return match new {
                    Some(event) => self.queue.push(Item::Snapshot(event), latest),
                    None => true,
                };
            }
        };
        let item = Item::Record {
            subject: wire::subject(ReplicationSettings::SUBJECT_PREFIX, &change.event_id),
            msg_id: wire::msg_id(&latest.epoch, &change.event_id, change.seq, &record.body),
            payload: Bytes::from(payload),
            event_id: change.event_id.clone(),
            seq: change.seq,
            deleted: new.is_none(),
        };
        self.queue.push(item, latest)
    }

    /// Snapshots of events that changed since their last one and have been quiet since.
    fn idle_snapshots(&mut self, latest: &Arc<Snapshot>) {
        let interval = self.settings.snapshot_interval;
        let mut due = Vec::new();
        for seen in self.seen.values_mut() {
            if seen.since_snapshot > 0 && seen.snapshot_at.elapsed() >= interval {
                seen.since_snapshot = 0;
                seen.snapshot_at = Instant::now();
                due.push(Arc::clone(&seen.event));
            }
        }
        for event in due {
            if !self.queue.push(Item::Snapshot(event), latest) {
                self.reset(latest);
                return;
            }
        }
    }
}

/// Why one item did not go out; it is retried.
#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error("{0}")]
    Nats(String),
}

fn nats_err(e: impl std::fmt::Display) -> SendError {
    SendError::Nats(e.to_string())
}

struct Publisher {
    settings: ReplicationSettings,
    /// For the current version of an event whose record is too large.
    merge: MergeHandle,
    queue: Arc<Queue>,
    status: ReplicationStatus,
    epoch: String,
    /// The stream sequence of the last record acknowledged (or the stream's last one).
    last_stream_seq: u64,
}

/// The stream and bucket once opened.
struct Open {
    js: jetstream::Context,
    stream: jetstream::stream::Stream,
    bucket: kv::Store,
    max_payload: usize,
}

impl Publisher {
    async fn run(mut self, nats: NatsSettings) {
        let client = match nats::connect(&nats, "c123-live origin", &self.status).await {
            Ok(c) => c,
            Err(e) => {
                // Only a bad setting (unreadable creds file) fails here; the daemon serves on.
                tracing::error!(error = %e, "replication disabled");
                return;
            }
        };
        let js = nats::context(client.clone(), self.settings.ack_timeout);
        let mut open: Option<Open> = None;
        let mut pause = RETRY_FIRST;
        loop {
            let (id, item) = self.queue.wait().await;
            if open.is_none() {
                match nats::ensure(&js, &self.settings).await {
                    Ok((stream, bucket)) => {
                        let max = client.server_info().max_payload;
                        open = Some(Open {
                            js: js.clone(),
                            stream,
                            bucket,
                            max_payload: if max == 0 { usize::MAX } else { max },
                        });
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "replication: stream not ready, retrying");
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(RETRY_MAX);
                        continue;
                    }
                }
            }
            let Some(o) = &open else { continue };
            match self.send(o, item).await {
                Ok(()) => {
                    self.queue.done(id);
                    pause = RETRY_FIRST;
                }
                Err(e) => {
                    self.status.add(Counter::PublishErrors, 1);
                    tracing::debug!(error = %e, "replication: publish failed, retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(RETRY_MAX);
                }
            }
        }
    }

    async fn send(&mut self, o: &Open, item: Item) -> Result<(), SendError> {
        match item {
            Item::Record {
                subject,
                msg_id,
                payload,
                event_id,
                seq,
                deleted,
            } => {
                let limit = self
                    .settings
                    .max_record_bytes
                    .min(o.max_payload.saturating_sub(HEADER_ROOM));
                if payload.len() > limit {
                    self.status.add(Counter::Oversized, 1);
                    tracing::info!(event = %event_id, seq, bytes = payload.len(), "record too large: a snapshot instead");
                    // The event as it is now (this version or a later one): by the snapshot
                    // rule a later version is as good, its own records follow in the queue.
                    let now = self.merge.snapshot().event(&event_id).cloned();
                    return match now {
                        Some(e) => self.snapshot_and_marker(o, &e).await,
                        // Deleted since: its deletion record follows.
                        None => Ok(()),
                    };
                }
                self.publish(o, subject, &msg_id, payload).await?;
                if deleted {
                    o.bucket
                        .delete(wire::event_key(&event_id))
                        .await
                        .map_err(nats_err)?;
                }
                Ok(())
            }
            Item::Snapshot(event) => self.snapshot(o, &event).await,
            Item::Resync(snapshot) => self.resync(o, &snapshot).await,
        }
    }

    async fn publish(
        &mut self,
        o: &Open,
        subject: String,
        msg_id: &str,
        payload: Bytes,
    ) -> Result<(), SendError> {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", msg_id);
        let ack =
            o.js.publish_with_headers(subject, headers, payload)
                .await
                .map_err(nats_err)?
                .await
                .map_err(nats_err)?;
        self.last_stream_seq = self.last_stream_seq.max(ack.sequence);
        self.status.set_last_stream_seq(self.last_stream_seq);
        self.status.add(Counter::Records, 1);
        Ok(())
    }

    /// Writes the snapshot of `event`; one too large for NATS is logged and counted (its
    /// replicas stay at their last version until a smaller snapshot or record arrives).
    async fn snapshot(&mut self, o: &Open, event: &Event) -> Result<(), SendError> {
        let value = SnapshotValue {
            v: wire::FORMAT,
            epoch: self.epoch.clone(),
            stream_seq: self.last_stream_seq,
            event: WireEvent::of(event),
        };
        let bytes = match value.encode() {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "snapshot not encoded");
                return Ok(());
            }
        };
        if bytes.len() > o.max_payload.saturating_sub(HEADER_ROOM) {
            self.status.add(Counter::Oversized, 1);
            tracing::error!(event = %event.header.event_id, bytes = bytes.len(), "snapshot larger than NATS' max_payload: not replicated");
            return Ok(());
        }
        o.bucket
            .put(wire::event_key(&event.header.event_id), Bytes::from(bytes))
            .await
            .map_err(nats_err)?;
        self.status.add(Counter::SnapshotsWritten, 1);
        Ok(())
    }

    async fn snapshot_and_marker(&mut self, o: &Open, event: &Event) -> Result<(), SendError> {
        self.snapshot(o, event).await?;
        let (id, seq) = (&event.header.event_id, event.header.seq);
        let marker = Record::snapshot_marker(&self.epoch, id, seq);
        let payload = marker.encode().map_err(nats_err)?;
        let subject = wire::subject(ReplicationSettings::SUBJECT_PREFIX, id);
        let msg_id = wire::msg_id(&self.epoch, id, seq, &marker.body);
        self.publish(o, subject, &msg_id, Bytes::from(payload))
            .await
    }

    /// Every event's snapshot and marker, the origin's key, and the keys of events this
    /// origin no longer has removed. Retried whole when any step fails (each is idempotent).
    async fn resync(&mut self, o: &Open, snapshot: &Snapshot) -> Result<(), SendError> {
        let info = o.stream.get_info().await.map_err(nats_err)?;
        self.last_stream_seq = self.last_stream_seq.max(info.state.last_sequence);
        let origin = OriginValue {
            v: wire::FORMAT,
            epoch: self.epoch.clone(),
            stream_seq: self.last_stream_seq,
        };
        let origin = serde_json::to_vec(&origin).map_err(nats_err)?;
        o.bucket
            .put(wire::ORIGIN_KEY, Bytes::from(origin))
            .await
            .map_err(nats_err)?;
        for event in snapshot.events.values() {
            self.snapshot_and_marker(o, event).await?;
        }
        let mut keys = o.bucket.keys().await.map_err(nats_err)?;
        let mut stale = Vec::new();
        // Bounded: the bucket is outside; the next resync removes what is left.
        while let Some(key) = keys.next().await.filter(|_| stale.len() < MAX_STALE_KEYS) {
            let key = key.map_err(nats_err)?;
            if let Some(id) = wire::event_of_key(&key) {
                if !snapshot.events.contains_key(&id) {
                    stale.push(key);
                }
            }
        }
        for key in stale {
            o.bucket.delete(&key).await.map_err(nats_err)?;
        }
        tracing::info!(
            events = snapshot.events.len(),
            "replication: snapshots written"
        );
        Ok(())
    }
}
