//! Who is on the course right now, built from the one-rider-per-message `OnCourse` stream.
//!
//! Canoe123 sends ONE competitor per `OnCourse` message and cycles through everyone on the
//! course; `Total` is how many are on course and `Position` the slot of this competitor
//! (reference §1.4). [`OnCourseTracker`] merges the messages by bib:
//!
//! - `Total="0"` empties the list.
//! - A competitor not seen for the TTL (default 10 s) is removed by [`OnCourseTracker::expire`],
//!   which the caller runs on a timer (not only when messages arrive, so a silent Canoe123
//!   does not leave stale riders forever).
//! - **Displacement** (beyond c123-server, which only uses the TTL): when a message reports
//!   competitor B at position P, the tracker holds more competitors than the message's
//!   `Total`, and another competitor A sits at the same position P, then A has left the
//!   course (the recording shows this whenever a finished or removed rider drops out: `Total`
//!   goes down and the next rider takes the freed slot). A is removed at once instead of
//!   lingering for 10 s. Two riders swapping slots (overtaking) do not trigger it because the
//!   count does not exceed `Total`.
//! - **Finish detection** (reference §1.8): `dtFinish` going from empty to set for a
//!   competitor already known (same bib and race) with an empty `dtFinish` yields a
//!   [`Finish`]. A competitor first seen with `dtFinish` already set is not a finish.
//!
//! The clock is a caller-supplied `u64` in milliseconds (any monotonic origin), so the tracker
//! is pure and tests replay recordings with their own timestamps.

use std::collections::HashMap;

use super::frame::{OnCourse, OnCourseRider};

/// Default time a competitor stays listed without being reported again: 10 s.
pub const DEFAULT_TTL_MS: u64 = 10_000;

/// Competitors tracked per source at most. A slalom course holds a handful of boats at once
/// (the recording never has more than 5); past the bound the least recently seen one goes,
/// so a source cycling thousands of bibs keeps a bounded list.
pub const MAX_ONCOURSE_ENTRIES: usize = 64;

/// One competitor in the visible on-course list.
#[derive(Debug, Clone, PartialEq)]
pub struct OnCourseEntry {
    /// Slot on the course, 1 = nearest the finish (as last reported).
    pub position: u32,
    /// Last reported state.
    pub rider: OnCourseRider,
}

/// A detected finish.
#[derive(Debug, Clone, PartialEq)]
pub struct Finish {
    /// Start number (trimmed).
    pub bib: String,
    /// XML participant id, e.g. `30034.K1M_ST`.
    pub participant_id: Option<String>,
    /// Race id, e.g. `K1M_ST_BR2_6`.
    pub race_id: String,
    /// Run time, ms (the two-decimal value sent with `dtFinish`).
    pub time_ms: Option<i64>,
    /// Penalty seconds of this run.
    pub pen_s: Option<u32>,
    /// Time plus penalties, ms.
    pub total_ms: Option<i64>,
    /// Start time, ms since local midnight.
    pub dt_start_ms: Option<u32>,
    /// Finish time, ms since local midnight.
    pub dt_finish_ms: Option<u32>,
    /// Tracker clock (ms) when the finish was detected.
    pub detected_at_ms: u64,
}

/// What [`OnCourseTracker::apply`] did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OnCourseUpdate {
    /// The visible list ([`OnCourseTracker::current`]) changed.
    pub changed: bool,
    /// A finish detected by this message.
    pub finish: Option<Finish>,
}

#[derive(Debug, Clone)]
struct Tracked {
    entry: OnCourseEntry,
    last_seen_ms: u64,
}

/// Merges `OnCourse` messages of one event into the list of competitors on course.
#[derive(Debug, Clone)]
pub struct OnCourseTracker {
    ttl_ms: u64,
    riders: HashMap<String, Tracked>,
    /// Riders dropped because [`MAX_ONCOURSE_ENTRIES`] were tracked.
    over_limit: u64,
}

impl Default for OnCourseTracker {
    fn default() -> Self {
        Self::new()
    }
}

impl OnCourseTracker {
    /// A tracker with the default 10 s TTL.
    pub fn new() -> Self {
        Self::with_ttl_ms(DEFAULT_TTL_MS)
    }

    /// A tracker that drops competitors not reported for `ttl_ms` milliseconds.
    pub fn with_ttl_ms(ttl_ms: u64) -> Self {
        Self {
            ttl_ms,
            riders: HashMap::new(),
            over_limit: 0,
        }
    }

    /// How many riders were dropped because [`MAX_ONCOURSE_ENTRIES`] were tracked.
    pub fn over_limit(&self) -> u64 {
        self.over_limit
    }

    /// The configured TTL in ms.
    pub fn ttl_ms(&self) -> u64 {
        self.ttl_ms
    }

    /// Merges one `OnCourse` message received at `now_ms`.
    pub fn apply(&mut self, msg: &OnCourse, now_ms: u64) -> OnCourseUpdate {
        if msg.total == 0 {
            let changed = !self.riders.is_empty();
            self.riders.clear();
            return OnCourseUpdate {
                changed,
                finish: None,
            };
        }
        let Some(rider) = &msg.rider else {
            return OnCourseUpdate::default();
        };
        let bib = rider.bib.trim();
        if bib.is_empty() {
            return OnCourseUpdate::default();
        }

        let previous = self.riders.get(bib);
        // Same bib in another race is another run: never compare across races.
        let known = previous.filter(|p| p.entry.rider.race_id == rider.race_id);
        let finish = known
            .filter(|p| p.entry.rider.dt_finish_ms.is_none() && rider.dt_finish_ms.is_some())
            .map(|_| Finish {
                bib: bib.to_owned(),
                participant_id: rider.participant_id.clone(),
                race_id: rider.race_id.clone(),
                time_ms: rider.time_ms,
                pen_s: rider.pen_s,
                total_ms: rider.total_ms,
                dt_start_ms: rider.dt_start_ms,
                dt_finish_ms: rider.dt_finish_ms,
                detected_at_ms: now_ms,
            });
        let mut changed = match previous {
            None => true,
            Some(p) => p.entry.position != msg.position || p.entry.rider != *rider,
        };

        if previous.is_none() && self.riders.len() >= MAX_ONCOURSE_ENTRIES {
            let oldest = self
                .riders
                .iter()
                .min_by(|(b1, t1), (b2, t2)| {
                    t1.last_seen_ms
                        .cmp(&t2.last_seen_ms)
                        .then_with(|| b1.cmp(b2))
                })
                .map(|(b, _)| b.clone());
            if let Some(b) = oldest {
                self.riders.remove(&b);
                self.over_limit += 1;
                changed = true;
            }
        }
        self.riders.insert(
            bib.to_owned(),
            Tracked {
                entry: OnCourseEntry {
                    position: msg.position,
                    rider: rider.clone(),
                },
                last_seen_ms: now_ms,
            },
        );
        changed |= self.displace(bib, msg.position, msg.total);
        OnCourseUpdate { changed, finish }
    }

    /// Removes competitors that left: while more are tracked than `total`, the least recently
    /// seen other competitor holding `position` goes. Returns whether any was removed.
    fn displace(&mut self, bib: &str, position: u32, total: u32) -> bool {
        let mut removed = false;
        while self.riders.len() > total as usize {
            let stale = self
                .riders
                .iter()
                .filter(|(b, t)| b.as_str() != bib && t.entry.position == position)
                .min_by(|(b1, t1), (b2, t2)| {
                    t1.last_seen_ms
                        .cmp(&t2.last_seen_ms)
                        .then_with(|| b1.cmp(b2))
                })
                .map(|(b, _)| b.clone());
            match stale {
                Some(b) => {
                    self.riders.remove(&b);
                    removed = true;
                }
                None => break,
            }
        }
        removed
    }

    /// Removes competitors not reported for the TTL (last seen `ttl` ms or longer before
    /// `now_ms`). Returns whether the visible list changed.
    pub fn expire(&mut self, now_ms: u64) -> bool {
        let before = self.riders.len();
        let ttl = self.ttl_ms;
        self.riders
            .retain(|_, t| now_ms.saturating_sub(t.last_seen_ms) < ttl);
        self.riders.len() != before
    }

    /// The competitors on course, sorted by position (ties by bib, for a stable order).
    pub fn current(&self) -> Vec<OnCourseEntry> {
        let mut list: Vec<OnCourseEntry> = self.riders.values().map(|t| t.entry.clone()).collect();
        list.sort_by(|a, b| {
            a.position
                .cmp(&b.position)
                .then_with(|| a.rider.bib.cmp(&b.rider.bib))
        });
        list
    }

    /// The tracked state of one bib, if on course.
    pub fn get(&self, bib: &str) -> Option<&OnCourseEntry> {
        self.riders.get(bib.trim()).map(|t| &t.entry)
    }

    /// Number of competitors tracked.
    pub fn len(&self) -> usize {
        self.riders.len()
    }

    /// No competitor on course.
    pub fn is_empty(&self) -> bool {
        self.riders.is_empty()
    }

    /// Forgets everyone (e.g. on reconnect). Returns whether the list changed.
    pub fn clear(&mut self) -> bool {
        let changed = !self.riders.is_empty();
        self.riders.clear();
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(total: u32, position: u32, bib: &str, finish: Option<u32>) -> OnCourse {
        OnCourse {
            total,
            position,
            rider: Some(OnCourseRider {
                bib: bib.to_owned(),
                participant_id: Some(format!("{bib}.K1M")),
                race_id: "K1M_BR2_6".to_owned(),
                dt_start_ms: Some(1_000),
                dt_finish_ms: finish,
                time_ms: Some(if finish.is_some() { 51_200 } else { 13_000 }),
                time_is_running: finish.is_none(),
                pen_s: Some(52),
                total_ms: Some(if finish.is_some() { 103_200 } else { 65_000 }),
                ..OnCourseRider::default()
            }),
        }
    }

    fn bibs(t: &OnCourseTracker) -> Vec<(u32, String)> {
        t.current()
            .into_iter()
            .map(|e| (e.position, e.rider.bib))
            .collect()
    }

    #[test]
    fn finish_is_a_transition_of_a_known_rider() {
        let mut t = OnCourseTracker::new();
        assert!(t.apply(&msg(1, 1, "9", None), 0).changed);
        let up = t.apply(&msg(1, 1, "9", Some(52_000)), 500);
        assert!(up.changed);
        let finish = up.finish.expect("finish");
        assert_eq!(finish.bib, "9");
        assert_eq!(finish.participant_id.as_deref(), Some("9.K1M"));
        assert_eq!(finish.race_id, "K1M_BR2_6");
        assert_eq!(
            (finish.time_ms, finish.pen_s, finish.total_ms),
            (Some(51_200), Some(52), Some(103_200))
        );
        assert_eq!(finish.detected_at_ms, 500);
        // The same finished state again: no second finish, nothing changed.
        let again = t.apply(&msg(1, 1, "9", Some(52_000)), 1_000);
        assert_eq!(again, OnCourseUpdate::default());
    }

    #[test]
    fn first_seen_finished_is_not_a_finish() {
        let mut t = OnCourseTracker::new();
        let up = t.apply(&msg(1, 1, "9", Some(52_000)), 0);
        assert!(up.changed);
        assert_eq!(up.finish, None);
    }

    #[test]
    fn same_bib_in_another_race_is_not_a_finish() {
        let mut t = OnCourseTracker::new();
        t.apply(&msg(1, 1, "9", None), 0);
        let mut other = msg(1, 1, "9", Some(52_000));
        if let Some(r) = other.rider.as_mut() {
            r.race_id = "C1W_BR2_6".to_owned();
        }
        assert_eq!(t.apply(&other, 100).finish, None);
    }

    #[test]
    fn unchanged_repeat_reports_no_change() {
        let mut t = OnCourseTracker::new();
        assert!(t.apply(&msg(2, 1, "9", None), 0).changed);
        assert!(!t.apply(&msg(2, 1, "9", None), 100).changed);
        // Position change is a change.
        assert!(t.apply(&msg(2, 2, "9", None), 200).changed);
    }

    #[test]
    fn total_zero_clears() {
        let mut t = OnCourseTracker::new();
        t.apply(&msg(2, 1, "9", None), 0);
        t.apply(&msg(2, 2, "10", None), 0);
        let empty = OnCourse::default();
        assert!(t.apply(&empty, 100).changed);
        assert!(t.is_empty());
        assert!(!t.apply(&empty, 200).changed);
    }

    #[test]
    fn message_without_rider_changes_nothing() {
        let mut t = OnCourseTracker::new();
        t.apply(&msg(1, 1, "9", None), 0);
        let bare = OnCourse {
            total: 1,
            position: 1,
            rider: None,
        };
        assert_eq!(t.apply(&bare, 10), OnCourseUpdate::default());
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn expiry_after_ttl() {
        let mut t = OnCourseTracker::with_ttl_ms(10_000);
        t.apply(&msg(2, 1, "9", None), 0);
        t.apply(&msg(2, 2, "10", None), 5_000);
        assert!(!t.expire(9_999));
        assert!(t.expire(10_000));
        assert_eq!(bibs(&t), vec![(2, "10".to_owned())]);
        assert!(!t.expire(14_999));
        assert!(t.expire(15_000));
        assert!(t.is_empty());
        assert!(!t.expire(u64::MAX));
    }

    #[test]
    fn rider_leaving_is_displaced_by_the_next_in_its_slot() {
        let mut t = OnCourseTracker::new();
        t.apply(&msg(2, 1, "9", Some(52_000)), 0);
        t.apply(&msg(2, 2, "10", None), 0);
        // 9 left: Total drops to 1 and 10 moves into slot 1.
        let up = t.apply(&msg(1, 1, "10", None), 100);
        assert!(up.changed);
        assert_eq!(bibs(&t), vec![(1, "10".to_owned())]);
    }

    #[test]
    fn overtaking_does_not_displace() {
        let mut t = OnCourseTracker::new();
        t.apply(&msg(2, 1, "9", None), 0);
        t.apply(&msg(2, 2, "10", None), 0);
        t.apply(&msg(2, 1, "10", None), 100);
        assert_eq!(t.len(), 2);
        t.apply(&msg(2, 2, "9", None), 200);
        assert_eq!(bibs(&t), vec![(1, "10".to_owned()), (2, "9".to_owned())]);
    }

    #[test]
    fn rider_leaving_from_the_middle_is_displaced_when_its_slot_is_reused() {
        let mut t = OnCourseTracker::new();
        for (pos, bib) in [(1, "1"), (2, "2"), (3, "3")] {
            t.apply(&msg(3, pos, bib, None), 0);
        }
        // 2 was removed from the course (DNF): Total 2, 1 still first.
        t.apply(&msg(2, 1, "1", None), 100);
        assert_eq!(t.len(), 3, "no evidence yet who left");
        t.apply(&msg(2, 2, "3", None), 200);
        assert_eq!(bibs(&t), vec![(1, "1".to_owned()), (2, "3".to_owned())]);
    }

    #[test]
    fn at_most_64_riders_are_tracked_by_default_the_least_recently_seen_go() {
        let mut t = OnCourseTracker::new();
        // A source cycling 500 bibs (the report) that all claim to be on course.
        for i in 0..500u32 {
            t.apply(&msg(500, i + 1, &i.to_string(), None), u64::from(i));
        }
        assert_eq!(t.len(), MAX_ONCOURSE_ENTRIES);
        assert_eq!(MAX_ONCOURSE_ENTRIES, 64);
        assert!(
            t.get("499").is_some() && t.get("436").is_some(),
            "the newest stay"
        );
        assert!(
            t.get("435").is_none() && t.get("0").is_none(),
            "the oldest went"
        );
        assert_eq!(t.over_limit(), 500 - 64);
        // A rider already tracked is updated in place, nobody is dropped for it.
        t.apply(&msg(500, 1, "436", Some(2_000)), 1_000);
        assert_eq!((t.len(), t.over_limit()), (64, 436));
    }
}
