//! Value conversions from the wire's units into the domain's (public: the XML export uses the
//! same gate and time forms).

use crate::model::Gates;

/// Why a single value could not be converted (wrapped into [`FrameError::InvalidValue`](super::FrameError::InvalidValue)).
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
