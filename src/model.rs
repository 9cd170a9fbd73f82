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
mod gates;
pub mod ranking;
mod status;

pub use gates::{GateError, Gates, MAX_RANK, MAX_RUN_PENALTY_S, MAX_TIME_MS};
pub use status::{EventStatus, MergeStrategy, UnknownStatus};

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

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

/// Event ids appear in URLs: 1–100 characters of `A-Z a-z 0-9 . _ -` (RFC 3986 unreserved,
/// so never percent-encoded), except `.` and `..`: clients remove those dot-segments from a
/// URL path (RFC 3986 §5.2.4), so such an event could never be reached. Every way an event
/// is created checks it: the admin API, an export's `EventId` in direct mode, `--event`.
pub fn valid_event_id(id: &str) -> bool {
    !id.is_empty()
        && id != "."
        && id != ".."
        && id.len() <= 100
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
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
    fn best_run_partner_keeps_day_suffix() {
        assert_eq!(
            Race::best_run_partner("K1M_ST_BR2_6"),
            Some(("K1M_ST_BR1_6".into(), "K1M_ST_BR2_6".into()))
        );
        assert_eq!(Race::best_run_partner("K1M_ST_SR_6"), None);
        assert_eq!(Race::best_run_partner("_BR1_6"), None);
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
