//! Committing: new versions of events numbered, written in one transaction, then published
//! as the new snapshot and change set.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use super::{apply, ChangeSet, EventChange, MergeError, MergeLoop, Published, Snapshot};
use crate::model::Event;
use crate::store::LastExport;
use crate::time::now_iso;
use crate::xml::Export;

impl MergeLoop {
    /// Commits new versions of events and publishes them. Events whose content did not
    /// change are left alone (no write, no `seq` bump, nothing published). Returns the
    /// number of rows written.
    pub(super) fn commit_events(
        &mut self,
        changes: Vec<(Option<Arc<Event>>, Option<Event>)>,
    ) -> Result<usize, MergeError> {
        self.commit_events_with(changes, None)
    }

    /// [`Self::commit_events`], also storing `export` as the event's last export in the same
    /// transaction when it differs from the one kept (written even if no row changed).
    pub(super) fn commit_events_with(
        &mut self,
        changes: Vec<(Option<Arc<Event>>, Option<Event>)>,
        export: Option<LastExportOwned>,
    ) -> Result<usize, MergeError> {
        let export = export.filter(|e| {
            self.last_exports
                .get(&e.event_id)
                .is_none_or(|kept| **kept != *e.export)
        });
        let pending = self.number(changes);
        if pending.is_empty() && export.is_none() {
            return Ok(0);
        }
        let rows = self.write(&pending, export.as_ref())?;
        if let Some(e) = export {
            self.last_exports.insert(e.event_id, e.export);
        }
        if !pending.is_empty() {
            self.install(pending);
        }
        Ok(rows)
    }

    /// The changes that change something, each with its new `seq` (a re-created id
    /// continues after the deleted event's last one).
    fn number(&self, changes: Vec<(Option<Arc<Event>>, Option<Event>)>) -> Vec<Pending> {
        let mut pending: Vec<Pending> = Vec::new();
        for (old, new) in changes {
            match (old, new) {
                (None, None) => {}
                (Some(old), None) => {
                    let change = EventChange {
                        event_id: old.header.event_id.clone(),
                        seq: old.header.seq + 1,
                        deleted: true,
                        ..EventChange::default()
                    };
                    pending.push((Some(old), None, change));
                }
                (old, Some(mut new)) => {
                    if let Some(o) = &old {
                        apply::reuse_unchanged(o, &mut new);
                    }
                    let Some(mut change) = describe(old.as_deref(), &new) else {
                        continue;
                    };
                    // A re-created id continues after the deleted event's last seq.
                    let base = match &old {
                        Some(o) => o.header.seq,
                        None => self
                            .retired_seqs
                            .get(&new.header.event_id)
                            .copied()
                            .unwrap_or(0),
                    };
                    new.header.seq = base + 1;
                    change.seq = new.header.seq;
                    pending.push((old, Some(new), change));
                }
            }
        }
        pending
    }

    /// Writes the changes (and the export) in one transaction; returns the rows written.
    fn write(
        &mut self,
        pending: &[Pending],
        export: Option<&LastExportOwned>,
    ) -> Result<usize, MergeError> {
        let started = Instant::now();
        let stamp = now_iso();
        let pairs: Vec<(Option<&Event>, Option<&Event>)> = pending
            .iter()
            .map(|(o, n, _)| (o.as_deref(), n.as_ref()))
            .collect();
        let last = export.map(|e| LastExport {
            event_row: e.event_row,
            export: &e.export,
        });
        let written = match self.store.commit(&pairs, last, &stamp) {
            Ok(w) => {
                self.stats
                    .last_commit_failed
                    .store(false, Ordering::Relaxed);
                w
            }
            Err(e) => {
                self.stats.last_commit_failed.store(true, Ordering::Relaxed);
                let msg = if e.is_full() {
                    format!("the database is full (disk or --max-db-size): {e}")
                } else {
                    e.to_string()
                };
                return Err(MergeError::Store(msg));
            }
        };
        let took = started.elapsed();
        self.stats
            .commit_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        self.stats.commit_seconds.observe(took.as_secs_f64());
        self.stats.commits.fetch_add(1, Ordering::Relaxed);
        Ok(written.rows)
    }

    /// After the commit: the new snapshot for readers and the change set for the hub.
    fn install(&mut self, pending: Vec<Pending>) {
        let mut events = self.state.events.clone();
        let mut changeset = ChangeSet::default();
        for (old, new, change) in pending {
            match new {
                Some(new) => {
                    if old.is_none() {
                        self.retired_seqs.remove(&new.header.event_id);
                    }
                    events.insert(new.header.event_id.clone(), Arc::new(new));
                }
                None => {
                    if let Some(old) = old {
                        self.retired_seqs
                            .insert(old.header.event_id.clone(), change.seq);
                        events.remove(&old.header.event_id);
                    }
                }
            }
            changeset.events.push(change);
        }
        let snapshot = Arc::new(Snapshot {
            epoch: self.state.epoch.clone(),
            events,
            committed_at: Instant::now(),
            latest_import: self.state.latest_import.clone(),
        });
        self.state = Arc::clone(&snapshot);
        self.snap_tx.send_replace(Arc::clone(&snapshot));
        // No subscriber (no WebSocket hub) is fine: nothing is serialized then.
        let _ = self.pub_tx.send(Arc::new(Published {
            changes: changeset,
            snapshot,
        }));
    }
}

/// A change to commit: the event before, after (`None`: deleted), and what differs.
type Pending = (Option<Arc<Event>>, Option<Event>, EventChange);

/// An export to keep as an event's last one, with what the store needs to write it.
pub(super) struct LastExportOwned {
    pub(super) event_row: i64,
    pub(super) event_id: String,
    pub(super) export: Arc<Export>,
}

/// What differs between two versions of an event; `None` when nothing does.
fn describe(old: Option<&Event>, new: &Event) -> Option<EventChange> {
    let Some(old) = old else {
        return Some(EventChange {
            event_id: new.header.event_id.clone(),
            created: true,
            structure: true,
            ..EventChange::default()
        });
    };
    let mut header_old = old.header.clone();
    header_old.seq = new.header.seq;
    let structure = old.classes != new.classes
        || old.participants != new.participants
        || old.races != new.races
        || old.courses != new.courses
        || old.header.meta != new.header.meta
        || old.header.image != new.header.image
        || old.header.has_xml_data != new.header.has_xml_data
        || old.header.xml_event_id != new.header.xml_event_id;
    let (results, removed_results) = apply::changed_results(old, new);
    let oncourse = old.oncourse != new.oncourse;
    let status = (old.header.status != new.header.status).then_some(new.header.status);
    let config = old.header.config != new.header.config;
    let other_header = header_old != new.header;
    if !structure
        && results.is_empty()
        && removed_results.is_empty()
        && !oncourse
        && status.is_none()
        && !config
        && !other_header
    {
        return None;
    }
    Some(EventChange {
        event_id: new.header.event_id.clone(),
        seq: 0,
        created: false,
        deleted: false,
        structure,
        results,
        removed_results,
        oncourse,
        status,
        config,
    })
}
