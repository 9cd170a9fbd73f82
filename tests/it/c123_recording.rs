//! The whole real recording through parser and tracker, with its `ts` as the clock.

use std::collections::BTreeMap;

use c123_live::c123::frame::{parse_frame, Message};
use c123_live::c123::oncourse::{Finish, OnCourseTracker};
use c123_live::c123::recording::Recording;

fn recording() -> Recording {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/jarni-2024.tcp.jsonl");
    let text = std::fs::read_to_string(path).expect("fixture");
    Recording::parse(&text).expect("recording parses")
}

fn kind_of(msg: &Message) -> &'static str {
    msg.kind()
}

#[test]
fn every_frame_parses_and_counts_match_readme() {
    let rec = recording();
    assert_eq!(rec.frames.len(), 1051);
    assert!(rec.meta.is_some());
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, frame) in rec.frames.iter().enumerate() {
        let msgs = parse_frame(&frame.data)
            .unwrap_or_else(|e| panic!("frame {i} (ts {}): {e}", frame.ts_ms));
        assert_eq!(msgs.len(), 1, "frame {i}");
        let kind = kind_of(&msgs[0]);
        // The recorder's label agrees with what the parser found.
        assert_eq!(kind, frame.kind, "frame {i}");
        *counts.entry(kind).or_default() += 1;
    }
    let expected = BTreeMap::from([
        ("OnCourse", 756),
        ("TimeOfDay", 247),
        ("Results", 16),
        ("RaceConfig", 13),
        ("TVS", 12),
        ("Schedule", 7),
    ]);
    assert_eq!(counts, expected);
}

/// State of the replay after all frames with `ts <= t`.
struct Replay {
    /// (ts, visible list as (position, bib)) after each frame.
    snapshots: Vec<(u64, Vec<(u32, String)>)>,
    finishes: Vec<Finish>,
    /// How often the TTL (not a message) removed someone.
    expirations: usize,
    tracker: OnCourseTracker,
    /// `changed` reports vs. actual list differences.
    changed_reports_correct: bool,
}

fn replay() -> Replay {
    let rec = recording();
    let mut tracker = OnCourseTracker::new();
    let mut snapshots = Vec::new();
    let mut finishes = Vec::new();
    let mut expirations = 0;
    let mut changed_reports_correct = true;
    for frame in &rec.frames {
        // The caller's expiry timer, run at every frame's time.
        if tracker.expire(frame.ts_ms) {
            expirations += 1;
        }
        for msg in parse_frame(&frame.data).expect("parses") {
            if let Message::OnCourse(oc) = msg {
                let before = tracker.current();
                let update = tracker.apply(&oc, frame.ts_ms);
                changed_reports_correct &= update.changed == (before != tracker.current());
                finishes.extend(update.finish);
            }
        }
        let list = tracker
            .current()
            .into_iter()
            .map(|e| (e.position, e.rider.bib))
            .collect();
        snapshots.push((frame.ts_ms, list));
    }
    Replay {
        snapshots,
        finishes,
        expirations,
        tracker,
        changed_reports_correct,
    }
}

impl Replay {
    fn at(&self, ts: u64) -> Vec<(u32, &str)> {
        let (_, list) = self
            .snapshots
            .iter()
            .rev()
            .find(|(t, _)| *t <= ts)
            .expect("a frame at or before ts");
        list.iter().map(|(p, b)| (*p, b.as_str())).collect()
    }
}

fn ms_of_day(h: u32, m: u32, s: u32, ms: u32) -> u32 {
    ((h * 60 + m) * 60 + s) * 1000 + ms
}

#[test]
fn finishes_detected_in_the_recording() {
    let r = replay();
    // Four dtFinish transitions in the recording (grep `dtFinish="1`): bibs 9, 10, 11, 13,
    // all in K1M_ST_BR2_6. Time = dtFinish − dtStart truncated to 1/100 s (75.099 → 75.09).
    let summary: Vec<_> = r
        .finishes
        .iter()
        .map(|f| {
            (
                f.bib.as_str(),
                f.participant_id.as_deref().unwrap_or(""),
                f.race_id.as_str(),
                f.time_ms,
                f.pen_s,
                f.total_ms,
                f.detected_at_ms,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "9",
                "30034.K1M_ST",
                "K1M_ST_BR2_6",
                Some(51_200),
                Some(52),
                Some(103_200),
                63_170
            ),
            (
                "10",
                "36019.K1M_ST",
                "K1M_ST_BR2_6",
                Some(75_090),
                Some(52),
                Some(127_090),
                107_563
            ),
            (
                "11",
                "129002.K1M_ST",
                "K1M_ST_BR2_6",
                Some(25_000),
                Some(0),
                Some(25_000),
                115_100
            ),
            (
                "13",
                "42035.K1M_ST",
                "K1M_ST_BR2_6",
                Some(29_000),
                Some(4),
                Some(33_000),
                172_815
            ),
        ]
    );
    let bib9 = &r.finishes[0];
    assert_eq!(bib9.dt_start_ms, Some(ms_of_day(10, 34, 20, 123)));
    assert_eq!(bib9.dt_finish_ms, Some(ms_of_day(10, 35, 11, 325)));
    for f in &r.finishes {
        let (Some(start), Some(finish), Some(time)) = (f.dt_start_ms, f.dt_finish_ms, f.time_ms)
        else {
            panic!("incomplete finish {f:?}")
        };
        assert_eq!(i64::from(finish - start) / 10 * 10, time, "bib {}", f.bib);
    }
}

#[test]
fn who_is_on_course_over_time() {
    let r = replay();
    // Expected lists derived by reading the OnCourse frames of the recording in order
    // (ts, Total, Position, Bib):
    // - up to 4552 only `<OnCourse Total="0" Position="0" />`;
    // - 5561: T1 P1 bib 9; 7204: T2 P2 bib 10 (9 still P1);
    // - 63170: bib 9 gets dtFinish (the finish), still listed;
    // - 66898: bib 9 Completed=Y; 66920: T1 P1 bib 10 — 9 has left: it is displaced by 10
    //   taking slot 1 while Total (1) is below the tracked count (c123-server would keep
    //   showing 9 until its 10 s TTL ran out at 76898);
    // - 70966 T2 P2 bib 11, 72184 T3 P3 bib 12, 73198 T4 P4 bib 13, 74227 T5 P5 bib 14;
    // - 117119 bib 10 Completed=Y; 117166 T4 P1 bib 11 (10 displaced), 117167 12→P2,
    //   13→P3, 14→P4;
    // - 118403 T3: 12 P1 (11 displaced), 13 P2, 14 P3;
    // - 174974 bib 13 (P2) Completed=Y; 175037 T2 P1 bib 12, 175038 T2 P2 bib 14 (13
    //   displaced from slot 2 — bib 13 finished before bib 12, who started earlier);
    // - 178991 T1 P1 bib 14: bib 12 disappears without a finish (removed from course);
    // - 185402 `Total="0"`: empty;
    // - 197592 T1 P1 bib 1 of C1W_ST_BR2_6; 224116 T2 P2 bib 2; both to the end.
    let list = |v: &[(u32, &'static str)]| v.to_vec();
    assert_eq!(r.at(4552), list(&[]));
    assert_eq!(r.at(5561), list(&[(1, "9")]));
    assert_eq!(r.at(7204), list(&[(1, "9"), (2, "10")]));
    assert_eq!(r.at(63170), list(&[(1, "9"), (2, "10")]));
    assert_eq!(r.at(66898), list(&[(1, "9"), (2, "10")]));
    assert_eq!(r.at(66920), list(&[(1, "10")]));
    assert_eq!(
        r.at(74227),
        list(&[(1, "10"), (2, "11"), (3, "12"), (4, "13"), (5, "14")])
    );
    assert_eq!(
        r.at(117166),
        list(&[(1, "11"), (3, "12"), (4, "13"), (5, "14")])
    );
    assert_eq!(
        r.at(117167),
        list(&[(1, "11"), (2, "12"), (3, "13"), (4, "14")])
    );
    assert_eq!(r.at(118403), list(&[(1, "12"), (2, "13"), (3, "14")]));
    assert_eq!(r.at(175038), list(&[(1, "12"), (2, "14")]));
    assert_eq!(r.at(178991), list(&[(1, "14")]));
    assert_eq!(r.at(184169), list(&[(1, "14")]));
    assert_eq!(r.at(185402), list(&[]));
    assert_eq!(r.at(197592), list(&[(1, "1")]));
    assert_eq!(r.at(u64::MAX), list(&[(1, "1"), (2, "2")]));
    let last = r.tracker.get("1").expect("bib 1");
    assert_eq!(last.rider.race_id, "C1W_ST_BR2_6");

    // Every rider is re-sent at least every ~1 s, so the 10 s TTL never fired.
    assert_eq!(r.expirations, 0);
    // `changed` was reported exactly when the visible list differed.
    assert!(r.changed_reports_correct);
}

#[test]
fn riders_expire_after_the_ttl_once_the_stream_stops() {
    let mut r = replay();
    // Last messages: bib 2 at ts 246742, bib 1 at ts 247350.
    assert!(!r.tracker.expire(246_742 + 9_999));
    assert!(r.tracker.expire(246_742 + 10_000));
    let bibs: Vec<String> = r
        .tracker
        .current()
        .into_iter()
        .map(|e| e.rider.bib)
        .collect();
    assert_eq!(bibs, vec!["1"]);
    assert!(r.tracker.expire(247_350 + 10_000));
    assert!(r.tracker.is_empty());
}
