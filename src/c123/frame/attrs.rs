//! The attributes of one element, read with the bound and the unit conversion of each.

use std::borrow::Cow;

use quick_xml::events::BytesStart;
use quick_xml::XmlVersion;

use super::limits::{longer_than, max_chars, shorten};
use super::message::{FrameError, ScheduleRace};
use super::units::{parse_seconds, parse_time_of_day, BadValue, SecondsValue};
use crate::model::{MAX_RANK, MAX_RUN_PENALTY_S, MAX_TIME_MS};

/// Attributes of one element, unescaped, in document order.
pub(super) struct Attrs<'a> {
    element: &'static str,
    list: Vec<(&'a str, Cow<'a, str>)>,
}

impl<'a> Attrs<'a> {
    pub(super) fn read(
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
    pub(super) fn raw(&self, key: &str) -> &str {
        self.list
            .iter()
            .find(|(k, _)| *k == key)
            .map_or("", |(_, v)| v.as_ref())
    }

    /// The raw value, refused when longer than the attribute's bound ([`max_chars`](super::limits::max_chars)).
    pub(super) fn bounded(&self, key: &'static str) -> Result<&str, FrameError> {
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

    pub(super) fn string(&self, key: &'static str) -> Result<String, FrameError> {
        Ok(self.bounded(key)?.to_owned())
    }

    /// Trimmed; `None` when empty.
    pub(super) fn opt_string(&self, key: &'static str) -> Result<Option<String>, FrameError> {
        let v = self.bounded(key)?.trim();
        Ok((!v.is_empty()).then(|| v.to_owned()))
    }

    pub(super) fn invalid(&self, key: &'static str, reason: &'static str) -> FrameError {
        FrameError::InvalidValue {
            element: self.element,
            attribute: key,
            value: shorten(self.raw(key)),
            reason,
        }
    }

    pub(super) fn map<T>(
        &self,
        key: &'static str,
        f: impl FnOnce(&str) -> Result<T, BadValue>,
    ) -> Result<T, FrameError> {
        f(self.bounded(key)?).map_err(|BadValue(reason)| self.invalid(key, reason))
    }

    pub(super) fn opt_u32(&self, key: &'static str) -> Result<Option<u32>, FrameError> {
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

    pub(super) fn u32_or_zero(&self, key: &'static str) -> Result<u32, FrameError> {
        Ok(self.opt_u32(key)?.unwrap_or(0))
    }

    /// Rank-like: empty or 0 → `None`; at most [`MAX_RANK`], as for the other inputs.
    pub(super) fn rank(&self, key: &'static str) -> Result<Option<u32>, FrameError> {
        let rank = self.opt_u32(key)?.filter(|&r| r != 0);
        if rank.is_some_and(|r| i64::from(r) > MAX_RANK) {
            return Err(self.invalid(key, "rank over model::MAX_RANK"));
        }
        Ok(rank)
    }

    /// A run penalty in whole seconds, at most [`MAX_RUN_PENALTY_S`] (as for XML and JSON).
    pub(super) fn penalty_s(&self, key: &'static str) -> Result<Option<u32>, FrameError> {
        let pen = self.opt_u32(key)?;
        if pen.is_some_and(|p| i64::from(p) > MAX_RUN_PENALTY_S) {
            return Err(self.invalid(key, "penalty over model::MAX_RUN_PENALTY_S"));
        }
        Ok(pen)
    }

    /// A time or time difference; its magnitude is at most [`MAX_TIME_MS`] (24 h), the bound
    /// of every other input, so an absurd value is a parse error, not a published time.
    pub(super) fn seconds(&self, key: &'static str) -> Result<Option<SecondsValue>, FrameError> {
        let value = self.map(key, parse_seconds)?;
        if value.is_some_and(|v| v.ms.abs() > MAX_TIME_MS) {
            return Err(self.invalid(key, "more than 24 hours"));
        }
        Ok(value)
    }

    pub(super) fn ms(&self, key: &'static str) -> Result<Option<i64>, FrameError> {
        Ok(self.seconds(key)?.map(|v| v.ms))
    }

    pub(super) fn time_of_day(&self, key: &'static str) -> Result<Option<u32>, FrameError> {
        self.map(key, parse_time_of_day)
    }

    pub(super) fn flag(&self, key: &'static str) -> bool {
        self.raw(key).trim().eq_ignore_ascii_case("Y")
    }

    pub(super) fn bib(&self) -> Result<String, FrameError> {
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

/// One `<Race>` of `<Schedule>` (its start time comes from a child element).
pub(super) fn read_schedule_race(a: &Attrs<'_>) -> Result<ScheduleRace, FrameError> {
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
