//! The domain model: one event as the merge loop sees it.
//!
//! Units follow the Canoe123 XML export, not the wire: run times and totals are integer
//! **milliseconds**, penalties are integer **seconds**, gate penalties are seconds per gate.
//! Conversion to the public centisecond API happens only in `crate::api`.
//!
//! Collections are `Arc`-wrapped maps so that publishing a new read snapshot after every
//! commit clones only what that commit touched (structural sharing); everything else is
//! shared with the previous snapshot.

pub mod best_run;
pub mod ranking;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Lifecycle of an event, in the order it normally moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventStatus {
    Draft,
    Startlist,
    Running,
    Finished,
    Official,
}

impl EventStatus {
    pub const ALL: [EventStatus; 5] = [
        EventStatus::Draft,
        EventStatus::Startlist,
        EventStatus::Running,
        EventStatus::Finished,
        EventStatus::Official,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventStatus::Draft => "draft",
            EventStatus::Startlist => "startlist",
            EventStatus::Running => "running",
            EventStatus::Finished => "finished",
            EventStatus::Official => "official",
        }
    }

    /// The transitions the lifecycle allows from this state (live-mini's table, kept exactly).
    pub fn valid_transitions(self) -> &'static [EventStatus] {
        match self {
            EventStatus::Draft => &[EventStatus::Startlist],
            EventStatus::Startlist => &[EventStatus::Running, EventStatus::Draft],
            EventStatus::Running => &[EventStatus::Finished],
            EventStatus::Finished => &[EventStatus::Official, EventStatus::Running],
            EventStatus::Official => &[],
        }
    }

    pub fn can_transition_to(self, to: EventStatus) -> bool {
        self.valid_transitions().contains(&to)
    }

    /// Spectators see the event (REST and WebSocket) in every state but draft.
    pub fn is_public(self) -> bool {
        self != EventStatus::Draft
    }
}

impl fmt::Display for EventStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event status '{0}' (expected draft, startlist, running, finished or official)")]
pub struct UnknownStatus(pub String);

impl FromStr for EventStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

/// How a conflict between a TCP-set result field and a later XML value is resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MergeStrategy {
    /// A field last set by TCP keeps its TCP value until an XML export agrees with it.
    #[default]
    TcpWins,
    /// Every XML import overrides TCP values; TCP fills in between imports.
    XmlWins,
}

impl MergeStrategy {
    pub fn as_str(self) -> &'static str {
        match self {
            MergeStrategy::TcpWins => "tcp-wins",
            MergeStrategy::XmlWins => "xml-wins",
        }
    }
}

impl FromStr for MergeStrategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "tcp-wins" => Ok(MergeStrategy::TcpWins),
            "xml-wins" => Ok(MergeStrategy::XmlWins),
            other => Err(format!(
                "unknown merge strategy '{other}' (expected tcp-wins or xml-wins)"
            )),
        }
    }
}

impl fmt::Display for MergeStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Descriptive metadata of an event. The admin sets it at creation; an XML export fills in
/// what the admin left empty (it never overwrites the admin's title).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMeta {
    pub main_title: String,
    pub sub_title: Option<String>,
    pub location: Option<String>,
    pub facility: Option<String>,
    /// `YYYY-MM-DD`.
    pub start_date: Option<String>,
    /// `YYYY-MM-DD`.
    pub end_date: Option<String>,
    pub discipline: Option<String>,
}

/// Per-event settings an operator may change (`PATCH .../config`). Unknown keys are rejected.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_race_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub show_on_course: Option<bool>,
    /// Overrides the daemon's `--merge-strategy` for this event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge_strategy: Option<MergeStrategy>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventImage {
    pub content_type: String,
    pub bytes: Arc<Vec<u8>>,
}

/// Admin-given dates that bound the API key's validity (see [`EventHeader::key_dates`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyDates {
    pub start_date: Option<String>,
    pub end_date: Option<String>,
}

/// Identity and bookkeeping of an event (everything but its sporting content).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventHeader {
    /// Internal row id (never public except in the create response).
    pub id: i64,
    /// Public id used in URLs.
    pub event_id: String,
    /// `Events/EventId` of the export the event was created from or last imported.
    pub xml_event_id: Option<String>,
    pub meta: EventMeta,
    pub status: EventStatus,
    pub status_changed_at: Option<String>,
    pub api_key: String,
    pub config: EventConfig,
    pub image: Option<EventImage>,
    pub has_xml_data: bool,
    /// The dates the admin gave at creation (`startDate`, `endDate`), kept apart from
    /// `meta` because an XML import may rewrite `meta`'s dates. The API key's validity
    /// window follows these only, so an import can never lock its own key out.
    pub key_dates: KeyDates,
    /// Incremented once per committed change of this event; never goes backwards.
    pub seq: u64,
    /// `YYYY-MM-DD HH:MM:SS` UTC.
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Category {
    pub cat_id: String,
    pub name: String,
    pub first_year: Option<i32>,
    pub last_year: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Class {
    pub class_id: String,
    pub name: String,
    pub long_title: Option<String>,
    pub categories: Vec<Category>,
}

/// One entry (person or crew × class). `id` is Canoe123's key, e.g. `12054.K1M_ST`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    pub id: String,
    pub class_id: Option<String>,
    pub event_bib: Option<u32>,
    pub icf_id: Option<String>,
    pub family_name: String,
    pub given_name: Option<String>,
    /// Second paddler of a C2 crew.
    pub icf_id2: Option<String>,
    pub family_name2: Option<String>,
    pub given_name2: Option<String>,
    pub club: Option<String>,
    pub noc: Option<String>,
    pub cat_id: Option<String>,
    pub ranking: Option<String>,
    pub year: Option<i32>,
    pub is_team: bool,
    /// Team members' participant ids (`Member1`..`Member3`).
    pub members: Vec<String>,
}

impl Participant {
    /// `FAMILY Given`, and `FAMILY Given / FAMILY2 Given2` for a C2 crew.
    pub fn display_name(&self) -> String {
        let one = |family: &str, given: Option<&str>| match given {
            Some(g) if !g.is_empty() => format!("{family} {g}"),
            _ => family.to_owned(),
        };
        let first = one(&self.family_name, self.given_name.as_deref());
        match self.family_name2.as_deref() {
            Some(f2) if !f2.is_empty() => {
                format!("{first} / {}", one(f2, self.given_name2.as_deref()))
            }
            _ => first,
        }
    }
}

/// What a race is, from the schedule's `DisId`. Serialized as the public `raceType`
/// (`best-run-1`, `final`, …, `unknown` for a `DisId` we do not know).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RaceType {
    // kebab-case alone would give `best-run1`.
    #[serde(rename = "best-run-1")]
    BestRun1,
    #[serde(rename = "best-run-2")]
    BestRun2,
    Training,
    Seeding,
    Qualification,
    Semifinal,
    Final,
    CrossTrial,
    CrossHeat,
    CrossSemifinal,
    CrossFinal,
    CrossExtra,
    Unknown,
}

impl RaceType {
    /// The type of a schedule `DisId`.
    pub fn of_dis_id(dis_id: &str) -> RaceType {
        match dis_id {
            "BR1" => RaceType::BestRun1,
            "BR2" => RaceType::BestRun2,
            "TSR" => RaceType::Training,
            "SR" => RaceType::Seeding,
            "QUA" => RaceType::Qualification,
            "SEM" => RaceType::Semifinal,
            "FIN" => RaceType::Final,
            "XT" => RaceType::CrossTrial,
            "X4" => RaceType::CrossHeat,
            "XS" => RaceType::CrossSemifinal,
            "XF" => RaceType::CrossFinal,
            "XER" => RaceType::CrossExtra,
            _ => RaceType::Unknown,
        }
    }

    /// The public name (`raceType` on the wire).
    pub fn as_str(self) -> &'static str {
        match self {
            RaceType::BestRun1 => "best-run-1",
            RaceType::BestRun2 => "best-run-2",
            RaceType::Training => "training",
            RaceType::Seeding => "seeding",
            RaceType::Qualification => "qualification",
            RaceType::Semifinal => "semifinal",
            RaceType::Final => "final",
            RaceType::CrossTrial => "cross-trial",
            RaceType::CrossHeat => "cross-heat",
            RaceType::CrossSemifinal => "cross-semifinal",
            RaceType::CrossFinal => "cross-final",
            RaceType::CrossExtra => "cross-extra",
            RaceType::Unknown => "unknown",
        }
    }

    /// One run of a best-run pair (BR1 or BR2).
    pub fn is_best_run(self) -> bool {
        matches!(self, RaceType::BestRun1 | RaceType::BestRun2)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Race {
    pub race_id: String,
    pub class_id: Option<String>,
    pub dis_id: Option<String>,
    pub race_order: Option<i32>,
    /// ISO 8601 with offset, verbatim from the export.
    pub start_time: Option<String>,
    pub start_interval: Option<String>,
    pub course_nr: Option<i32>,
    /// Canoe123 RaceStatus (0 scheduled … 5 official …).
    pub race_status: Option<i32>,
    pub title: Option<String>,
}

impl Race {
    pub fn race_type(&self) -> RaceType {
        RaceType::of_dis_id(self.dis_id.as_deref().unwrap_or(""))
    }

    /// The other run of a best-run pair: `_BR1_` ↔ `_BR2_`, keeping the day suffix.
    pub fn best_run_partner(race_id: &str) -> Option<(String, String)> {
        let (prefix, suffix) = if let Some(i) = race_id.rfind("_BR1_") {
            (&race_id[..i], &race_id[i + 5..])
        } else if let Some(i) = race_id.rfind("_BR2_") {
            (&race_id[..i], &race_id[i + 5..])
        } else {
            return None;
        };
        if prefix.is_empty() || suffix.is_empty() {
            return None;
        }
        Some((
            format!("{prefix}_BR1_{suffix}"),
            format!("{prefix}_BR2_{suffix}"),
        ))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Course {
    pub course_nr: i32,
    /// Raw `CourseConfig`: N/R are gates; I, S, E, D are markers.
    pub config: String,
}

impl Course {
    /// Only `N` (downstream) and `R` (upstream) characters are gates.
    pub fn gate_config(&self) -> String {
        self.config
            .chars()
            .filter(|c| matches!(c, 'N' | 'R'))
            .collect()
    }

    pub fn gate_count(&self) -> usize {
        self.config
            .chars()
            .filter(|c| matches!(c, 'N' | 'R'))
            .count()
    }
}

/// Largest run time, total or best-of-both total accepted from any input, in milliseconds
/// (24 hours; real runs are minutes). With it every time converts to centiseconds and sums
/// without overflow.
pub const MAX_TIME_MS: i64 = 86_400_000;

/// Largest run penalty accepted from any input, in seconds (24 hours; even 64 gates of
/// 999 s each, 63 936 s, fit).
pub const MAX_RUN_PENALTY_S: i64 = 86_400;

/// Largest rank accepted from any input (ranks are at most the number of starters).
pub const MAX_RANK: i64 = 99_999;

/// Per-gate penalties in seconds, positional; `None` = not judged (yet).
///
/// Read from Canoe123's fixed-width form (3 characters per slot, right aligned) and its
/// comma form; stored as a JSON array (see [`Gates::to_stored`]), which keeps every value
/// and every blank slot, trailing ones included.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Gates(pub Vec<Option<u16>>);

// The slot parsers' messages are static; they name these values.
const _: () = assert!(Gates::MAX_PENALTY_S == 999 && Gates::MAX_SLOTS == 64);

/// Why a list of gate penalties is refused at an input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GateError {
    #[error("{count} gate slots, at most {max} are accepted", max = Gates::MAX_SLOTS)]
    TooManySlots { count: usize },
    #[error("gate penalty {value} is over {max} seconds", max = Gates::MAX_PENALTY_S)]
    PenaltyTooLarge { value: u64 },
}

impl Gates {
    /// Largest gate penalty accepted, in seconds. Canoe123 gives 0, 2 or 50 per gate;
    /// team races carry sums (52, 100, 150) and the real export holds a `300`. Its own export
    /// writes a gate in a 3-character slot, so no value above 999 can come from the timing
    /// system: anything larger is refused at every input.
    pub const MAX_PENALTY_S: u16 = 999;

    /// Most gate slots accepted in one row. Canoe123 courses have up to 25-30 gates (the
    /// export pads rows to 30 slots, `GateStatistics` always counts 25); 64 leaves margin.
    pub const MAX_SLOTS: usize = 64;

    /// One gate value from an input: `Err` when no timing system can mean it.
    pub fn check_penalty(value: u64) -> Result<u16, GateError> {
        u16::try_from(value)
            .ok()
            .filter(|v| *v <= Gates::MAX_PENALTY_S)
            .ok_or(GateError::PenaltyTooLarge { value })
    }

    /// A slot count from an input: `Err` over [`Gates::MAX_SLOTS`].
    pub fn check_slots(count: usize) -> Result<(), GateError> {
        if count > Gates::MAX_SLOTS {
            return Err(GateError::TooManySlots { count });
        }
        Ok(())
    }

    /// The stored form: a JSON array of integers and nulls (`[0,2,null,50]`). Unlike the
    /// fixed-width form it cannot be misread: every value and every slot reads back as it
    /// was written, whatever its number of digits.
    pub fn to_stored(&self) -> String {
        let mut s = String::with_capacity(self.0.len() * 3 + 2);
        s.push('[');
        for (i, g) in self.0.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            match g {
                Some(v) => s.push_str(&v.to_string()),
                None => s.push_str("null"),
            }
        }
        s.push(']');
        s
    }

    /// Reads [`Gates::to_stored`]'s form back.
    pub fn from_stored(raw: &str) -> Result<Gates, String> {
        serde_json::from_str::<Vec<Option<u16>>>(raw)
            .map(Gates)
            .map_err(|e| format!("gates '{}': {e}", raw.chars().take(64).collect::<String>()))
    }

    /// Parses the fixed-width export form. Never trims or splits on whitespace: slot *n* is
    /// characters `3(n-1)..3n`, so a three-digit value (`300`) fills its slot and a blank slot
    /// stays blank. Trailing blank slots are dropped (they are padding, not gates).
    pub fn parse_fixed(raw: &str) -> Result<Gates, String> {
        // One slot parser for the export and the TCP `Results` frames.
        Gates::parse_fixed_slots(raw)
            .map(Gates)
            .map_err(str::to_owned)
    }

    /// Fixed width (Results frames, XML export), 3 characters per gate, right-aligned; gate
    /// *n* is characters `(n-1)*3 .. n*3`, trimmed. Never split on whitespace: blank slots are
    /// positional (`"      2"` is gates 1–2 blank, gate 3 = 2) and a 3-digit value fills its
    /// slot (`"  2  2  2  0  0300"` → `[2, 2, 2, 0, 0, 300]`). Trailing all-blank slots are
    /// dropped (the wire pads rows to 30 slots); an all-blank string is no gates. Here in the
    /// domain (not in `c123::frame`) so that the model imports no parser.
    pub fn parse_fixed_slots(text: &str) -> Result<Vec<Option<u16>>, &'static str> {
        let bytes = text.as_bytes();
        if Gates::check_slots(bytes.len().div_ceil(3)).is_err() {
            return Err("more than 64 gate slots");
        }
        let mut gates = Vec::with_capacity(bytes.len().div_ceil(3));
        for slot in bytes.chunks(3) {
            // Gate values are ASCII; a non-ASCII byte can only be garbage.
            let slot = std::str::from_utf8(slot).map_err(|_| "non-ASCII gate slot")?;
            gates.push(Gates::parse_slot(slot)?);
        }
        while gates.last() == Some(&None) {
            gates.pop();
        }
        Ok(gates)
    }

    /// OnCourse gates: comma separated, one field per gate, positional. An empty field is a
    /// gate not judged yet, trailing empty fields are kept (`"0,2,,"` → `[0, 2, None, None]`),
    /// and the empty string is no gates at all.
    pub fn parse_comma_slots(text: &str) -> Result<Vec<Option<u16>>, &'static str> {
        if text.is_empty() {
            return Ok(Vec::new());
        }
        if Gates::check_slots(text.split(',').count()).is_err() {
            return Err("more than 64 gate slots");
        }
        text.split(',').map(Gates::parse_slot).collect()
    }

    /// One slot: blank is `None` (not judged), else whole seconds up to the maximum.
    fn parse_slot(field: &str) -> Result<Option<u16>, &'static str> {
        let f = field.trim();
        if f.is_empty() {
            return Ok(None);
        }
        if f.len() > 5 || !f.bytes().all(|b| b.is_ascii_digit()) {
            return Err("gate penalty must be a non-negative integer");
        }
        // No timing system means a gate penalty over 999 s (see `MAX_PENALTY_S`; the messages
        // are static, so they are checked against the constants by the assertion below).
        f.parse::<u64>()
            .ok()
            .and_then(|v| Gates::check_penalty(v).ok())
            .map(Some)
            .ok_or("gate penalty over 999 seconds")
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(Option::is_none)
    }
}

/// Where a result field's current value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Xml,
    Tcp,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Xml => "xml",
            Source::Tcp => "tcp",
        }
    }
}

/// One competitor's run in one race. Times in ms, penalties in s.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultRow {
    pub race_id: String,
    pub participant_id: String,
    pub bib: Option<u32>,
    pub start_order: Option<i32>,
    /// Scheduled start, `H:MM:SS` as exported.
    pub start_time: Option<String>,
    /// `DNS`, `DNF`, `DSQ`, `CAP`, `RAL`, `DNQ`, `*` (under investigation), or any other code
    /// as the input sent it (`crate::result_status`); `None` = valid/not run.
    pub status: Option<String>,
    /// Time of day `HH:MM:SS.mmm`.
    pub dt_start: Option<String>,
    pub dt_finish: Option<String>,
    pub time_ms: Option<i64>,
    pub pen_s: Option<i64>,
    pub total_ms: Option<i64>,
    pub gates: Gates,
    pub rnk: Option<i32>,
    pub rnk_order: Option<i32>,
    pub cat_rnk: Option<i32>,
    pub cat_rnk_order: Option<i32>,
    /// Seconds as text, `0.00` / `+21.76`.
    pub total_behind: Option<String>,
    pub cat_total_behind: Option<String>,
    // First run, carried by best-run second-run rows of the export.
    pub prev_status: Option<String>,
    pub prev_time_ms: Option<i64>,
    pub prev_pen_s: Option<i64>,
    pub prev_total_ms: Option<i64>,
    pub prev_rnk: Option<i32>,
    /// Best of both runs (export's `TotalTotal`).
    pub total_total_ms: Option<i64>,
    pub total_rnk: Option<i32>,
    /// 0 on first runs, 1 or 2 on second runs.
    pub better_run_nr: Option<i32>,
    pub heat_nr: Option<i32>,
    pub round_nr: Option<i32>,
    pub qualified: Option<String>,
    /// Fields whose current value was set by TCP and not yet confirmed by an export.
    pub tcp_fields: TcpFields,
}

/// Bit set over the result fields TCP can set (see [`TcpFields::TIME`] …).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TcpFields(pub u32);

impl TcpFields {
    pub const TIME: u32 = 1;
    pub const PEN: u32 = 1 << 1;
    pub const TOTAL: u32 = 1 << 2;
    pub const STATUS: u32 = 1 << 3;
    pub const GATES: u32 = 1 << 4;
    pub const DT_START: u32 = 1 << 5;
    pub const DT_FINISH: u32 = 1 << 6;

    pub fn has(self, f: u32) -> bool {
        self.0 & f != 0
    }
    pub fn with(self, f: u32) -> TcpFields {
        TcpFields(self.0 | f)
    }
    pub fn without(self, f: u32) -> TcpFields {
        TcpFields(self.0 & !f)
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl ResultRow {
    /// A run counts for ranking when it has a total and no status.
    pub fn is_rankable(&self) -> bool {
        self.total_ms.is_some() && self.status.is_none()
    }
}

/// A rider currently on the course (from TCP only, never from the export).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnCourseEntry {
    pub participant_id: Option<String>,
    pub race_id: String,
    pub bib: u32,
    pub name: String,
    pub club: Option<String>,
    /// 1 = nearest the finish.
    pub position: u32,
    pub gates: Vec<Option<u16>>,
    pub dt_start: Option<String>,
    pub dt_finish: Option<String>,
    pub time_ms: Option<i64>,
    pub pen_s: Option<i64>,
    pub total_ms: Option<i64>,
    pub rank: Option<u32>,
    pub ttb_diff: Option<String>,
    pub ttb_name: Option<String>,
}

/// Result rows of one race, by participant id.
pub type RaceResults = BTreeMap<String, ResultRow>;

/// Everything known about one event. Cheap to clone: the big maps are behind `Arc`.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub header: EventHeader,
    pub classes: Arc<BTreeMap<String, Class>>,
    pub participants: Arc<BTreeMap<String, Participant>>,
    pub races: Arc<BTreeMap<String, Race>>,
    pub courses: Arc<BTreeMap<i32, Course>>,
    /// Race id → that race's rows. Each race is its own `Arc` so a commit that touches one
    /// race clones only that race.
    pub results: BTreeMap<String, Arc<RaceResults>>,
    pub oncourse: Arc<Vec<OnCourseEntry>>,
}

impl Event {
    pub fn new(header: EventHeader) -> Event {
        Event {
            header,
            classes: Arc::default(),
            participants: Arc::default(),
            races: Arc::default(),
            courses: Arc::default(),
            results: BTreeMap::new(),
            oncourse: Arc::default(),
        }
    }

    pub fn result(&self, race_id: &str, participant_id: &str) -> Option<&ResultRow> {
        self.results.get(race_id)?.get(participant_id)
    }

    pub fn race_results(&self, race_id: &str) -> impl Iterator<Item = &ResultRow> {
        self.results
            .get(race_id)
            .into_iter()
            .flat_map(|m| m.values())
    }

    pub fn course_of(&self, race: &Race) -> Option<&Course> {
        self.courses.get(&race.course_nr?)
    }

    pub fn result_count(&self) -> usize {
        self.results.values().map(|r| r.len()).sum()
    }

    pub fn merge_strategy(&self, default: MergeStrategy) -> MergeStrategy {
        self.header.config.merge_strategy.unwrap_or(default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn race_types_serialize_as_their_public_names() {
        let all = [
            ("BR1", "best-run-1"),
            ("BR2", "best-run-2"),
            ("TSR", "training"),
            ("SR", "seeding"),
            ("QUA", "qualification"),
            ("SEM", "semifinal"),
            ("FIN", "final"),
            ("XT", "cross-trial"),
            ("X4", "cross-heat"),
            ("XS", "cross-semifinal"),
            ("XF", "cross-final"),
            ("XER", "cross-extra"),
            ("", "unknown"),
            ("br1", "unknown"),
        ];
        for (dis_id, name) in all {
            let t = RaceType::of_dis_id(dis_id);
            assert_eq!(t.as_str(), name);
            assert_eq!(serde_json::to_value(t).ok(), Some(serde_json::json!(name)));
        }
    }

    #[test]
    fn gates_keep_positions_and_three_digit_values() {
        let g = Gates::parse_fixed("  2  2  2  0  0300").unwrap();
        assert_eq!(
            g.0,
            vec![Some(2), Some(2), Some(2), Some(0), Some(0), Some(300)]
        );
        let sparse = Gates::parse_fixed("              2      ").unwrap();
        assert_eq!(sparse.0, vec![None, None, None, None, Some(2)]);
        assert_eq!(sparse.to_stored(), "[null,null,null,null,2]");
        assert!(Gates::parse_fixed(&" ".repeat(90)).unwrap().0.is_empty());
        assert!(Gates::parse_fixed("  x").is_err());
    }

    #[test]
    fn stored_gates_read_back_exactly() {
        for g in [
            vec![],
            vec![None],
            vec![Some(0), Some(1000), Some(20)],
            vec![Some(u16::MAX), None, Some(2), None, None],
        ] {
            let stored = Gates(g.clone()).to_stored();
            assert_eq!(Gates::from_stored(&stored).unwrap().0, g, "{stored}");
        }
        assert!(Gates::from_stored("[1,").is_err());
        assert!(Gates::from_stored("[-1]").is_err());
    }

    #[test]
    fn gate_bounds() {
        assert_eq!(Gates::check_penalty(999), Ok(999));
        assert!(Gates::check_penalty(1000).is_err());
        assert!(Gates::check_penalty(u64::MAX).is_err());
        assert!(Gates::check_slots(Gates::MAX_SLOTS).is_ok());
        assert!(Gates::check_slots(Gates::MAX_SLOTS + 1).is_err());
    }

    #[test]
    fn best_run_partner_keeps_day_suffix() {
        assert_eq!(
            Race::best_run_partner("K1M_ST_BR2_6"),
            Some(("K1M_ST_BR1_6".into(), "K1M_ST_BR2_6".into()))
        );
        assert_eq!(Race::best_run_partner("K1M_ST_SR_6"), None);
        assert_eq!(Race::best_run_partner("_BR1_6"), None);
    }

    #[test]
    fn lifecycle_table_matches_reference() {
        use EventStatus::*;
        let allowed: Vec<(EventStatus, EventStatus)> = EventStatus::ALL
            .iter()
            .flat_map(|&a| EventStatus::ALL.iter().map(move |&b| (a, b)))
            .filter(|&(a, b)| a.can_transition_to(b))
            .collect();
        assert_eq!(
            allowed,
            vec![
                (Draft, Startlist),
                (Startlist, Draft),
                (Startlist, Running),
                (Running, Finished),
                (Finished, Running),
                (Finished, Official),
            ]
        );
    }

    #[test]
    fn crew_name_has_both_paddlers() {
        let p = Participant {
            family_name: "SUCHÝ".into(),
            given_name: Some("Matěj".into()),
            family_name2: Some("SUCHÝ".into()),
            given_name2: Some("Ondřej".into()),
            ..Participant::default()
        };
        assert_eq!(p.display_name(), "SUCHÝ Matěj / SUCHÝ Ondřej");
    }
}
