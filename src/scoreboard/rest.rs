//! The REST bodies a scoreboard reads at start-up and after a reconnect (c123-server's
//! `/api/discover`, `/api/status` and `/api/xml/...`), built from the committed model.
//!
//! Units are c123-server's: times and totals in **milliseconds**, penalties in whole
//! **seconds**. Best-run numbers come from `model::best_run` (the phones' numbers): a second
//! run's own penalty and total are never the better run's.

use serde_json::{json, Map, Value};

use super::wire;
use crate::model::best_run::{self, best_run_pair};
use crate::model::{Event, Participant, Race, ResultRow};

/// `GET /api/discover`. `service` must be `c123-server`: the scoreboard's discovery
/// accepts nothing else.
pub fn discover(event: Option<&Event>, port: u16) -> Value {
    json!({
        "service": "c123-server",
        "version": env!("CARGO_PKG_VERSION"),
        "port": port,
        "eventName": event.map(|e| e.header.meta.main_title.clone()).filter(|t| !t.is_empty()),
    })
}

/// What `/api/status` needs from the live service.
pub struct Live {
    pub uptime_s: u64,
    pub c123_connected: bool,
    pub scoreboards: usize,
    pub current_race: Option<String>,
}

/// `GET /api/status`.
pub fn status(event: Option<&Event>, live: &Live) -> Value {
    let current = live.current_race.as_deref();
    let race = event.zip(current).and_then(|(e, r)| e.races.get(r));
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime": live.uptime_s,
        "sources": [{
            "name": "C123 TCP",
            "type": "tcp",
            "status": if live.c123_connected { "connected" } else { "disconnected" },
        }],
        "scoreboards": { "connected": live.scoreboards, "list": [] },
        "event": {
            "currentRaceId": current,
            "raceName": race.and_then(|r| r.title.clone()),
            "onCourseCount": event.map_or(0, |e| e.oncourse.len()),
            "resultsCount": event.zip(current).map_or(0, |(e, r)| e.race_results(r).count()),
        },
    })
}

/// `GET /api/xml/status`: `available` when the served event has export data.
pub fn xml_status(event: Option<&Event>) -> Value {
    let Some(e) = event.filter(|e| e.header.has_xml_data) else {
        return json!({
            "available": false, "path": null, "lastModified": null, "checksum": null,
            "participantCount": 0, "scheduleCount": 0,
        });
    };
    json!({
        "available": true,
        "path": null,
        "lastModified": null,
        // Changes with every committed change of the event.
        "checksum": format!("{}-{}", e.header.event_id, e.header.seq),
        "participantCount": e.participants.len(),
        "scheduleCount": e.races.len(),
    })
}

/// `GET /api/xml/schedule`.
pub fn schedule(event: &Event) -> Value {
    let list: Vec<Value> = wire::races_in_order(event)
        .into_iter()
        .map(|r| {
            json!({
                "raceId": r.race_id,
                "raceOrder": r.race_order,
                "startTime": r.start_time,
                "classId": r.class_id,
                "disId": r.dis_id,
                "startInterval": r.start_interval,
                "raceStatus": r.race_status,
                "customTitle": r.title,
                "courseNr": r.course_nr,
            })
        })
        .collect();
    json!({ "schedule": list })
}

/// `GET /api/xml/races/{id}`; `None`: no such race.
pub fn race_detail(event: &Event, race_id: &str) -> Option<Value> {
    let race = event.races.get(race_id)?;
    let rows: Vec<&ResultRow> = event.race_results(race_id).collect();
    // Other runs of the same class on the same day: race ids end in the day's version
    // (`K1M_ST_BR1_6` and `K1M_ST_BR2_6`; `_7` is another day's).
    let version = |id: &str| id.rsplit_once('_').map(|(_, v)| v.to_owned());
    let related: Vec<&str> = event
        .races
        .values()
        .filter(|r| {
            r.race_id != race.race_id && r.class_id.is_some() && r.class_id == race.class_id
        })
        .filter(|r| version(&r.race_id) == version(&race.race_id))
        .map(|r| r.race_id.as_str())
        .collect();
    Some(json!({ "race": {
        "raceId": race.race_id,
        "classId": race.class_id,
        "disId": race.dis_id,
        "name": race.title,
        "startTime": race.start_time,
        "raceOrder": race.race_order,
        "raceStatus": race.race_status,
        "participantCount": rows.len(),
        "hasResults": rows.iter().any(|r| r.total_ms.is_some() || r.status.is_some()),
        "startlistCount": rows.len(),
        "resultsCount": rows.iter().filter(|r| r.total_ms.is_some() || r.status.is_some()).count(),
        "relatedRaces": related,
    }}))
}

fn participant(p: Option<&Participant>, row: &ResultRow) -> Value {
    json!({
        "id": row.participant_id,
        "classId": p.and_then(|p| p.class_id.clone()),
        "bib": row.bib.map(|b| b.to_string()),
        "familyName": p.map(|p| p.family_name.clone()).unwrap_or_default(),
        "givenName": p.and_then(|p| p.given_name.clone()).unwrap_or_default(),
        "club": p.and_then(|p| p.club.clone()).unwrap_or_default(),
        "isTeam": p.is_some_and(|p| p.is_team),
    })
}

/// Inserts the values that are known (c123-server leaves unknown ones out).
fn put(obj: &mut Map<String, Value>, key: &str, v: Option<Value>) {
    if let Some(v) = v {
        obj.insert(key.to_owned(), v);
    }
}

/// `GET /api/xml/races/{id}/results`: the run's own rows in rank order, unranked last;
/// `None`: no such race. A best-run second run's penalty and total are its own (`null` when
/// Canoe123 only sent the better run's), with the first run as `prev*`.
pub fn race_results(event: &Event, race_id: &str) -> Option<Value> {
    let race = event.races.get(race_id)?;
    let pair = best_run_pair(race).filter(|(_, br2)| br2 == race_id);
    let mut rows: Vec<&ResultRow> = event.race_results(race_id).collect();
    rows.sort_by_key(|r| {
        (
            r.rnk.is_none(),
            r.rnk.unwrap_or(i32::MAX),
            r.start_order.unwrap_or(i32::MAX),
            r.bib.unwrap_or(u32::MAX),
        )
    });
    let list: Vec<Value> = rows
        .into_iter()
        .map(|r| {
            let p = event.participants.get(&r.participant_id);
            let mut o = Map::new();
            o.insert("raceId".into(), json!(race_id));
            o.insert("id".into(), json!(r.participant_id));
            o.insert("startOrder".into(), json!(r.start_order));
            o.insert("bib".into(), json!(r.bib.map(|b| b.to_string())));
            o.insert("startTime".into(), json!(r.start_time));
            o.insert("status".into(), json!(r.status.clone().unwrap_or_default()));
            let (mut pen, mut total) = (r.pen_s, r.total_ms);
            if let Some((br1, _)) = &pair {
                let first = event.result(br1, &r.participant_id);
                let c = best_run::combine(&r.participant_id, first, Some(r));
                (pen, total) = (c.br2_pen_s, c.br2_total_ms);
                if let Some(f) = first {
                    put(&mut o, "prevTime", f.time_ms.map(Value::from));
                    put(&mut o, "prevPen", f.pen_s.map(Value::from));
                    put(&mut o, "prevTotal", f.total_ms.map(Value::from));
                    put(&mut o, "prevRank", f.rnk.map(Value::from));
                }
            }
            put(&mut o, "time", r.time_ms.map(Value::from));
            o.insert("pen".into(), json!(pen));
            put(&mut o, "total", total.map(Value::from));
            put(&mut o, "rank", r.rnk.map(Value::from));
            put(&mut o, "catRank", r.cat_rnk.map(Value::from));
            o.insert("gates".into(), json!(wire::gates_fixed(&r.gates.0)));
            o.insert("participant".into(), participant(p, r));
            Value::Object(o)
        })
        .collect();
    Some(json!({ "results": list }))
}

fn run(row: Option<&ResultRow>, pen: Option<i64>, total: Option<i64>) -> Value {
    let mut o = Map::new();
    if let Some(r) = row {
        put(&mut o, "time", r.time_ms.map(Value::from));
        put(&mut o, "pen", pen.map(Value::from));
        put(&mut o, "total", total.map(Value::from));
        put(&mut o, "rank", r.rnk.map(Value::from));
        put(&mut o, "status", r.status.clone().map(Value::from));
    }
    Value::Object(o)
}

/// `GET /api/xml/races/{id}/results?merged=true`: both runs of the race's best-run pair per
/// athlete, in overall order. `bestTotal`/`bestRank` are `model::best_run`'s (the phones'
/// `totalTotal` and rank). A run not done is `{}`. A race outside a best-run pair has no
/// merged rows (c123-server's answer too). `None`: no such race.
pub fn merged_results(event: &Event, race_id: &str) -> Option<Value> {
    let race: &Race = event.races.get(race_id)?;
    let list: Vec<Value> = match best_run_pair(race) {
        None => Vec::new(),
        Some((br1, br2)) => best_run::rank_pair(event, &br1, &br2)
            .into_iter()
            .map(|ranked| {
                let c = &ranked.combined;
                let p = event.participants.get(c.participant_id);
                let any = c.br2.or(c.br1);
                let mut o = Map::new();
                o.insert(
                    "bib".into(),
                    json!(any.and_then(|r| r.bib).map(|b| b.to_string())),
                );
                o.insert("participantId".into(), json!(c.participant_id));
                o.insert(
                    "familyName".into(),
                    json!(p.map(|p| p.family_name.clone()).unwrap_or_default()),
                );
                o.insert(
                    "givenName".into(),
                    json!(p.and_then(|p| p.given_name.clone()).unwrap_or_default()),
                );
                put(
                    &mut o,
                    "familyName2",
                    p.and_then(|p| p.family_name2.clone()).map(Value::from),
                );
                put(
                    &mut o,
                    "givenName2",
                    p.and_then(|p| p.given_name2.clone()).map(Value::from),
                );
                o.insert(
                    "club".into(),
                    json!(p.and_then(|p| p.club.clone()).unwrap_or_default()),
                );
                let r1 = c.br1;
                o.insert(
                    "run1".into(),
                    run(r1, r1.and_then(|r| r.pen_s), r1.and_then(|r| r.total_ms)),
                );
                o.insert("run2".into(), run(c.br2, c.br2_pen_s, c.br2_total_ms));
                put(&mut o, "bestTotal", c.total_total_ms.map(Value::from));
                put(&mut o, "bestRank", ranked.overall.rnk.map(Value::from));
                Value::Object(o)
            })
            .collect(),
    };
    Some(json!({ "results": list, "merged": true, "classId": race.class_id }))
}
