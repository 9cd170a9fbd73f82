//! What one committed change means for the spectators of one event: pure functions from
//! (old event, new event, change) to one message, serialized once.
//!
//! The JSON of every message body comes from the public wire builders (`crate::api`) through
//! the [`WireBuilder`] boundary; this module only decides *which* data goes into a message and
//! wraps it in the envelope (`type`, `seq`, `epoch`, `data`).

use std::collections::{BTreeMap, BTreeSet};

use hyper_tungstenite::tungstenite::Utf8Bytes;
use serde_json::{json, Map, Value};

use crate::merge::EventChange;
use crate::model::{Event, EventStatus, Race};

/// The public wire form of the data a message carries. Implemented over [`crate::api`], the one
/// place where the domain model becomes public JSON (centiseconds, field names).
pub trait WireBuilder: Send + Sync + 'static {
    /// `{event, classes, races, categories}`: the `data` of a `full` message (and of the REST
    /// event detail). An event without XML data has empty arrays.
    fn event_detail(&self, event: &Event) -> Value;
    /// The public rows of one race as the REST results endpoint lists them without `catId`
    /// and without detail fields; for a best-run race the combined BR1+BR2 rows. `None` when
    /// the race does not exist.
    fn race_results(&self, event: &Event, race_id: &str) -> Option<Vec<Value>>;
    /// The event's whole current on-course list (`[{raceId, bib, …}]`).
    fn oncourse(&self, event: &Event) -> Value;
}

/// What to send to a room for one committed change of its event.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// A `diff`: one `data` object per frame, every frame with the change's `seq`. One frame
    /// per race id whose rows changed (both ids of a best-run pair get the same rows), as the
    /// live-mini page applies a diff to its `raceId` alone; `status` and `oncourse` ride in
    /// the first frame. One `{}` frame when nothing public changed (the message still goes
    /// out so that `seq` has no gap).
    Diff(Vec<Value>),
    /// A `full` built from the new state.
    Full,
    /// A `refresh`: the change cannot be expressed as upserts (rows were removed).
    Refresh,
    /// The event is gone: close the room.
    Deleted,
}

/// Why a room closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    Official,
    Deleted,
    NotPublic,
}

impl CloseReason {
    pub fn text(self) -> &'static str {
        match self {
            CloseReason::Official => "Event results are official",
            CloseReason::Deleted => "Event deleted",
            CloseReason::NotPublic => "Event not found or not publicly available",
        }
    }
}

/// Decides what one [`EventChange`] becomes. `old` is the event as the room last saw it.
pub fn plan(
    wire: &dyn WireBuilder,
    old: Option<&Event>,
    new: Option<&Event>,
    change: &EventChange,
) -> Plan {
    let Some(new) = new else {
        return Plan::Deleted;
    };
    if change.deleted {
        return Plan::Deleted;
    }
    let Some(old) = old else {
        return Plan::Full;
    };
    if change.created || change.structure {
        return Plan::Full;
    }
    if !change.removed_results.is_empty() {
        return Plan::Refresh;
    }
    let mut head = Map::new();
    if let Some(status) = change.status {
        head.insert("status".into(), Value::String(status.as_str().into()));
    }
    if change.oncourse {
        head.insert("oncourse".into(), wire.oncourse(new));
    }
    let mut frames: Vec<Map<String, Value>> = Vec::new();
    if !change.results.is_empty() {
        for group in result_groups(new, change) {
            let rows = changed_rows(wire, old, new, &group.primary);
            if rows.is_empty() {
                continue;
            }
            for id in &group.ids {
                let mut frame = Map::new();
                frame.insert("raceId".into(), Value::String(id.clone()));
                frame.insert("results".into(), Value::Array(rows.clone()));
                frames.push(frame);
            }
        }
    }
    match frames.first_mut() {
        Some(first) => first.extend(head),
        None => frames.push(head),
    }
    Plan::Diff(frames.into_iter().map(Value::Object).collect())
}

/// Races whose rows are computed together: a standard race alone, a best-run pair as one
/// group (both races list the same combined rows, so they are built once and sent once per
/// race id).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Group {
    /// The race whose rows changed (for a pair, the touched run; BR2 when both were).
    primary: String,
    /// Every race id the rows apply to, ascending.
    ids: Vec<String>,
}

fn result_groups(new: &Event, change: &EventChange) -> Vec<Group> {
    let touched: BTreeSet<&str> = change
        .results
        .iter()
        .map(|(race, _)| race.as_str())
        .collect();
    let mut groups: BTreeMap<Vec<String>, String> = BTreeMap::new();
    for race in touched {
        let is_br = new
            .races
            .get(race)
            .is_some_and(|r| r.race_type().is_best_run());
        let ids = match Race::best_run_partner(race) {
            Some((br1, br2)) if is_br => [br1, br2]
                .into_iter()
                .filter(|id| new.races.contains_key(id))
                .collect(),
            _ => vec![race.to_owned()],
        };
        // BTreeSet iteration is ascending, so for a pair the last touched is BR2.
        groups.insert(ids, race.to_owned());
    }
    groups
        .into_iter()
        .map(|(ids, primary)| Group { primary, ids })
        .collect()
}

/// The identity a client upserts by: `bib` (and `athleteId` for a row without one).
fn row_key(row: &Value) -> String {
    match (row.get("bib"), row.get("athleteId")) {
        (Some(b), _) if !b.is_null() => format!("b{b}"),
        (_, Some(a)) => format!("a{a}"),
        _ => String::new(),
    }
}

/// The public rows of `race` whose JSON differs from before (rank shifts included).
fn changed_rows(wire: &dyn WireBuilder, old: &Event, new: &Event, race: &str) -> Vec<Value> {
    let Some(new_rows) = wire.race_results(new, race) else {
        return Vec::new();
    };
    let before: BTreeMap<String, Value> = wire
        .race_results(old, race)
        .unwrap_or_default()
        .into_iter()
        .map(|r| (row_key(&r), r))
        .collect();
    new_rows
        .into_iter()
        .filter(|r| before.get(&row_key(r)) != Some(r))
        .collect()
}

fn envelope(kind: &str, seq: u64, epoch: &str, data: Option<Value>) -> Utf8Bytes {
    let mut v = json!({ "type": kind, "seq": seq, "epoch": epoch });
    if let (Some(data), Some(obj)) = (data, v.as_object_mut()) {
        obj.insert("data".into(), data);
    }
    Utf8Bytes::from(v.to_string())
}

/// `{"type":"full","seq","epoch","data":{event,classes,races,categories,…}}`.
pub fn full_message(wire: &dyn WireBuilder, event: &Event, epoch: &str) -> Utf8Bytes {
    envelope(
        "full",
        event.header.seq,
        epoch,
        Some(wire.event_detail(event)),
    )
}

/// The frames of one `diff`: `{"type":"diff","seq","epoch","data"}` each; when there are
/// several, each also carries `"part"` (1-based) and `"parts"`, so a client knows when the
/// change `seq` is complete (it resumes with `since` = the last complete `seq`).
pub fn diff_frames(seq: u64, epoch: &str, frames: Vec<Value>) -> Vec<Utf8Bytes> {
    let parts = frames.len();
    frames
        .into_iter()
        .enumerate()
        .map(|(i, data)| {
            if parts == 1 {
                return envelope("diff", seq, epoch, Some(data));
            }
            let v = json!({ "type": "diff", "seq": seq, "epoch": epoch, "part": i + 1,
                            "parts": parts, "data": data });
            Utf8Bytes::from(v.to_string())
        })
        .collect()
}

/// The diff of a change whose effect the hub folded into a later message because it was
/// behind (`"superseded":true`, empty `data`): it keeps `seq` without gaps.
pub fn superseded_message(seq: u64, epoch: &str) -> Utf8Bytes {
    let v = json!({ "type": "diff", "seq": seq, "epoch": epoch, "superseded": true,
                    "data": {} });
    Utf8Bytes::from(v.to_string())
}

pub fn refresh_message(seq: u64, epoch: &str) -> Utf8Bytes {
    envelope("refresh", seq, epoch, None)
}

/// Whether spectators may connect to an event in this state, and why not.
pub fn admission(status: EventStatus) -> Result<(), CloseReason> {
    match status {
        EventStatus::Draft => Err(CloseReason::NotPublic),
        EventStatus::Official => Err(CloseReason::Official),
        _ => Ok(()),
    }
}

/// The production [`WireBuilder`]: the public builders of [`crate::api`], the same functions
/// the REST endpoints serve, so a `full`/`diff` carries exactly the REST shapes.
#[derive(Debug, Clone, Copy, Default)]
pub struct PublicWire;

impl WireBuilder for PublicWire {
    fn event_detail(&self, event: &Event) -> Value {
        serde_json::to_value(crate::api::event_detail(event)).unwrap_or(Value::Null)
    }

    fn race_results(&self, event: &Event, race_id: &str) -> Option<Vec<Value>> {
        let rows = crate::api::race_result_rows(event, race_id, false)?;
        Some(
            rows.into_iter()
                .filter_map(|(_, row)| serde_json::to_value(row).ok())
                .collect(),
        )
    }

    fn oncourse(&self, event: &Event) -> Value {
        serde_json::to_value(crate::api::oncourse(event)).unwrap_or(Value::Array(Vec::new()))
    }
}
