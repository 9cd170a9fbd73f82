//! The ingest API's request bodies (c123-server's JSON), decoded and validated into domain
//! values (ms, s). Pure: bytes in, values or a 400 naming the field out (fuzzed through the
//! `parse_*` functions).

use bytes::Bytes;
use serde::Deserialize;

use super::body::{decode, explicit};
use crate::http::error::ApiError;
use crate::merge::ResultUpdate;
use crate::model::{Gates, OnCourseEntry, MAX_RANK, MAX_RUN_PENALTY_S, MAX_TIME_MS};

/// Most items one oncourse POST may carry.
pub const MAX_ONCOURSE_ITEMS: usize = 1_000;
/// Most items one results POST may carry.
pub const MAX_RESULT_ITEMS: usize = 10_000;

#[derive(Deserialize)]
struct XmlBody {
    xml: String,
}

/// The export bytes of `POST /api/v1/ingest/xml`: the body itself (`raw`, for an XML
/// content type) or the `xml` field of a JSON object. Pure (fuzzed, then through
/// `xml::parse_export`).
pub fn parse_xml_body(body: Bytes, raw: bool) -> Result<Bytes, ApiError> {
    let xml: Bytes = if raw {
        body
    } else {
        let b: XmlBody = decode(&body)?;
        Bytes::from(b.xml.into_bytes())
    };
    if xml.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid("Missing required field: xml"));
    }
    Ok(xml)
}

#[derive(Deserialize)]
pub struct OnCourseBody {
    oncourse: Vec<OnCourseIn>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OnCourseIn {
    participant_id: String,
    race_id: String,
    bib: u32,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    club: Option<String>,
    #[serde(default)]
    position: Option<u32>,
    #[serde(default)]
    gates: Option<Vec<Option<u16>>>,
    #[serde(default)]
    dt_start: Option<String>,
    #[serde(default)]
    dt_finish: Option<String>,
    #[serde(default)]
    time: Option<u32>,
    #[serde(default)]
    pen: Option<u32>,
    #[serde(default)]
    total: Option<u32>,
    #[serde(default)]
    rank: Option<u32>,
    #[serde(default)]
    ttb_diff: Option<String>,
    #[serde(default)]
    ttb_name: Option<String>,
}

fn cs_to_ms(cs: u32) -> i64 {
    i64::from(cs) * 10
}

/// A time or total in centiseconds, refused over [`MAX_TIME_MS`] (24 h).
fn time_cs_to_ms(field: &str, cs: u32) -> Result<i64, ApiError> {
    let ms = cs_to_ms(cs);
    if ms > MAX_TIME_MS {
        return Err(ApiError::invalid(format!(
            "{field}: {cs} is over {} centiseconds (24 hours)",
            MAX_TIME_MS / 10
        )));
    }
    Ok(ms)
}

/// A rank, refused over [`MAX_RANK`].
fn check_rank(field: &str, rank: u32) -> Result<u32, ApiError> {
    if i64::from(rank) > MAX_RANK {
        return Err(ApiError::invalid(format!(
            "{field}: {rank} is over {MAX_RANK}"
        )));
    }
    Ok(rank)
}

/// One gate penalty (seconds), refused over [`Gates::MAX_PENALTY_S`].
fn check_gate_penalty(field: &str, pen: u16) -> Result<u16, ApiError> {
    Gates::check_penalty(u64::from(pen)).map_err(|e| ApiError::invalid(format!("{field}: {e}")))
}

fn pen_cs_to_s(field: &str, cs: u32) -> Result<i64, ApiError> {
    if cs % 100 != 0 {
        return Err(ApiError::invalid(format!(
            "{field}: {cs} is not whole seconds (penalties are centiseconds, multiples of 100)"
        )));
    }
    let s = i64::from(cs / 100);
    if s > MAX_RUN_PENALTY_S {
        return Err(ApiError::invalid(format!(
            "{field}: {cs} is over {} centiseconds (24 hours)",
            MAX_RUN_PENALTY_S * 100
        )));
    }
    Ok(s)
}

fn nonempty(field: &str, s: &str) -> Result<(), ApiError> {
    if s.trim().is_empty() {
        return Err(ApiError::invalid(format!("{field}: must not be empty")));
    }
    Ok(())
}

/// Refuses a string field longer than `max` characters: the bounds of the TCP parser
/// ([`crate::c123::frame::MAX_ID_CHARS`], [`crate::c123::frame::MAX_TEXT_CHARS`]).
fn bounded_len(field: &str, value: Option<&String>, max: usize) -> Result<(), ApiError> {
    match value {
        Some(v) if crate::c123::frame::longer_than(v, max) => Err(ApiError::invalid(format!(
            "{field}: longer than {max} characters"
        ))),
        _ => Ok(()),
    }
}

/// The body of `POST /api/v1/ingest/oncourse`, decoded and validated into domain entries
/// (ms, s). Pure: bytes in, entries or a 400 naming the field out (fuzzed).
pub fn parse_oncourse_body(body: &[u8]) -> Result<Vec<OnCourseEntry>, ApiError> {
    validate_oncourse(decode(body)?)
}

/// A decoded oncourse body, validated into domain entries.
pub fn validate_oncourse(b: OnCourseBody) -> Result<Vec<OnCourseEntry>, ApiError> {
    if b.oncourse.len() > MAX_ONCOURSE_ITEMS {
        return Err(ApiError::invalid(format!(
            "oncourse: {} items, at most {MAX_ONCOURSE_ITEMS} are accepted",
            b.oncourse.len()
        )));
    }
    let mut entries: Vec<OnCourseEntry> = Vec::with_capacity(b.oncourse.len());
    for (i, e) in b.oncourse.into_iter().enumerate() {
        let f = |name: &str| format!("oncourse[{i}].{name}");
        nonempty(&f("participantId"), &e.participant_id)?;
        nonempty(&f("raceId"), &e.race_id)?;
        {
            use crate::c123::frame::{MAX_ID_CHARS as ID, MAX_TEXT_CHARS as TEXT};
            for (name, value, max) in [
                ("participantId", Some(&e.participant_id), ID),
                ("raceId", Some(&e.race_id), ID),
                ("name", e.name.as_ref(), TEXT),
                ("club", e.club.as_ref(), TEXT),
                ("dtStart", e.dt_start.as_ref(), ID),
                ("dtFinish", e.dt_finish.as_ref(), ID),
                ("ttbDiff", e.ttb_diff.as_ref(), ID),
                ("ttbName", e.ttb_name.as_ref(), TEXT),
            ] {
                bounded_len(&f(name), value, max)?;
            }
        }
        if let Some(g) = &e.gates {
            Gates::check_slots(g.len())
                .map_err(|err| ApiError::invalid(format!("{}: {err}", f("gates"))))?;
            for (k, pen) in g.iter().enumerate() {
                if let Some(pen) = pen {
                    check_gate_penalty(&f(&format!("gates[{k}]")), *pen)?;
                }
            }
        }
        let pen_s = e.pen.map(|p| pen_cs_to_s(&f("pen"), p)).transpose()?;
        let time_ms = e.time.map(|t| time_cs_to_ms(&f("time"), t)).transpose()?;
        let total_ms = e.total.map(|t| time_cs_to_ms(&f("total"), t)).transpose()?;
        let rank = e.rank.map(|r| check_rank(&f("rank"), r)).transpose()?;
        let entry = OnCourseEntry {
            participant_id: Some(e.participant_id),
            race_id: e.race_id,
            bib: e.bib,
            name: e.name.unwrap_or_default(),
            club: e.club,
            position: e.position.unwrap_or(i as u32 + 1),
            gates: e.gates.unwrap_or_default(),
            dt_start: e.dt_start,
            dt_finish: e.dt_finish,
            time_ms,
            pen_s,
            total_ms,
            rank,
            ttb_diff: e.ttb_diff,
            ttb_name: e.ttb_name,
        };
        // One rider once per race: a later entry replaces an earlier one.
        entries.retain(|x| !(x.race_id == entry.race_id && x.bib == entry.bib));
        entries.push(entry);
    }
    Ok(entries)
}

#[derive(Deserialize)]
pub struct ResultsBody {
    results: Vec<ResultIn>,
}

#[derive(Deserialize)]
struct GateIn {
    gate: u32,
    #[serde(default)]
    #[allow(dead_code)]
    time: Option<u32>,
    #[serde(default)]
    pen: Option<u16>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResultIn {
    race_id: String,
    participant_id: String,
    bib: u32,
    #[serde(default, deserialize_with = "explicit")]
    time: Option<Option<u32>>,
    #[serde(default, deserialize_with = "explicit")]
    pen: Option<Option<u32>>,
    #[serde(default, deserialize_with = "explicit")]
    total: Option<Option<u32>>,
    /// Accepted and checked, but ranks are always recomputed from the totals.
    #[serde(default)]
    #[allow(dead_code)]
    rnk: Option<u32>,
    #[serde(default, deserialize_with = "explicit")]
    status: Option<Option<String>>,
    #[serde(default)]
    gates: Option<Vec<GateIn>>,
    #[serde(default, deserialize_with = "explicit")]
    dt_start: Option<Option<String>>,
    #[serde(default, deserialize_with = "explicit")]
    dt_finish: Option<Option<String>>,
}

/// `[{gate, pen}]` (gate numbers from 1, any order, gaps allowed) as penalty slots.
fn gate_slots(field: &str, list: &[GateIn]) -> Result<Gates, ApiError> {
    Gates::check_slots(list.len()).map_err(|err| ApiError::invalid(format!("{field}: {err}")))?;
    let mut slots: Vec<Option<u16>> = Vec::new();
    for (k, g) in list.iter().enumerate() {
        if g.gate == 0 || g.gate as usize > Gates::MAX_SLOTS {
            return Err(ApiError::invalid(format!(
                "{field}[{k}].gate: gate number {} is not in 1..={}",
                g.gate,
                Gates::MAX_SLOTS
            )));
        }
        if let Some(pen) = g.pen {
            check_gate_penalty(&format!("{field}[{k}].pen"), pen)?;
        }
        let idx = g.gate as usize - 1;
        if slots.len() <= idx {
            slots.resize(idx + 1, None);
        }
        slots[idx] = g.pen;
    }
    Ok(Gates(slots))
}

/// The body of `POST /api/v1/ingest/results`, decoded and validated into domain updates
/// (ms, s; `null` clears, omitted leaves). Pure (fuzzed).
pub fn parse_results_body(body: &[u8]) -> Result<Vec<ResultUpdate>, ApiError> {
    validate_results(decode(body)?)
}

/// A decoded results body, validated into domain updates.
pub fn validate_results(b: ResultsBody) -> Result<Vec<ResultUpdate>, ApiError> {
    if b.results.len() > MAX_RESULT_ITEMS {
        return Err(ApiError::invalid(format!(
            "results: {} items, at most {MAX_RESULT_ITEMS} are accepted",
            b.results.len()
        )));
    }
    let mut updates = Vec::with_capacity(b.results.len());
    for (i, r) in b.results.into_iter().enumerate() {
        let f = |name: &str| format!("results[{i}].{name}");
        nonempty(&f("raceId"), &r.race_id)?;
        nonempty(&f("participantId"), &r.participant_id)?;
        {
            use crate::c123::frame::MAX_ID_CHARS as ID;
            for (name, value) in [
                ("raceId", Some(&r.race_id)),
                ("participantId", Some(&r.participant_id)),
                ("status", r.status.as_ref().and_then(Option::as_ref)),
                ("dtStart", r.dt_start.as_ref().and_then(Option::as_ref)),
                ("dtFinish", r.dt_finish.as_ref().and_then(Option::as_ref)),
            ] {
                bounded_len(&f(name), value, ID)?;
            }
        }
        // Any status the timing system sends is taken (Canoe123 may add codes): one unknown
        // value must not refuse the whole batch (c123-server would stop pushing).
        let status = match r.status {
            None => None,
            Some(None) => Some(None),
            Some(Some(s)) => Some(
                crate::result_status::normalize(&s)
                    .map_err(|e| ApiError::invalid(format!("{}: {e}", f("status"))))?,
            ),
        };
        let pen_s = match r.pen {
            None => None,
            Some(None) => Some(None),
            Some(Some(p)) => Some(Some(pen_cs_to_s(&f("pen"), p)?)),
        };
        let time_ms = match r.time {
            None => None,
            Some(None) => Some(None),
            Some(Some(t)) => Some(Some(time_cs_to_ms(&f("time"), t)?)),
        };
        let total_ms = match r.total {
            None => None,
            Some(None) => Some(None),
            Some(Some(t)) => Some(Some(time_cs_to_ms(&f("total"), t)?)),
        };
        if let Some(rnk) = r.rnk {
            check_rank(&f("rnk"), rnk)?;
        }
        let gates = r
            .gates
            .map(|list| gate_slots(&f("gates"), &list))
            .transpose()?;
        updates.push(ResultUpdate {
            race_id: r.race_id,
            participant_id: r.participant_id,
            bib: Some(r.bib),
            time_ms,
            pen_s,
            total_ms,
            status,
            gates,
            dt_start: r.dt_start,
            dt_finish: r.dt_finish,
        });
    }
    Ok(updates)
}
