//! The status of a result row (`DNF`, `DSQ`, ...), one rule for every input (ingest API, XML
//! export, TCP `IRM`).
//!
//! Canoe123 may add codes, so an unknown status is not an error: it is kept verbatim and
//! makes the row unranked, exactly as live-mini does (`ResultRow::is_rankable`: rankable =
//! a total and no status). Unknown values are counted (`/metrics`
//! `results_unknown_status_total`) and each new value is logged once, so an operator learns
//! about a new code without one row refusing a whole batch.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// The codes c123-live knows; matched case-insensitively and stored upper-case.
pub const KNOWN: [&str; 7] = ["DNS", "DNF", "DSQ", "CAP", "RAL", "DNQ", "*"];

/// Longest status accepted, in bytes (real codes have 1-3 characters; the bound keeps an
/// absurd value out of the store, the logs and every spectator's page).
pub const MAX_STATUS_BYTES: usize = 32;

/// Distinct unknown values remembered for "log once"; past it new values are counted but
/// no longer logged (one line says so).
pub const MAX_REMEMBERED_UNKNOWN: usize = 64;

/// Why a status value is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatusError {
    #[error("{0} bytes, at most {MAX_STATUS_BYTES} are accepted")]
    TooLong(usize),
    #[error("contains a control character")]
    ControlCharacter,
}

/// The stored form of a status as an input sent it: blank is `None` (a valid run), a known
/// code in any case is that code, anything else is kept as sent (surrounding whitespace
/// trimmed; it is padding of the fixed-width formats, not part of the code).
pub fn normalize(raw: &str) -> Result<Option<String>, StatusError> {
    let s = raw.trim();
    if s.is_empty() {
        return Ok(None);
    }
    if s.len() > MAX_STATUS_BYTES {
        return Err(StatusError::TooLong(s.len()));
    }
    if s.chars().any(char::is_control) {
        return Err(StatusError::ControlCharacter);
    }
    match KNOWN.iter().find(|k| k.eq_ignore_ascii_case(s)) {
        Some(k) => Ok(Some((*k).to_owned())),
        None => Ok(Some(s.to_owned())),
    }
}

/// `true` for one of [`KNOWN`] (as stored).
pub fn is_known(status: &str) -> bool {
    KNOWN.contains(&status)
}

/// Process-wide tally of unknown statuses: every input reports here, none shares an object
/// with `/metrics`, and the count is one per process anyway.
#[derive(Debug, Default)]
pub struct UnknownStatuses {
    count: AtomicU64,
    remembered: Mutex<HashSet<String>>,
    stopped_logging: AtomicBool,
}

/// What [`UnknownStatuses::note`] did with one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Noted {
    /// One of [`KNOWN`]: neither counted nor logged.
    Known,
    /// Unknown and new: counted and logged.
    Logged,
    /// Unknown and seen before: counted only.
    Counted,
    /// Unknown, new, and past [`MAX_REMEMBERED_UNKNOWN`]: counted; the one line saying that
    /// logging stops was written now.
    LimitReached,
    /// Unknown, new, past the bound, after that line: counted only.
    NotRemembered,
}

impl UnknownStatuses {
    /// Counts one row with `status` if it is unknown; logs a value the first time it is seen.
    pub fn note(&self, status: &str, input: &'static str) -> Noted {
        if is_known(status) {
            return Noted::Known;
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let mut seen = self.remembered.lock().unwrap_or_else(|e| e.into_inner());
        if seen.contains(status) {
            return Noted::Counted;
        }
        if seen.len() < MAX_REMEMBERED_UNKNOWN {
            seen.insert(status.to_owned());
            // `?`: the value is outside data, Debug escapes it.
            tracing::warn!(
                status = ?status,
                input,
                "result status that is not a known code: stored as sent, the row is unranked"
            );
            Noted::Logged
        } else if !self.stopped_logging.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                limit = MAX_REMEMBERED_UNKNOWN,
                "more distinct unknown result statuses than remembered: further new values are counted, not logged"
            );
            Noted::LimitReached
        } else {
            Noted::NotRemembered
        }
    }

    /// Rows with an unknown status received so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Distinct unknown values remembered (at most [`MAX_REMEMBERED_UNKNOWN`]).
    pub fn remembered(&self) -> usize {
        self.remembered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }
}

/// The process-wide tally.
pub fn unknown() -> &'static UnknownStatuses {
    static UNKNOWN: OnceLock<UnknownStatuses> = OnceLock::new();
    UNKNOWN.get_or_init(UnknownStatuses::default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_codes_any_case_unknown_verbatim_blank_is_none() {
        assert_eq!(normalize("dnf"), Ok(Some("DNF".into())));
        assert_eq!(normalize(" Dsq "), Ok(Some("DSQ".into())));
        assert_eq!(normalize("*"), Ok(Some("*".into())));
        assert_eq!(normalize("finished"), Ok(Some("finished".into())));
        assert_eq!(normalize(" OVT "), Ok(Some("OVT".into())));
        assert_eq!(normalize("Zdrž"), Ok(Some("Zdrž".into())));
        assert_eq!(normalize(""), Ok(None));
        assert_eq!(normalize("   "), Ok(None));
        let at_limit = "X".repeat(MAX_STATUS_BYTES);
        assert_eq!(normalize(&at_limit), Ok(Some(at_limit.clone())));
        assert_eq!(
            normalize(&"X".repeat(MAX_STATUS_BYTES + 1)),
            Err(StatusError::TooLong(MAX_STATUS_BYTES + 1))
        );
        assert_eq!(normalize("A\nB"), Err(StatusError::ControlCharacter));
    }

    #[test]
    fn unknown_values_are_counted_and_remembered_up_to_the_bound() {
        let t = UnknownStatuses::default();
        t.note("DNF", "test");
        assert_eq!(t.count(), 0, "known codes are not counted");
        for _ in 0..3 {
            t.note("OVT", "test");
        }
        assert_eq!((t.count(), t.remembered()), (3, 1));
        for i in 0..(2 * MAX_REMEMBERED_UNKNOWN) {
            t.note(&format!("U{i}"), "test");
        }
        assert_eq!(t.count(), 3 + 2 * MAX_REMEMBERED_UNKNOWN as u64);
        assert_eq!(t.remembered(), MAX_REMEMBERED_UNKNOWN, "bounded");
    }

    #[test]
    fn each_new_value_is_logged_once() {
        // Asserted on what `note` decided, not on captured log text: tracing caches callsite
        // interest process-wide, and another test thread hitting the same callsite without a
        // subscriber made a capture-based assertion fail now and then.
        let t = UnknownStatuses::default();
        assert_eq!(t.note("OVT", "test"), Noted::Logged);
        assert_eq!(t.note("DNF", "test"), Noted::Known);
        for _ in 0..4 {
            assert_eq!(t.note("OVT", "test"), Noted::Counted);
        }
        for i in 1..MAX_REMEMBERED_UNKNOWN {
            assert_eq!(t.note(&format!("U{i}"), "test"), Noted::Logged, "value {i}");
        }
        assert_eq!(t.note("one too many", "test"), Noted::LimitReached);
        assert_eq!(t.note("and another", "test"), Noted::NotRemembered);
        assert_eq!(t.note("U1", "test"), Noted::Counted);
        assert_eq!(t.count(), 5 + (MAX_REMEMBERED_UNKNOWN as u64 - 1) + 3);
    }
}
