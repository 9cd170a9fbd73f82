//! Dates and the clock: the one place with civil-date arithmetic (proleptic Gregorian, UTC,
//! Howard Hinnant's algorithms) and the [`Clock`] that code deciding by the time of day holds,
//! so that tests can put it at an exact instant. A leaf: it imports nothing of the crate.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds in a day (UTC has no leap seconds in Unix time).
pub const DAY_SECS: i64 = 86_400;

/// Where "now" comes from. Production code uses [`SystemClock`]; tests give a fixed instant.
pub trait Clock: Send + Sync {
    fn now(&self) -> SystemTime;
}

/// The machine's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that always reads the same instant (tests, replays).
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub SystemTime);

impl FixedClock {
    /// The instant `secs` seconds after the Unix epoch (negative: before it).
    pub fn at_unix_secs(secs: i64) -> FixedClock {
        let d = std::time::Duration::from_secs(secs.unsigned_abs());
        FixedClock(if secs >= 0 {
            UNIX_EPOCH + d
        } else {
            UNIX_EPOCH - d
        })
    }
}

impl Clock for FixedClock {
    fn now(&self) -> SystemTime {
        self.0
    }
}

/// Whole seconds since the Unix epoch, rounded down (an instant before the epoch is negative).
pub fn unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        // 0.5 s before the epoch is second -1, as `div_euclid` would give.
        Err(e) => {
            let d = e.duration();
            let whole = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            -whole - i64::from(d.subsec_nanos() > 0)
        }
    }
}

/// Days since 1970-01-01 of a `YYYY-MM-DD` date (leading part of an ISO date-time too);
/// `None` unless it is a real calendar date.
pub fn parse_date_days(s: &str) -> Option<i64> {
    let d = s.get(..10)?;
    let b = d.as_bytes();
    if b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let y: i64 = d.get(0..4)?.parse().ok()?;
    let m: i64 = d.get(5..7)?.parse().ok()?;
    let day: i64 = d.get(8..10)?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    let dim = match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if day > dim {
        return None;
    }
    Some(days_from_civil(y, m, day))
}

/// Howard Hinnant's `days_from_civil`.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Howard Hinnant's `civil_from_days`: `(year, month, day)` of a day number.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `YYYY-MM-DDT00:00:00.000Z` of a day number.
pub fn day_iso(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T00:00:00.000Z")
}

/// Seconds since the Unix epoch → (`YYYY-MM-DD`, `HH:MM:SS`), UTC.
fn civil(secs: i64) -> (String, String) {
    let (y, m, d) = civil_from_days(secs.div_euclid(DAY_SECS));
    let rem = secs.rem_euclid(DAY_SECS);
    (
        format!("{y:04}-{m:02}-{d:02}"),
        format!("{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60),
    )
}

/// An instant as ISO 8601 UTC with milliseconds (`2026-11-27T08:20:31.326Z`).
pub fn iso_millis(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let (date, time) = civil(unix_secs(UNIX_EPOCH + d));
    format!("{date}T{time}.{:03}Z", d.subsec_millis())
}

/// An instant as SQLite's `CURRENT_TIMESTAMP` text (`2026-11-27 08:20:31`), UTC.
pub fn sql_timestamp(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let (date, time) = civil(unix_secs(UNIX_EPOCH + d));
    format!("{date} {time}")
}

/// UTC now as ISO 8601 with milliseconds (`2026-11-27T08:20:31.326Z`).
pub fn now_iso() -> String {
    iso_millis(SystemTime::now())
}

/// UTC now as SQLite's `CURRENT_TIMESTAMP` text (`2026-11-27 08:20:31`).
pub fn now_sql() -> String {
    sql_timestamp(SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        let d = parse_date_days("2026-06-17").unwrap();
        assert_eq!(day_iso(d + 5), "2026-06-22T00:00:00.000Z");
        assert_eq!(
            day_iso(parse_date_days("2024-03-01").unwrap() - 1),
            "2024-02-29T00:00:00.000Z"
        );
        assert_eq!(parse_date_days("1970-01-01"), Some(0));
        assert_eq!(parse_date_days("garbage!!!"), None);
        assert_eq!(parse_date_days("2026-02-30"), None);
        assert_eq!(parse_date_days("2026-06-17T08:00:00+02:00"), Some(d));
    }

    #[test]
    fn every_day_of_four_centuries_round_trips() {
        // 1900..2300 covers the century rules (1900 and 2100 not leap, 2000 leap).
        let (first, last) = (days_from_civil(1900, 1, 1), days_from_civil(2300, 1, 1));
        for days in first..last {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
            assert_eq!(
                parse_date_days(&format!("{y:04}-{m:02}-{d:02}")),
                Some(days)
            );
        }
    }

    #[test]
    fn instants_format_as_iso_and_sql() {
        // 2026-11-27T08:20:31.326Z
        let t = UNIX_EPOCH + std::time::Duration::from_millis(1_795_767_631_326);
        assert_eq!(iso_millis(t), "2026-11-27T08:20:31.326Z");
        assert_eq!(sql_timestamp(t), "2026-11-27 08:20:31");
        assert_eq!(iso_millis(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn unix_secs_rounds_down_on_both_sides_of_the_epoch() {
        let half = std::time::Duration::from_millis(500);
        assert_eq!(unix_secs(UNIX_EPOCH + half), 0);
        assert_eq!(unix_secs(UNIX_EPOCH - half), -1);
        assert_eq!(unix_secs(FixedClock::at_unix_secs(-86_400).now()), -86_400);
        assert_eq!(unix_secs(FixedClock::at_unix_secs(1_000).now()), 1_000);
    }
}
