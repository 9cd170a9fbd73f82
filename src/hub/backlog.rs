//! What the task that follows the merge loop hands to the one that builds messages.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use crate::merge::EventChange;
use crate::model::Event;

/// One event's committed changes that the hub has received but not yet turned into
/// messages: only the event as of the newest of them is kept (not the merge loop's whole
/// snapshot), so a hub that is behind holds one version per event, whatever the backlog.
pub(super) struct Pending {
    /// The union of the changes, `seq` the newest one's.
    pub(super) change: EventChange,
    /// `seq` of the oldest change folded in.
    pub(super) first_seq: u64,
    /// The event after `change.seq` (`None`: deleted).
    pub(super) event: Option<Arc<Event>>,
    /// Commit time of the oldest change folded in (fan-out latency is measured from it).
    pub(super) committed_at: Instant,
}

impl Pending {
    /// Folds a newer change of the same event in, unless one of them creates or deletes the
    /// event or changes its status (those keep their own message, in order: spectators see
    /// every lifecycle step). Everything else a diff carries is state (rows upserted by bib,
    /// the whole on-course list), so one message from the older state to the newest is exact.
    pub(super) fn absorb(&mut self, change: &EventChange, event: Option<&Arc<Event>>) -> bool {
        let plain = |c: &EventChange| !c.created && !c.deleted && c.status.is_none();
        if !plain(&self.change) || !plain(change) || self.event.is_none() || event.is_none() {
            return false;
        }
        let c = &mut self.change;
        c.seq = change.seq;
        c.structure |= change.structure;
        c.oncourse |= change.oncourse;
        c.config |= change.config;
        // Deduplicated, so the union is bounded by the event's own rows.
        for (acc, new) in [
            (&mut c.results, &change.results),
            (&mut c.removed_results, &change.removed_results),
        ] {
            if !new.is_empty() {
                acc.extend(new.iter().cloned());
                acc.sort_unstable();
                acc.dedup();
            }
        }
        self.event = event.cloned();
        true
    }
}

/// What the follower has queued for the builder.
#[derive(Default)]
pub(super) struct Backlog {
    pub(super) pending: VecDeque<Pending>,
    /// Changes were lost (the broadcast lagged, or `pending` overflowed): resynchronise.
    pub(super) lagged: bool,
}
