//! Row mapping between the domain model and the tables, and the delta writer.

use std::collections::BTreeMap;
use std::sync::Arc;

use rusqlite::{params, Connection, Row as SqlRow, Transaction};

use super::{SkippedRow, SkippedRows, StoreError};
use crate::model::{
    Category, Class, Course, Event, EventConfig, EventHeader, EventImage, EventMeta, EventStatus,
    Gates, KeyDates, Participant, Race, ResultRow, Source, TcpFields,
};

/// What one commit wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Rows inserted, updated or deleted.
    pub rows: usize,
}

pub(super) fn upsert_header(tx: &Transaction<'_>, h: &EventHeader) -> Result<(), StoreError> {
    let config = serde_json::to_string(&h.config)
        .map_err(|e| StoreError::Corrupt(format!("event config: {e}")))?;
    tx.execute(
        "INSERT INTO events (id, event_id, xml_event_id, main_title, sub_title, location, facility,
            start_date, end_date, discipline, status, status_changed_at, api_key, config, image,
            image_type, has_xml_data, seq, created_at, key_start_date, key_end_date)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19,
                 ?20, ?21)
         ON CONFLICT(id) DO UPDATE SET
            event_id = excluded.event_id, xml_event_id = excluded.xml_event_id,
            main_title = excluded.main_title, sub_title = excluded.sub_title,
            location = excluded.location, facility = excluded.facility,
            start_date = excluded.start_date, end_date = excluded.end_date,
            discipline = excluded.discipline, status = excluded.status,
            status_changed_at = excluded.status_changed_at, api_key = excluded.api_key,
            config = excluded.config, image = excluded.image, image_type = excluded.image_type,
            has_xml_data = excluded.has_xml_data, seq = excluded.seq,
            key_start_date = excluded.key_start_date, key_end_date = excluded.key_end_date",
        params![
            h.id,
            h.event_id,
            h.xml_event_id,
            h.meta.main_title,
            h.meta.sub_title,
            h.meta.location,
            h.meta.facility,
            h.meta.start_date,
            h.meta.end_date,
            h.meta.discipline,
            h.status.as_str(),
            h.status_changed_at,
            h.api_key,
            config,
            h.image.as_ref().map(|i| i.bytes.as_slice()),
            h.image.as_ref().map(|i| i.content_type.as_str()),
            h.has_xml_data,
            h.seq as i64,
            h.created_at,
            h.key_dates.start_date,
            h.key_dates.end_date,
        ],
    )?;
    Ok(())
}

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
pub fn load_event_content(
    conn: &Connection,
    header: EventHeader,
    skipped: &mut SkippedRows,
) -> Result<Event, StoreError> {
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

    let mut classes = BTreeMap::new();
    let mut stmt = conn.prepare(
        "SELECT class_id, name, long_title, categories FROM classes WHERE event_id = ?1",
    )?;
    let mut rows = stmt.query([id])?;
    while let Some(r) = rows.next()? {
        match class_from_sql(r) {
            Ok(c) => {
                classes.insert(c.class_id.clone(), c);
            }
            Err(reason) => skip("classes", key_of(r, &[0]), reason),
        }
    }
    event.classes = Arc::new(classes);

    let mut participants = BTreeMap::new();
    let mut stmt = conn.prepare(
        "SELECT participant_id, class_id, event_bib, icf_id, family_name, given_name, icf_id2,
                family_name2, given_name2, club, noc, cat_id, ranking, year, is_team, members
         FROM participants WHERE event_id = ?1",
    )?;
    let mut rows = stmt.query([id])?;
    while let Some(r) = rows.next()? {
        match participant_from_sql(r) {
            Ok(p) => {
                participants.insert(p.id.clone(), p);
            }
            Err(reason) => skip("participants", key_of(r, &[0]), reason),
        }
    }
    event.participants = Arc::new(participants);

    let mut races = BTreeMap::new();
    let mut stmt = conn.prepare(
        "SELECT race_id, class_id, dis_id, race_order, start_time, start_interval, course_nr,
                race_status, title
         FROM races WHERE event_id = ?1",
    )?;
    let mut rows = stmt.query([id])?;
    while let Some(r) = rows.next()? {
        let race = (|| {
            Ok::<_, rusqlite::Error>(Race {
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
        })();
        match race {
            Ok(race) => {
                races.insert(race.race_id.clone(), race);
            }
            Err(e) => skip("races", key_of(r, &[0]), e.to_string()),
        }
    }
    event.races = Arc::new(races);

    let mut courses = BTreeMap::new();
    let mut stmt = conn.prepare("SELECT course_nr, config FROM courses WHERE event_id = ?1")?;
    let mut rows = stmt.query([id])?;
    while let Some(r) = rows.next()? {
        let course = (|| {
            Ok::<_, rusqlite::Error>(Course {
                course_nr: r.get(0)?,
                config: r.get(1)?,
            })
        })();
        match course {
            Ok(c) => {
                courses.insert(c.course_nr, c);
            }
            Err(e) => {
                let key = r
                    .get::<_, i64>(0)
                    .map(|n| n.to_string())
                    .unwrap_or_else(|_| "?".into());
                skip("courses", key, e.to_string())
            }
        }
    }
    event.courses = Arc::new(courses);

    let mut results: BTreeMap<String, BTreeMap<String, ResultRow>> = BTreeMap::new();
    let mut stmt = conn.prepare(&format!(
        "SELECT {RESULT_COLUMNS} FROM results WHERE event_id = ?1"
    ))?;
    let mut rows = stmt.query([id])?;
    while let Some(r) = rows.next()? {
        match result_from_sql(r) {
            Ok(row) => {
                results
                    .entry(row.race_id.clone())
                    .or_default()
                    .insert(row.participant_id.clone(), row);
            }
            Err(reason) => skip("results", key_of(r, &[0, 1]), reason),
        }
    }
    event.results = results
        .into_iter()
        .map(|(race, rows)| (race, Arc::new(rows)))
        .collect();
    Ok(event)
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

/// Calls `changed` for keys whose value differs or is new, `removed` for keys gone.
fn diff_maps<K: Ord, V: PartialEq>(
    old: Option<&BTreeMap<K, V>>,
    new: &BTreeMap<K, V>,
    mut changed: impl FnMut(&V) -> Result<(), StoreError>,
    mut removed: impl FnMut(&K) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    if let Some(old) = old {
        for k in old.keys() {
            if !new.contains_key(k) {
                removed(k)?;
            }
        }
    }
    for (k, v) in new {
        if old.and_then(|o| o.get(k)) != Some(v) {
            changed(v)?;
        }
    }
    Ok(())
}

pub(super) fn write_content(
    tx: &Transaction<'_>,
    old: Option<&Event>,
    new: &Event,
    now: &str,
    stats: &mut WriteStats,
) -> Result<(), StoreError> {
    let id = new.header.id;
    let n = std::cell::Cell::new(0usize);

    // Deletions that cascade to results run first, then upserts parents before children.
    if old.is_none_or(|o| !Arc::ptr_eq(&o.races, &new.races)) {
        diff_maps(
            old.map(|o| &*o.races),
            &new.races,
            |r| {
                n.set(n.get() + 1);
                tx.execute(
                    // UPSERT, not REPLACE: REPLACE deletes the row first and would cascade.
                    "INSERT INTO races (event_id, race_id, class_id, dis_id, race_order,
                        start_time, start_interval, course_nr, race_status, title)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                     ON CONFLICT(event_id, race_id) DO UPDATE SET
                        class_id = excluded.class_id, dis_id = excluded.dis_id,
                        race_order = excluded.race_order, start_time = excluded.start_time,
                        start_interval = excluded.start_interval, course_nr = excluded.course_nr,
                        race_status = excluded.race_status, title = excluded.title",
                    params![
                        id,
                        r.race_id,
                        r.class_id,
                        r.dis_id,
                        r.race_order,
                        r.start_time,
                        r.start_interval,
                        r.course_nr,
                        r.race_status,
                        r.title
                    ],
                )
                .map(drop)
                .map_err(Into::into)
            },
            |k| {
                n.set(n.get() + 1);
                tx.execute(
                    "DELETE FROM races WHERE event_id = ?1 AND race_id = ?2",
                    params![id, k],
                )
                .map(drop)
                .map_err(Into::into)
            },
        )?;
    }
    if old.is_none_or(|o| !Arc::ptr_eq(&o.participants, &new.participants)) {
        let mut removed_participants: Vec<String> = Vec::new();
        diff_maps(
            old.map(|o| &*o.participants),
            &new.participants,
            |p| {
                n.set(n.get() + 1);
                let members = serde_json::to_string(&p.members)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                // UPSERT, not REPLACE: REPLACE would delete the row and cascade its results.
                tx.execute(
                    "INSERT INTO participants (event_id, participant_id, class_id, event_bib, icf_id,
                        family_name, given_name, icf_id2, family_name2, given_name2, club, noc,
                        cat_id, ranking, year, is_team, members)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)
                     ON CONFLICT(event_id, participant_id) DO UPDATE SET
                        class_id = excluded.class_id, event_bib = excluded.event_bib,
                        icf_id = excluded.icf_id, family_name = excluded.family_name,
                        given_name = excluded.given_name, icf_id2 = excluded.icf_id2,
                        family_name2 = excluded.family_name2, given_name2 = excluded.given_name2,
                        club = excluded.club, noc = excluded.noc, cat_id = excluded.cat_id,
                        ranking = excluded.ranking, year = excluded.year,
                        is_team = excluded.is_team, members = excluded.members",
                    params![
                        id,
                        p.id,
                        p.class_id,
                        p.event_bib,
                        p.icf_id,
                        p.family_name,
                        p.given_name,
                        p.icf_id2,
                        p.family_name2,
                        p.given_name2,
                        p.club,
                        p.noc,
                        p.cat_id,
                        p.ranking,
                        p.year,
                        p.is_team,
                        members
                    ],
                )
                .map(drop)
                .map_err(Into::into)
            },
            |k| {
                removed_participants.push(k.clone());
                Ok(())
            },
        )?;
        if !removed_participants.is_empty() {
            // One statement for the whole set (an export may drop thousands); the cascade to
            // their results uses `results_by_participant`.
            let ids = serde_json::to_string(&removed_participants)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let deleted = tx.execute(
                "DELETE FROM participants
                 WHERE event_id = ?1 AND participant_id IN (SELECT value FROM json_each(?2))",
                params![id, ids],
            )?;
            n.set(n.get() + deleted);
        }
    }
    if old.is_none_or(|o| !Arc::ptr_eq(&o.classes, &new.classes)) {
        diff_maps(
            old.map(|o| &*o.classes),
            &new.classes,
            |c| {
                n.set(n.get() + 1);
                let cats = serde_json::to_string(&c.categories)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                tx.execute(
                    "INSERT INTO classes (event_id, class_id, name, long_title, categories)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT(event_id, class_id) DO UPDATE SET name = excluded.name,
                        long_title = excluded.long_title, categories = excluded.categories",
                    params![id, c.class_id, c.name, c.long_title, cats],
                )
                .map(drop)
                .map_err(Into::into)
            },
            |k| {
                n.set(n.get() + 1);
                tx.execute(
                    "DELETE FROM classes WHERE event_id = ?1 AND class_id = ?2",
                    params![id, k],
                )
                .map(drop)
                .map_err(Into::into)
            },
        )?;
    }
    if old.is_none_or(|o| !Arc::ptr_eq(&o.courses, &new.courses)) {
        diff_maps(
            old.map(|o| &*o.courses),
            &new.courses,
            |c| {
                n.set(n.get() + 1);
                tx.execute(
                    "INSERT OR REPLACE INTO courses (event_id, course_nr, config) VALUES (?1, ?2, ?3)",
                    params![id, c.course_nr, c.config],
                )
                .map(drop)
                .map_err(Into::into)
            },
            |k| {
                n.set(n.get() + 1);
                tx.execute(
                    "DELETE FROM courses WHERE event_id = ?1 AND course_nr = ?2",
                    params![id, k],
                )
                .map(drop)
                .map_err(Into::into)
            },
        )?;
    }

    // Results: only races whose row map is a different allocation can have changed.
    let empty = BTreeMap::new();
    let mut race_ids: Vec<&String> = new.results.keys().collect();
    if let Some(o) = old {
        race_ids.extend(o.results.keys().filter(|k| !new.results.contains_key(*k)));
    }
    for race_id in race_ids {
        let old_rows = old.and_then(|o| o.results.get(race_id));
        let new_rows = new.results.get(race_id);
        if let (Some(a), Some(b)) = (old_rows, new_rows) {
            if Arc::ptr_eq(a, b) {
                continue;
            }
        }
        let race_still_exists = new.races.contains_key(race_id);
        diff_maps(
            old_rows.map(|r| &**r),
            new_rows.map(|r| &**r).unwrap_or(&empty),
            |row| {
                n.set(n.get() + 1);
                upsert_result(tx, id, row, now)
            },
            |participant_id| {
                // Rows of a deleted race or participant went with it (cascade).
                if race_still_exists && new.participants.contains_key(participant_id) {
                    n.set(n.get() + 1);
                    tx.prepare_cached(
                        "DELETE FROM results WHERE event_id = ?1 AND race_id = ?2
                            AND participant_id = ?3",
                    )?
                    .execute(params![id, race_id, participant_id])?;
                }
                Ok(())
            },
        )?;
    }
    stats.rows += n.get();
    Ok(())
}

fn upsert_result(
    tx: &Transaction<'_>,
    event: i64,
    r: &ResultRow,
    now: &str,
) -> Result<(), StoreError> {
    let source = if r.tcp_fields.is_empty() {
        Source::Xml
    } else {
        Source::Tcp
    };
    let mut stmt = tx.prepare_cached(
        "INSERT OR REPLACE INTO results (event_id, race_id, participant_id, bib, start_order,
            start_time, status, dt_start, dt_finish, time_ms, pen_s, total_ms, gates, rnk, rnk_order,
            cat_rnk, cat_rnk_order, total_behind, cat_total_behind, prev_status, prev_time_ms,
            prev_pen_s, prev_total_ms, prev_rnk, total_total_ms, total_rnk, better_run_nr, heat_nr,
            round_nr, qualified, tcp_fields, source, updated_at, gates_json)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
            ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33, ?34)",
    )?;
    stmt.execute(params![
        event,
        r.race_id,
        r.participant_id,
        r.bib,
        r.start_order,
        r.start_time,
        r.status,
        r.dt_start,
        r.dt_finish,
        r.time_ms,
        r.pen_s,
        r.total_ms,
        // The old fixed-width column stays empty; `gates_json` holds the gates.
        "",
        r.rnk,
        r.rnk_order,
        r.cat_rnk,
        r.cat_rnk_order,
        r.total_behind,
        r.cat_total_behind,
        r.prev_status,
        r.prev_time_ms,
        r.prev_pen_s,
        r.prev_total_ms,
        r.prev_rnk,
        r.total_total_ms,
        r.total_rnk,
        r.better_run_nr,
        r.heat_nr,
        r.round_nr,
        r.qualified,
        r.tcp_fields.0,
        source.as_str(),
        now,
        r.gates.to_stored(),
    ])?;
    Ok(())
}
