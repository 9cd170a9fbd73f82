//! Row mapping from the tables back into the domain model (the writer is `super::write`).

use std::collections::BTreeMap;
use std::sync::Arc;

use rusqlite::{Connection, Row as SqlRow};

use super::{SkippedRow, SkippedRows, StoreError};
use crate::model::{
    Category, Class, Course, Event, EventConfig, EventHeader, EventImage, EventMeta, EventStatus,
    Gates, KeyDates, Participant, Race, ResultRow, TcpFields,
};

/// Reads every event header. An unreadable status or config is reported in `skipped` and
/// replaced (draft, default config) so that the event still loads; the schema (STRICT, the
/// status CHECK) makes anything else unreadable impossible short of editing the schema.
pub(super) fn load_headers(
    conn: &Connection,
    skipped: &mut SkippedRows,
) -> Result<Vec<EventHeader>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT id, event_id, xml_event_id, main_title, sub_title, location, facility, start_date,
                end_date, discipline, status, status_changed_at, api_key, config, image, image_type,
                has_xml_data, seq, created_at, key_start_date, key_end_date
         FROM events ORDER BY id",
    )?;
    let rows = stmt.query_map([], |r| {
        let status: String = r.get(10)?;
        let config: String = r.get(13)?;
        let image: Option<Vec<u8>> = r.get(14)?;
        let image_type: Option<String> = r.get(15)?;
        Ok((
            EventHeader {
                id: r.get(0)?,
                event_id: r.get(1)?,
                xml_event_id: r.get(2)?,
                meta: EventMeta {
                    main_title: r.get(3)?,
                    sub_title: r.get(4)?,
                    location: r.get(5)?,
                    facility: r.get(6)?,
                    start_date: r.get(7)?,
                    end_date: r.get(8)?,
                    discipline: r.get(9)?,
                },
                status: EventStatus::Draft,
                status_changed_at: r.get(11)?,
                api_key: r.get(12)?,
                config: EventConfig::default(),
                image: image.map(|bytes| EventImage {
                    content_type: image_type.unwrap_or_else(|| "image/png".into()),
                    bytes: Arc::new(bytes),
                }),
                has_xml_data: r.get(16)?,
                key_dates: KeyDates {
                    start_date: r.get(19)?,
                    end_date: r.get(20)?,
                },
                seq: r.get::<_, i64>(17)? as u64,
                created_at: r.get(18)?,
            },
            status,
            config,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (mut header, status, config) = row?;
        match status.parse() {
            Ok(s) => header.status = s,
            Err(e) => skipped.push(SkippedRow {
                event_id: header.event_id.clone(),
                table: "events",
                key: "status".into(),
                reason: format!("{e}; loaded as draft"),
            }),
        }
        match serde_json::from_str(&config) {
            Ok(c) => header.config = c,
            Err(e) => skipped.push(SkippedRow {
                event_id: header.event_id.clone(),
                table: "events",
                key: "config".into(),
                reason: format!("config: {e}; the defaults apply"),
            }),
        }
        out.push(header);
    }
    Ok(out)
}

/// The key columns of a row, for the skipped-row report (`?` where even a key is unreadable).
fn key_of(r: &SqlRow<'_>, columns: &[usize]) -> String {
    columns
        .iter()
        .map(|&i| r.get::<_, String>(i).unwrap_or_else(|_| "?".into()))
        .collect::<Vec<_>>()
        .join(" / ")
}

/// Loads the content of one event. A row that cannot be read (a value this program cannot
/// decode) is skipped and reported in `skipped`, never fatal: one bad row must not stop the
/// daemon from serving everything else. Only a failure of SQLite itself is an error.
///
/// Long (~95 lines) on purpose: one table after another in one read transaction, in the
/// order their foreign keys need.
pub fn load_event_content(
    conn: &Connection,
    header: EventHeader,
    skipped: &mut SkippedRows,
) -> Result<Event, StoreError> {
    // Long by content only: one `read_rows` per table, parents first, each with its SQL.
    let id = header.id;
    let event_id = header.event_id.clone();
    let mut event = Event::new(header);
    let mut skip = |table: &'static str, key: String, reason: String| {
        skipped.push(SkippedRow {
            event_id: event_id.clone(),
            table,
            key,
            reason,
        });
    };

    let classes = read_rows(
        conn,
        "SELECT class_id, name, long_title, categories FROM classes WHERE event_id = ?1",
        id,
        ("classes", &mut skip),
        class_from_sql,
        |r| key_of(r, &[0]),
    )?;
    event.classes = Arc::new(
        classes
            .into_iter()
            .map(|c| (c.class_id.clone(), c))
            .collect(),
    );

    let participants = read_rows(
        conn,
        "SELECT participant_id, class_id, event_bib, icf_id, family_name, given_name, icf_id2,
                family_name2, given_name2, club, noc, cat_id, ranking, year, is_team, members
         FROM participants WHERE event_id = ?1",
        id,
        ("participants", &mut skip),
        participant_from_sql,
        |r| key_of(r, &[0]),
    )?;
    event.participants = Arc::new(
        participants
            .into_iter()
            .map(|p| (p.id.clone(), p))
            .collect(),
    );

    let races = read_rows(
        conn,
        "SELECT race_id, class_id, dis_id, race_order, start_time, start_interval, course_nr,
                race_status, title
         FROM races WHERE event_id = ?1",
        id,
        ("races", &mut skip),
        |r| race_from_sql(r).map_err(|e| e.to_string()),
        |r| key_of(r, &[0]),
    )?;
    event.races = Arc::new(races.into_iter().map(|r| (r.race_id.clone(), r)).collect());

    let courses = read_rows(
        conn,
        "SELECT course_nr, config FROM courses WHERE event_id = ?1",
        id,
        ("courses", &mut skip),
        |r| course_from_sql(r).map_err(|e| e.to_string()),
        |r| {
            r.get::<_, i64>(0)
                .map(|n| n.to_string())
                .unwrap_or_else(|_| "?".into())
        },
    )?;
    event.courses = Arc::new(courses.into_iter().map(|c| (c.course_nr, c)).collect());

    let rows = read_rows(
        conn,
        &format!("SELECT {RESULT_COLUMNS} FROM results WHERE event_id = ?1"),
        id,
        ("results", &mut skip),
        result_from_sql,
        |r| key_of(r, &[0, 1]),
    )?;
    let mut results: BTreeMap<String, BTreeMap<String, ResultRow>> = BTreeMap::new();
    for row in rows {
        results
            .entry(row.race_id.clone())
            .or_default()
            .insert(row.participant_id.clone(), row);
    }
    event.results = results
        .into_iter()
        .map(|(race, rows)| (race, Arc::new(rows)))
        .collect();
    Ok(event)
}

/// Where an unreadable row is reported: its table, and the callback that records it.
type SkipTo<'a> = (
    &'static str,
    &'a mut dyn FnMut(&'static str, String, String),
);

/// Runs `sql` (its `?1` is the event's row id) and returns every row `read` can decode, in
/// the order read; each other one goes to the skip callback under its `key`.
fn read_rows<T>(
    conn: &Connection,
    sql: &str,
    id: i64,
    (table, skip): SkipTo<'_>,
    read: impl Fn(&SqlRow<'_>) -> Result<T, String>,
    key: impl Fn(&SqlRow<'_>) -> String,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = conn.prepare(sql)?;
    let mut rows = stmt.query([id])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        match read(r) {
            Ok(v) => out.push(v),
            Err(reason) => skip(table, key(r), reason),
        }
    }
    Ok(out)
}

fn race_from_sql(r: &SqlRow<'_>) -> Result<Race, rusqlite::Error> {
    Ok(Race {
        race_id: r.get(0)?,
        class_id: r.get(1)?,
        dis_id: r.get(2)?,
        race_order: r.get(3)?,
        start_time: r.get(4)?,
        start_interval: r.get(5)?,
        course_nr: r.get(6)?,
        race_status: r.get(7)?,
        title: r.get(8)?,
    })
}

fn course_from_sql(r: &SqlRow<'_>) -> Result<Course, rusqlite::Error> {
    Ok(Course {
        course_nr: r.get(0)?,
        config: r.get(1)?,
    })
}

fn class_from_sql(r: &SqlRow<'_>) -> Result<Class, String> {
    let class_id: String = r.get(0).map_err(|e| e.to_string())?;
    let cats: String = r.get(3).map_err(|e| e.to_string())?;
    let categories: Vec<Category> =
        serde_json::from_str(&cats).map_err(|e| format!("categories: {e}"))?;
    Ok(Class {
        class_id,
        name: r.get(1).map_err(|e| e.to_string())?,
        long_title: r.get(2).map_err(|e| e.to_string())?,
        categories,
    })
}

fn participant_from_sql(r: &SqlRow<'_>) -> Result<Participant, String> {
    let p = (|| {
        Ok::<_, rusqlite::Error>(Participant {
            id: r.get(0)?,
            class_id: r.get(1)?,
            event_bib: r.get(2)?,
            icf_id: r.get(3)?,
            family_name: r.get(4)?,
            given_name: r.get(5)?,
            icf_id2: r.get(6)?,
            family_name2: r.get(7)?,
            given_name2: r.get(8)?,
            club: r.get(9)?,
            noc: r.get(10)?,
            cat_id: r.get(11)?,
            ranking: r.get(12)?,
            year: r.get(13)?,
            is_team: r.get(14)?,
            members: Vec::new(),
        })
    })()
    .map_err(|e| e.to_string())?;
    let members: String = r.get(15).map_err(|e| e.to_string())?;
    let members = serde_json::from_str(&members).map_err(|e| format!("members: {e}"))?;
    Ok(Participant { members, ..p })
}

const RESULT_COLUMNS: &str = "race_id, participant_id, bib, start_order, start_time, status,
    dt_start, dt_finish, time_ms, pen_s, total_ms, gates, rnk, rnk_order, cat_rnk, cat_rnk_order,
    total_behind, cat_total_behind, prev_status, prev_time_ms, prev_pen_s, prev_total_ms,
    prev_rnk, total_total_ms, total_rnk, better_run_nr, heat_nr, round_nr, qualified, tcp_fields,
    gates_json";

fn result_from_sql(r: &SqlRow<'_>) -> Result<ResultRow, String> {
    // `gates_json` (migration 3) is the stored form; a row written before it has NULL there
    // and its gates in the old fixed-width column.
    let gates_json: Option<String> = r.get(30).map_err(|e| e.to_string())?;
    let gates = match gates_json {
        Some(json) => Gates::from_stored(&json)?,
        None => {
            let fixed: String = r.get(11).map_err(|e| e.to_string())?;
            Gates::parse_fixed(&fixed).map_err(|e| format!("gates '{fixed}': {e}"))?
        }
    };
    row_from_sql(r, gates).map_err(|e| e.to_string())
}

fn row_from_sql(r: &SqlRow<'_>, gates: Gates) -> Result<ResultRow, rusqlite::Error> {
    Ok(ResultRow {
        race_id: r.get(0)?,
        participant_id: r.get(1)?,
        bib: r.get(2)?,
        start_order: r.get(3)?,
        start_time: r.get(4)?,
        status: r.get(5)?,
        dt_start: r.get(6)?,
        dt_finish: r.get(7)?,
        time_ms: r.get(8)?,
        pen_s: r.get(9)?,
        total_ms: r.get(10)?,
        gates,
        rnk: r.get(12)?,
        rnk_order: r.get(13)?,
        cat_rnk: r.get(14)?,
        cat_rnk_order: r.get(15)?,
        total_behind: r.get(16)?,
        cat_total_behind: r.get(17)?,
        prev_status: r.get(18)?,
        prev_time_ms: r.get(19)?,
        prev_pen_s: r.get(20)?,
        prev_total_ms: r.get(21)?,
        prev_rnk: r.get(22)?,
        total_total_ms: r.get(23)?,
        total_rnk: r.get(24)?,
        better_run_nr: r.get(25)?,
        heat_nr: r.get(26)?,
        round_nr: r.get(27)?,
        qualified: r.get(28)?,
        tcp_fields: TcpFields(r.get::<_, u32>(29)?),
    })
}
