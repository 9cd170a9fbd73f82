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

use hyper::header::HeaderMap;

use super::error::ApiError;
use crate::keys::secrets_match;
use crate::merge::Snapshot;
use crate::model::Event;
use crate::time::{day_iso, parse_date_days, unix_secs, Clock, SystemClock, DAY_SECS};

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

/// The key's validity window as `(validFrom, validUntil)` in seconds since the epoch.
pub fn validity_window(event: &Event) -> (Option<i64>, Option<i64>) {
    let k = &event.header.key_dates;
    (
        k.start_date
            .as_deref()
            .and_then(parse_date_days)
            .map(|d| (d - 10) * DAY_SECS),
        k.end_date
            .as_deref()
            .and_then(parse_date_days)
            .map(|d| (d + 5) * DAY_SECS),
    )
}

/// The validity window as ISO strings (create response).
pub fn validity_iso(start: Option<&str>, end: Option<&str>) -> (Option<String>, Option<String>) {
    (
        start.and_then(parse_date_days).map(|d| day_iso(d - 10)),
        end.and_then(parse_date_days).map(|d| day_iso(d + 5)),
    )
}

/// Whether the event's key is valid at `clock`'s now: from `validFrom` on (that second
/// included) up to `validUntil` (that second included, the instant is rounded down to whole
/// seconds).
pub fn check_key_validity(event: &Event, clock: &dyn Clock) -> Result<(), ApiError> {
    let now = unix_secs(clock.now());
    let (from, until) = validity_window(event);
    if let Some(f) = from {
        if now < f {
            return Err(ApiError::unauthorized(format!(
                "Key not yet valid. Valid from {}",
                day_iso(f.div_euclid(DAY_SECS))
            )));
        }
    }
    if let Some(u) = until {
        if now > u {
            return Err(ApiError::unauthorized(format!(
                "Key expired on {}",
                day_iso(u.div_euclid(DAY_SECS))
            )));
        }
    }
    Ok(())
}

/// The event whose API key the request carries, if the key is valid now (wall clock).
pub fn check_api_key(headers: &HeaderMap, snapshot: &Snapshot) -> Result<Arc<Event>, ApiError> {
    check_api_key_at(headers, snapshot, &SystemClock)
}

/// [`check_api_key`] with the clock the validity window is checked against.
pub fn check_api_key_at(
    headers: &HeaderMap,
    snapshot: &Snapshot,
    clock: &dyn Clock,
) -> Result<Arc<Event>, ApiError> {
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
    check_key_validity(event, clock)?;
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
    use crate::model::{EventConfig, EventHeader, EventMeta, EventStatus, KeyDates};
    use crate::time::FixedClock;

    fn event(start: Option<&str>, end: Option<&str>) -> Event {
        Event::new(EventHeader {
            id: 1,
            event_id: "E".into(),
            xml_event_id: None,
            meta: EventMeta::default(),
            status: EventStatus::Running,
            status_changed_at: None,
            api_key: "k".into(),
            config: EventConfig::default(),
            image: None,
            has_xml_data: false,
            key_dates: KeyDates {
                start_date: start.map(Into::into),
                end_date: end.map(Into::into),
            },
            seq: 0,
            created_at: "2026-01-01 00:00:00".into(),
        })
    }

    fn at(e: &Event, secs: i64) -> Result<(), String> {
        check_key_validity(e, &FixedClock::at_unix_secs(secs)).map_err(|e| e.message)
    }

    #[test]
    fn key_validity_holds_from_valid_from_to_valid_until_inclusive() {
        // startDate 2026-06-17 → validFrom 2026-06-07T00:00:00Z; endDate 2026-06-20 →
        // validUntil 2026-06-25T00:00:00Z.
        let e = event(Some("2026-06-17"), Some("2026-06-20"));
        let from = parse_date_days("2026-06-07").unwrap() * DAY_SECS;
        let until = parse_date_days("2026-06-25").unwrap() * DAY_SECS;
        assert_eq!(validity_window(&e), (Some(from), Some(until)));
        assert_eq!(
            at(&e, from - 1),
            Err("Key not yet valid. Valid from 2026-06-07T00:00:00.000Z".to_owned())
        );
        assert_eq!(at(&e, from), Ok(()));
        assert_eq!(at(&e, from + 1), Ok(()));
        assert_eq!(at(&e, until - 1), Ok(()));
        assert_eq!(at(&e, until), Ok(()));
        assert_eq!(
            at(&e, until + 1),
            Err("Key expired on 2026-06-25T00:00:00.000Z".to_owned())
        );
    }

    #[test]
    fn a_missing_date_is_no_bound_and_the_window_follows_the_admin_dates() {
        let open = event(None, None);
        assert_eq!(at(&open, i64::from(i32::MIN)), Ok(()));
        assert_eq!(at(&open, i64::from(i32::MAX) * 4), Ok(()));
        let only_start = event(Some("2026-06-17"), None);
        assert!(at(&only_start, 0).is_err());
        assert_eq!(at(&only_start, i64::from(i32::MAX) * 4), Ok(()));
        // The export's dates (meta) do not move the window.
        let mut e = event(Some("2026-06-17"), Some("2026-06-20"));
        e.header.meta.start_date = Some("2030-01-01".into());
        e.header.meta.end_date = Some("2030-01-02".into());
        let until = parse_date_days("2026-06-25").unwrap() * DAY_SECS;
        assert!(at(&e, until + 1).is_err());
    }
}
