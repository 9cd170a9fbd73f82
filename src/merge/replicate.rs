//! A replica's loop: installs the origin's versions of events (`crate::replicate`).
//!
//! Nothing is written to the store: a replica's truth is the stream, and its database is an
//! empty in-memory one that exists because the loop needs one (and holds the origin's epoch).
//! Everything readers see still changes here and only here: the snapshot and the change set
//! are published exactly as after a commit, so the hub and the REST cache work unchanged.

use std::sync::Arc;
use std::time::Instant;

use super::{ChangeSet, MergeError, MergeLoop, Outcome, Published, Replicated, Snapshot};

impl MergeLoop {
    pub(super) fn replicate(&mut self, r: Replicated) -> Result<Outcome, MergeError> {
        if r.epoch != self.state.epoch {
            return Err(MergeError::Conflict(format!(
                "replicated state of epoch {} on a replica of epoch {}",
                r.epoch, self.state.epoch
            )));
        }
        let seq = r.change.seq;
        let mut events = self.state.events.clone();
        match r.event {
            Some(event) => {
                if event.header.event_id != r.event_id || event.header.seq != seq {
                    return Err(MergeError::Invalid(format!(
                        "replicated event {} at {} labelled {} at {seq}",
                        event.header.event_id, event.header.seq, r.event_id
                    )));
                }
                events.insert(r.event_id, Arc::new(event));
            }
            None => {
                events.remove(&r.event_id);
            }
        }
        let snapshot = Arc::new(Snapshot {
            epoch: self.state.epoch.clone(),
            events,
            committed_at: Instant::now(),
            latest_import: None,
        });
        self.state = Arc::clone(&snapshot);
        self.snap_tx.send_replace(Arc::clone(&snapshot));
        let _ = self.pub_tx.send(Arc::new(Published {
            changes: ChangeSet {
                events: vec![r.change],
            },
            snapshot,
        }));
        Ok(Outcome::Replicated { seq })
    }
}
