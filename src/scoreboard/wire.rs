//! The scoreboard messages (c123-server's WebSocket JSON), built from the committed model.
//!
//! Pure: an event in, one JSON value out. Result numbers come from the same builder the
//! phones' REST and WebSocket use (`api::race_result_rows`), so a scoreboard and a phone
//! show the same rank, time, penalty and total; only the format differs (seconds as
//! two-decimal strings, penalties in whole seconds, as Canoe123 writes them).

use serde_json::{json, Value};

use crate::api::{self, ResultWire};
use crate::model::best_run::best_run_pair;
use crate::model::{Course, Event, OnCourseEntry, Participant, Race, ResultRow};

/// `{"type","timestamp","data"}`: every message has this envelope.
pub fn envelope(kind: &str, timestamp: &str, data: Value) -> Value {
    json!({ "type": kind, "timestamp": timestamp, "data": data })
}

/// Centiseconds → `"51.20"`.
pub fn cs_seconds(cs: i64) -> String {
    let sign = if cs < 0 { "-" } else { "" };
    let a = cs.unsigned_abs();
    format!("{sign}{}.{:02}", a / 100, a % 100)
}

/// Milliseconds → `"51.20"` (rounded to hundredths as the public API rounds them).
pub fn ms_seconds(ms: i64) -> String {
    cs_seconds(api::ms_to_cs(ms))
}

/// The clock of a rider still running is whole seconds (`"53"`), as Canoe123 sends it.
fn running_seconds(ms: i64) -> String {
    (ms.max(0) / 1000).to_string()
}

/// Per-gate penalties comma-separated, an unjudged gate empty (`"0,2,,"`): the on-course form.
pub fn gates_comma(gates: &[Option<u16>]) -> String {
    let parts: Vec<String> = gates
        .iter()
        .map(|g| g.map(|v| v.to_string()).unwrap_or_default())
        .collect();
    parts.join(",")
}

/// Per-gate penalties three characters each, right-aligned, an unjudged gate blank: the
/// results form (a blank slot must keep its width, or every later gate shifts).
pub fn gates_fixed(gates: &[Option<u16>]) -> String {
    gates
        .iter()
        .map(|g| match g {
            Some(v) => format!("{v:>3}"),
            None => "   ".to_owned(),
        })
        .collect()
}

/// `Connected`: sent first on every connection.
pub fn connected(version: &str, c123_connected: bool, xml_loaded: bool) -> Value {
    json!({ "version": version, "c123Connected": c123_connected, "xmlLoaded": xml_loaded })
}

/// `TimeOfDay`: `HH:MM:SS`.
pub fn time_of_day(hms: &str) -> Value {
    json!({ "time": hms })
}

/// `XmlChange`: which parts of the data changed, and a value that changes with them.
pub fn xml_change(sections: &[&str], checksum: &str) -> Value {
    json!({ "sections": sections, "checksum": checksum })
}

/// `ForceRefresh`: the scoreboard reloads its page.
pub fn force_refresh(reason: &str) -> Value {
    json!({ "reason": reason })
}

/// The run's title (`K1m - střední trať - 2. jízda`): the export's race title, else its id.
fn race_name(race: Option<&Race>, race_id: &str) -> String {
    race.and_then(|r| r.title.clone())
        .unwrap_or_else(|| race_id.to_owned())
}

/// The class title (`K1m - střední trať`).
fn main_title(event: &Event, race: Option<&Race>) -> String {
    race.and_then(|r| r.class_id.as_deref())
        .and_then(|c| event.classes.get(c))
        .map(|c| c.long_title.clone().unwrap_or_else(|| c.name.clone()))
        .unwrap_or_default()
}

/// Canoe123's sub-title for a run (`1st Run`, `2nd Run`, `1st and 2nd Run` on best-run
/// second runs' results).
fn sub_title(race: Option<&Race>, results: bool) -> String {
    match race.and_then(|r| r.dis_id.as_deref()) {
        Some("BR1") => "1st Run".to_owned(),
        Some("BR2") if results => "1st and 2nd Run".to_owned(),
        Some("BR2") => "2nd Run".to_owned(),
        Some(other) => other.to_owned(),
        None => String::new(),
    }
}

/// `OnCourse`: every rider who has started (riders waiting in the start gate have no
/// `dtStart`, and the scoreboard leaves them out). `total` is the number sent: the scoreboard
/// replaces its whole list only when `total == competitors.len()`, so a finished rider who
/// left the course disappears from it.
pub fn oncourse(event: &Event) -> Value {
    let list: Vec<Value> = event
        .oncourse
        .iter()
        .filter(|e| e.dt_start.is_some())
        .map(|e| oncourse_rider(event, e))
        .collect();
    json!({ "total": list.len(), "competitors": list })
}

fn oncourse_rider(event: &Event, e: &OnCourseEntry) -> Value {
    let race = event.races.get(&e.race_id);
    let row = e
        .participant_id
        .as_deref()
        .and_then(|p| event.result(&e.race_id, p));
    let finished = e.dt_finish.is_some();
    let secs = |ms: Option<i64>| {
        ms.map(|v| {
            if finished {
                ms_seconds(v)
            } else {
                running_seconds(v)
            }
        })
    };
    json!({
        "bib": e.bib.to_string(),
        "name": e.name,
        "club": e.club.clone().unwrap_or_default(),
        "nat": "",
        "raceId": e.race_id,
        "raceName": race_name(race, &e.race_id),
        "startOrder": row.and_then(|r| r.start_order).unwrap_or(0),
        "warning": "",
        "gates": gates_comma(&e.gates),
        // Canoe123 sets it ~4 s after the finish; the model does not keep it.
        "completed": false,
        "dtStart": e.dt_start,
        "dtFinish": e.dt_finish,
        "pen": e.pen_s.unwrap_or(0),
        "time": secs(e.time_ms),
        "total": secs(e.total_ms),
        "ttbDiff": e.ttb_diff.clone().unwrap_or_default(),
        "ttbName": e.ttb_name.clone().unwrap_or_default(),
        "rank": e.rank.unwrap_or(0),
        "position": e.position,
    })
}

/// `Results` of one race, rows in rank order. `None` when the event has no such race.
///
/// A best-run race's rows are the phones' combined rows: `rank` and `total` are the overall
/// (better run) values, `time` and `pen` this run's own (empty when the athlete has not run
/// it), never the better run's penalty that Canoe123's TCP puts there (the trap the
/// scoreboard otherwise repairs from `OnCourse`).
pub fn results(event: &Event, race_id: &str, is_current: bool) -> Option<Value> {
    let race = event.races.get(race_id);
    let rows = api::race_result_rows(event, race_id, false)?;
    let run = race
        .and_then(best_run_pair)
        .map(|(br1, _)| {
            if br1 == race_id {
                Run::First
            } else {
                Run::Second
            }
        })
        .unwrap_or(Run::Standard);
    let rows: Vec<Value> = rows
        .iter()
        .map(|(pid, w)| {
            let model = event.result(race_id, pid);
            result_row(event.participants.get(pid), model, w, run)
        })
        .collect();
    Some(json!({
        "raceId": race_id,
        "classId": race.and_then(|r| r.class_id.clone()).unwrap_or_default(),
        "isCurrent": is_current,
        "mainTitle": main_title(event, race),
        "subTitle": sub_title(race, true),
        "rows": rows,
    }))
}

/// Which run of a best-run pair a table is (its rows' `time` and `pen` are that run's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Run {
    Standard,
    First,
    Second,
}

/// One row. `model` is the athlete's row in this race, if any; `w` the phones' row (for a
/// best-run race the combined one, whose own `time`/`pen` are the second run's when there is
/// one, else the first's).
fn result_row(
    p: Option<&Participant>,
    model: Option<&ResultRow>,
    w: &ResultWire,
    run: Run,
) -> Value {
    let br = w.best_run.as_ref();
    let (time, pen, total) = match run {
        Run::Standard => (w.time, w.pen, w.total),
        Run::First => (
            model.and_then(|r| r.time_ms).map(api::ms_to_cs),
            model.and_then(|r| r.pen_s).map(api::pen_s_to_cs),
            br.and_then(|b| b.total_total),
        ),
        // Without a row in this race the combined row's run is the first: not this run's.
        Run::Second => (
            model.and(w.time),
            model.and(w.pen),
            br.and_then(|b| b.total_total),
        ),
    };
    let behind = match w.total_behind.as_deref() {
        None | Some("0.00") => String::new(),
        Some(b) => b.to_owned(),
    };
    let mut row = json!({
        "rank": w.rnk.unwrap_or(0),
        "bib": w.bib.map(|b| b.to_string()).unwrap_or_default(),
        "name": w.name,
        "givenName": p.and_then(|p| p.given_name.clone()).unwrap_or_default(),
        "familyName": p.map(|p| p.family_name.clone()).unwrap_or_default(),
        "club": w.club.clone().unwrap_or_default(),
        "nat": w.noc.clone().unwrap_or_default(),
        "startOrder": model.and_then(|r| r.start_order).unwrap_or(0),
        "startTime": model.and_then(|r| r.start_time.clone()).unwrap_or_default(),
        "gates": model.map(|r| gates_fixed(&r.gates.0)).unwrap_or_default(),
        // Whole seconds; `null` when the run's own penalty is not known (never the other run's).
        "pen": pen.map(|cs| cs / 100),
        "time": time.map(cs_seconds).unwrap_or_default(),
        "total": total.map(cs_seconds).unwrap_or_default(),
        "behind": behind,
        "status": w.status.clone().unwrap_or_default(),
    });
    if let (Some(b), Some(obj)) = (br, row.as_object_mut()) {
        let mut put = |k: &str, v: Option<i64>| {
            if let Some(v) = v {
                obj.insert(k.to_owned(), json!(v));
            }
        };
        put("prevTime", b.prev_time);
        put("prevPen", b.prev_pen.map(|cs| cs / 100));
        put("prevTotal", b.prev_total);
        put("prevRank", b.prev_rnk.map(i64::from));
        put("totalTotal", b.total_total);
        put("totalRank", w.rnk.map(i64::from));
        put("betterRun", b.better_run_nr.map(i64::from));
    }
    row
}

/// `RaceConfig` of a race's course. `None` without a course.
pub fn race_config(event: &Event, race_id: &str) -> Option<Value> {
    let course: &Course = event.races.get(race_id).and_then(|r| event.course_of(r))?;
    let n = course.gate_count();
    let captions: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
    Some(json!({
        "nrSplits": 0,
        "nrGates": n,
        "gateConfig": course.gate_config(),
        "gateCaptions": captions.join(","),
    }))
}

/// Races in running order (`RaceOrder`, then id).
pub fn races_in_order(event: &Event) -> Vec<&Race> {
    let mut races: Vec<&Race> = event.races.values().collect();
    races.sort_by(|a, b| {
        (a.race_order.unwrap_or(i32::MAX), &a.race_id)
            .cmp(&(b.race_order.unwrap_or(i32::MAX), &b.race_id))
    });
    races
}

/// `Schedule`: every race of the event in running order.
pub fn schedule(event: &Event) -> Value {
    let races: Vec<Value> = races_in_order(event)
        .into_iter()
        .map(|r| {
            let name = race_name(Some(r), &r.race_id);
            json!({
                "order": r.race_order.unwrap_or(0),
                "raceId": r.race_id,
                "race": name,
                "mainTitle": main_title(event, Some(r)),
                "subTitle": sub_title(Some(r), false),
                "shortTitle": name,
                "raceStatus": r.race_status.unwrap_or(0),
                "startTime": r.start_time.clone().unwrap_or_default(),
            })
        })
        .collect();
    json!({ "races": races })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_formats() {
        assert_eq!(cs_seconds(5120), "51.20");
        assert_eq!(cs_seconds(5), "0.05");
        assert_eq!(cs_seconds(-1279), "-12.79");
        assert_eq!(ms_seconds(103_200), "103.20");
        assert_eq!(ms_seconds(91_775), "91.78");
        assert_eq!(running_seconds(53_999), "53");
    }

    #[test]
    fn gate_forms_keep_blank_slots() {
        let g = [Some(0), Some(2), None, Some(50)];
        assert_eq!(gates_comma(&g), "0,2,,50");
        assert_eq!(gates_fixed(&g), "  0  2    50");
        assert_eq!(gates_fixed(&g).len(), 12);
    }
}
