//! The replication formats (`protocol/replication.md`), pure: the record of one committed
//! change of one event, the snapshot of a whole event, the origin's marker, and how a replica
//! applies a record to the event it has.
//!
//! A record carries the parts of the event the commit replaced. The model shares unchanged
//! parts between versions (`Arc`), so "changed" is pointer inequality against the previous
//! version the publisher saw: exact, and cheap to find. The event's API key never leaves the
//! origin (a replica has no ingest API to check it against).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::merge::EventChange;
use crate::model::{
    Class, Course, Event, EventConfig, EventHeader, EventImage, EventMeta, EventStatus, KeyDates,
    OnCourseEntry, Participant, Race, RaceResults,
};

/// The format version every value carries; a replica refuses others.
pub const FORMAT: u32 = 1;
/// The KV key of the origin's marker (its epoch); event keys start with `event.`.
pub const ORIGIN_KEY: &str = "origin";
/// A snapshot is at most this large once decompressed (a bound on what a replica inflates).
pub const MAX_SNAPSHOT_JSON: u64 = 256 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("malformed JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("snapshot does not decompress: {0}")]
    Gzip(std::io::Error),
    #[error("snapshot inflates beyond {MAX_SNAPSHOT_JSON} bytes")]
    TooLarge,
    #[error("format version {0}, this daemon reads {FORMAT}")]
    Version(u32),
}

/// The subject and KV token of an event id. Ids are `A-Z a-z 0-9 . _ -`; `.` separates
/// subject tokens (and may not start a KV key), so it becomes `=`, which no id contains.
pub fn token(event_id: &str) -> String {
    event_id.replace('.', "=")
}

pub fn subject(prefix: &str, event_id: &str) -> String {
    format!("{prefix}.{}", token(event_id))
}

pub fn event_key(event_id: &str) -> String {
    format!("event.{}", token(event_id))
}

/// The event id of an `event.…` KV key.
pub fn event_of_key(key: &str) -> Option<String> {
    key.strip_prefix("event.").map(|t| t.replace('=', "."))
}

/// `Nats-Msg-Id` of a record: the stream drops a second copy within its duplicate window.
pub fn msg_id(epoch: &str, event_id: &str, seq: u64, body: &Body) -> String {
    match body {
        Body::Snapshot => format!("{epoch}/{event_id}/{seq}/snapshot"),
        _ => format!("{epoch}/{event_id}/{seq}"),
    }
}

/// An event's header without its API key and image (those travel apart or not at all).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireHeader {
    pub id: i64,
    pub event_id: String,
    pub xml_event_id: Option<String>,
    pub meta: EventMeta,
    pub status: EventStatus,
    pub status_changed_at: Option<String>,
    pub config: EventConfig,
    pub has_xml_data: bool,
    pub key_start_date: Option<String>,
    pub key_end_date: Option<String>,
    pub seq: u64,
    pub created_at: String,
}

impl WireHeader {
    pub fn of(h: &EventHeader) -> WireHeader {
        WireHeader {
            id: h.id,
            event_id: h.event_id.clone(),
            xml_event_id: h.xml_event_id.clone(),
            meta: h.meta.clone(),
            status: h.status,
            status_changed_at: h.status_changed_at.clone(),
            config: h.config.clone(),
            has_xml_data: h.has_xml_data,
            key_start_date: h.key_dates.start_date.clone(),
            key_end_date: h.key_dates.end_date.clone(),
            seq: h.seq,
            created_at: h.created_at.clone(),
        }
    }

    fn into_header(self, image: Option<EventImage>) -> EventHeader {
        EventHeader {
            id: self.id,
            event_id: self.event_id,
            xml_event_id: self.xml_event_id,
            meta: self.meta,
            status: self.status,
            status_changed_at: self.status_changed_at,
            // Never replicated: nothing on a replica checks it.
            api_key: String::new(),
            config: self.config,
            image,
            has_xml_data: self.has_xml_data,
            key_dates: KeyDates {
                start_date: self.key_start_date,
                end_date: self.key_end_date,
            },
            seq: self.seq,
            created_at: self.created_at,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireImage {
    pub content_type: String,
    #[serde(with = "b64")]
    pub bytes: Arc<Vec<u8>>,
}

impl WireImage {
    fn of(i: &EventImage) -> WireImage {
        WireImage {
            content_type: i.content_type.clone(),
            bytes: Arc::clone(&i.bytes),
        }
    }

    fn into_image(self) -> EventImage {
        EventImage {
            content_type: self.content_type,
            bytes: self.bytes,
        }
    }
}

mod b64 {
    use std::sync::Arc;

    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &Arc<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes.as_slice()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<Vec<u8>>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map(Arc::new)
            .map_err(serde::de::Error::custom)
    }
}

/// The image replaced by a change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageChange {
    Set(WireImage),
    Cleared,
}

/// The parts of an event a change replaced (absent: unchanged).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Parts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageChange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<Arc<BTreeMap<String, Class>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participants: Option<Arc<BTreeMap<String, Participant>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub races: Option<Arc<BTreeMap<String, Race>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub courses: Option<Arc<BTreeMap<i32, Course>>>,
    /// Each race whose rows changed, with all its rows now (`null`: it has none any more).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub results: BTreeMap<String, Option<Arc<RaceResults>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oncourse: Option<Arc<Vec<OnCourseEntry>>>,
}

/// What a record says about its event at its `seq`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum Body {
    /// The event was deleted.
    Deleted,
    /// The new version: `parts` on top of the version at `seq − 1`; with `full` every part
    /// is there and the record stands alone (a new event).
    Delta {
        full: bool,
        header: Box<WireHeader>,
        parts: Parts,
    },
    /// This version is in the snapshot bucket (the record would have been too large, or the
    /// origin resynchronised and replicas may have missed records): load it.
    Snapshot,
}

/// One record of the stream: one committed change of one event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub v: u32,
    pub epoch: String,
    pub event_id: String,
    pub seq: u64,
    /// What changed, as the origin's hub saw it (the replica's hub composes the same message).
    pub change: EventChange,
    pub body: Body,
}

impl Record {
    /// The record of `change` to `new` from `old` (the version the publisher saw before;
    /// `None`: a new event or one it has not seen, so the record carries everything).
    pub fn of(
        epoch: &str,
        change: &EventChange,
        old: Option<&Event>,
        new: Option<&Event>,
    ) -> Record {
        let body = match new {
            None => Body::Deleted,
            Some(new) => delta(old, new),
        };
        Record {
            v: FORMAT,
            epoch: epoch.to_owned(),
            event_id: change.event_id.clone(),
            seq: change.seq,
            change: change.clone(),
            body,
        }
    }

    /// A record that points replicas to the snapshot of `event_id` at `seq`.
    pub fn snapshot_marker(epoch: &str, event_id: &str, seq: u64) -> Record {
        Record {
            v: FORMAT,
            epoch: epoch.to_owned(),
            event_id: event_id.to_owned(),
            seq,
            change: snapshot_change(event_id, seq, false),
            body: Body::Snapshot,
        }
    }

    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        Ok(serde_json::to_vec(self)?)
    }

    pub fn decode(bytes: &[u8]) -> Result<Record, WireError> {
        let r: Record = serde_json::from_slice(bytes)?;
        if r.v != FORMAT {
            return Err(WireError::Version(r.v));
        }
        Ok(r)
    }
}

/// The change a replica publishes when it installs a snapshot: a change of structure, so its
/// hub sends every client a `full` of the snapshot's state.
pub fn snapshot_change(event_id: &str, seq: u64, created: bool) -> EventChange {
    EventChange {
        event_id: event_id.to_owned(),
        seq,
        created,
        structure: true,
        ..EventChange::default()
    }
}

/// The parts of `new` that are not `old`'s (by pointer: unchanged parts share theirs).
fn delta(old: Option<&Event>, new: &Event) -> Body {
    let header = Box::new(WireHeader::of(&new.header));
    let Some(old) = old else {
        return Body::Delta {
            full: true,
            header,
            parts: Parts {
                image: Some(match &new.header.image {
                    Some(i) => ImageChange::Set(WireImage::of(i)),
                    None => ImageChange::Cleared,
                }),
                classes: Some(Arc::clone(&new.classes)),
                participants: Some(Arc::clone(&new.participants)),
                races: Some(Arc::clone(&new.races)),
                courses: Some(Arc::clone(&new.courses)),
                results: new
                    .results
                    .iter()
                    .map(|(race, rows)| (race.clone(), Some(Arc::clone(rows))))
                    .collect(),
                oncourse: Some(Arc::clone(&new.oncourse)),
            },
        };
    };
    fn changed<T>(old: &Arc<T>, new: &Arc<T>) -> Option<Arc<T>> {
        (!Arc::ptr_eq(old, new)).then(|| Arc::clone(new))
    }
    let image = (old.header.image != new.header.image).then(|| match &new.header.image {
        Some(i) => ImageChange::Set(WireImage::of(i)),
        None => ImageChange::Cleared,
    });
    let mut results = BTreeMap::new();
    for (race, rows) in &new.results {
        if old.results.get(race).is_none_or(|o| !Arc::ptr_eq(o, rows)) {
            results.insert(race.clone(), Some(Arc::clone(rows)));
        }
    }
    for race in old.results.keys() {
        if !new.results.contains_key(race) {
            results.insert(race.clone(), None);
        }
    }
    Body::Delta {
        full: false,
        header,
        parts: Parts {
            image,
            classes: changed(&old.classes, &new.classes),
            participants: changed(&old.participants, &new.participants),
            races: changed(&old.races, &new.races),
            courses: changed(&old.courses, &new.courses),
            results,
            oncourse: changed(&old.oncourse, &new.oncourse),
        },
    }
}

/// Why a record does not apply to the version a replica has.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("record {seq} needs version {} of the event, the replica has {have:?}", .seq.saturating_sub(1))]
pub struct Gap {
    pub seq: u64,
    pub have: Option<u64>,
}

/// The version `seq` of an event: `parts` on top of `old` (which must be version `seq − 1`
/// unless the delta is `full`). Unchanged parts keep `old`'s allocation.
pub fn apply_delta(
    old: Option<&Event>,
    seq: u64,
    full: bool,
    header: WireHeader,
    parts: Parts,
) -> Result<Event, Gap> {
    let mut event = match old {
        _ if full => Event::new(header.clone().into_header(None)),
        Some(o) if o.header.seq + 1 == seq => o.clone(),
        _ => {
            return Err(Gap {
                seq,
                have: old.map(|o| o.header.seq),
            })
        }
    };
    let image = match parts.image {
        Some(ImageChange::Set(i)) => Some(i.into_image()),
        Some(ImageChange::Cleared) => None,
        None => event.header.image.clone(),
    };
    event.header = header.into_header(image);
    event.header.seq = seq;
    if let Some(c) = parts.classes {
        event.classes = c;
    }
    if let Some(p) = parts.participants {
        event.participants = p;
    }
    if let Some(r) = parts.races {
        event.races = r;
    }
    if let Some(c) = parts.courses {
        event.courses = c;
    }
    if let Some(o) = parts.oncourse {
        event.oncourse = o;
    }
    for (race, rows) in parts.results {
        match rows {
            Some(rows) => event.results.insert(race, rows),
            None => event.results.remove(&race),
        };
    }
    Ok(event)
}

/// A whole event in a snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireEvent {
    pub header: WireHeader,
    pub image: Option<WireImage>,
    pub classes: Arc<BTreeMap<String, Class>>,
    pub participants: Arc<BTreeMap<String, Participant>>,
    pub races: Arc<BTreeMap<String, Race>>,
    pub courses: Arc<BTreeMap<i32, Course>>,
    pub results: BTreeMap<String, Arc<RaceResults>>,
    pub oncourse: Arc<Vec<OnCourseEntry>>,
}

impl WireEvent {
    pub fn of(e: &Event) -> WireEvent {
        WireEvent {
            header: WireHeader::of(&e.header),
            image: e.header.image.as_ref().map(WireImage::of),
            classes: Arc::clone(&e.classes),
            participants: Arc::clone(&e.participants),
            races: Arc::clone(&e.races),
            courses: Arc::clone(&e.courses),
            results: e.results.clone(),
            oncourse: Arc::clone(&e.oncourse),
        }
    }

    pub fn into_event(self) -> Event {
        Event {
            header: self
                .header
                .into_header(self.image.map(WireImage::into_image)),
            classes: self.classes,
            participants: self.participants,
            races: self.races,
            courses: self.courses,
            results: self.results,
            oncourse: self.oncourse,
        }
    }
}

/// The KV value of an event: the whole event at `event.header.seq`, and the stream sequence
/// after which every later record of the event lies (a replica follows from `stream_seq + 1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotValue {
    pub v: u32,
    pub epoch: String,
    pub stream_seq: u64,
    pub event: WireEvent,
}

impl SnapshotValue {
    /// JSON, gzipped (the real event's 38 KB of results JSON compress about fourfold).
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        let json = serde_json::to_vec(self)?;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&json).map_err(WireError::Gzip)?;
        gz.finish().map_err(WireError::Gzip)
    }

    pub fn decode(bytes: &[u8]) -> Result<SnapshotValue, WireError> {
        let mut json = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .take(MAX_SNAPSHOT_JSON + 1)
            .read_to_end(&mut json)
            .map_err(WireError::Gzip)?;
        if json.len() as u64 > MAX_SNAPSHOT_JSON {
            return Err(WireError::TooLarge);
        }
        let s: SnapshotValue = serde_json::from_slice(&json)?;
        if s.v != FORMAT {
            return Err(WireError::Version(s.v));
        }
        Ok(s)
    }
}

/// The KV value of [`ORIGIN_KEY`]: which database the origin serves, and the stream's last
/// sequence when it wrote this (a replica of an origin without events follows from there).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OriginValue {
    pub v: u32,
    pub epoch: String,
    pub stream_seq: u64,
}

impl OriginValue {
    pub fn decode(bytes: &[u8]) -> Result<OriginValue, WireError> {
        let o: OriginValue = serde_json::from_slice(bytes)?;
        if o.v != FORMAT {
            return Err(WireError::Version(o.v));
        }
        Ok(o)
    }
}

#[cfg(test)]
mod tests;
