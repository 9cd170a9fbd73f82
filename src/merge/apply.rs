//! Pure state transitions: old event + input → new event. No I/O here; the loop commits the
//! difference and publishes it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::ResultUpdate;
use crate::model::ranking::rank_race;
use crate::model::{
    Class, Course, Event, EventConfig, EventHeader, EventStatus, MergeStrategy, Participant, Race,
    RaceResults, ResultRow, TcpFields,
};
use crate::xml::Export;

/// Replaces `slot` with `new` only when the content differs, so an unchanged table keeps its
/// allocation (and the store's delta writer skips it by pointer).
fn set_if_changed<T: PartialEq>(slot: &mut Arc<T>, new: T) {
    if **slot != new {
        *slot = Arc::new(new);
    }
}

/// Merges a full export into an event. The export is authoritative for structure: what it
/// does not contain is removed. Result fields follow `strategy`.
pub fn merge_export(event: &mut Event, export: &Export, strategy: MergeStrategy) {
    merge_header(&mut event.header, export);

    let classes: BTreeMap<String, Class> = export
        .classes
        .iter()
        .map(|c| (c.class_id.clone(), c.clone()))
        .collect();
    set_if_changed(&mut event.classes, classes);
    let participants: BTreeMap<String, Participant> = export
        .participants
        .iter()
        .map(|p| (p.id.clone(), p.clone()))
        .collect();
    set_if_changed(&mut event.participants, participants);
    let races: BTreeMap<String, Race> = export
        .races
        .iter()
        .map(|r| (r.race_id.clone(), r.clone()))
        .collect();
    set_if_changed(&mut event.races, races);
    let courses: BTreeMap<i32, Course> = export
        .courses
        .iter()
        .map(|c| (c.course_nr, c.clone()))
        .collect();
    set_if_changed(&mut event.courses, courses);

    merge_results(event, export, strategy);
}

/// The export's identity and metadata into the header: it fills in, never blanks.
fn merge_header(h: &mut EventHeader, export: &Export) {
    h.xml_event_id = Some(export.event.event_id.clone());
    let m = &export.event.meta;
    if h.meta.main_title.is_empty() {
        h.meta.main_title = m.main_title.clone();
    }
    // The export fills in what it knows; it never blanks what an operator entered, and the
    // API key's validity does not depend on these dates (see http::auth).
    for (slot, value) in [
        (&mut h.meta.sub_title, &m.sub_title),
        (&mut h.meta.location, &m.location),
        (&mut h.meta.facility, &m.facility),
        (&mut h.meta.start_date, &m.start_date),
        (&mut h.meta.end_date, &m.end_date),
        (&mut h.meta.discipline, &m.discipline),
    ] {
        if value.is_some() {
            slot.clone_from(value);
        }
    }
    h.has_xml_data = true;
}

/// The export's results, per race that still exists; under `tcp-wins` the fields TCP set
/// are kept. A race whose rows did not change keeps its allocation.
fn merge_results(event: &mut Event, export: &Export, strategy: MergeStrategy) {
    let mut incoming: BTreeMap<&str, BTreeMap<String, ResultRow>> = BTreeMap::new();
    for row in &export.results {
        if event.races.contains_key(&row.race_id)
            && event.participants.contains_key(&row.participant_id)
        {
            incoming
                .entry(row.race_id.as_str())
                .or_default()
                .insert(row.participant_id.clone(), row.clone());
        }
    }
    let old_results = std::mem::take(&mut event.results);
    for race_id in event.races.keys() {
        let old = old_results.get(race_id);
        let mut rows = incoming.remove(race_id.as_str()).unwrap_or_default();
        let mut tcp_touched = false;
        if strategy == MergeStrategy::TcpWins {
            for (pid, row) in rows.iter_mut() {
                if let Some(prev) = old.and_then(|o| o.get(pid)) {
                    keep_tcp_fields(row, prev);
                    tcp_touched |= !row.tcp_fields.is_empty();
                }
            }
        }
        if tcp_touched {
            // Kept TCP values may change the order the export ranked.
            rank_race(&mut rows, &event.participants);
        }
        if rows.is_empty() {
            continue;
        }
        match old {
            Some(o) if **o == rows => {
                event.results.insert(race_id.clone(), Arc::clone(o));
            }
            _ => {
                event.results.insert(race_id.clone(), Arc::new(rows));
            }
        }
    }
}

/// Under `tcp-wins`, a field TCP set keeps its value until an export carries the same value
/// (the export has caught up; from then on it is authoritative again).
fn keep_tcp_fields(row: &mut ResultRow, prev: &ResultRow) {
    let mut mask = TcpFields::default();
    macro_rules! keep {
        ($bit:expr, $($field:ident),+) => {
            if prev.tcp_fields.has($bit) {
                if $(row.$field != prev.$field)||+ {
                    $(row.$field = prev.$field.clone();)+
                    mask = mask.with($bit);
                }
            }
        };
    }
    keep!(TcpFields::TIME, time_ms);
    keep!(TcpFields::PEN, pen_s);
    keep!(TcpFields::TOTAL, total_ms);
    keep!(TcpFields::STATUS, status);
    keep!(TcpFields::GATES, gates);
    keep!(TcpFields::DT_START, dt_start);
    keep!(TcpFields::DT_FINISH, dt_finish);
    row.tcp_fields = mask;
}

/// Applies live result updates. Returns (updated, ignored because unknown).
pub fn apply_results(event: &mut Event, updates: &[ResultUpdate]) -> (usize, usize) {
    let mut updated = 0;
    let mut unknown = 0;
    let mut touched: BTreeSet<String> = BTreeSet::new();
    for u in updates {
        if !event.races.contains_key(&u.race_id)
            || !event.participants.contains_key(&u.participant_id)
        {
            unknown += 1;
            continue;
        }
        let race_rows = event.results.entry(u.race_id.clone()).or_default();
        let rows = Arc::make_mut(race_rows);
        let row = rows
            .entry(u.participant_id.clone())
            .or_insert_with(|| ResultRow {
                race_id: u.race_id.clone(),
                participant_id: u.participant_id.clone(),
                ..ResultRow::default()
            });
        apply_update(row, u);
        updated += 1;
        touched.insert(u.race_id.clone());
    }
    for race_id in touched {
        if let Some(rows) = event.results.get_mut(&race_id) {
            rank_race(Arc::make_mut(rows), &event.participants);
        }
    }
    (updated, unknown)
}

fn apply_update(row: &mut ResultRow, u: &ResultUpdate) {
    if u.bib.is_some() && row.bib != u.bib {
        row.bib = u.bib;
    }
    // A value equal to the stored one is no news: it neither rewrites the row nor marks the
    // field as TCP's (Results frames repeat every table every 20-40 s).
    macro_rules! set {
        ($src:ident, $field:ident, $bit:expr) => {
            if let Some(v) = &u.$src {
                if row.$field != *v {
                    row.$field = v.clone();
                    row.tcp_fields = row.tcp_fields.with($bit);
                }
            }
        };
    }
    set!(time_ms, time_ms, TcpFields::TIME);
    set!(pen_s, pen_s, TcpFields::PEN);
    set!(total_ms, total_ms, TcpFields::TOTAL);
    set!(status, status, TcpFields::STATUS);
    set!(dt_start, dt_start, TcpFields::DT_START);
    set!(dt_finish, dt_finish, TcpFields::DT_FINISH);
    if let Some(g) = &u.gates {
        if row.gates != *g {
            row.gates = g.clone();
            row.tcp_fields = row.tcp_fields.with(TcpFields::GATES);
        }
    }
}

/// Restores the previous allocation of every race whose rows are equal to it, so that
/// pointer comparison means "unchanged" downstream.
pub fn reuse_unchanged(old: &Event, new: &mut Event) {
    for (race_id, rows) in new.results.iter_mut() {
        if let Some(o) = old.results.get(race_id) {
            if !Arc::ptr_eq(o, rows) && **o == **rows {
                *rows = Arc::clone(o);
            }
        }
    }
    if !Arc::ptr_eq(&old.oncourse, &new.oncourse) && old.oncourse == new.oncourse {
        new.oncourse = Arc::clone(&old.oncourse);
    }
}

/// The kinds of data the state guard knows (live-mini's table, plus the TCP stream). The
/// names are the ones error messages carry (`Data type 'json_results' not accepted …`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataKind {
    /// An XML export (ingest route or folder watcher).
    Xml,
    /// A `PATCH .../config` body that changes more than the merge strategy.
    Config,
    /// `POST /api/v1/ingest/oncourse`.
    JsonOncourse,
    /// `POST /api/v1/ingest/results`.
    JsonResults,
    /// The Canoe123 TCP stream.
    Tcp,
}

impl DataKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DataKind::Xml => "xml",
            DataKind::Config => "config",
            DataKind::JsonOncourse => "json_oncourse",
            DataKind::JsonResults => "json_results",
            DataKind::Tcp => "tcp",
        }
    }
}

impl std::fmt::Display for DataKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which data may arrive in which state (live-mini's table; the TCP stream is refused only
/// once results are official).
pub fn ingest_allowed(status: EventStatus, data: DataKind) -> bool {
    use EventStatus::*;
    match data {
        DataKind::Xml | DataKind::Tcp => status != Official,
        DataKind::Config => status == Draft,
        DataKind::JsonOncourse => status == Running,
        DataKind::JsonResults => matches!(status, Running | Finished),
    }
}

/// May `patch` (a `PATCH .../config` body) be applied in `status`? The merge strategy alone may
/// change in every state but official (operators switch it mid-event, when they see the export
/// and TCP disagree); the other settings follow live-mini's table (draft only). A patch that
/// names any other field obeys the stricter rule as a whole.
pub fn config_patch_allowed(status: EventStatus, patch: &EventConfig) -> bool {
    let only_strategy = patch.active_race_id.is_none()
        && patch.display_mode.is_none()
        && patch.show_on_course.is_none();
    if only_strategy {
        status != EventStatus::Official
    } else {
        ingest_allowed(status, DataKind::Config)
    }
}

/// `config` with the fields `patch` names replaced (an omitted field is kept).
pub fn patch_config(config: &EventConfig, patch: EventConfig) -> EventConfig {
    let mut config = config.clone();
    if patch.active_race_id.is_some() {
        config.active_race_id = patch.active_race_id;
    }
    if patch.display_mode.is_some() {
        config.display_mode = patch.display_mode;
    }
    if patch.show_on_course.is_some() {
        config.show_on_course = patch.show_on_course;
    }
    if patch.merge_strategy.is_some() {
        config.merge_strategy = patch.merge_strategy;
    }
    config
}

/// `(race_id, participant_id)`.
pub type RowKey = (String, String);

/// The (race, participant) keys whose rows differ between two versions of an event.
pub fn changed_results(old: &Event, new: &Event) -> (Vec<RowKey>, Vec<RowKey>) {
    let mut changed = Vec::new();
    let mut removed = Vec::new();
    let empty = RaceResults::new();
    let races: BTreeSet<&String> = old.results.keys().chain(new.results.keys()).collect();
    for race in races {
        let a = old.results.get(race);
        let b = new.results.get(race);
        if let (Some(a), Some(b)) = (a, b) {
            if Arc::ptr_eq(a, b) {
                continue;
            }
        }
        let a = a.map(|x| &**x).unwrap_or(&empty);
        let b = b.map(|x| &**x).unwrap_or(&empty);
        for (pid, row) in b {
            if a.get(pid) != Some(row) {
                changed.push((race.clone(), pid.clone()));
            }
        }
        for pid in a.keys() {
            if !b.contains_key(pid) {
                removed.push((race.clone(), pid.clone()));
            }
        }
    }
    (changed, removed)
}
