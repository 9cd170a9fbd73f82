//! The delta writer: an event's header and the rows of its content that changed, table by
//! table.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::Arc;

use rusqlite::{params, Transaction};

use super::StoreError;
use crate::model::{Event, EventHeader, ResultRow, Source};

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

/// Writes the content of `new` that differs from `old` (everything when `old` is `None`).
/// A table is visited only when its map is a different allocation (copy on write).
pub(super) fn write_content(
    tx: &Transaction<'_>,
    old: Option<&Event>,
    new: &Event,
    now: &str,
    stats: &mut WriteStats,
) -> Result<(), StoreError> {
    let id = new.header.id;
    let n = Cell::new(0usize);

    // Deletions that cascade to results run first, then upserts parents before children.
    if old.is_none_or(|o| !Arc::ptr_eq(&o.races, &new.races)) {
        write_races(tx, id, old, new, &n)?;
    }
    if old.is_none_or(|o| !Arc::ptr_eq(&o.participants, &new.participants)) {
        write_participants(tx, id, old, new, &n)?;
    }
    if old.is_none_or(|o| !Arc::ptr_eq(&o.classes, &new.classes)) {
        write_classes(tx, id, old, new, &n)?;
    }
    if old.is_none_or(|o| !Arc::ptr_eq(&o.courses, &new.courses)) {
        write_courses(tx, id, old, new, &n)?;
    }
    write_results(tx, id, old, new, now, &n)?;
    stats.rows += n.get();
    Ok(())
}

/// `races`: upserts, and deletes (which cascade to their results).
fn write_races(
    tx: &Transaction<'_>,
    id: i64,
    old: Option<&Event>,
    new: &Event,
    n: &Cell<usize>,
) -> Result<(), StoreError> {
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
    Ok(())
}

/// `participants`: upserts, and one delete for the whole removed set (cascading).
fn write_participants(
    tx: &Transaction<'_>,
    id: i64,
    old: Option<&Event>,
    new: &Event,
    n: &Cell<usize>,
) -> Result<(), StoreError> {
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
    Ok(())
}

/// `classes`.
fn write_classes(
    tx: &Transaction<'_>,
    id: i64,
    old: Option<&Event>,
    new: &Event,
    n: &Cell<usize>,
) -> Result<(), StoreError> {
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
    Ok(())
}

/// `courses`.
fn write_courses(
    tx: &Transaction<'_>,
    id: i64,
    old: Option<&Event>,
    new: &Event,
    n: &Cell<usize>,
) -> Result<(), StoreError> {
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
    Ok(())
}

/// `results` of the races whose row map is a different allocation (only those can have
/// changed); rows of a deleted race or participant went with it.
fn write_results(
    tx: &Transaction<'_>,
    id: i64,
    old: Option<&Event>,
    new: &Event,
    now: &str,
    n: &Cell<usize>,
) -> Result<(), StoreError> {
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
