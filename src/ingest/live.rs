//! Turns parsed Canoe123 messages of one TCP source into merge inputs for its event.
//!
//! It owns the stream state a source needs (the per-bib on-course tracker, the last penalty
//! seen on course per run) and reads the committed snapshot to map bibs to participants and
//! to recognise best-run second runs. It never writes: it returns [`Input`]s.

use std::collections::HashMap;

use crate::c123::frame::{Irm, Message, OnCourseRider, ResultsTable, ScheduleRace};
use crate::c123::oncourse::OnCourseTracker;
use crate::merge::{AdminCommand, Input, ResultUpdate, Snapshot, Via};
use crate::model::{Event, EventStatus, Gates, OnCourseEntry};

/// How long an on-course penalty stays trustworthy for the run it belongs to after the rider
/// was last seen (Results frames for a finish arrive 0-20 s later).
const PEN_MEMORY_MS: u64 = 60_000;
/// Totals within this of `time + pen` are self-consistent (formatting rounds to 0.01 s).
const CONSISTENT_MS: i64 = 20;

/// Counters of what a source delivered that could not be used.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveCounters {
    /// Riders or rows whose bib is not a participant of the export.
    pub unknown_athletes: u64,
    /// Best-run second runs whose own penalty was not known (left for the export).
    pub br2_without_penalty: u64,
    /// Riders dropped from the on-course list because it held its bound
    /// ([`crate::c123::oncourse::MAX_ONCOURSE_ENTRIES`]).
    pub oncourse_over_limit: u64,
}

pub struct LiveStream {
    /// The event this source is bound to; `None`: the event of the latest folder import.
    binding: Option<String>,
    /// The event of the current message (resolved from the binding).
    event_id: String,
    tracker: OnCourseTracker,
    /// (race, participant) → (penalty seconds, when seen) from on-course messages. Only
    /// races and participants of the event: bounded by its export, whatever a source sends.
    course_pen: HashMap<(String, String), (u32, u64)>,
    /// (race, participant) → the last finished-run update sent, to send each change once.
    /// Same keys and bound as `course_pen`; pruned on the tick when the export drops them.
    sent_finish: HashMap<(String, String), (Option<i64>, Option<u32>)>,
    auto_status: bool,
    pub counters: LiveCounters,
}

impl LiveStream {
    pub fn new(binding: Option<String>, auto_status: bool) -> LiveStream {
        LiveStream {
            event_id: binding.clone().unwrap_or_default(),
            binding,
            tracker: OnCourseTracker::new(),
            course_pen: HashMap::new(),
            sent_finish: HashMap::new(),
            auto_status,
            counters: LiveCounters::default(),
        }
    }

    pub fn event_id(&self) -> &str {
        &self.event_id
    }

    /// How many runs the stream remembers (finished-run updates sent, on-course penalties):
    /// bounded by the races × participants of the event's export.
    pub fn remembered_runs(&self) -> usize {
        self.sent_finish.len() + self.course_pen.len()
    }

    fn resolve<'s>(&mut self, snapshot: &'s Snapshot) -> Option<&'s Event> {
        let event = match &self.binding {
            Some(id) => snapshot.event(id)?,
            // The event the folder imported an export into last (one rule, shared with the
            // scoreboard).
            None => snapshot.direct_event()?,
        };
        if self.event_id != event.header.event_id {
            self.event_id = event.header.event_id.clone();
            // Runs of another event.
            self.sent_finish.clear();
            self.course_pen.clear();
        }
        Some(event)
    }

    /// The inputs one message causes (often none).
    pub fn on_message(&mut self, msg: &Message, now_ms: u64, snapshot: &Snapshot) -> Vec<Input> {
        let Some(event) = self.resolve(snapshot) else {
            return Vec::new();
        };
        match msg {
            Message::OnCourse(oc) => {
                let update = self.tracker.apply(oc, now_ms);
                self.counters.oncourse_over_limit = self.tracker.over_limit();
                if let Some(rider) = &oc.rider {
                    if let Some(pen) = rider.pen_s {
                        if let Some(run) = known_run(event, rider) {
                            self.course_pen.insert(run, (pen, now_ms));
                        }
                    }
                }
                let mut inputs = Vec::new();
                if let Some(rider) = &oc.rider {
                    if let Some(u) = self.finished_run(rider, event) {
                        inputs.push(self.results_input(vec![u]));
                    }
                }
                if update.changed {
                    inputs.push(self.oncourse_input(event));
                }
                inputs
            }
            Message::Results(table) => {
                let updates = self.results_rows(table, event, now_ms);
                if updates.is_empty() {
                    Vec::new()
                } else {
                    vec![self.results_input(updates)]
                }
            }
            Message::Schedule(races) if self.auto_status => {
                self.status_steps(races, event.header.status)
            }
            _ => Vec::new(),
        }
    }

    /// Timer: riders not seen for the TTL leave the course.
    pub fn on_tick(&mut self, now_ms: u64, snapshot: &Snapshot) -> Vec<Input> {
        self.course_pen
            .retain(|_, (_, seen)| now_ms.saturating_sub(*seen) <= PEN_MEMORY_MS);
        let expired = self.tracker.expire(now_ms);
        let Some(event) = self.resolve(snapshot) else {
            return Vec::new();
        };
        // A new export may have dropped races or participants.
        self.sent_finish.retain(|(race, pid), _| {
            event.races.contains_key(race) && event.participants.contains_key(pid)
        });
        if expired {
            vec![self.oncourse_input(event)]
        } else {
            Vec::new()
        }
    }

    fn results_input(&self, updates: Vec<ResultUpdate>) -> Input {
        Input::Results {
            event_id: self.event_id.clone(),
            updates,
            via: Via::Tcp,
        }
    }

    fn oncourse_input(&mut self, event: &Event) -> Input {
        let mut entries = Vec::new();
        for e in self.tracker.current() {
            let r = &e.rider;
            let Ok(bib) = r.bib.trim().parse::<u32>() else {
                continue;
            };
            let participant_id =
                participant_of(event, r.participant_id.as_deref(), &r.race_id, &r.bib);
            entries.push(OnCourseEntry {
                participant_id,
                race_id: r.race_id.clone(),
                bib,
                name: r.name.clone(),
                club: non_empty(&r.club),
                position: e.position,
                gates: r.gates.clone(),
                dt_start: r.dt_start_ms.map(clock),
                dt_finish: r.dt_finish_ms.map(clock),
                time_ms: r.time_ms,
                pen_s: r.pen_s.map(i64::from),
                total_ms: r.total_ms,
                rank: r.rank,
                ttb_diff: r.ttb_diff_ms.map(signed_seconds),
                ttb_name: non_empty(&r.ttb_name),
            });
        }
        Input::OnCourse {
            event_id: self.event_id.clone(),
            entries,
            via: Via::Tcp,
        }
    }

    /// A rider with a finish time: the run's result (sent again only when it changes, e.g.
    /// a penalty judged in the seconds after the finish).
    fn finished_run(&mut self, r: &OnCourseRider, event: &Event) -> Option<ResultUpdate> {
        if r.dt_finish_ms.is_none() || r.time_is_running {
            return None;
        }
        let time = r.time_ms?;
        if !event.races.contains_key(&r.race_id) {
            return None; // the merge would ignore it too; and it is not remembered
        }
        let Some(key) = known_run(event, r) else {
            self.counters.unknown_athletes += 1;
            return None;
        };
        let pid = key.1.clone();
        let now = (Some(time), r.pen_s);
        if self.sent_finish.get(&key) == Some(&now) {
            return None;
        }
        self.sent_finish.insert(key, now);
        let pen = r.pen_s.map(i64::from);
        Some(ResultUpdate {
            race_id: r.race_id.clone(),
            participant_id: pid,
            bib: r.bib.trim().parse().ok(),
            time_ms: Some(Some(time)),
            pen_s: Some(pen),
            total_ms: Some(pen.map(|p| time + p * 1000)),
            status: Some(None),
            gates: (!r.gates.is_empty()).then(|| Gates(r.gates.clone())),
            dt_start: Some(r.dt_start_ms.map(clock)),
            dt_finish: Some(r.dt_finish_ms.map(clock)),
        })
    }

    fn results_rows(
        &mut self,
        table: &ResultsTable,
        event: &Event,
        now_ms: u64,
    ) -> Vec<ResultUpdate> {
        let Some(race) = event.races.get(&table.race_id) else {
            return Vec::new(); // unknown race: the merge would ignore it too
        };
        let second_run = race.dis_id.as_deref() == Some("BR2");
        let mut updates = Vec::new();
        for row in &table.rows {
            let Some(pid) = participant_of(
                event,
                row.participant_id.as_deref(),
                &table.race_id,
                &row.bib,
            ) else {
                self.counters.unknown_athletes += 1;
                continue;
            };
            let bib = row.bib.trim().parse().ok();
            let mut u = ResultUpdate {
                race_id: table.race_id.clone(),
                participant_id: pid,
                bib,
                ..ResultUpdate::default()
            };
            if let Some(irm) = &row.irm {
                let code = irm_code(irm);
                crate::result_status::unknown().note(&code, "tcp");
                u.status = Some(Some(code));
                u.time_ms = Some(row.time_ms);
                if !second_run {
                    u.pen_s = Some(row.pen_s.map(i64::from));
                    u.total_ms = Some(row.total_ms.filter(|_| row.time_ms.is_some()));
                }
                updates.push(u);
                continue;
            }
            let Some(time) = row.time_ms else {
                continue; // not run yet, or on course
            };
            u.status = Some(None);
            u.time_ms = Some(Some(time));
            if !second_run {
                u.pen_s = Some(row.pen_s.map(i64::from));
                u.total_ms = Some(row.total_ms);
                if !row.gates.is_empty() {
                    u.gates = Some(Gates(row.gates.clone()));
                }
                updates.push(u);
                continue;
            }
            // Best-run second run: Results carry the better run's Pen/Total. Trust, in order,
            // the penalty seen on course for this run, then a self-consistent row.
            let seen = self
                .course_pen
                .get(&(table.race_id.clone(), u.participant_id.clone()))
                .filter(|(_, at)| now_ms.saturating_sub(*at) <= PEN_MEMORY_MS)
                .map(|(p, _)| *p);
            let consistent = match (row.pen_s, row.total_ms) {
                (Some(p), Some(t)) if (t - (time + i64::from(p) * 1000)).abs() < CONSISTENT_MS => {
                    Some(p)
                }
                _ => None,
            };
            match seen.or(consistent) {
                Some(p) => {
                    u.pen_s = Some(Some(i64::from(p)));
                    u.total_ms = Some(Some(time + i64::from(p) * 1000));
                    updates.push(u);
                }
                None => {
                    // Never store the first run's penalty as the second run's.
                    self.counters.br2_without_penalty += 1;
                }
            }
        }
        updates
    }

    /// Lifecycle steps implied by the TCP schedule (forward only, one step at a time).
    fn status_steps(&self, races: &[ScheduleRace], current: EventStatus) -> Vec<Input> {
        let Some(target) = derive_status(races) else {
            return Vec::new();
        };
        let mut steps = Vec::new();
        let mut at = current;
        while at < target {
            let next = match at {
                EventStatus::Draft => EventStatus::Startlist,
                EventStatus::Startlist => EventStatus::Running,
                EventStatus::Running => EventStatus::Finished,
                EventStatus::Finished => EventStatus::Official,
                EventStatus::Official => break,
            };
            steps.push(Input::Admin(AdminCommand::Transition {
                event_id: self.event_id.clone(),
                to: next,
            }));
            at = next;
        }
        steps
    }
}

/// The event status a TCP schedule implies (c123-server's rules): any race in progress or
/// unofficial → running; all official/revised → official; any past scheduled → startlist;
/// all scheduled → draft. Cancelled, rescheduled and postponed races do not count.
pub fn derive_status(races: &[ScheduleRace]) -> Option<EventStatus> {
    let statuses: Vec<u32> = races
        .iter()
        .filter_map(|r| r.race_status)
        .filter(|s| !matches!(s, 7 | 12 | 13))
        .collect();
    if statuses.is_empty() {
        return None;
    }
    Some(if statuses.iter().any(|s| matches!(s, 3 | 4)) {
        EventStatus::Running
    } else if statuses.iter().all(|s| matches!(s, 5 | 6)) {
        EventStatus::Official
    } else if statuses.iter().any(|s| *s >= 1) {
        EventStatus::Startlist
    } else {
        EventStatus::Draft
    })
}

/// (race, participant) of a rider when the event knows both: the key of what a stream
/// remembers per run.
fn known_run(event: &Event, r: &OnCourseRider) -> Option<(String, String)> {
    if !event.races.contains_key(&r.race_id) {
        return None;
    }
    let pid = participant_of(event, r.participant_id.as_deref(), &r.race_id, &r.bib)?;
    Some((r.race_id.clone(), pid))
}

/// The participant a TCP rider or row stands for: its `Id` when the export knows it, else
/// the participant of the race's class with that bib.
fn participant_of(event: &Event, id: Option<&str>, race_id: &str, bib: &str) -> Option<String> {
    if let Some(id) = id.filter(|id| event.participants.contains_key(*id)) {
        return Some(id.to_owned());
    }
    let bib: u32 = bib.trim().parse().ok()?;
    let class = event.races.get(race_id)?.class_id.as_deref()?;
    event
        .participants
        .values()
        .find(|p| p.event_bib == Some(bib) && p.class_id.as_deref() == Some(class))
        .map(|p| p.id.clone())
}

fn irm_code(irm: &Irm) -> String {
    match irm {
        Irm::Dns => "DNS".into(),
        Irm::Dnf => "DNF".into(),
        Irm::Dsq => "DSQ".into(),
        Irm::Other(s) => s.clone(),
    }
}

fn non_empty(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

/// Milliseconds since midnight → `HH:MM:SS.mmm`.
pub fn clock(ms: u32) -> String {
    let (s, ms) = (ms / 1000, ms % 1000);
    format!("{:02}:{:02}:{:02}.{ms:03}", s / 3600, s / 60 % 60, s % 60)
}

/// Signed milliseconds → `+12.79` / `-53.99` seconds.
fn signed_seconds(ms: i64) -> String {
    let sign = if ms < 0 { '-' } else { '+' };
    let cs = ms.abs() / 10;
    format!("{sign}{}.{:02}", cs / 100, cs % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_and_signed_seconds() {
        assert_eq!(clock(58_440_000), "16:14:00.000");
        assert_eq!(clock(30_735_285), "08:32:15.285");
        assert_eq!(signed_seconds(12_790), "+12.79");
        assert_eq!(signed_seconds(-53_990), "-53.99");
    }

    fn race(status: u32) -> ScheduleRace {
        ScheduleRace {
            race_status: Some(status),
            ..ScheduleRace::default()
        }
    }

    #[test]
    fn status_derivation_follows_the_reference_rules() {
        assert_eq!(derive_status(&[]), None);
        assert_eq!(derive_status(&[race(0), race(0)]), Some(EventStatus::Draft));
        assert_eq!(
            derive_status(&[race(0), race(1)]),
            Some(EventStatus::Startlist)
        );
        assert_eq!(
            derive_status(&[race(5), race(3)]),
            Some(EventStatus::Running)
        );
        assert_eq!(
            derive_status(&[race(5), race(4)]),
            Some(EventStatus::Running)
        );
        assert_eq!(
            derive_status(&[race(5), race(6), race(7)]),
            Some(EventStatus::Official)
        );
        assert_eq!(derive_status(&[race(7), race(12)]), None);
    }
}
