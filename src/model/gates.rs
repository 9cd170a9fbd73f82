//! Per-gate penalties and the bounds every input applies to times, penalties and ranks.

use serde::{Deserialize, Serialize};

/// Largest run time, total or best-of-both total accepted from any input, in milliseconds
/// (24 hours; real runs are minutes). With it every time converts to centiseconds and sums
/// without overflow.
pub const MAX_TIME_MS: i64 = 86_400_000;

/// Largest run penalty accepted from any input, in seconds (24 hours; even 64 gates of
/// 999 s each, 63 936 s, fit).
pub const MAX_RUN_PENALTY_S: i64 = 86_400;

/// Largest rank accepted from any input (ranks are at most the number of starters).
pub const MAX_RANK: i64 = 99_999;

/// Per-gate penalties in seconds, positional; `None` = not judged (yet).
///
/// Read from Canoe123's fixed-width form (3 characters per slot, right aligned) and its
/// comma form; stored as a JSON array (see [`Gates::to_stored`]), which keeps every value
/// and every blank slot, trailing ones included.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Gates(pub Vec<Option<u16>>);

// The slot parsers' messages are static; they name these values.
const _: () = assert!(Gates::MAX_PENALTY_S == 999 && Gates::MAX_SLOTS == 64);

/// Why a list of gate penalties is refused at an input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GateError {
    #[error("{count} gate slots, at most {max} are accepted", max = Gates::MAX_SLOTS)]
    TooManySlots { count: usize },
    #[error("gate penalty {value} is over {max} seconds", max = Gates::MAX_PENALTY_S)]
    PenaltyTooLarge { value: u64 },
}

impl Gates {
    /// Largest gate penalty accepted, in seconds. Canoe123 gives 0, 2 or 50 per gate;
    /// team races carry sums (52, 100, 150) and the real export holds a `300`. Its own export
    /// writes a gate in a 3-character slot, so no value above 999 can come from the timing
    /// system: anything larger is refused at every input.
    pub const MAX_PENALTY_S: u16 = 999;

    /// Most gate slots accepted in one row. Canoe123 courses have up to 25-30 gates (the
    /// export pads rows to 30 slots, `GateStatistics` always counts 25); 64 leaves margin.
    pub const MAX_SLOTS: usize = 64;

    /// One gate value from an input: `Err` when no timing system can mean it.
    pub fn check_penalty(value: u64) -> Result<u16, GateError> {
        u16::try_from(value)
            .ok()
            .filter(|v| *v <= Gates::MAX_PENALTY_S)
            .ok_or(GateError::PenaltyTooLarge { value })
    }

    /// A slot count from an input: `Err` over [`Gates::MAX_SLOTS`].
    pub fn check_slots(count: usize) -> Result<(), GateError> {
        if count > Gates::MAX_SLOTS {
            return Err(GateError::TooManySlots { count });
        }
        Ok(())
    }

    /// The stored form: a JSON array of integers and nulls (`[0,2,null,50]`). Unlike the
    /// fixed-width form it cannot be misread: every value and every slot reads back as it
    /// was written, whatever its number of digits.
    pub fn to_stored(&self) -> String {
        let mut s = String::with_capacity(self.0.len() * 3 + 2);
        s.push('[');
        for (i, g) in self.0.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            match g {
                Some(v) => s.push_str(&v.to_string()),
                None => s.push_str("null"),
            }
        }
        s.push(']');
        s
    }

    /// Reads [`Gates::to_stored`]'s form back.
    pub fn from_stored(raw: &str) -> Result<Gates, String> {
        serde_json::from_str::<Vec<Option<u16>>>(raw)
            .map(Gates)
            .map_err(|e| format!("gates '{}': {e}", raw.chars().take(64).collect::<String>()))
    }

    /// Parses the fixed-width export form. Never trims or splits on whitespace: slot *n* is
    /// characters `3(n-1)..3n`, so a three-digit value (`300`) fills its slot and a blank slot
    /// stays blank. Trailing blank slots are dropped (they are padding, not gates).
    pub fn parse_fixed(raw: &str) -> Result<Gates, String> {
        // One slot parser for the export and the TCP `Results` frames.
        Gates::parse_fixed_slots(raw)
            .map(Gates)
            .map_err(str::to_owned)
    }

    /// Fixed width (Results frames, XML export), 3 characters per gate, right-aligned; gate
    /// *n* is characters `(n-1)*3 .. n*3`, trimmed. Never split on whitespace: blank slots are
    /// positional (`"      2"` is gates 1–2 blank, gate 3 = 2) and a 3-digit value fills its
    /// slot (`"  2  2  2  0  0300"` → `[2, 2, 2, 0, 0, 300]`). Trailing all-blank slots are
    /// dropped (the wire pads rows to 30 slots); an all-blank string is no gates. Here in the
    /// domain (not in `c123::frame`) so that the model imports no parser.
    pub fn parse_fixed_slots(text: &str) -> Result<Vec<Option<u16>>, &'static str> {
        let bytes = text.as_bytes();
        if Gates::check_slots(bytes.len().div_ceil(3)).is_err() {
            return Err("more than 64 gate slots");
        }
        let mut gates = Vec::with_capacity(bytes.len().div_ceil(3));
        for slot in bytes.chunks(3) {
            // Gate values are ASCII; a non-ASCII byte can only be garbage.
            let slot = std::str::from_utf8(slot).map_err(|_| "non-ASCII gate slot")?;
            gates.push(Gates::parse_slot(slot)?);
        }
        while gates.last() == Some(&None) {
            gates.pop();
        }
        Ok(gates)
    }

    /// OnCourse gates: comma separated, one field per gate, positional. An empty field is a
    /// gate not judged yet, trailing empty fields are kept (`"0,2,,"` → `[0, 2, None, None]`),
    /// and the empty string is no gates at all.
    pub fn parse_comma_slots(text: &str) -> Result<Vec<Option<u16>>, &'static str> {
        if text.is_empty() {
            return Ok(Vec::new());
        }
        if Gates::check_slots(text.split(',').count()).is_err() {
            return Err("more than 64 gate slots");
        }
        text.split(',').map(Gates::parse_slot).collect()
    }

    /// One slot: blank is `None` (not judged), else whole seconds up to the maximum.
    fn parse_slot(field: &str) -> Result<Option<u16>, &'static str> {
        let f = field.trim();
        if f.is_empty() {
            return Ok(None);
        }
        if f.len() > 5 || !f.bytes().all(|b| b.is_ascii_digit()) {
            return Err("gate penalty must be a non-negative integer");
        }
        // No timing system means a gate penalty over 999 s (see `MAX_PENALTY_S`; the messages
        // are static, so they are checked against the constants by the assertion below).
        f.parse::<u64>()
            .ok()
            .and_then(|v| Gates::check_penalty(v).ok())
            .map(Some)
            .ok_or("gate penalty over 999 seconds")
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(Option::is_none)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gates_keep_positions_and_three_digit_values() {
        let g = Gates::parse_fixed("  2  2  2  0  0300").unwrap();
        assert_eq!(
            g.0,
            vec![Some(2), Some(2), Some(2), Some(0), Some(0), Some(300)]
        );
        let sparse = Gates::parse_fixed("              2      ").unwrap();
        assert_eq!(sparse.0, vec![None, None, None, None, Some(2)]);
        assert_eq!(sparse.to_stored(), "[null,null,null,null,2]");
        assert!(Gates::parse_fixed(&" ".repeat(90)).unwrap().0.is_empty());
        assert!(Gates::parse_fixed("  x").is_err());
    }

    #[test]
    fn stored_gates_read_back_exactly() {
        for g in [
            vec![],
            vec![None],
            vec![Some(0), Some(1000), Some(20)],
            vec![Some(u16::MAX), None, Some(2), None, None],
        ] {
            let stored = Gates(g.clone()).to_stored();
            assert_eq!(Gates::from_stored(&stored).unwrap().0, g, "{stored}");
        }
        assert!(Gates::from_stored("[1,").is_err());
        assert!(Gates::from_stored("[-1]").is_err());
    }

    #[test]
    fn gate_bounds() {
        assert_eq!(Gates::check_penalty(999), Ok(999));
        assert!(Gates::check_penalty(1000).is_err());
        assert!(Gates::check_penalty(u64::MAX).is_err());
        assert!(Gates::check_slots(Gates::MAX_SLOTS).is_ok());
        assert!(Gates::check_slots(Gates::MAX_SLOTS + 1).is_err());
    }
}
