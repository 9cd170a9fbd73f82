//! The Canoe123 TCP stream, pure (no I/O here; `ingest` owns the sockets).
//!
//! - [`codec`]: `|`-delimited framing ([`C123Codec`], a tokio-util `Decoder`/`Encoder`).
//! - [`frame`]: one frame's XML → typed [`Message`]s, with units converted to the domain
//!   (times in ms, penalties in s, gates as positional `Vec<Option<u16>>`).
//! - [`oncourse`]: [`OnCourseTracker`], merging one-rider-per-message `OnCourse` into the
//!   list of competitors on course, with TTL expiry and finish detection.
//! - [`recording`]: reader for `.tcp.jsonl` recordings (tests, replay, fake server).

pub mod codec;
pub mod frame;
pub mod oncourse;
pub mod recording;

pub use codec::{C123Codec, CodecError, Frame, DEFAULT_MAX_FRAME_BYTES};
pub use frame::{
    parse_frame, FrameError, Irm, Message, OnCourse, OnCourseRider, RaceConfig, ResultRow,
    ResultsTable, ScheduleRace, TimeOfDay, Tvs,
};
pub use oncourse::{Finish, OnCourseEntry, OnCourseTracker, OnCourseUpdate, DEFAULT_TTL_MS};
pub use recording::{RecordedFrame, Recording, RecordingError};
