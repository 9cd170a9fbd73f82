//! Parser for one Canoe123 frame (`<Canoe123 System="Main">…</Canoe123>`) into typed messages.
//!
//! Units are converted here, at the boundary, into the project's domain units:
//!
//! | Quantity | On the wire | Here |
//! |---|---|---|
//! | run time, total, behind, TTB diff | seconds string: `"51.20"`, running `"13   "`, `""` | `Option<i64>` **milliseconds** (`51200`, `13000`, `None`) |
//! | penalty | integer seconds string | `Option<u32>` **seconds** |
//! | `dtStart`, `dtFinish`, `StartTime`, `TimeOfDay` | local `H:MM:SS[.mmm]` | `Option<u32>` **milliseconds since local midnight** (no date, no zone: the wire has neither) |
//! | bib | right-aligned, space padded (`"   9"`) | trimmed `String` (`"9"`) |
//! | OnCourse gates | comma separated, positional | `Vec<Option<u16>>`, `None` = not judged yet |
//! | Results gates | fixed width, 3 chars per gate | `Vec<Option<u16>>`, `None` = blank slot |
//! | rank | `""` or `"0"` when none | `Option<u32>` |
//!
//! Running times: while a competitor is on course C123 sends whole seconds padded with
//! spaces (`Time="13   "`); once timed it sends two decimals. [`OnCourseRider::time_is_running`]
//! tells the two apart. A not-started competitor has `Time=""` and `Total="0.00"`; that
//! placeholder total is reported as `None` (no time, so no total), never as zero.
//!
//! Strictness: a frame that is not well-formed XML, has another root than `<Canoe123>`, or
//! carries a value that cannot be converted (e.g. `Pen="abc"`) is rejected as a whole with a
//! [`FrameError`]; absent attributes are tolerated and read as empty. Unknown children of the
//! root become [`Message::Unknown`]; unknown attributes and unknown nested elements are
//! ignored, so additions by a newer Canoe123 do not break parsing.

use std::borrow::Cow;

use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesStart, Event};
use quick_xml::reader::Reader;
use quick_xml::XmlVersion;

use crate::model::{Gates, MAX_RANK, MAX_RUN_PENALTY_S, MAX_TIME_MS};

/// Maximum element nesting accepted. Real frames nest 4 deep (`Canoe123/Results/Row/Result`).
pub const MAX_DEPTH: usize = 16;

/// Error values are quoted in messages at most this long (hostile input can be megabytes).
const MAX_QUOTED_VALUE: usize = 64;

/// Identifiers (`Id`, `RaceId`, `ClassId`, bibs, `Nat`, `IRM`, `Q`, the TVS ids) and times are
/// at most this many characters; real ones have fewer than 30 (`119064.K1W_ST.PZK`).
pub const MAX_ID_CHARS: usize = 64;
/// Names and titles (`Name`, `Club`, `Race`, `MainTitle`, `TTBName`, …) are at most this many
/// characters; the longest in the real recording has 40.
pub const MAX_TEXT_CHARS: usize = 200;
/// Lists in one attribute (`Gates`, `GateCaptions`, `GateConfig`): at most this many
/// characters (30 gates of `50,` are 90).
pub const MAX_LIST_CHARS: usize = 1024;
/// Rows of one `<Results>` table and races of one `<Schedule>`: at most this many. A real
/// race has a few hundred starters at most and an event a few dozen races; without it one
/// 4 MiB frame could carry ~40 000 rows for the merge loop to apply.
pub const MAX_LIST_ENTRIES: usize = 1024;

/// The bound of an attribute's value, by its name.
fn max_chars(attribute: &str) -> usize {
    match attribute {
        "Id" | "RaceId" | "ClassId" | "Bib" | "Nat" | "IRM" | "Q" | "Odd_Bib" | "Odd_RaceId"
        | "Even_Bib" | "Even_RaceId" => MAX_ID_CHARS,
        "Gates" | "GateCaptions" | "GateConfig" => MAX_LIST_CHARS,
        _ => MAX_TEXT_CHARS,
    }
}

/// Whether `text` has more than `max` characters (without counting past `max + 1`).
pub fn longer_than(text: &str, max: usize) -> bool {
    text.len() > max && text.chars().nth(max).is_some()
}

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
/// of them; merge by bib (see [`super::oncourse::OnCourseTracker`]).
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
    /// Nesting deeper than [`MAX_DEPTH`].
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
    /// A value longer than its bound ([`MAX_ID_CHARS`], [`MAX_TEXT_CHARS`],
    /// [`MAX_LIST_CHARS`]); nothing of the frame is used.
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
    /// [`MAX_LIST_ENTRIES`]; nothing of the frame is used.
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

// ---------------------------------------------------------------------------------------
// Value conversions (public: the XML export uses the same gate and time forms)
// ---------------------------------------------------------------------------------------

/// Why a single value could not be converted (wrapped into [`FrameError::InvalidValue`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadValue(pub &'static str);

/// A parsed seconds string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecondsValue {
    /// The value in milliseconds.
    pub ms: i64,
    /// `true` if the value had no decimal point (the whole-second running clock).
    pub whole_seconds: bool,
}

/// Parses a Canoe123 seconds string into ms: `"51.20"` → 51200, `"13   "` → 13000 (whole
/// seconds), `"+12.79"` → 12790, `"-53.99"` → -53990, `"1:23.45"` → 83450, `""` → `None`.
/// Up to 3 decimals; surrounding whitespace is ignored.
pub fn parse_seconds(text: &str) -> Result<Option<SecondsValue>, BadValue> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    let (negative, unsigned) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (int_part, frac_part) = match unsigned.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (unsigned, None),
    };
    // Optional minutes (and hours) prefix: `M:SS` or `H:MM:SS`.
    let mut whole_s: i64 = 0;
    let mut fields = 0;
    for field in int_part.split(':') {
        fields += 1;
        if fields > 3 {
            return Err(BadValue("too many ':' fields"));
        }
        let v = parse_digits(field)?;
        if fields > 1 && v >= 60 {
            return Err(BadValue("minutes/seconds field must be below 60"));
        }
        whole_s = whole_s
            .checked_mul(60)
            .and_then(|x| x.checked_add(v))
            .ok_or(BadValue("out of range"))?;
    }
    let frac_ms = match frac_part {
        None => 0,
        Some(f) => {
            if f.is_empty() || f.len() > 3 {
                return Err(BadValue("expected 1 to 3 decimals"));
            }
            let v = parse_digits(f)?;
            // "5" → 500, "50" → 500, "500" → 500
            v * 10_i64.pow(3 - f.len() as u32)
        }
    };
    let ms = whole_s
        .checked_mul(1000)
        .and_then(|x| x.checked_add(frac_ms))
        .ok_or(BadValue("out of range"))?;
    Ok(Some(SecondsValue {
        ms: if negative { -ms } else { ms },
        whole_seconds: frac_part.is_none(),
    }))
}

/// ASCII digits only, at most 12 of them (no sign, no whitespace).
fn parse_digits(s: &str) -> Result<i64, BadValue> {
    if s.is_empty() || s.len() > 12 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(BadValue("expected digits"));
    }
    s.parse::<i64>().map_err(|_| BadValue("expected digits"))
}

/// Parses a local time of day `H:MM:SS[.mmm]` (also `HH:MM:SS`, `8:30:00`) into ms since
/// midnight; `""` → `None`.
pub fn parse_time_of_day(text: &str) -> Result<Option<u32>, BadValue> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    let mut parts = t.split(':');
    let (Some(h), Some(m), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(BadValue("expected H:MM:SS[.mmm]"));
    };
    let (s, frac) = match s.split_once('.') {
        Some((s, f)) => (s, Some(f)),
        None => (s, None),
    };
    let bad = BadValue("expected H:MM:SS[.mmm]");
    if h.len() > 2 || m.len() != 2 || s.len() != 2 {
        return Err(bad);
    }
    let (h, m, s) = (
        parse_digits(h).map_err(|_| bad)?,
        parse_digits(m).map_err(|_| bad)?,
        parse_digits(s).map_err(|_| bad)?,
    );
    if h > 23 || m > 59 || s > 59 {
        return Err(BadValue("time of day out of range"));
    }
    let frac_ms = match frac {
        None => 0,
        Some(f) if !f.is_empty() && f.len() <= 3 => {
            parse_digits(f).map_err(|_| bad)? * 10_i64.pow(3 - f.len() as u32)
        }
        Some(_) => return Err(bad),
    };
    // h ≤ 23 so the value is < 86 400 000 and fits u32.
    u32::try_from(((h * 60 + m) * 60 + s) * 1000 + frac_ms)
        .map(Some)
        .map_err(|_| bad)
}

/// OnCourse gates: comma separated, one field per gate, positional (see
/// [`Gates::parse_comma_slots`], the one slot parser of every input).
pub fn parse_comma_gates(text: &str) -> Result<Vec<Option<u16>>, BadValue> {
    Gates::parse_comma_slots(text).map_err(BadValue)
}

/// Results / XML gates: fixed width, 3 characters per gate (see
/// [`Gates::parse_fixed_slots`], the one slot parser of every input).
pub fn parse_fixed_width_gates(text: &str) -> Result<Vec<Option<u16>>, BadValue> {
    Gates::parse_fixed_slots(text).map_err(BadValue)
}

// ---------------------------------------------------------------------------------------
// Frame parser
// ---------------------------------------------------------------------------------------

/// Parses one frame (without its `|`) into the messages it carries, in document order.
pub fn parse_frame(text: &str) -> Result<Vec<Message>, FrameError> {
    // No text trimming in the reader: it would also eat the spaces next to an entity
    // reference (`a &amp; b`). Whitespace between elements of pretty-printed frames is
    // ignored by `Parser::text` instead.
    let mut reader = Reader::from_str(text);

    let mut parser = Parser::default();
    loop {
        let position = reader.buffer_position();
        let event = reader.read_event().map_err(|e| FrameError::Xml {
            position: reader.error_position(),
            message: e.to_string(),
        })?;
        match event {
            Event::Start(e) => parser.open(&e, false, position)?,
            Event::Empty(e) => parser.open(&e, true, position)?,
            Event::End(_) => parser.close()?,
            Event::Text(t) => parser.text(&t.xml10_content(), position)?,
            Event::CData(t) => parser.text(&t.xml10_content(), position)?,
            Event::GeneralRef(r) => {
                let resolved: Cow<'_, str> = if r.is_char_ref() {
                    match r.resolve_char_ref() {
                        Ok(Some(c)) => Cow::Owned(c.to_string()),
                        _ => return Err(xml_error(position, "invalid character reference")),
                    }
                } else {
                    match resolve_predefined_entity(&r) {
                        Some(s) => Cow::Borrowed(s),
                        None => return Err(xml_error(position, "unknown entity reference")),
                    }
                };
                parser.text(&resolved, position)?;
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) | Event::DocType(_) => {}
            Event::Eof => return parser.finish(),
        }
    }
}

fn xml_error(position: u64, message: &str) -> FrameError {
    FrameError::Xml {
        position,
        message: message.to_owned(),
    }
}

fn shorten(value: &str) -> String {
    match value.char_indices().nth(MAX_QUOTED_VALUE) {
        Some((cut, _)) => format!("{}…", &value[..cut]),
        None => value.to_owned(),
    }
}

/// Where an element sits, which decides how its attributes and children are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Root,
    OnCourse,
    Results,
    Row,
    Schedule,
    Race,
    RaceStartTime,
    TimeOfDay,
    /// A leaf handled on open (Participant, Result, RaceConfig, TVS) or an ignored element.
    Other,
}

/// The message being built from the current child of the root (one per parse, on the stack).
#[allow(clippy::large_enum_variant)]
enum Building {
    OnCourse(OnCourse, Option<OnCourseRider>),
    Results(ResultsTable, Option<ResultRow>),
    Schedule(Vec<ScheduleRace>),
    TimeOfDay(String),
    Done(Message),
}

#[derive(Default)]
struct Parser {
    stack: Vec<(Scope, String)>,
    root_closed: bool,
    seen_root: bool,
    building: Option<Building>,
    messages: Vec<Message>,
}

/// Attributes of one element, unescaped, in document order.
struct Attrs<'a> {
    element: &'static str,
    list: Vec<(&'a str, Cow<'a, str>)>,
}

impl<'a> Attrs<'a> {
    fn read(
        e: &'a BytesStart<'a>,
        element: &'static str,
        position: u64,
    ) -> Result<Self, FrameError> {
        let mut list = Vec::new();
        for attr in e.attributes() {
            let attr = attr.map_err(|err| FrameError::Xml {
                position,
                message: err.to_string(),
            })?;
            let value = attr
                .normalized_value(XmlVersion::Implicit1_0)
                .map_err(|err| FrameError::Xml {
                    position,
                    message: err.to_string(),
                })?;
            list.push((attr.key.into_inner(), value));
        }
        Ok(Self { element, list })
    }

    /// The raw value, `""` if absent.
    fn raw(&self, key: &str) -> &str {
        self.list
            .iter()
            .find(|(k, _)| *k == key)
            .map_or("", |(_, v)| v.as_ref())
    }

    /// The raw value, refused when longer than the attribute's bound ([`max_chars`]).
    fn bounded(&self, key: &'static str) -> Result<&str, FrameError> {
        let v = self.raw(key);
        let limit = max_chars(key);
        if longer_than(v, limit) {
            return Err(FrameError::TooLong {
                element: self.element,
                attribute: key,
                limit,
            });
        }
        Ok(v)
    }

    fn string(&self, key: &'static str) -> Result<String, FrameError> {
        Ok(self.bounded(key)?.to_owned())
    }

    /// Trimmed; `None` when empty.
    fn opt_string(&self, key: &'static str) -> Result<Option<String>, FrameError> {
        let v = self.bounded(key)?.trim();
        Ok((!v.is_empty()).then(|| v.to_owned()))
    }

    fn invalid(&self, key: &'static str, reason: &'static str) -> FrameError {
        FrameError::InvalidValue {
            element: self.element,
            attribute: key,
            value: shorten(self.raw(key)),
            reason,
        }
    }

    fn map<T>(
        &self,
        key: &'static str,
        f: impl FnOnce(&str) -> Result<T, BadValue>,
    ) -> Result<T, FrameError> {
        f(self.bounded(key)?).map_err(|BadValue(reason)| self.invalid(key, reason))
    }

    fn opt_u32(&self, key: &'static str) -> Result<Option<u32>, FrameError> {
        let v = self.raw(key).trim();
        if v.is_empty() {
            return Ok(None);
        }
        if !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(self.invalid(key, "expected a non-negative integer"));
        }
        v.parse::<u32>()
            .map(Some)
            .map_err(|_| self.invalid(key, "integer out of range"))
    }

    fn u32_or_zero(&self, key: &'static str) -> Result<u32, FrameError> {
        Ok(self.opt_u32(key)?.unwrap_or(0))
    }

    /// Rank-like: empty or 0 → `None`; at most [`MAX_RANK`], as for the other inputs.
    fn rank(&self, key: &'static str) -> Result<Option<u32>, FrameError> {
        let rank = self.opt_u32(key)?.filter(|&r| r != 0);
        if rank.is_some_and(|r| i64::from(r) > MAX_RANK) {
            return Err(self.invalid(key, "rank over model::MAX_RANK"));
        }
        Ok(rank)
    }

    /// A run penalty in whole seconds, at most [`MAX_RUN_PENALTY_S`] (as for XML and JSON).
    fn penalty_s(&self, key: &'static str) -> Result<Option<u32>, FrameError> {
        let pen = self.opt_u32(key)?;
        if pen.is_some_and(|p| i64::from(p) > MAX_RUN_PENALTY_S) {
            return Err(self.invalid(key, "penalty over model::MAX_RUN_PENALTY_S"));
        }
        Ok(pen)
    }

    /// A time or time difference; its magnitude is at most [`MAX_TIME_MS`] (24 h), the bound
    /// of every other input, so an absurd value is a parse error, not a published time.
    fn seconds(&self, key: &'static str) -> Result<Option<SecondsValue>, FrameError> {
        let value = self.map(key, parse_seconds)?;
        if value.is_some_and(|v| v.ms.abs() > MAX_TIME_MS) {
            return Err(self.invalid(key, "more than 24 hours"));
        }
        Ok(value)
    }

    fn ms(&self, key: &'static str) -> Result<Option<i64>, FrameError> {
        Ok(self.seconds(key)?.map(|v| v.ms))
    }

    fn time_of_day(&self, key: &'static str) -> Result<Option<u32>, FrameError> {
        self.map(key, parse_time_of_day)
    }

    fn flag(&self, key: &'static str) -> bool {
        self.raw(key).trim().eq_ignore_ascii_case("Y")
    }

    fn bib(&self) -> Result<String, FrameError> {
        let bib = self.bounded("Bib")?.trim();
        if bib.is_empty() {
            return Err(FrameError::MissingAttribute {
                element: self.element,
                attribute: "Bib",
            });
        }
        Ok(bib.to_owned())
    }
}

impl Parser {
    fn open(&mut self, e: &BytesStart<'_>, empty: bool, position: u64) -> Result<(), FrameError> {
        if self.root_closed {
            return Err(FrameError::TrailingContent);
        }
        if self.stack.len() >= MAX_DEPTH {
            return Err(FrameError::TooDeep { limit: MAX_DEPTH });
        }
        let name = e.name().into_inner();
        let parent = self.stack.last().map(|(scope, _)| *scope);
        // Elements whose attributes are not read still get them checked for well-formedness.
        let mut attrs_read = false;
        let scope = match parent {
            None => {
                if name != "Canoe123" {
                    return Err(FrameError::WrongRoot {
                        found: shorten(name),
                    });
                }
                self.seen_root = true;
                Scope::Root
            }
            Some(Scope::Root) => {
                let (scope, read) = self.open_message(e, name, position)?;
                attrs_read = read;
                scope
            }
            Some(Scope::OnCourse) => {
                attrs_read = self.open_in_oncourse(e, name, position)?;
                Scope::Other
            }
            Some(Scope::Results) if name == "Row" => {
                attrs_read = true;
                let attrs = Attrs::read(e, "Row", position)?;
                let row = ResultRow {
                    row_number: attrs.opt_u32("Number")?,
                    ..ResultRow::default()
                };
                if let Some(Building::Results(table, current)) = &mut self.building {
                    if table.rows.len() >= MAX_LIST_ENTRIES {
                        return Err(FrameError::TooMany {
                            element: "Row",
                            limit: MAX_LIST_ENTRIES,
                        });
                    }
                    *current = Some(row);
                }
                Scope::Row
            }
            Some(Scope::Row) => {
                attrs_read = self.open_in_row(e, name, position)?;
                Scope::Other
            }
            Some(Scope::Schedule) if name == "Race" => {
                attrs_read = true;
                let race = read_schedule_race(&Attrs::read(e, "Race", position)?)?;
                if let Some(Building::Schedule(races)) = &mut self.building {
                    if races.len() >= MAX_LIST_ENTRIES {
                        return Err(FrameError::TooMany {
                            element: "Race",
                            limit: MAX_LIST_ENTRIES,
                        });
                    }
                    races.push(race);
                }
                Scope::Race
            }
            Some(Scope::Race) if name == "StartTime" => Scope::RaceStartTime,
            Some(_) => Scope::Other,
        };
        if !attrs_read {
            for attr in e.attributes() {
                attr.map_err(|err| FrameError::Xml {
                    position,
                    message: err.to_string(),
                })?;
            }
        }
        if empty {
            // Self-closing (most Participant/Result elements): close without pushing, which
            // saves allocating the name.
            self.close_scope(scope);
        } else {
            self.stack.push((scope, name.to_owned()));
        }
        Ok(())
    }

    /// A child of `<Canoe123>`: starts a message. Returns its scope and whether its
    /// attributes were read.
    fn open_message(
        &mut self,
        e: &BytesStart<'_>,
        name: &str,
        position: u64,
    ) -> Result<(Scope, bool), FrameError> {
        let (scope, building) = match name {
            "OnCourse" => {
                let a = Attrs::read(e, "OnCourse", position)?;
                let msg = OnCourse {
                    total: a.u32_or_zero("Total")?,
                    position: a.u32_or_zero("Position")?,
                    rider: None,
                };
                (Scope::OnCourse, Building::OnCourse(msg, None))
            }
            "Results" => {
                let a = Attrs::read(e, "Results", position)?;
                let table = ResultsTable {
                    race_id: a.string("RaceId")?,
                    class_id: a.string("ClassId")?,
                    is_current: a.flag("Current"),
                    main_title: a.string("MainTitle")?,
                    sub_title: a.string("SubTitle")?,
                    rows: Vec::new(),
                };
                (Scope::Results, Building::Results(table, None))
            }
            "RaceConfig" => {
                let a = Attrs::read(e, "RaceConfig", position)?;
                let captions = a.bounded("GateCaptions")?;
                let config = RaceConfig {
                    nr_splits: a.u32_or_zero("NrSplits")?,
                    nr_gates: a.u32_or_zero("NrGates")?,
                    gate_config: a.string("GateConfig")?,
                    gate_captions: if captions.is_empty() {
                        Vec::new()
                    } else {
                        captions.split(',').map(|c| c.trim().to_owned()).collect()
                    },
                };
                (Scope::Other, Building::Done(Message::RaceConfig(config)))
            }
            "TVS" => {
                let a = Attrs::read(e, "TVS", position)?;
                let tvs = Tvs {
                    odd_bib: a.opt_string("Odd_Bib")?,
                    odd_race_id: a.opt_string("Odd_RaceId")?,
                    even_bib: a.opt_string("Even_Bib")?,
                    even_race_id: a.opt_string("Even_RaceId")?,
                };
                (Scope::Other, Building::Done(Message::Tvs(tvs)))
            }
            "Schedule" => (Scope::Schedule, Building::Schedule(Vec::new())),
            "TimeOfDay" => (Scope::TimeOfDay, Building::TimeOfDay(String::new())),
            other => (
                Scope::Other,
                Building::Done(Message::Unknown(shorten(other))),
            ),
        };
        let attrs_read = matches!(name, "OnCourse" | "Results" | "RaceConfig" | "TVS");
        self.building = Some(building);
        Ok((scope, attrs_read))
    }

    /// A child of `<OnCourse>`. Returns whether its attributes were read.
    fn open_in_oncourse(
        &mut self,
        e: &BytesStart<'_>,
        name: &str,
        position: u64,
    ) -> Result<bool, FrameError> {
        let Some(Building::OnCourse(_, rider)) = &mut self.building else {
            return Ok(false);
        };
        match name {
            "Participant" => {
                let a = Attrs::read(e, "Participant", position)?;
                let r = rider.get_or_insert_with(OnCourseRider::default);
                r.bib = a.bib()?;
                r.participant_id = a.opt_string("Id")?;
                r.name = a.string("Name")?;
                r.club = a.string("Club")?;
                r.nat = a.string("Nat")?;
                r.race_name = a.string("Race")?;
                r.race_id = a.string("RaceId")?;
                r.start_order = a.opt_u32("StartOrder")?;
                r.warning = a.opt_string("Warning")?;
            }
            "Result" => {
                let a = Attrs::read(e, "Result", position)?;
                let r = rider.get_or_insert_with(OnCourseRider::default);
                match a.raw("Type") {
                    "C" => {
                        r.gates = a.map("Gates", parse_comma_gates)?;
                        r.completed = a.flag("Completed");
                        r.dt_start_ms = a.time_of_day("dtStart")?;
                        r.dt_split1_ms = a.time_of_day("dtSplit1")?;
                        r.dt_split2_ms = a.time_of_day("dtSplit2")?;
                        r.dt_finish_ms = a.time_of_day("dtFinish")?;
                    }
                    "T" => {
                        r.pen_s = a.penalty_s("Pen")?;
                        let time = a.seconds("Time")?;
                        r.time_ms = time.map(|t| t.ms);
                        r.time_is_running = time.is_some_and(|t| t.whole_seconds);
                        let total = a.ms("Total")?;
                        // Not started: Time="" with the placeholder Total="0.00".
                        r.total_ms = if time.is_none() && total == Some(0) {
                            None
                        } else {
                            total
                        };
                        r.ttb_diff_ms = a.ms("TTBDiff")?;
                        r.ttb_name = a.string("TTBName")?;
                        r.rank = a.rank("Rank")?;
                    }
                    _ => {}
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// A child of `<Row>`. Returns whether its attributes were read.
    fn open_in_row(
        &mut self,
        e: &BytesStart<'_>,
        name: &str,
        position: u64,
    ) -> Result<bool, FrameError> {
        let Some(Building::Results(_, Some(row))) = &mut self.building else {
            return Ok(false);
        };
        match name {
            "Participant" => {
                let a = Attrs::read(e, "Participant", position)?;
                row.bib = a.bib()?;
                row.participant_id = a.opt_string("Id")?;
                row.name = a.string("Name")?;
                row.club = a.string("Club")?;
                row.nat = a.string("Nat")?;
                row.given_name = a.string("GivenName")?;
                row.family_name = a.string("FamilyName")?;
                row.start_order = a.opt_u32("StartOrder")?;
                row.start_time_ms = a.time_of_day("StartTime")?;
            }
            "Result" => {
                let a = Attrs::read(e, "Result", position)?;
                // Only Type="T" is known for Results rows; another type is ignored.
                if a.raw("Type") != "T" {
                    return Ok(true);
                }
                row.heat_nr = a.opt_u32("HeatNr")?;
                row.qualification = a.opt_string("Q")?;
                // The one status rule of every input (`crate::result_status`).
                row.irm = crate::result_status::normalize(a.raw("IRM"))
                    .map_err(|e| {
                        a.invalid(
                            "IRM",
                            match e {
                                crate::result_status::StatusError::TooLong(_) => {
                                    "longer than result_status::MAX_STATUS_BYTES"
                                }
                                crate::result_status::StatusError::ControlCharacter => {
                                    "contains a control character"
                                }
                            },
                        )
                    })?
                    .map(|irm| match irm.as_str() {
                        "DNS" => Irm::Dns,
                        "DNF" => Irm::Dnf,
                        "DSQ" => Irm::Dsq,
                        _ => Irm::Other(irm),
                    });
                row.under_investigation = a.raw("PP").contains('*');
                row.pen_s = a.penalty_s("Pen")?;
                row.gates = a.map("Gates", parse_fixed_width_gates)?;
                row.time_ms = a.ms("Time")?;
                row.total_ms = a.ms("Total")?;
                row.rank = a.rank("Rank")?;
                row.rank_order = a.rank("RankOrder")?;
                row.behind_ms = a.ms("Behind")?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn text(&mut self, text: &str, position: u64) -> Result<(), FrameError> {
        match self.stack.last() {
            None => {
                if text.trim().is_empty() {
                    Ok(())
                } else if self.root_closed {
                    Err(FrameError::TrailingContent)
                } else {
                    Err(xml_error(position, "text outside the root element"))
                }
            }
            Some((Scope::TimeOfDay, _)) => {
                if let Some(Building::TimeOfDay(buf)) = &mut self.building {
                    buf.push_str(text);
                    if longer_than(buf, MAX_ID_CHARS) {
                        return Err(FrameError::TooLong {
                            element: "TimeOfDay",
                            attribute: "text",
                            limit: MAX_ID_CHARS,
                        });
                    }
                }
                Ok(())
            }
            Some((Scope::RaceStartTime, _)) => {
                if let Some(Building::Schedule(races)) = &mut self.building {
                    if let Some(race) = races.last_mut() {
                        let start = race.start_time.get_or_insert_with(String::new);
                        start.push_str(text);
                        if longer_than(start, MAX_ID_CHARS) {
                            return Err(FrameError::TooLong {
                                element: "StartTime",
                                attribute: "text",
                                limit: MAX_ID_CHARS,
                            });
                        }
                    }
                }
                Ok(())
            }
            Some(_) => Ok(()),
        }
    }

    fn close(&mut self) -> Result<(), FrameError> {
        // quick-xml checks that end names match, so the stack cannot underflow on valid
        // input; treat an underflow as malformed anyway instead of panicking.
        let Some((scope, _)) = self.stack.pop() else {
            return Err(xml_error(0, "unmatched end tag"));
        };
        self.close_scope(scope);
        Ok(())
    }

    /// Completes an element whose entry is no longer on the stack.
    fn close_scope(&mut self, scope: Scope) {
        match scope {
            Scope::Root => self.root_closed = true,
            Scope::Row => {
                if let Some(Building::Results(table, row)) = &mut self.building {
                    if let Some(row) = row.take() {
                        table.rows.push(row);
                    }
                }
            }
            Scope::RaceStartTime => {
                if let Some(Building::Schedule(races)) = &mut self.building {
                    if let Some(race) = races.last_mut() {
                        // Whitespace-only / empty <StartTime> reads as absent.
                        if race
                            .start_time
                            .as_deref()
                            .is_some_and(|s| s.trim().is_empty())
                        {
                            race.start_time = None;
                        }
                    }
                }
            }
            _ => {}
        }
        // Closing a direct child of the root completes its message.
        if self.stack.len() == 1 {
            if let Some(building) = self.building.take() {
                self.messages.push(match building {
                    Building::OnCourse(mut msg, rider) => {
                        // A rider needs a <Participant> (the bib); stray results alone are dropped.
                        msg.rider = rider.filter(|r| !r.bib.is_empty());
                        Message::OnCourse(msg)
                    }
                    Building::Results(table, _) => Message::Results(table),
                    Building::Schedule(races) => Message::Schedule(races),
                    Building::TimeOfDay(text) => {
                        let text = text.trim().to_owned();
                        let ms_since_midnight = parse_time_of_day(&text).ok().flatten();
                        Message::TimeOfDay(TimeOfDay {
                            text,
                            ms_since_midnight,
                        })
                    }
                    Building::Done(msg) => msg,
                });
            }
        }
    }

    fn finish(self) -> Result<Vec<Message>, FrameError> {
        if let Some((_, open)) = self.stack.last() {
            return Err(FrameError::Truncated {
                open: shorten(open),
            });
        }
        if !self.seen_root {
            return Err(FrameError::NoRoot);
        }
        Ok(self.messages)
    }
}

fn read_schedule_race(a: &Attrs<'_>) -> Result<ScheduleRace, FrameError> {
    Ok(ScheduleRace {
        order: a.opt_u32("Order")?,
        race_id: a.string("RaceId")?,
        race_name: a.string("Race")?,
        main_title: a.string("MainTitle")?,
        sub_title: a.string("SubTitle")?,
        short_title: a.string("ShortTitle")?,
        race_status: a.opt_u32("RaceStatus")?,
        start_time: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: &str) -> Option<(i64, bool)> {
        parse_seconds(s)
            .expect("valid")
            .map(|v| (v.ms, v.whole_seconds))
    }

    #[test]
    fn seconds_strings_to_ms() {
        assert_eq!(secs("51.20"), Some((51_200, false)));
        assert_eq!(secs("51.2"), Some((51_200, false)));
        assert_eq!(secs("75.099"), Some((75_099, false)));
        assert_eq!(secs("13   "), Some((13_000, true)));
        assert_eq!(secs("3 "), Some((3_000, true)));
        assert_eq!(secs("0.00"), Some((0, false)));
        assert_eq!(secs("+12.79"), Some((12_790, false)));
        assert_eq!(secs("-53.99"), Some((-53_990, false)));
        assert_eq!(secs("1:23.45"), Some((83_450, false)));
        assert_eq!(secs("1:02:03"), Some((3_723_000, true)));
        assert_eq!(secs(""), None);
        assert_eq!(secs("   "), None);
        for bad in [
            "abc",
            "1.2345",
            "1.",
            ".5",
            "-",
            "+",
            "1:60",
            "1:2:3:4",
            "1 2",
            "١٢",
            "99999999999999",
        ] {
            assert!(parse_seconds(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn time_of_day_to_ms_since_midnight() {
        assert_eq!(parse_time_of_day("10:34:20.123"), Ok(Some(38_060_123)));
        assert_eq!(parse_time_of_day("8:30:00"), Ok(Some(30_600_000)));
        assert_eq!(parse_time_of_day("23:59:59.9"), Ok(Some(86_399_900)));
        assert_eq!(parse_time_of_day(""), Ok(None));
        for bad in [
            "24:00:00",
            "10:60:00",
            "10:00",
            "10:00:00.1234",
            "a:b:c",
            "10:0:00",
        ] {
            assert!(parse_time_of_day(bad).is_err(), "{bad:?}");
        }
    }
}
