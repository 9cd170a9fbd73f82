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

mod results;

use results::identity;
pub use results::{
    race_result_rows, race_results, result_row_for, BestRunFields, DetailFields, PrevDetailFields,
    RaceRef, RaceResults, ResultWire,
};

use serde::Serialize;

use crate::model::{
    Category, Class, Course, Event, EventHeader, OnCourseEntry, Race, RaceType, ResultRow,
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
