//! The result tables: one race's rows, standard or best-run, in the public units.

use serde::Serialize;

use super::{gates_wire, ms_to_cs, pen_s_to_cs, GateWire};
use crate::model::best_run::{self, best_run_pair};
use crate::model::{Course, Event, Participant, Race, RaceType, ResultRow};

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
pub(super) fn identity(p: Option<&Participant>, row: Option<&ResultRow>) -> Identity {
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
