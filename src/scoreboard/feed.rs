//! Which messages a committed change causes, in c123-server's order.
//!
//! The feed follows the merge loop's change sets for the one event it serves (a scoreboard is
//! venue-wide: the event the timing system feeds). It keeps only what the protocol needs
//! across changes: the served event's id and the current race.

use std::sync::Arc;

use serde_json::Value;

use super::wire;
use crate::merge::{EventChange, Published, Snapshot};
use crate::model::Event;

/// A message before its envelope: the type and the data.
pub type Msg = (&'static str, Value);

/// The event a scoreboard shows: `explicit` (the daemon's `--event`) when set and present,
/// else the event the TCP sources feed without a binding ([`Snapshot::direct_event`]).
pub fn served_event<'s>(snapshot: &'s Snapshot, explicit: Option<&str>) -> Option<&'s Arc<Event>> {
    match explicit {
        Some(id) => snapshot.event(id),
        None => snapshot.direct_event(),
    }
}

/// The race running now: the operator's `activeRaceId` when set; else the race of the rider
/// nearest the finish; else the one the feed last called current (riders leave the course
/// between starts); else the last race in running order with `RaceStatus` 3 (running).
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
    if let Some(e) = event.oncourse.iter().min_by_key(|e| e.position) {
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

    /// The messages one committed change set causes, in order.
    pub fn on_published(&mut self, published: &Published) -> Vec<Msg> {
        let snapshot = &published.snapshot;
        let served = served_event(snapshot, self.explicit.as_deref());
        let id = served.map(|e| e.header.event_id.clone());
        if id != self.event_id {
            let had = self.event_id.is_some();
            self.event_id = id;
            self.current = served.and_then(|ev| current_race(ev, None));
            // A scoreboard that showed another event reloads and starts from the greeting;
            // one that showed nothing yet just gets the new event's state.
            return if had {
                vec![(
                    "ForceRefresh",
                    wire::force_refresh("The served event changed"),
                )]
            } else {
                self.greeting(snapshot)
            };
        }
        let (Some(ev), Some(id)) = (served, self.event_id.as_deref()) else {
            return Vec::new();
        };
        let Some(change) = published.changes.events.iter().find(|c| c.event_id == id) else {
            return Vec::new();
        };
        self.on_change(ev, change, &snapshot.epoch)
    }

    fn on_change(&mut self, ev: &Event, change: &EventChange, epoch: &str) -> Vec<Msg> {
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
        let mut races: Vec<&str> = change
            .results
            .iter()
            .chain(&change.removed_results)
            .map(|(race, _)| race.as_str())
            .collect();
        races.sort_unstable();
        races.dedup();
        // The current race's table goes last: it is the one the scoreboard then shows.
        let current = self.current.as_deref();
        races.retain(|r| Some(*r) != current);
        let current_changed = races.len()
            < change
                .results
                .iter()
                .chain(&change.removed_results)
                .map(|(r, _)| r.as_str())
                .collect::<std::collections::BTreeSet<_>>()
                .len();
        for race in races {
            if let Some(r) = wire::results(ev, race, false) {
                out.push(("Results", r));
            }
        }
        if current_changed || current_moved || change.structure {
            if let Some(r) = current.and_then(|race| wire::results(ev, race, true)) {
                out.push(("Results", r));
            }
        }
        if change.oncourse {
            out.push(("OnCourse", wire::oncourse(ev)));
        }
        if change.deleted {
            out.push(("ForceRefresh", wire::force_refresh("The event was deleted")));
        }
        out
    }
}
