//! Which messages a committed change causes, in c123-server's order.
//!
//! The feed follows the merge loop's change sets for the one event it serves (a scoreboard is
//! venue-wide: the event the timing system feeds). It keeps only what the protocol needs
//! across changes: the served event's id and the current race.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::Value;

use super::wire;
use crate::merge::{ChangeSet, EventChange, Snapshot};
use crate::model::Event;

/// A message before its envelope: the type and the data.
pub type Msg = (&'static str, Value);

/// What the change sets since the last build touched in one event, folded together (the
/// messages are whole tables and lists, so the races are all a build needs). Bounded by the
/// event's races.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Touched {
    /// The event's `seq` after the last change folded in.
    pub seq: u64,
    pub structure: bool,
    pub oncourse: bool,
    pub config: bool,
    pub deleted: bool,
    /// Races whose rows changed or were removed.
    pub races: BTreeSet<String>,
}

impl Touched {
    pub fn absorb(&mut self, c: &EventChange) {
        self.seq = self.seq.max(c.seq);
        self.structure |= c.structure || c.created;
        self.oncourse |= c.oncourse;
        self.config |= c.config || c.status.is_some();
        self.deleted |= c.deleted;
        for (race, _) in c.results.iter().chain(&c.removed_results) {
            if !self.races.contains(race) {
                self.races.insert(race.clone());
            }
        }
    }
}

/// Folds a change set into `pending` (by event id).
pub fn absorb(pending: &mut BTreeMap<String, Touched>, changes: &ChangeSet) {
    for c in &changes.events {
        pending.entry(c.event_id.clone()).or_default().absorb(c);
    }
}

/// The event a scoreboard shows: `explicit` (the daemon's `--event`) when set and present,
/// else the event the TCP sources feed without a binding ([`Snapshot::direct_event`]); and
/// only once it is public (startlist or later), as on the phones' API: a draft's names and
/// results are nobody's to read yet, and these routes need no key.
pub fn served_event<'s>(snapshot: &'s Snapshot, explicit: Option<&str>) -> Option<&'s Arc<Event>> {
    match explicit {
        Some(id) => snapshot.event(id),
        None => snapshot.direct_event(),
    }
    .filter(|e| e.header.status.is_public())
}

/// The race running now: the operator's `activeRaceId` when set; else the race of the rider
/// longest on the course (the scoreboard's current competitor; riders waiting in the start
/// gate have no start time and do not count); else the one the feed last called current
/// (riders leave the course between starts); else the last race in running order with
/// `RaceStatus` 3 (running).
pub fn current_race(event: &Event, previous: Option<&str>) -> Option<String> {
    let known = |id: &str| event.races.contains_key(id);
    if let Some(id) = event
        .header
        .config
        .active_race_id
        .as_deref()
        .filter(|id| known(id))
    {
        return Some(id.to_owned());
    }
    let started = event
        .oncourse
        .iter()
        .filter_map(|e| Some((e.dt_start.as_deref()?, e)));
    // `HH:MM:SS.mmm` compares as text; the list never spans midnight in practice.
    if let Some((_, e)) = started.min_by_key(|(t, _)| *t) {
        return Some(e.race_id.clone());
    }
    if let Some(id) = previous.filter(|id| known(id)) {
        return Some(id.to_owned());
    }
    wire::races_in_order(event)
        .into_iter()
        .rev()
        .find(|r| r.race_status == Some(3))
        .map(|r| r.race_id.clone())
}

#[derive(Debug, Default)]
pub struct Feed {
    /// The daemon's `--event`, if any.
    explicit: Option<String>,
    /// The event served in the last snapshot seen.
    event_id: Option<String>,
    current: Option<String>,
    /// `(race, bib)` of the riders shown finished in the last on-course list (bounded by the
    /// on-course list's own bound).
    finished: BTreeSet<(String, u32)>,
}

impl Feed {
    pub fn new(explicit: Option<String>, snapshot: &Snapshot) -> Feed {
        let mut feed = Feed {
            explicit,
            ..Feed::default()
        };
        if let Some(ev) = served_event(snapshot, feed.explicit.as_deref()) {
            feed.event_id = Some(ev.header.event_id.clone());
            feed.current = current_race(ev, None);
        }
        feed
    }

    pub fn explicit(&self) -> Option<&str> {
        self.explicit.as_deref()
    }

    pub fn current(&self) -> Option<&str> {
        self.current.as_deref()
    }

    /// What a new client gets after `Connected`: the schedule, the current race's course,
    /// the on-course list and the current race's results (c123-server sends the schedule and
    /// lets Canoe123's rotation bring the rest within a second; there is no rotation here).
    pub fn greeting(&self, snapshot: &Snapshot) -> Vec<Msg> {
        let Some(ev) = served_event(snapshot, self.explicit.as_deref()) else {
            return Vec::new();
        };
        let mut out = vec![("Schedule", wire::schedule(ev))];
        if let Some(race) = self.current.as_deref() {
            if let Some(cfg) = wire::race_config(ev, race) {
                out.push(("RaceConfig", cfg));
            }
        }
        out.push(("OnCourse", wire::oncourse(ev)));
        if let Some(race) = self.current.as_deref() {
            if let Some(r) = wire::results(ev, race, true) {
                out.push(("Results", r));
            }
        }
        out
    }

    /// When the served event is another than before: `ForceRefresh` for scoreboards that
    /// showed one (they reload and start from the greeting), the greeting for those that
    /// showed nothing yet. `None`: the same event.
    pub fn on_snapshot(&mut self, snapshot: &Snapshot) -> Option<Vec<Msg>> {
        let served = served_event(snapshot, self.explicit.as_deref());
        let id = served.map(|e| e.header.event_id.clone());
        if id == self.event_id {
            return None;
        }
        let had = self.event_id.is_some();
        self.event_id = id;
        self.current = served.and_then(|ev| current_race(ev, None));
        self.finished.clear();
        Some(if had {
            vec![(
                "ForceRefresh",
                wire::force_refresh("The served event changed"),
            )]
        } else {
            self.greeting(snapshot)
        })
    }

    /// The messages one committed change set causes, in order, built from `snapshot`: the
    /// freshest committed state, which may be newer than the change set (every message is a
    /// whole table or list, so a newer one is never wrong, and the served event is decided on
    /// one timeline: the folder's latest import is noted after its commit, without one).
    pub fn on_changes(
        &mut self,
        changes: &BTreeMap<String, Touched>,
        snapshot: &Snapshot,
    ) -> Vec<Msg> {
        if let Some(msgs) = self.on_snapshot(snapshot) {
            return msgs;
        }
        let (Some(ev), Some(id)) = (
            served_event(snapshot, self.explicit.as_deref()),
            self.event_id.as_deref(),
        ) else {
            return Vec::new();
        };
        let Some(change) = changes.get(id) else {
            return Vec::new();
        };
        self.on_change(ev, change, &snapshot.epoch)
    }

    /// [`Feed::on_changes`] without building messages (nobody is connected): keeps the served
    /// event, the current race and the finished riders up to date at the cost of a lookup.
    pub fn observe(&mut self, snapshot: &Snapshot) {
        let served = served_event(snapshot, self.explicit.as_deref());
        let id = served.map(|e| e.header.event_id.clone());
        if id != self.event_id {
            self.event_id = id;
            self.finished.clear();
            self.current = None;
        }
        if let Some(ev) = served {
            let before = self.current.take();
            self.current = current_race(ev, before.as_deref());
            self.new_finish(ev);
        }
    }

    /// One event's change. Order: `XmlChange` and `Schedule` (structure), `RaceConfig`, the
    /// `Results` of other races, the current race's `Results`, `OnCourse`. Two exceptions put
    /// a `Results` after the `OnCourse`, because the scoreboard only accepts the table of the
    /// race its current competitor is in and highlights a finisher on the next table: when the
    /// current race moved, and when a rider's `dtFinish` appeared.
    fn on_change(&mut self, ev: &Event, change: &Touched, epoch: &str) -> Vec<Msg> {
        let mut out = Vec::new();
        let before = self.current.take();
        self.current = current_race(ev, before.as_deref());
        let current_moved = self.current != before;
        if change.structure {
            let checksum = format!("{epoch}-{}", change.seq);
            let sections = ["Participants", "Schedule", "Classes", "Results"];
            out.push(("XmlChange", wire::xml_change(&sections, &checksum)));
            out.push(("Schedule", wire::schedule(ev)));
        }
        if change.structure || current_moved || change.config {
            if let Some(cfg) = self
                .current
                .as_deref()
                .and_then(|r| wire::race_config(ev, r))
            {
                out.push(("RaceConfig", cfg));
            }
        }
        let changed: BTreeSet<&str> = change.races.iter().map(String::as_str).collect();
        let current = self.current.clone();
        for race in changed.iter().filter(|r| Some(**r) != current.as_deref()) {
            if let Some(r) = wire::results(ev, race, false) {
                out.push(("Results", r));
            }
        }
        let current_changed = current.as_deref().is_some_and(|c| changed.contains(c));
        let mut after = current_moved;
        if (current_changed || change.structure) && !current_moved {
            self.push_results(&mut out, ev, current.as_deref());
        }
        if change.oncourse {
            out.push(("OnCourse", wire::oncourse(ev)));
            after |= self.new_finish(ev);
        }
        if after {
            self.push_results(&mut out, ev, current.as_deref());
        }
        if change.deleted {
            out.push(("ForceRefresh", wire::force_refresh("The event was deleted")));
        }
        out
    }

    fn push_results(&self, out: &mut Vec<Msg>, ev: &Event, race: Option<&str>) {
        if let Some(r) = race.and_then(|race| wire::results(ev, race, true)) {
            out.push(("Results", r));
        }
    }

    /// Whether a rider of the current race shows a `dtFinish` the last list did not.
    fn new_finish(&mut self, ev: &Event) -> bool {
        let finished: BTreeSet<(String, u32)> = ev
            .oncourse
            .iter()
            .filter(|e| e.dt_finish.is_some())
            .map(|e| (e.race_id.clone(), e.bib))
            .collect();
        let current = self.current.as_deref();
        let new = finished
            .difference(&self.finished)
            .any(|(race, _)| Some(race.as_str()) == current);
        self.finished = finished;
        new
    }
}
