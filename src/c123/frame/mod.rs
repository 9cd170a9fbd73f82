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
//!
//! The module is split by concern: `message` (the typed messages and [`FrameError`]),
//! `units` (the value conversions, also used by the XML export), `limits` (the bounds of
//! values), `attrs` (reading one element's attributes) and `parse` (the SAX parser). Every item
//! is re-exported here, so `c123::frame::…` is the one path callers use.

mod attrs;
mod limits;
mod message;
mod parse;
mod units;

pub use limits::{
    longer_than, MAX_DEPTH, MAX_ID_CHARS, MAX_LIST_CHARS, MAX_LIST_ENTRIES, MAX_TEXT_CHARS,
};
pub use message::{
    FrameError, Irm, Message, OnCourse, OnCourseRider, RaceConfig, ResultRow, ResultsTable,
    ScheduleRace, TimeOfDay, Tvs,
};
pub use parse::parse_frame;
pub use units::{
    parse_comma_gates, parse_fixed_width_gates, parse_seconds, parse_time_of_day, BadValue,
    SecondsValue,
};
