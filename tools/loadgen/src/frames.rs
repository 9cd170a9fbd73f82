//! The Canoe123 frames the tool writes to the daemon's TCP source: synthetic on-course
//! markers, and the soak's rewritten laps of a recording.

use c123_live::c123::frame::{parse_seconds, parse_time_of_day};

/// Marker `k` is the on-course running time `MARKER_BASE + k` centiseconds, so the diff it
/// causes carries `"time":MARKER_BASE+k`.
pub const MARKER_BASE: u64 = 100_000;

/// The synthetic on-course frame of marker `k` (with its `|`): one rider of the real export
/// on course, running time `1000.00 + k/100` seconds.
pub fn oncourse_frame(k: u64) -> String {
    let cs = MARKER_BASE + k;
    let time = format!("{}.{:02}", cs / 100, cs % 100);
    format!(
        "<Canoe123 System=\"Main\"><OnCourse Total=\"1\" Position=\"1\"><Participant StartOrder=\"1\" Bib=\"1\" \
         Id=\"9046.C1W_ST\" Name=\"PAVEÍNSKÝ Libor\" Club=\"Univerzitní sportovní klub Praha\" Nat=\"\" \
         Race=\"C1ž - střední trať - 2. jízda\" RaceId=\"C1W_ST_BR2_6\" Warning=\"\" /><Result Type=\"C\" \
         Gates=\"0,0,0,0,0,0,0,2,0,2,0,0,0,0,0,0,0,0,0,0,0,0,0,0,\" Completed=\"N\" chStart=\"0\" chSplit1=\"1\" \
         chSplit2=\"1\" chFinish=\"1\" dtStart=\"10:37:35.000\" dtSplit1=\"\" dtSplit2=\"\" dtFinish=\"\" />\
         <Result Type=\"T\" Pen=\"4\" Time=\"{time}\" Total=\"{time}\" TTBDiff=\"\" TTBName=\"\" Rank=\"\" />\
         </OnCourse></Canoe123>|"
    )
}

/// Frame of loop `lap` of the soak: clock times moved on by `lap` recording lengths, and run
/// times by `lap` × 10 ms, so every lap's finishes and result tables are new values.
pub fn soak_frame(data: &str, lap: u64, lap_ms: u64) -> String {
    let offset = lap * lap_ms;
    let add = (lap % 500) as i64 * 10;
    let mut s = rewrite_attr(data, "dtStart", |v| shift_clock(v, offset));
    s = rewrite_attr(&s, "dtFinish", |v| shift_clock(v, offset));
    s = rewrite_attr(&s, "Time", |v| shift_seconds(v, add));
    s = rewrite_attr(&s, "Total", |v| shift_seconds(v, add));
    if let (Some(a), Some(b)) = (s.find("<TimeOfDay>"), s.find("</TimeOfDay>")) {
        if let Some(t) = s
            .get(a + 11..b)
            .and_then(|inner| shift_clock(inner, offset))
        {
            s = format!("{}{t}{}", &s[..a + 11], &s[b..]);
        }
    }
    s
}

/// Rewrites the value of every ` name="…"` attribute with `f` (kept when `f` gives `None`).
fn rewrite_attr(s: &str, name: &str, f: impl Fn(&str) -> Option<String>) -> String {
    let pat = format!(" {name}=\"");
    let mut out = String::with_capacity(s.len() + 16);
    let mut rest = s;
    while let Some(at) = rest.find(&pat) {
        let start = at + pat.len();
        let Some(len) = rest[start..].find('"') else {
            break;
        };
        out.push_str(&rest[..start]);
        let value = &rest[start..start + len];
        match f(value) {
            Some(v) => out.push_str(&v),
            None => out.push_str(value),
        }
        rest = &rest[start + len..];
    }
    out.push_str(rest);
    out
}

/// `HH:MM:SS[.mmm]` shifted by `offset_ms` (modulo a day), in the same shape.
fn shift_clock(value: &str, offset_ms: u64) -> Option<String> {
    let ms = parse_time_of_day(value).ok()??;
    let t = (ms as u64 + offset_ms) % 86_400_000;
    let (h, m, s, milli) = (t / 3_600_000, t / 60_000 % 60, t / 1000 % 60, t % 1000);
    Some(if value.contains('.') {
        format!("{h:02}:{m:02}:{s:02}.{milli:03}")
    } else {
        format!("{h:02}:{m:02}:{s:02}")
    })
}

/// A run time `S.cc` plus `add_ms`; whole seconds (the running clock) stay whole.
fn shift_seconds(value: &str, add_ms: i64) -> Option<String> {
    let v = parse_seconds(value).ok()??;
    if v.whole_seconds {
        return None;
    }
    let ms = v.ms + add_ms;
    Some(format!("{}.{:02}", ms / 1000, (ms % 1000) / 10))
}

#[cfg(test)]
mod tests {
    use super::*;
    use c123_live::c123::frame::{parse_frame, Message};

    #[test]
    fn soak_frames_move_clock_and_run_times() {
        let f = r#"<Canoe123><OnCourse><Result Type="C" dtStart="10:37:35.000" dtFinish="" /><Result Type="T" Time="42   " Total="96.12" /></OnCourse></Canoe123>"#;
        let s = soak_frame(f, 2, 60_000);
        assert!(s.contains(r#"dtStart="10:39:35.000""#), "{s}");
        assert!(s.contains(r#"dtFinish="""#), "{s}");
        assert!(s.contains(r#"Time="42   ""#), "running clock kept: {s}");
        assert!(s.contains(r#"Total="96.14""#), "{s}");
        let t = soak_frame(
            "<Canoe123><TimeOfDay>23:59:30</TimeOfDay></Canoe123>",
            1,
            60_000,
        );
        assert_eq!(t, "<Canoe123><TimeOfDay>00:00:30</TimeOfDay></Canoe123>");
    }

    #[test]
    fn markers_round_trip_through_the_frame_parser() {
        let frame = oncourse_frame(7);
        let msgs = parse_frame(frame.trim_end_matches('|')).expect("parses");
        let Message::OnCourse(oc) = &msgs[0] else {
            panic!("{msgs:?}");
        };
        let rider = oc.rider.as_ref().expect("rider");
        assert_eq!(rider.time_ms, Some(((MARKER_BASE + 7) * 10) as i64));
    }
}
