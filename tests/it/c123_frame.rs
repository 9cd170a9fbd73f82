//! Frame parser tests on real frames (verbatim from the recording) and hostile input.

use crate::support::frames;

use c123_live::c123::frame::{
    parse_comma_gates, parse_fixed_width_gates, parse_frame, FrameError, Irm, Message, OnCourse,
    OnCourseRider, ResultsTable, MAX_DEPTH,
};
use proptest::prelude::*;

fn one(text: &str) -> Message {
    let mut msgs = parse_frame(text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    msgs.remove(0)
}

fn oncourse(text: &str) -> OnCourse {
    match one(text) {
        Message::OnCourse(o) => o,
        other => panic!("not OnCourse: {other:?}"),
    }
}

fn rider(text: &str) -> OnCourseRider {
    oncourse(text).rider.expect("a rider")
}

fn results(text: &str) -> ResultsTable {
    match one(text) {
        Message::Results(r) => r,
        other => panic!("not Results: {other:?}"),
    }
}

#[test]
fn empty_course_form() {
    assert_eq!(
        oncourse(frames::EMPTY_COURSE),
        OnCourse {
            total: 0,
            position: 0,
            rider: None
        }
    );
}

#[test]
fn oncourse_not_started_has_no_time_and_no_total() {
    let o = oncourse(frames::ONCOURSE_NOT_STARTED);
    assert_eq!((o.total, o.position), (1, 1));
    let r = o.rider.expect("rider");
    assert_eq!(r.bib, "9");
    assert_eq!(r.participant_id.as_deref(), Some("30034.K1M_ST"));
    assert_eq!(r.name, "HOLOČEK Čeněk");
    assert_eq!(r.club, "VS Tábor");
    assert_eq!(r.race_name, "K1m - střední trať - 2. jízda");
    assert_eq!(r.race_id, "K1M_ST_BR2_6");
    assert_eq!(r.start_order, Some(9));
    assert_eq!(r.warning, None);
    // 24 commas-separated empty fields: 24 gates, none judged.
    assert_eq!(r.gates, vec![None; 24]);
    assert!(!r.completed);
    assert_eq!((r.dt_start_ms, r.dt_finish_ms), (None, None));
    assert_eq!(r.pen_s, Some(0));
    // Time="" Total="0.00": not started → no time, no total (not zero).
    assert_eq!((r.time_ms, r.total_ms), (None, None));
    assert!(!r.time_is_running);
    assert_eq!(r.ttb_diff_ms, Some(12_790));
    assert_eq!(r.ttb_name, "G. ŘÍHĚNÝ");
    assert_eq!(r.rank, Some(8));
}

#[test]
fn oncourse_running_time_is_whole_seconds() {
    let r = rider(frames::ONCOURSE_RUNNING);
    // Time="13   " Total="65   "
    assert_eq!(r.time_ms, Some(13_000));
    assert!(r.time_is_running);
    assert_eq!(r.total_ms, Some(65_000));
    assert_eq!(r.pen_s, Some(52));
    // "0,0,0,2,0,0,50,,,,,,,,,,,,,,,,," : 7 judged + 17 trailing empties = 24 gates.
    let mut expected = vec![
        Some(0),
        Some(0),
        Some(0),
        Some(2),
        Some(0),
        Some(0),
        Some(50),
    ];
    expected.resize(24, None);
    assert_eq!(r.gates, expected);
    assert_eq!(r.dt_start_ms, Some(((10 * 60 + 34) * 60 + 20) * 1000 + 123));
    assert_eq!(r.dt_finish_ms, None);
    assert_eq!(r.ttb_diff_ms, None);
    assert_eq!(r.rank, None);
}

#[test]
fn oncourse_finish_time_has_decimals() {
    let r = rider(frames::ONCOURSE_FINISH_BIB9);
    assert_eq!(r.time_ms, Some(51_200));
    assert!(!r.time_is_running);
    assert_eq!(r.total_ms, Some(103_200));
    assert_eq!(r.pen_s, Some(52));
    assert_eq!(
        r.dt_finish_ms,
        Some(((10 * 60 + 35) * 60 + 11) * 1000 + 325)
    );
    assert!(!r.completed);
    assert_eq!(r.gates.len(), 24);
    assert!(r.gates.iter().all(Option::is_some));

    let done = rider(frames::ONCOURSE_COMPLETED_BIB9);
    assert!(done.completed);
    assert_eq!(done.time_ms, Some(51_200));

    let r10 = rider(frames::ONCOURSE_FINISH_BIB10);
    assert_eq!(r10.bib, "10");
    assert_eq!(r10.participant_id.as_deref(), Some("36019.K1M_ST"));
    assert_eq!(
        (r10.time_ms, r10.pen_s, r10.total_ms),
        (Some(75_090), Some(52), Some(127_090))
    );
}

#[test]
fn oncourse_negative_ttb_diff() {
    let r = rider(frames::ONCOURSE_NEGATIVE_TTB);
    assert_eq!(r.ttb_diff_ms, Some(-53_990));
    assert_eq!(r.time_ms, Some(25_000));
    assert_eq!(r.rank, Some(1));
}

#[test]
fn oncourse_padded_bib_is_trimmed() {
    let text = frames::ONCOURSE_RUNNING.replace(r#"Bib="9""#, r#"Bib="   9""#);
    assert_eq!(rider(&text).bib, "9");
}

#[test]
fn results_real_br1_frame() {
    let t = results(frames::RESULTS_FR_HO_BR1);
    assert_eq!(t.race_id, "FR_HO_BR1_7");
    assert_eq!(t.class_id, "FR_HO");
    assert!(!t.is_current);
    assert_eq!(t.main_title, "Předjezdci - horní trať");
    assert_eq!(t.sub_title, "1st Run");
    assert_eq!(t.rows.len(), 8);

    let first = &t.rows[0];
    assert_eq!(first.row_number, Some(1));
    assert_eq!(first.bib, "205"); // Bib=" 205"
    assert_eq!(first.participant_id.as_deref(), Some("49036.FR_HO.PZK"));
    assert_eq!(first.name, "TŮMOÍK Ilona");
    assert_eq!(first.given_name, "Ilona");
    assert_eq!(first.family_name, "TŮMOÍK");
    assert_eq!(first.club, "Klub Kanoistika Roudnice n.L.");
    assert_eq!(first.start_order, Some(5));
    assert_eq!(first.start_time_ms, Some(((13 * 60 + 47) * 60 + 20) * 1000));
    assert_eq!(first.heat_nr, Some(0));
    assert_eq!(first.qualification, None);
    assert_eq!(first.irm, None);
    assert!(!first.under_investigation);
    assert_eq!(first.pen_s, Some(4));
    // 18 gates then 12 blank slots (90 chars): trailing blanks dropped.
    let g = |v: &[u16]| v.iter().map(|&x| Some(x)).collect::<Vec<_>>();
    assert_eq!(
        first.gates,
        g(&[0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0])
    );
    assert_eq!(first.time_ms, Some(83_150));
    assert_eq!(first.total_ms, Some(87_150));
    assert_eq!((first.rank, first.rank_order), (Some(1), Some(1)));
    assert_eq!(first.behind_ms, None);

    assert_eq!(t.rows[1].behind_ms, Some(13_580));
    assert_eq!(t.rows[5].gates.get(12), Some(&Some(50)));

    let dns = &t.rows[6];
    assert_eq!(dns.bib, "203");
    assert_eq!(dns.irm, Some(Irm::Dns));
    assert_eq!(dns.gates, vec![]); // 90 spaces
    assert_eq!((dns.time_ms, dns.total_ms, dns.rank), (None, None, None));
    assert_eq!(dns.rank_order, Some(7));
}

#[test]
fn results_real_br2_frame_with_dnf() {
    let t = results(frames::RESULTS_FR_HO_BR2);
    assert_eq!(t.sub_title, "1st and 2nd Run");
    let dnf = &t.rows[3];
    assert_eq!(dnf.irm, Some(Irm::Dnf));
    assert_eq!(dnf.gates, vec![Some(0)]);
    assert_eq!(dnf.time_ms, None);
    // BR2: Total is the best of both runs, present even for a DNF second run.
    assert_eq!(dnf.total_ms, Some(117_580));
    assert_eq!(dnf.rank, Some(4));
}

#[test]
fn results_current_flag_pp_star_and_lowercase_irm() {
    let text = r#"<Canoe123 System="Main"><Results RaceId="K1M_ST_BR2_6" ClassId="K1M_ST" Current="Y" MainTitle="K1m" SubTitle="x"><Row Number="1"><Participant Bib="  17" Id="1.K1M_ST" /><Result Type="T" IRM="dsq" PP="*" Pen="306" Gates="  2  2  2  0  0300" Time="" Total="" Rank="0" /></Row></Results></Canoe123>"#;
    let t = results(text);
    assert!(t.is_current);
    let row = &t.rows[0];
    assert_eq!(row.bib, "17");
    assert_eq!(row.irm, Some(Irm::Dsq));
    assert!(row.under_investigation);
    assert_eq!(row.pen_s, Some(306));
    assert_eq!(
        row.gates,
        vec![Some(2), Some(2), Some(2), Some(0), Some(0), Some(300)]
    );
    assert_eq!(row.rank, None); // Rank="0"
}

#[test]
fn race_config_real() {
    let Message::RaceConfig(c) = one(frames::RACE_CONFIG) else {
        panic!("not RaceConfig")
    };
    assert_eq!((c.nr_splits, c.nr_gates), (0, 24));
    assert_eq!(c.gate_config, "NNRNNRNRNNNRNNRNRNNRNNRN");
    assert_eq!(c.gate_captions.len(), 24);
    assert_eq!(c.gate_captions.first().map(String::as_str), Some("1"));
    assert_eq!(c.gate_captions.last().map(String::as_str), Some("24"));
}

#[test]
fn schedule_real() {
    let Message::Schedule(races) = one(frames::SCHEDULE) else {
        panic!("not Schedule")
    };
    assert_eq!(races.len(), 44);
    let first = &races[0];
    assert_eq!(first.order, Some(101));
    assert_eq!(first.race_id, "K1M_ST_BR1_6");
    assert_eq!(first.race_name, "K1m - střední trať - 1. jízda");
    assert_eq!(first.main_title, "K1m - střední trať");
    assert_eq!(first.sub_title, "1st Run");
    assert_eq!(first.short_title, "K1m - střední trať - 1. jízda");
    assert_eq!(first.race_status, Some(5));
    assert_eq!(first.start_time, None); // <StartTime />
    let br2 = races
        .iter()
        .find(|r| r.race_id == "K1M_ST_BR2_6")
        .expect("BR2");
    assert_eq!((br2.order, br2.race_status), (Some(104), Some(3)));
    // Duplicate Order values are real (two races with 105).
    assert_eq!(races.iter().filter(|r| r.order == Some(105)).count(), 2);
}

#[test]
fn schedule_start_time_text() {
    let text = r#"<Canoe123><Schedule><Race Order="1" RaceId="A"><StartTime>10:00:00</StartTime></Race></Schedule></Canoe123>"#;
    let Message::Schedule(races) = one(text) else {
        panic!()
    };
    assert_eq!(races[0].start_time.as_deref(), Some("10:00:00"));
}

#[test]
fn time_of_day_real() {
    let Message::TimeOfDay(t) = one(frames::TIME_OF_DAY) else {
        panic!("not TimeOfDay")
    };
    assert_eq!(t.text, "10:34:11");
    assert_eq!(t.ms_since_midnight, Some(((10 * 60 + 34) * 60 + 11) * 1000));
}

#[test]
fn tvs_real() {
    let Message::Tvs(t) = one(frames::TVS_ODD_ONLY) else {
        panic!("not TVS")
    };
    assert_eq!(t.odd_bib.as_deref(), Some("9"));
    assert_eq!(t.odd_race_id.as_deref(), Some("K1M_ST_BR2_6"));
    assert_eq!((t.even_bib, t.even_race_id), (None, None));

    let Message::Tvs(t) = one(frames::TVS_BOTH) else {
        panic!("not TVS")
    };
    assert_eq!(t.even_bib.as_deref(), Some("10"));
}

#[test]
fn several_children_and_unknown() {
    let text = r#"<Canoe123 System="Main">
        <TimeOfDay>19:04:20</TimeOfDay>
        <Scoring Bib="10"><Penalty Gate="5" Value="2" /></Scoring>
        <OnCourse Total="0" Position="0" />
    </Canoe123>"#;
    let msgs = parse_frame(text).expect("parses");
    assert_eq!(msgs.len(), 3);
    assert!(matches!(&msgs[0], Message::TimeOfDay(t) if t.text == "19:04:20"));
    assert_eq!(msgs[1], Message::Unknown("Scoring".into()));
    assert!(matches!(&msgs[2], Message::OnCourse(o) if o.total == 0 && o.rider.is_none()));
}

#[test]
fn root_without_children_is_no_message() {
    assert_eq!(parse_frame(r#"<Canoe123 System="Main" />"#), Ok(vec![]));
}

#[test]
fn entities_and_czech_text() {
    let text = r#"<Canoe123><OnCourse Total="1" Position="1"><Participant Bib="7" Name="ŽÁK &amp; SYN &#x10C;&#268;" Club="&lt;Klub&gt; &quot;Tábor&quot; &apos;x&apos;" /></OnCourse><TimeOfDay>10:00:00 &amp; more</TimeOfDay></Canoe123>"#;
    let msgs = parse_frame(text).expect("parses");
    let Message::OnCourse(o) = &msgs[0] else {
        panic!()
    };
    let r = o.rider.as_ref().expect("rider");
    assert_eq!(r.name, "ŽÁK & SYN ČČ");
    assert_eq!(r.club, r#"<Klub> "Tábor" 'x'"#);
    let Message::TimeOfDay(t) = &msgs[1] else {
        panic!()
    };
    assert_eq!(t.text, "10:00:00 & more");
    assert_eq!(t.ms_since_midnight, None);
}

#[test]
fn comma_gates_forms() {
    assert_eq!(parse_comma_gates(""), Ok(vec![]));
    assert_eq!(parse_comma_gates(","), Ok(vec![None, None]));
    assert_eq!(
        parse_comma_gates("0,2,,50,"),
        Ok(vec![Some(0), Some(2), None, Some(50), None])
    );
    assert!(parse_comma_gates("0,x").is_err());
}

#[test]
fn fixed_width_gates_forms() {
    assert_eq!(
        parse_fixed_width_gates("  2  2  2  0  0300"),
        Ok(vec![Some(2), Some(2), Some(2), Some(0), Some(0), Some(300)])
    );
    // Sparse: gates 1–4 blank, gate 5 = 2 (never whitespace-split).
    assert_eq!(
        parse_fixed_width_gates("              2      "),
        Ok(vec![None, None, None, None, Some(2)])
    );
    assert_eq!(parse_fixed_width_gates(&" ".repeat(90)), Ok(vec![]));
    assert_eq!(parse_fixed_width_gates(""), Ok(vec![]));
    // A short last slot (no padding) still counts.
    assert_eq!(
        parse_fixed_width_gates("  0 50"),
        Ok(vec![Some(0), Some(50)])
    );
    assert!(parse_fixed_width_gates("  0  x").is_err());
}

#[test]
fn invalid_values_are_errors() {
    let bad_pen = frames::ONCOURSE_RUNNING.replace(r#"Pen="52""#, r#"Pen="5x""#);
    assert!(matches!(
        parse_frame(&bad_pen),
        Err(FrameError::InvalidValue {
            attribute: "Pen",
            ..
        })
    ));
    let bad_time = frames::ONCOURSE_RUNNING.replace(r#"Time="13   ""#, r#"Time="1.2.3""#);
    assert!(matches!(
        parse_frame(&bad_time),
        Err(FrameError::InvalidValue {
            attribute: "Time",
            ..
        })
    ));
    let bad_dt = frames::ONCOURSE_RUNNING.replace("10:34:20.123", "25:99:00");
    assert!(matches!(
        parse_frame(&bad_dt),
        Err(FrameError::InvalidValue {
            attribute: "dtStart",
            ..
        })
    ));
    let no_bib = frames::ONCOURSE_RUNNING.replace(r#"Bib="9""#, r#"Bib="  ""#);
    assert!(matches!(
        parse_frame(&no_bib),
        Err(FrameError::MissingAttribute {
            attribute: "Bib",
            ..
        })
    ));
}

#[test]
fn malformed_input_is_an_error() {
    let cases: Vec<(&str, String)> = vec![
        ("empty", String::new()),
        ("whitespace", "   ".into()),
        ("not xml", "hello world".into()),
        (
            "wrong root",
            r#"<Canoe124><TimeOfDay>1</TimeOfDay></Canoe124>"#.into(),
        ),
        ("xml root", "<xml>partial</xml>".into()),
        ("truncated", frames::ONCOURSE_RUNNING[..200].to_owned()),
        (
            "truncated in tag",
            frames::ONCOURSE_RUNNING[..30].to_owned(),
        ),
        ("unclosed root", r#"<Canoe123 System="Main">"#.into()),
        (
            "mismatched end",
            "<Canoe123><OnCourse></Results></Canoe123>".into(),
        ),
        ("two roots", "<Canoe123/><Canoe123/>".into()),
        ("text after root", "<Canoe123/>junk".into()),
        (
            "unknown entity",
            "<Canoe123><TimeOfDay>&nbsp;</TimeOfDay></Canoe123>".into(),
        ),
        ("bad attr", r#"<Canoe123 System=Main/>"#.into()),
        ("dup attr", r#"<Canoe123 a="1" a="2"/>"#.into()),
        (
            "unknown entity in attr",
            r#"<Canoe123><OnCourse Total="&bogus;"/></Canoe123>"#.into(),
        ),
        (
            "bad char ref",
            "<Canoe123><TimeOfDay>&#xFFFFFFFF;</TimeOfDay></Canoe123>".into(),
        ),
    ];
    for (name, text) in cases {
        let result = parse_frame(&text);
        assert!(result.is_err(), "{name}: {result:?}");
        // Every error renders a message.
        assert!(!result.unwrap_err().to_string().is_empty(), "{name}");
    }
}

#[test]
fn specific_error_kinds() {
    assert_eq!(parse_frame(""), Err(FrameError::NoRoot));
    assert!(matches!(
        parse_frame("<xml>partial</xml>"),
        Err(FrameError::WrongRoot { found }) if found == "xml"
    ));
    assert!(matches!(
        parse_frame(r#"<Canoe123 System="Main"><Results>"#),
        Err(FrameError::Truncated { open }) if open == "Results"
    ));
    assert_eq!(
        parse_frame("<Canoe123/><Canoe123/>"),
        Err(FrameError::TrailingContent)
    );
}

#[test]
fn hostile_deep_nesting_is_rejected() {
    let depth = 100_000;
    let text = format!(
        "<Canoe123>{}{}</Canoe123>",
        "<a>".repeat(depth),
        "</a>".repeat(depth)
    );
    assert_eq!(
        parse_frame(&text),
        Err(FrameError::TooDeep { limit: MAX_DEPTH })
    );
}

#[test]
fn hostile_huge_attribute_is_handled() {
    let huge = "9".repeat(2_000_000);
    let text = format!(r#"<Canoe123><OnCourse Total="{huge}" Position="1"/></Canoe123>"#);
    let err = parse_frame(&text).expect_err("out of range");
    // The error quotes a shortened value, not 2 MB.
    assert!(err.to_string().len() < 300, "{}", err.to_string().len());

    let name = "N".repeat(1_000_000);
    let text = format!(
        r#"<Canoe123><OnCourse Total="1" Position="1"><Participant Bib="1" Name="{name}"/></OnCourse></Canoe123>"#
    );
    // Refused (names are bounded at 200 characters, see tests/it/field_bounds.rs), with a
    // short error.
    let err = parse_frame(&text).expect_err("too long");
    assert_eq!(
        err.to_string(),
        "<Participant Name>: longer than 200 characters"
    );
}

proptest! {
    #[test]
    fn arbitrary_strings_never_panic(s in any::<String>()) {
        let _ = parse_frame(&s);
    }

    #[test]
    fn xmlish_strings_never_panic(s in r#"(<Canoe123( System="Main")?>|<OnCourse Total="[0-9 ]{0,3}" Position="[0-9]"|<Participant Bib="[ 0-9a]{0,4}"|<Result Type="[CT]" Gates="[0-9, ]{0,12}" Time="[0-9. :+-]{0,6}" dtStart="[0-9:.]{0,12}"|/>|>|</OnCourse>|</Canoe123>|<Results Current="Y">|<Row>|</Row>|</Results>|&amp;|&#[0-9x]{0,4};|[a-zČ]{0,3}){0,14}"#) {
        let _ = parse_frame(&s);
    }
}

/// Every cut of a real frame, at every character boundary of its whole length (the random
/// version cut only the first 2000 of its 3582 bytes): never a panic, always an error, and
/// the whole frame parses.
#[test]
fn real_frame_truncated_anywhere_is_an_error() {
    let text = frames::RESULTS_FR_HO_BR1;
    let mut cuts = 0;
    for cut in (0..text.len()).filter(|&c| text.is_char_boundary(c)) {
        assert!(
            parse_frame(&text[..cut]).is_err(),
            "cut at byte {cut} parsed"
        );
        cuts += 1;
    }
    assert!(cuts > 3000, "{cuts} cuts");
    assert!(parse_frame(text).is_ok());
}

/// The TCP `IRM` follows the status rule of every input (`c123_live::result_status`): known
/// codes in any case, an unknown code kept as sent (it was upper-cased), and an absurd value a
/// counted parse error instead of a stored 4 MiB status.
#[test]
fn irm_unknown_codes_kept_as_sent_absurd_ones_refused() {
    let frame = |irm: &str| {
        format!(
            r#"<Canoe123 System="Main"><Results RaceId="K1M_ST_BR2_6" ClassId="K1M_ST" Current="Y" MainTitle="K1m" SubTitle="x"><Row Number="1"><Participant Bib="17" Id="1.K1M_ST" /><Result Type="T" IRM="{irm}" Pen="0" Time="" Total="" Rank="0" /></Row></Results></Canoe123>"#
        )
    };
    assert_eq!(results(&frame("dnf")).rows[0].irm, Some(Irm::Dnf));
    assert_eq!(
        results(&frame("dnq")).rows[0].irm,
        Some(Irm::Other("DNQ".into()))
    );
    assert_eq!(
        results(&frame(" Ovt ")).rows[0].irm,
        Some(Irm::Other("Ovt".into()))
    );
    assert_eq!(results(&frame("  ")).rows[0].irm, None);
    let long = "X".repeat(c123_live::result_status::MAX_STATUS_BYTES + 1);
    assert!(matches!(
        parse_frame(&frame(&long)),
        Err(FrameError::InvalidValue {
            attribute: "IRM",
            ..
        })
    ));
}
