//! The public JSON API types and their explicit conversion from the domain model.
//!
//! Units on the wire are live-mini's: `time`, `total`, `prevTime`, `prevTotal`, `totalTotal`
//! in centiseconds (domain milliseconds / 10), `pen`/`prevPen` in centiseconds (domain
//! seconds × 100), per-gate penalties in seconds (0/2/50). `totalBehind` strings as stored.
//!
//! Every builder here is a pure function of an [`Event`], so the WebSocket hub builds its
//! messages with exactly the same code as the REST routes. Ranking is domain logic
//! ([`crate::model::ranking`], [`crate::model::best_run`]); this module only converts.
//! It imports only [`crate::model`] (a leaf of the domain, see ARCHITECTURE.md).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::best_run::{self, best_run_pair};
use crate::model::{
    Category, Class, Course, Event, EventHeader, OnCourseEntry, Participant, Race, RaceType,
    ResultRow,
};

/// Domain milliseconds → wire centiseconds (rounded half away from zero). Never wraps:
/// `ms ± 5` overflowed at the ends of the range and published `i64::MAX` as negative.
pub fn ms_to_cs(ms: i64) -> i64 {
    let (q, r) = (ms / 10, ms % 10);
    if r >= 5 {
        q + 1
    } else if r <= -5 {
        q - 1
    } else {
        q
    }
}

/// Domain penalty seconds → wire centiseconds (saturating, never wrapping).
pub fn pen_s_to_cs(s: i64) -> i64 {
    s.saturating_mul(100)
}

// ---------------------------------------------------------------------------------------------
// Events

/// An event in the public list (`GET /api/v1/events`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventSummary {
    pub event_id: String,
    pub main_title: String,
    pub sub_title: Option<String>,
    pub location: Option<String>,
    pub start_date: Option<String>,
    pub end_date: Option<String>,
    pub discipline: Option<String>,
    pub status: String,
    pub image_url: Option<String>,
}

/// The event object of the detail body (`event` in `GET /api/v1/events/{id}` and WS `full`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventInfo {
    #[serde(flatten)]
    pub summary: EventSummary,
    /// The detail has the facility; the public list does not (as in live-mini).
    pub facility: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CategoryWire {
    pub cat_id: String,
    pub name: String,
    pub first_year: Option<i32>,
    pub last_year: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClassWire {
    pub class_id: String,
    pub name: String,
    pub long_title: Option<String>,
    pub categories: Vec<CategoryWire>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RaceWire {
    pub race_id: String,
    /// `null` when the race has no class (REST and WS alike; live-mini's REST used `""`).
    pub class_id: Option<String>,
    pub race_type: RaceType,
    pub race_order: Option<i32>,
    pub start_time: Option<String>,
    pub race_status: Option<i32>,
}

/// A category aggregated over all classes (`GET .../categories`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CategorySummary {
    pub cat_id: String,
    pub name: String,
    pub first_year: Option<i32>,
    pub last_year: Option<i32>,
    pub class_ids: Vec<String>,
}

/// `GET /api/v1/events/{id}` body, and the data of the WebSocket `full` message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventDetail {
    pub event: EventInfo,
    pub classes: Vec<ClassWire>,
    pub races: Vec<RaceWire>,
    pub categories: Vec<CategorySummary>,
}

fn image_url(h: &EventHeader) -> Option<String> {
    h.image
        .as_ref()
        .map(|_| format!("/api/v1/events/{}/image", h.event_id))
}

pub fn event_summary(event: &Event) -> EventSummary {
    let h = &event.header;
    EventSummary {
        event_id: h.event_id.clone(),
        main_title: h.meta.main_title.clone(),
        sub_title: h.meta.sub_title.clone(),
        location: h.meta.location.clone(),
        start_date: h.meta.start_date.clone(),
        end_date: h.meta.end_date.clone(),
        discipline: h.meta.discipline.clone(),
        status: h.status.as_str().to_owned(),
        image_url: image_url(h),
    }
}

pub fn event_info(event: &Event) -> EventInfo {
    EventInfo {
        summary: event_summary(event),
        facility: event.header.meta.facility.clone(),
    }
}

fn category_wire(c: &Category) -> CategoryWire {
    CategoryWire {
        cat_id: c.cat_id.clone(),
        name: c.name.clone(),
        first_year: c.first_year,
        last_year: c.last_year,
    }
}

pub fn class_wire(c: &Class) -> ClassWire {
    ClassWire {
        class_id: c.class_id.clone(),
        name: c.name.clone(),
        long_title: c.long_title.clone(),
        categories: c.categories.iter().map(category_wire).collect(),
    }
}

pub fn race_wire(r: &Race) -> RaceWire {
    RaceWire {
        race_id: r.race_id.clone(),
        class_id: r.class_id.clone(),
        race_type: r.race_type(),
        race_order: r.race_order,
        start_time: r.start_time.clone(),
        race_status: r.race_status,
    }
}

/// Classes by class id; races by race order (races without one first, as live-mini), then id.
pub fn races_ordered(event: &Event) -> Vec<&Race> {
    let mut races: Vec<&Race> = event.races.values().collect();
    races.sort_by(|a, b| (a.race_order, &a.race_id).cmp(&(b.race_order, &b.race_id)));
    races
}

/// Categories aggregated by `catId` (ordered by it); name and years from the first class
/// (by class id) that has the category.
pub fn categories(event: &Event) -> Vec<CategorySummary> {
    let mut out: BTreeMap<&str, CategorySummary> = BTreeMap::new();
    for class in event.classes.values() {
        for c in &class.categories {
            let entry = out
                .entry(c.cat_id.as_str())
                .or_insert_with(|| CategorySummary {
                    cat_id: c.cat_id.clone(),
                    name: c.name.clone(),
                    first_year: c.first_year,
                    last_year: c.last_year,
                    class_ids: Vec::new(),
                });
            if !entry.class_ids.contains(&class.class_id) {
                entry.class_ids.push(class.class_id.clone());
            }
        }
    }
    out.into_values().collect()
}

/// The structure of an event: `{event, classes, races, categories}`.
pub fn event_detail(event: &Event) -> EventDetail {
    EventDetail {
        event: event_info(event),
        classes: event.classes.values().map(class_wire).collect(),
        races: races_ordered(event).into_iter().map(race_wire).collect(),
        categories: categories(event),
    }
}

// ---------------------------------------------------------------------------------------------
// Gates

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GateWire {
    pub number: u32,
    /// `normal` (N), `reverse` (R) or `unknown` (no course, or past its end).
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Seconds (0, 2, 50; team races may carry sums); `null` = not judged yet.
    pub penalty: Option<u16>,
}

/// Positional penalties → numbered gates typed by the course's N/R configuration. One entry
/// per course gate when the course is known (unjudged gates `null`), never fewer than the
/// penalties given.
pub fn gates_wire(penalties: &[Option<u16>], course: Option<&Course>) -> Vec<GateWire> {
    let config: Vec<char> = course
        .map(|c| c.gate_config().chars().collect())
        .unwrap_or_default();
    let n = penalties.len().max(config.len());
    (0..n)
        .map(|i| GateWire {
            number: i as u32 + 1,
            kind: match config.get(i) {
                Some('N') => "normal",
                Some('R') => "reverse",
                _ => "unknown",
            },
            penalty: penalties.get(i).copied().flatten(),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Results

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RaceRef {
    pub race_id: String,
    pub class_id: Option<String>,
    pub race_type: RaceType,
    pub race_status: Option<i32>,
}

/// Extra fields of a best-run combined row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BestRunFields {
    /// Status of the first run (BR1) when both runs exist.
    pub prev_status: Option<String>,
    /// Status of the second run when both exist, else of the only run.
    pub curr_status: Option<String>,
    pub better_run_nr: Option<i32>,
    pub total_total: Option<i64>,
    pub prev_time: Option<i64>,
    pub prev_pen: Option<i64>,
    pub prev_total: Option<i64>,
    pub prev_rnk: Option<i32>,
}

/// Detail fields (`?detailed=true`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DetailFields {
    pub dt_start: Option<String>,
    pub dt_finish: Option<String>,
    pub gates: Option<Vec<GateWire>>,
    pub course_gate_count: Option<usize>,
}

/// First-run detail fields of a best-run row (`?detailed=true`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PrevDetailFields {
    pub prev_dt_start: Option<String>,
    pub prev_dt_finish: Option<String>,
    pub prev_gates: Option<Vec<GateWire>>,
}

/// One row of a results list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultWire {
    pub rnk: Option<i32>,
    pub bib: Option<u32>,
    pub athlete_id: Option<String>,
    pub name: String,
    pub club: Option<String>,
    pub noc: Option<String>,
    pub cat_id: Option<String>,
    pub cat_rnk: Option<i32>,
    pub time: Option<i64>,
    pub pen: Option<i64>,
    pub total: Option<i64>,
    pub total_behind: Option<String>,
    pub cat_total_behind: Option<String>,
    pub status: Option<String>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub best_run: Option<BestRunFields>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub detail: Option<DetailFields>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub prev_detail: Option<PrevDetailFields>,
}

/// `GET .../results/{raceId}` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RaceResults {
    pub race: RaceRef,
    pub results: Vec<ResultWire>,
}

fn race_ref(r: &Race) -> RaceRef {
    RaceRef {
        race_id: r.race_id.clone(),
        class_id: r.class_id.clone(),
        race_type: r.race_type(),
        race_status: r.race_status,
    }
}

fn detail_of(row: Option<&ResultRow>, course: Option<&Course>) -> DetailFields {
    DetailFields {
        dt_start: row.and_then(|r| r.dt_start.clone()),
        dt_finish: row.and_then(|r| r.dt_finish.clone()),
        gates: row
            .filter(|r| !r.gates.is_empty())
            .map(|r| gates_wire(&r.gates.0, course)),
        course_gate_count: course.map(Course::gate_count),
    }
}

/// `(bib, athleteId, name, club, noc, catId)`.
type Identity = (
    Option<u32>,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// The identity part of a row.
fn identity(p: Option<&Participant>, row: Option<&ResultRow>) -> Identity {
    (
        row.and_then(|r| r.bib)
            .or_else(|| p.and_then(|p| p.event_bib)),
        p.and_then(|p| p.icf_id.clone()),
        p.map(Participant::display_name).unwrap_or_default(),
        p.and_then(|p| p.club.clone()),
        p.and_then(|p| p.noc.clone()),
        p.and_then(|p| p.cat_id.clone()),
    )
}

fn standard_row(
    event: &Event,
    row: &ResultRow,
    course: Option<&Course>,
    detailed: bool,
) -> ResultWire {
    let p = event.participants.get(&row.participant_id);
    let (bib, athlete_id, name, club, noc, cat_id) = identity(p, Some(row));
    ResultWire {
        rnk: row.rnk,
        bib,
        athlete_id,
        name,
        club,
        noc,
        cat_id,
        cat_rnk: row.cat_rnk,
        time: row.time_ms.map(ms_to_cs),
        pen: row.pen_s.map(pen_s_to_cs),
        total: row.total_ms.map(ms_to_cs),
        total_behind: row.total_behind.clone(),
        cat_total_behind: row.cat_total_behind.clone(),
        status: row.status.clone(),
        best_run: None,
        detail: detailed.then(|| detail_of(Some(row), course)),
        prev_detail: None,
    }
}

/// Ranked rows first (by rank, then rank order), unranked rows after them (by start order,
/// then bib). live-mini put the unranked rows first.
fn row_order(a: &ResultRow, b: &ResultRow) -> std::cmp::Ordering {
    let key = |r: &ResultRow| {
        (
            r.rnk.is_none(),
            r.rnk.unwrap_or(i32::MAX),
            r.rnk_order.unwrap_or(i32::MAX),
            r.start_order.unwrap_or(i32::MAX),
            r.bib.unwrap_or(u32::MAX),
        )
    };
    key(a)
        .cmp(&key(b))
        .then_with(|| a.participant_id.cmp(&b.participant_id))
}

/// Combined rows of a best-run pair in rank order (see [`best_run::rank_pair`]). Returns
/// `(participant_id, row)`.
fn best_run_rows(
    event: &Event,
    br1_id: &str,
    br2_id: &str,
    detailed: bool,
) -> Vec<(String, ResultWire)> {
    let course1 = event.races.get(br1_id).and_then(|r| event.course_of(r));
    let course2 = event.races.get(br2_id).and_then(|r| event.course_of(r));
    best_run::rank_pair(event, br1_id, br2_id)
        .into_iter()
        .map(|ranked| {
            let c = &ranked.combined;
            let both = c.br1.is_some() && c.br2.is_some();
            let primary = c.br2.or(c.br1);
            let primary_is_br2 = c.br2.is_some();
            let p = event.participants.get(c.participant_id);
            let (bib, athlete_id, name, club, noc, cat_id) = identity(p, primary);
            let (time, pen, total) = match primary {
                Some(r) if primary_is_br2 => (r.time_ms, c.br2_pen_s, c.br2_total_ms),
                Some(r) => (r.time_ms, r.pen_s, r.total_ms),
                None => (None, None, None),
            };
            let prev = if both { c.br1 } else { None };
            let status = if c.better_run_nr.is_some() {
                None
            } else {
                c.br2
                    .and_then(|r| r.status.clone())
                    .or_else(|| c.br1.and_then(|r| r.status.clone()))
            };
            let row = ResultWire {
                rnk: ranked.overall.rnk,
                bib,
                athlete_id,
                name,
                club,
                noc,
                cat_id,
                cat_rnk: ranked.category.rnk,
                time: time.map(ms_to_cs),
                pen: pen.map(pen_s_to_cs),
                total: total.map(ms_to_cs),
                total_behind: ranked.overall.behind.clone(),
                cat_total_behind: ranked.category.behind.clone(),
                status,
                best_run: Some(BestRunFields {
                    prev_status: prev.and_then(|r| r.status.clone()),
                    curr_status: primary.and_then(|r| r.status.clone()),
                    better_run_nr: c.better_run_nr,
                    total_total: c.total_total_ms.map(ms_to_cs),
                    prev_time: prev.and_then(|r| r.time_ms).map(ms_to_cs),
                    prev_pen: prev.and_then(|r| r.pen_s).map(pen_s_to_cs),
                    prev_total: prev.and_then(|r| r.total_ms).map(ms_to_cs),
                    prev_rnk: prev.and_then(|r| r.rnk),
                }),
                detail: detailed
                    .then(|| detail_of(primary, if primary_is_br2 { course2 } else { course1 })),
                prev_detail: detailed.then(|| PrevDetailFields {
                    prev_dt_start: prev.and_then(|r| r.dt_start.clone()),
                    prev_dt_finish: prev.and_then(|r| r.dt_finish.clone()),
                    prev_gates: prev
                        .filter(|r| !r.gates.is_empty())
                        .map(|r| gates_wire(&r.gates.0, course1)),
                }),
            };
            (c.participant_id.to_owned(), row)
        })
        .collect()
}

/// All rows of a race in display order, with their participant ids (for diffing). A
/// best-run race gives the combined rows of its pair (the same rows for BR1 and BR2).
/// `None` when the event has no such race.
pub fn race_result_rows(
    event: &Event,
    race_id: &str,
    detailed: bool,
) -> Option<Vec<(String, ResultWire)>> {
    let race = event.races.get(race_id)?;
    if let Some((br1, br2)) = best_run_pair(race) {
        return Some(best_run_rows(event, &br1, &br2, detailed));
    }
    let course = event.course_of(race);
    let mut rows: Vec<&ResultRow> = event.race_results(race_id).collect();
    rows.sort_by(|a, b| row_order(a, b));
    Some(
        rows.into_iter()
            .map(|r| {
                (
                    r.participant_id.clone(),
                    standard_row(event, r, course, detailed),
                )
            })
            .collect(),
    )
}

/// `GET .../results/{raceId}`: the race and its rows, optionally only one category.
///
/// With `cat_id`, rows of other categories are left out; `rnk`/`totalBehind` stay the
/// overall values and `catRnk`/`catTotalBehind` are the category's, for standard and
/// best-run races alike (live-mini re-ranked best-run lists within the category). Rows are
/// then ordered by category rank, unranked last.
pub fn race_results(
    event: &Event,
    race_id: &str,
    cat_id: Option<&str>,
    detailed: bool,
) -> Option<RaceResults> {
    let race = event.races.get(race_id)?;
    let mut rows: Vec<ResultWire> = race_result_rows(event, race_id, detailed)?
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    if let Some(cat) = cat_id.filter(|c| !c.is_empty()) {
        rows.retain(|r| r.cat_id.as_deref() == Some(cat));
        // Stable: rows with equal category rank keep the overall order.
        rows.sort_by_key(|r| (r.cat_rnk.is_none(), r.cat_rnk.unwrap_or(i32::MAX)));
    }
    Some(RaceResults {
        race: race_ref(race),
        results: rows,
    })
}

/// One athlete's current row in a race (combined for best-run races), for a diff.
pub fn result_row_for(event: &Event, race_id: &str, participant_id: &str) -> Option<ResultWire> {
    race_result_rows(event, race_id, false)?
        .into_iter()
        .find(|(pid, _)| pid == participant_id)
        .map(|(_, r)| r)
}

// ---------------------------------------------------------------------------------------------
// Start list

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StartRaceRef {
    pub race_id: String,
    pub class_id: Option<String>,
    pub start_time: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StartEntry {
    pub start_order: Option<i32>,
    pub bib: Option<u32>,
    pub athlete_id: Option<String>,
    pub name: String,
    pub club: Option<String>,
    pub noc: Option<String>,
    pub cat_id: Option<String>,
    pub start_time: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StartList {
    pub race: StartRaceRef,
    pub startlist: Vec<StartEntry>,
}

/// `GET .../startlist/{raceId}`: by start order; rows without one (added live) last.
pub fn startlist(event: &Event, race_id: &str) -> Option<StartList> {
    let race = event.races.get(race_id)?;
    let mut rows: Vec<&ResultRow> = event.race_results(race_id).collect();
    rows.sort_by_key(|r| {
        (
            r.start_order.is_none(),
            r.start_order,
            r.bib,
            r.participant_id.clone(),
        )
    });
    let startlist = rows
        .into_iter()
        .map(|r| {
            let p = event.participants.get(&r.participant_id);
            let (bib, athlete_id, name, club, noc, cat_id) = identity(p, Some(r));
            StartEntry {
                start_order: r.start_order,
                bib,
                athlete_id,
                name,
                club,
                noc,
                cat_id,
                start_time: r.start_time.clone(),
            }
        })
        .collect();
    Some(StartList {
        race: StartRaceRef {
            race_id: race.race_id.clone(),
            class_id: race.class_id.clone(),
            start_time: race.start_time.clone(),
        },
        startlist,
    })
}

// ---------------------------------------------------------------------------------------------
// On course

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OnCourseWire {
    pub race_id: String,
    pub bib: u32,
    pub name: String,
    pub club: Option<String>,
    pub position: u32,
    pub gates: Vec<GateWire>,
    pub completed: bool,
    pub dt_start: Option<String>,
    pub dt_finish: Option<String>,
    pub time: Option<i64>,
    pub pen: Option<i64>,
    pub total: Option<i64>,
    pub rank: Option<u32>,
    pub ttb_diff: Option<String>,
    pub ttb_name: Option<String>,
}

pub fn oncourse_entry(event: &Event, e: &OnCourseEntry) -> OnCourseWire {
    let course = event.races.get(&e.race_id).and_then(|r| event.course_of(r));
    OnCourseWire {
        race_id: e.race_id.clone(),
        bib: e.bib,
        name: e.name.clone(),
        club: e.club.clone(),
        position: e.position,
        gates: gates_wire(&e.gates, course),
        completed: e.dt_finish.is_some(),
        dt_start: e.dt_start.clone(),
        dt_finish: e.dt_finish.clone(),
        time: e.time_ms.map(ms_to_cs),
        pen: e.pen_s.map(pen_s_to_cs),
        total: e.total_ms.map(ms_to_cs),
        rank: e.rank,
        ttb_diff: e.ttb_diff.clone(),
        ttb_name: e.ttb_name.clone(),
    }
}

/// The event's riders on course, nearest the finish first (`GET .../oncourse`, WS diff).
pub fn oncourse(event: &Event) -> Vec<OnCourseWire> {
    let mut list: Vec<OnCourseWire> = event
        .oncourse
        .iter()
        .map(|e| oncourse_entry(event, e))
        .collect();
    list.sort_by_key(|e| (e.position, e.bib));
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ms_to_cs_rounds_half_away_from_zero_and_never_wraps() {
        assert_eq!(ms_to_cs(76_994), 7_699);
        assert_eq!(ms_to_cs(76_995), 7_700);
        assert_eq!(ms_to_cs(-76_995), -7_700);
        assert_eq!(ms_to_cs(-76_994), -7_699);
        assert_eq!(ms_to_cs(i64::MAX), i64::MAX / 10 + 1);
        assert_eq!(ms_to_cs(i64::MIN), i64::MIN / 10 - 1);
        assert!(pen_s_to_cs(i64::MAX) > 0);
    }
}
