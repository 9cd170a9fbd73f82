//! The typed messages of a frame and why a frame is refused.

/// One message carried by a frame. A frame may carry several.
// OnCourse (the most frequent message, ~2/s) is the large variant; boxing it would cost an
// allocation per message to save stack space on the rare small ones.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// `<OnCourse>`: one competitor currently on the course (or none).
    OnCourse(OnCourse),
    /// `<Results>`: the result table of one race.
    Results(ResultsTable),
    /// `<RaceConfig>`: the course configuration of the current race.
    RaceConfig(RaceConfig),
    /// `<Schedule>`: all races of the event.
    Schedule(Vec<ScheduleRace>),
    /// `<TimeOfDay>`: the Canoe123 wall clock, a ~1/s heartbeat.
    TimeOfDay(TimeOfDay),
    /// `<TVS>`: which competitors the TV screen shows.
    Tvs(Tvs),
    /// Any other child of `<Canoe123>`: its element name. Its content is not parsed.
    Unknown(String),
}

impl Message {
    /// The element name as Canoe123 writes it (for counters and logs).
    pub fn kind(&self) -> &'static str {
        match self {
            Message::OnCourse(_) => "OnCourse",
            Message::Results(_) => "Results",
            Message::RaceConfig(_) => "RaceConfig",
            Message::Schedule(_) => "Schedule",
            Message::TimeOfDay(_) => "TimeOfDay",
            Message::Tvs(_) => "TVS",
            Message::Unknown(_) => "Unknown",
        }
    }
}

/// `<OnCourse Total Position>`: C123 sends one competitor per message and cycles through all
/// of them; merge by bib (see [`OnCourseTracker`](crate::c123::OnCourseTracker)).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OnCourse {
    /// How many competitors are on the course now (`Total`). `0` = course empty.
    pub total: u32,
    /// This competitor's slot (`Position`), 1 = nearest the finish. `0` when the course is empty.
    pub position: u32,
    /// The competitor; `None` for the empty-course form `<OnCourse Total="0" Position="0" />`.
    pub rider: Option<OnCourseRider>,
}

/// One competitor on the course: `<Participant>`, `<Result Type="C">` and `<Result Type="T">`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OnCourseRider {
    /// Start number, trimmed.
    pub bib: String,
    /// XML participant id (`Participants/Id`, e.g. `30034.K1M_ST`); `None` if absent or empty.
    pub participant_id: Option<String>,
    /// `FAMILY Given`.
    pub name: String,
    /// Club name.
    pub club: String,
    /// Nationality code, often empty.
    pub nat: String,
    /// Human race name (`Race`), e.g. `K1m - střední trať - 2. jízda`.
    pub race_name: String,
    /// Race id, e.g. `K1M_ST_BR2_6`.
    pub race_id: String,
    /// Start order.
    pub start_order: Option<u32>,
    /// `Warning` flag text; `None` when empty (always empty in the recording).
    pub warning: Option<String>,
    /// Per-gate penalty seconds in gate order; `None` = gate not judged yet.
    pub gates: Vec<Option<u16>>,
    /// `Completed="Y"`: the run is complete (arrives ~4 s after `dt_finish`).
    pub completed: bool,
    /// Start time, ms since local midnight.
    pub dt_start_ms: Option<u32>,
    /// Split 1 time, ms since local midnight.
    pub dt_split1_ms: Option<u32>,
    /// Split 2 time, ms since local midnight.
    pub dt_split2_ms: Option<u32>,
    /// Finish time, ms since local midnight; `None` until the competitor finishes.
    pub dt_finish_ms: Option<u32>,
    /// Penalty seconds of the current run so far.
    pub pen_s: Option<u32>,
    /// Run time in ms; `None` before the start.
    pub time_ms: Option<i64>,
    /// `true` while the run time is the running clock (whole seconds, e.g. `"13   "`),
    /// `false` once it is a final two-decimal time (e.g. `"51.20"`) or absent.
    pub time_is_running: bool,
    /// Time plus penalties in ms (same running/final formatting as the time); `None` before
    /// the start (the wire's `Total="0.00"` placeholder next to an empty `Time`).
    pub total_ms: Option<i64>,
    /// Signed difference to the time to beat, ms (`"+12.79"` → 12790, `"-53.99"` → -53990).
    pub ttb_diff_ms: Option<i64>,
    /// Abbreviated name of the time-to-beat holder, e.g. `J. KREJČÍ`.
    pub ttb_name: String,
    /// Current (provisional) rank; `None` when empty or 0.
    pub rank: Option<u32>,
}

/// `<Results>`: the result table of one race.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ResultsTable {
    /// Race id, e.g. `K1M_ST_BR2_6`.
    pub race_id: String,
    /// Class id, e.g. `K1M_ST`.
    pub class_id: String,
    /// `Current="Y"`: the race running now (others are sent in rotation).
    pub is_current: bool,
    /// Class title, e.g. `K1m - střední trať`.
    pub main_title: String,
    /// Run title, e.g. `1st and 2nd Run`.
    pub sub_title: String,
    /// Rows in wire order.
    pub rows: Vec<ResultRow>,
}

/// Invalid-result mark (`IRM`): a known code (any case) as that code, else as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Irm {
    /// Did not start.
    Dns,
    /// Did not finish.
    Dnf,
    /// Disqualified.
    Dsq,
    /// Any other mark: a known code of [`crate::result_status::KNOWN`] upper-cased, else as sent.
    Other(String),
}

/// One `<Row>` of [`ResultsTable`]. In BR2 races `pen_s`/`total_ms` are those of the better
/// run (reference §1.9), not necessarily of this run.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ResultRow {
    /// `Row Number`.
    pub row_number: Option<u32>,
    /// Start number, trimmed (the wire pads it to 4 characters).
    pub bib: String,
    /// XML participant id, e.g. `119064.K1W_ST`; `None` if absent or empty.
    pub participant_id: Option<String>,
    /// `FAMILY Given`.
    pub name: String,
    /// Club name.
    pub club: String,
    /// Nationality code.
    pub nat: String,
    /// Given name.
    pub given_name: String,
    /// Family name.
    pub family_name: String,
    /// Start order.
    pub start_order: Option<u32>,
    /// Scheduled start time, ms since local midnight.
    pub start_time_ms: Option<u32>,
    /// Heat number (`0` in slalom).
    pub heat_nr: Option<u32>,
    /// Qualification mark (`Q`); `None` when empty.
    pub qualification: Option<String>,
    /// Invalid-result mark; `None` when empty.
    pub irm: Option<Irm>,
    /// `PP` contains `*`: result under investigation.
    pub under_investigation: bool,
    /// Penalty seconds.
    pub pen_s: Option<u32>,
    /// Per-gate penalty seconds from the fixed-width form; `None` = blank slot.
    pub gates: Vec<Option<u16>>,
    /// Run time, ms.
    pub time_ms: Option<i64>,
    /// Total (time + penalties; in BR2 the best run), ms.
    pub total_ms: Option<i64>,
    /// Rank; `None` when empty or 0.
    pub rank: Option<u32>,
    /// Ordering rank; `None` when empty or 0.
    pub rank_order: Option<u32>,
    /// Gap to the leader, ms; `None` for the leader / no result.
    pub behind_ms: Option<i64>,
}

/// `<RaceConfig>`: course configuration of the current race.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RaceConfig {
    /// Number of split timing points.
    pub nr_splits: u32,
    /// Number of gates.
    pub nr_gates: u32,
    /// One character per gate: `N` normal (downstream), `R` reverse (upstream).
    pub gate_config: String,
    /// Gate labels in gate order.
    pub gate_captions: Vec<String>,
}

/// One `<Race>` of `<Schedule>`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ScheduleRace {
    /// Running order (`Order`), equal to the XML `RaceOrder`; not unique in real data.
    pub order: Option<u32>,
    /// Race id.
    pub race_id: String,
    /// Human race name (`Race`).
    pub race_name: String,
    /// Class title.
    pub main_title: String,
    /// Run title.
    pub sub_title: String,
    /// Short title.
    pub short_title: String,
    /// Race status code (0 Scheduled … 5 Official …, reference §1.11).
    pub race_status: Option<u32>,
    /// Text of the `<StartTime>` child; `None` when empty (always empty in real data).
    pub start_time: Option<String>,
}

/// `<TimeOfDay>` heartbeat.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TimeOfDay {
    /// The text as sent, trimmed (e.g. `10:34:11`).
    pub text: String,
    /// The same as ms since local midnight; `None` if it is not a valid `H:MM:SS[.mmm]`.
    pub ms_since_midnight: Option<u32>,
}

/// `<TVS>`: the competitors shown on the TV screen (two slots, "odd" and "even").
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Tvs {
    /// `Odd_Bib`, trimmed; `None` when empty.
    pub odd_bib: Option<String>,
    /// `Odd_RaceId`; `None` when empty.
    pub odd_race_id: Option<String>,
    /// `Even_Bib`, trimmed; `None` when empty.
    pub even_bib: Option<String>,
    /// `Even_RaceId`; `None` when empty.
    pub even_race_id: Option<String>,
}

/// Why a frame could not be parsed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FrameError {
    /// The XML is not well-formed.
    #[error("malformed XML at byte {position}: {message}")]
    Xml {
        /// Byte offset in the frame text.
        position: u64,
        /// What quick-xml (or this parser) reported.
        message: String,
    },
    /// The frame has no root element at all.
    #[error("frame contains no XML element")]
    NoRoot,
    /// The root element is not `<Canoe123>`.
    #[error("root element is <{found}>, expected <Canoe123>")]
    WrongRoot {
        /// The root element name found.
        found: String,
    },
    /// Content (text or another element) after `</Canoe123>`.
    #[error("content after the closing </Canoe123>")]
    TrailingContent,
    /// The frame ended before all elements were closed.
    #[error("frame ends inside <{open}>")]
    Truncated {
        /// The innermost unclosed element.
        open: String,
    },
    /// Nesting deeper than [`MAX_DEPTH`](super::MAX_DEPTH).
    #[error("elements nested deeper than {limit}")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// An attribute value that cannot be converted.
    #[error("<{element} {attribute}=\"{value}\">: {reason}")]
    InvalidValue {
        /// Element name.
        element: &'static str,
        /// Attribute name.
        attribute: &'static str,
        /// The offending value (shortened).
        value: String,
        /// What was expected.
        reason: &'static str,
    },
    /// A value longer than its bound ([`MAX_ID_CHARS`](super::MAX_ID_CHARS), [`MAX_TEXT_CHARS`](super::MAX_TEXT_CHARS),
    /// [`MAX_LIST_CHARS`](super::MAX_LIST_CHARS)); nothing of the frame is used.
    #[error("<{element} {attribute}>: longer than {limit} characters")]
    TooLong {
        /// Element name.
        element: &'static str,
        /// Attribute name (or `text` for an element's text).
        attribute: &'static str,
        /// The bound.
        limit: usize,
    },
    /// More `<Row>`s in one `<Results>`, or `<Race>`s in one `<Schedule>`, than
    /// [`MAX_LIST_ENTRIES`](super::MAX_LIST_ENTRIES); nothing of the frame is used.
    #[error("more than {limit} <{element}> elements in one message")]
    TooMany {
        /// `Row` or `Race`.
        element: &'static str,
        /// The bound.
        limit: usize,
    },
    /// A required attribute is absent or empty.
    #[error("<{element}> lacks a {attribute} attribute")]
    MissingAttribute {
        /// Element name.
        element: &'static str,
        /// Attribute name.
        attribute: &'static str,
    },
}
