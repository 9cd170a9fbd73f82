//! The bounds of a frame's values (hostile input can be megabytes; real values are short).

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
pub(super) fn max_chars(attribute: &str) -> usize {
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

/// A value quoted in an error message, cut to [`MAX_QUOTED_VALUE`] characters.
pub(super) fn shorten(value: &str) -> String {
    match value.char_indices().nth(MAX_QUOTED_VALUE) {
        Some((cut, _)) => format!("{}…", &value[..cut]),
        None => value.to_owned(),
    }
}
