//! Authentication: the master key (admin) and per-event API keys.
//!
//! - Master keys: `X-Master-Key` must equal one of the configured keys (constant-time
//!   comparison against every key). With no key configured the admin API is open only in
//!   dev mode; otherwise [`super::HttpSettings::validate`] refuses to start the server.
//! - Event API keys: `X-API-Key` is compared in constant time with every event's key.
//! - Validity window (live-mini §1.2): from `startDate − 10 days` (00:00 UTC) until
//!   `endDate + 5 days` (00:00 UTC); no date = no bound. The dates are the ones the admin gave
//!   at creation (`EventHeader::key_dates`), never the export's: an XML import rewrites the
//!   public `startDate`/`endDate` but cannot move the window, so it cannot lock its own key out.
//! - A key of another event on a URL naming an event (status, config) is `401 Unauthorized`
//!   "API key does not match event" on every such route (live-mini answered 404 on config).

use std::sync::Arc;
use std::time::SystemTime;

use hyper::header::HeaderMap;

use super::error::ApiError;
use crate::keys::secrets_match;
use crate::merge::Snapshot;
use crate::model::Event;

pub const MASTER_KEY_HEADER: &str = "x-master-key";
pub const API_KEY_HEADER: &str = "x-api-key";

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return None; // several values: ambiguous, refuse
    }
    first.to_str().ok()
}

/// Checks the master key. `keys` empty and `dev` true: open.
pub fn check_master(headers: &HeaderMap, keys: &[String], dev: bool) -> Result<(), ApiError> {
    if keys.is_empty() {
        return if dev {
            Ok(())
        } else {
            Err(ApiError::unauthorized(
                "Admin API disabled: no master key configured",
            ))
        };
    }
    let Some(presented) = header(headers, MASTER_KEY_HEADER) else {
        return Err(ApiError::unauthorized(
            "Missing or invalid X-Master-Key header",
        ));
    };
    // Compare with every key, no early exit.
    let mut ok = false;
    for k in keys {
        ok |= secrets_match(presented, k);
    }
    if ok {
        Ok(())
    } else {
        Err(ApiError::unauthorized("Invalid master key"))
    }
}

/// Days since 1970-01-01 of a `YYYY-MM-DD` date (leading part of an ISO date-time too).
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
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// `YYYY-MM-DDT00:00:00.000Z` of a day number.
pub fn day_iso(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T00:00:00.000Z")
}

/// The key's validity window as `(validFrom, validUntil)` in seconds since the epoch.
pub fn validity_window(event: &Event) -> (Option<i64>, Option<i64>) {
    let k = &event.header.key_dates;
    (
        k.start_date
            .as_deref()
            .and_then(parse_date_days)
            .map(|d| (d - 10) * 86_400),
        k.end_date
            .as_deref()
            .and_then(parse_date_days)
            .map(|d| (d + 5) * 86_400),
    )
}

/// The validity window as ISO strings (create response).
pub fn validity_iso(start: Option<&str>, end: Option<&str>) -> (Option<String>, Option<String>) {
    (
        start.and_then(parse_date_days).map(|d| day_iso(d - 10)),
        end.and_then(parse_date_days).map(|d| day_iso(d + 5)),
    )
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The event whose API key the request carries, if the key is valid now.
pub fn check_api_key(headers: &HeaderMap, snapshot: &Snapshot) -> Result<Arc<Event>, ApiError> {
    let Some(presented) = header(headers, API_KEY_HEADER) else {
        return Err(ApiError::unauthorized(
            "Missing or invalid X-API-Key header",
        ));
    };
    let mut found: Option<&Arc<Event>> = None;
    for e in snapshot.events.values() {
        if secrets_match(presented, &e.header.api_key) && found.is_none() {
            found = Some(e);
        }
    }
    let Some(event) = found else {
        return Err(ApiError::unauthorized("Invalid API key"));
    };
    let now = now_secs();
    let (from, until) = validity_window(event);
    if let Some(f) = from {
        if now < f {
            return Err(ApiError::unauthorized(format!(
                "Key not yet valid. Valid from {}",
                day_iso(f / 86_400)
            )));
        }
    }
    if let Some(u) = until {
        if now > u {
            return Err(ApiError::unauthorized(format!(
                "Key expired on {}",
                day_iso(u / 86_400)
            )));
        }
    }
    Ok(Arc::clone(event))
}

/// The API key must belong to the event the URL names.
pub fn check_api_key_for(
    headers: &HeaderMap,
    snapshot: &Snapshot,
    event_id: &str,
) -> Result<Arc<Event>, ApiError> {
    let keyed = check_api_key(headers, snapshot)?;
    if snapshot.event(event_id).is_none() {
        return Err(ApiError::not_found(format!("Event not found: {event_id}")));
    }
    if keyed.header.event_id != event_id {
        return Err(ApiError::unauthorized("API key does not match event"));
    }
    Ok(keyed)
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
}
