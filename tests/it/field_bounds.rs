//! Every string field from outside has a bound, at the parser: TCP frames (a counted parse
//! error) and the JSON ingest bodies (a 400 naming the field). Ids and times: 64 characters,
//! names and titles: 200, lists in one attribute (gates): 1024.

use crate::support::frames;

use std::time::Duration;

use crate::support::wait::poll_until;
use crate::support::*;
use c123_live::c123::frame::{
    parse_frame, FrameError, Message, MAX_ID_CHARS, MAX_LIST_CHARS, MAX_LIST_ENTRIES,
    MAX_TEXT_CHARS,
};
use serde_json::json;

fn with_name(name: &str) -> String {
    frames::ONCOURSE_RUNNING.replace("Name=\"HOLOČEK Čeněk\"", &format!("Name=\"{name}\""))
}

fn rider_name(frame: &str) -> String {
    match parse_frame(frame).unwrap().remove(0) {
        Message::OnCourse(oc) => oc.rider.unwrap().name,
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_bounds_are_the_stated_ones() {
    assert_eq!(
        (MAX_ID_CHARS, MAX_TEXT_CHARS, MAX_LIST_CHARS),
        (64, 200, 1024)
    );
}

#[test]
fn frame_names_are_bounded_at_200_characters() {
    // 200 characters of two bytes each are fine: the bound counts characters.
    let name = "Č".repeat(200);
    assert_eq!(rider_name(&with_name(&name)), name);
    let err = parse_frame(&with_name(&"Č".repeat(201))).unwrap_err();
    assert_eq!(
        err,
        FrameError::TooLong {
            element: "Participant",
            attribute: "Name",
            limit: 200
        }
    );
    assert_eq!(
        err.to_string(),
        "<Participant Name>: longer than 200 characters"
    );
    // The report's 4 MiB name.
    let huge = "a".repeat(4 * 1024 * 1024);
    assert!(matches!(
        parse_frame(&with_name(&huge)),
        Err(FrameError::TooLong {
            attribute: "Name",
            ..
        })
    ));
}

#[test]
fn frame_ids_are_bounded_at_64_characters() {
    let frame = |race: &str| {
        frames::ONCOURSE_RUNNING.replace("RaceId=\"K1M_ST_BR2_6\"", &format!("RaceId=\"{race}\""))
    };
    assert!(parse_frame(&frame(&"R".repeat(64))).is_ok());
    assert!(matches!(
        parse_frame(&frame(&"R".repeat(65))),
        Err(FrameError::TooLong {
            attribute: "RaceId",
            limit: 64,
            ..
        })
    ));
    let id = frames::ONCOURSE_RUNNING
        .replace("Id=\"30034.K1M_ST\"", &format!("Id=\"{}\"", "9".repeat(65)));
    assert!(matches!(
        parse_frame(&id),
        Err(FrameError::TooLong {
            attribute: "Id",
            ..
        })
    ));
    let bib = frames::ONCOURSE_RUNNING.replace("Bib=\"9\"", &format!("Bib=\"{}\"", "9".repeat(65)));
    assert!(matches!(
        parse_frame(&bib),
        Err(FrameError::TooLong {
            attribute: "Bib",
            ..
        })
    ));
    // Results rows and tables, TVS, Schedule.
    let results = frames::RESULTS_FR_HO_BR1.replace(
        "ClassId=\"FR_HO\"",
        &format!("ClassId=\"{}\"", "C".repeat(65)),
    );
    assert!(matches!(
        parse_frame(&results),
        Err(FrameError::TooLong {
            element: "Results",
            attribute: "ClassId",
            ..
        })
    ));
    let row = frames::RESULTS_FR_HO_BR1.replacen(
        "Club=\"Klub Kanoistika Roudnice n.L.\"",
        &format!("Club=\"{}\"", "k".repeat(201)),
        1,
    );
    assert!(matches!(
        parse_frame(&row),
        Err(FrameError::TooLong {
            element: "Participant",
            attribute: "Club",
            ..
        })
    ));
    let tvs = frames::TVS_BOTH.replace(
        "Even_RaceId=\"K1M_ST_BR2_6\"",
        &format!("Even_RaceId=\"{}\"", "r".repeat(65)),
    );
    assert!(matches!(
        parse_frame(&tvs),
        Err(FrameError::TooLong {
            attribute: "Even_RaceId",
            ..
        })
    ));
    let schedule = frames::SCHEDULE.replacen(
        "MainTitle=\"K1m - střední trať\"",
        &format!("MainTitle=\"{}\"", "t".repeat(201)),
        1,
    );
    assert!(matches!(
        parse_frame(&schedule),
        Err(FrameError::TooLong {
            element: "Race",
            attribute: "MainTitle",
            ..
        })
    ));
}

#[test]
fn frame_lists_and_texts_are_bounded() {
    let gates = |n: usize| {
        let g = vec!["0"; n].join(",");
        frames::ONCOURSE_RUNNING.replace(
            "Gates=\"0,0,0,2,0,0,50,,,,,,,,,,,,,,,,,\"",
            &format!("Gates=\"{g}\""),
        )
    };
    // A list of legal gates stays far below the character bound (at most `Gates::MAX_SLOTS`
    // slots); the character bound refuses a long list before its slots are even read.
    assert!(parse_frame(&gates(64)).is_ok(), "64 gates");
    assert!(matches!(
        parse_frame(&gates(513)),
        Err(FrameError::TooLong {
            attribute: "Gates",
            limit: 1024,
            ..
        })
    ));
    let tod = format!(
        "<Canoe123 System=\"Main\"><TimeOfDay>{}</TimeOfDay></Canoe123>",
        "1".repeat(65)
    );
    assert!(matches!(
        parse_frame(&tod),
        Err(FrameError::TooLong {
            element: "TimeOfDay",
            ..
        })
    ));
}

/// One `<Results>` table carries at most 1024 rows and one `<Schedule>` at most 1024 races
/// (a 4 MiB frame could otherwise hand the merge loop ~40 000 rows in one input).
#[test]
fn frame_rows_and_schedule_races_are_bounded_at_1024() {
    assert_eq!(MAX_LIST_ENTRIES, 1024);
    let results = |n: usize| {
        let start = frames::RESULTS_FR_HO_BR1.find("<Row ").unwrap();
        let end = frames::RESULTS_FR_HO_BR1.find("</Row>").unwrap() + "</Row>".len();
        let row = &frames::RESULTS_FR_HO_BR1[start..end];
        let rows: String = (0..n)
            .map(|i| row.replace("Bib=\" 205\"", &format!("Bib=\"{i}\"")))
            .collect();
        let close = frames::RESULTS_FR_HO_BR1.find("</Results>").unwrap();
        format!(
            "{}{rows}{}",
            &frames::RESULTS_FR_HO_BR1[..start],
            &frames::RESULTS_FR_HO_BR1[close..]
        )
    };
    match parse_frame(&results(1024)).expect("1024 rows").remove(0) {
        Message::Results(table) => assert_eq!(table.rows.len(), 1024),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        parse_frame(&results(1025)),
        Err(FrameError::TooMany {
            element: "Row",
            limit: 1024
        })
    ));
    let schedule = |n: usize| {
        let race = "<Race Order=\"1\" RaceId=\"K1M_ST_BR1_6\" Race=\"K1m\" RaceStatus=\"5\"><StartTime /></Race>";
        format!(
            "<Canoe123 System=\"Main\"><Schedule>{}</Schedule></Canoe123>",
            race.repeat(n)
        )
    };
    match parse_frame(&schedule(1024)).expect("1024 races").remove(0) {
        Message::Schedule(races) => assert_eq!(races.len(), 1024),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        parse_frame(&schedule(1025)),
        Err(FrameError::TooMany {
            element: "Race",
            limit: 1024
        })
    ));
}

/// TCP times, penalties and ranks have the ranges of the XML and JSON inputs (24 h,
/// 86 400 s, 99 999): an absurd value is a parse error, never a published time.
#[test]
fn frame_times_penalties_and_ranks_are_range_checked() {
    let finish = frames::ONCOURSE_FINISH_BIB9;
    let with = |from: &str, to: &str| {
        assert!(finish.contains(from), "{from}");
        finish.replace(from, to)
    };
    // At the bound: accepted.
    for ok in [
        with("Time=\"51.20\"", "Time=\"86400.000\""),
        with("Time=\"51.20\"", "Time=\"24:00:00\""),
        with("TTBDiff=\"+12.79\"", "TTBDiff=\"-86400.00\""),
        with("Pen=\"52\"", "Pen=\"86400\""),
        with("Rank=\"8\"", "Rank=\"99999\""),
    ] {
        assert!(parse_frame(&ok).is_ok(), "{ok}");
    }
    for (bad, attribute) in [
        (with("Time=\"51.20\"", "Time=\"86400.001\""), "Time"),
        (with("Time=\"51.20\"", "Time=\"99999999999\""), "Time"),
        (with("Total=\"103.20\"", "Total=\"86401\""), "Total"),
        (
            with("TTBDiff=\"+12.79\"", "TTBDiff=\"-86400.01\""),
            "TTBDiff",
        ),
        (with("Pen=\"52\"", "Pen=\"86401\""), "Pen"),
        (with("Rank=\"8\"", "Rank=\"100000\""), "Rank"),
    ] {
        match parse_frame(&bad) {
            Err(FrameError::InvalidValue { attribute: a, .. }) => assert_eq!(a, attribute, "{bad}"),
            other => panic!("{attribute}: {other:?}"),
        }
    }
    // The same ranges in a Results row.
    let row = frames::RESULTS_FR_HO_BR1.replacen("Time=\"83.15\"", "Time=\"90000\"", 1);
    assert!(matches!(
        parse_frame(&row),
        Err(FrameError::InvalidValue {
            attribute: "Time",
            ..
        })
    ));
    let row = frames::RESULTS_FR_HO_BR1.replacen("Pen=\"4\"", "Pen=\"100000\"", 1);
    assert!(matches!(
        parse_frame(&row),
        Err(FrameError::InvalidValue {
            attribute: "Pen",
            ..
        })
    ));
}

/// Over TCP an over-long field is a counted parse error and nothing of the frame is used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overlong_tcp_field_is_a_counted_parse_error() {
    use c123_live::ingest::tcp::{self, TcpSettings};
    use c123_live::merge::{self, MergeSettings, XmlOrigin, XmlTarget};
    use c123_live::store::{Store, Synchronous};
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("live.db"), Synchronous::Off).unwrap();
    let (merge, _join) = merge::start(store, MergeSettings::default()).unwrap();
    c123_live::ingest::import_bytes(
        &merge,
        fixture_xml().into_bytes(),
        XmlTarget::ByExport {
            event_id: Some("ev".into()),
        },
        XmlOrigin::Cli,
    )
    .await
    .unwrap();
    let seq = merge.snapshot().event("ev").unwrap().header.seq;
    let shutdown = c123_live::shutdown::Shutdown::new();
    let (status, addr, _task) = tcp::spawn_listen(
        "127.0.0.1:0".parse().unwrap(),
        TcpSettings::new(Some("ev".into())),
        merge.clone(),
        shutdown.clone(),
    )
    .await
    .unwrap();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("{}|", with_name(&"a".repeat(1024 * 1024))).as_bytes())
        .await
        .unwrap();
    poll_until("the parse error counted", Duration::from_secs(10), || {
        status.lock().unwrap().parse_errors >= 1
    })
    .await;
    let event = merge.snapshot().event("ev").unwrap().clone();
    assert_eq!(event.header.seq, seq, "nothing changed");
    assert!(event.oncourse.is_empty());
    shutdown.cancel();
}

/// The JSON ingest bodies: a 400 naming the field, nothing stored; at the bound accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlong_json_fields_are_refused_naming_the_field() {
    let s = start().await;
    let key = s.create_event("F").await;
    assert_eq!(s.import_fixture(&key).await.0, 200);
    s.walk_to("F", &key, "running").await;
    let entry = |name: String, race: &str| {
        json!({"oncourse": [{"participantId": "30034.K1M_ST", "raceId": race, "bib": 9,
            "name": name, "position": 1, "time": 4500}]})
    };
    let cases = [
        (
            entry("n".repeat(201), "K1M_ST_BR2_6"),
            "oncourse[0].name: longer than 200 characters",
        ),
        (
            entry("ok".into(), &"R".repeat(65)),
            "oncourse[0].raceId: longer than 64 characters",
        ),
        (
            json!({"oncourse": [{"participantId": "30034.K1M_ST", "raceId": "K1M_ST_BR2_6", "bib": 9,
                "ttbName": "t".repeat(201)}]}),
            "oncourse[0].ttbName: longer than 200 characters",
        ),
    ];
    for (body, message) in cases {
        let (st, resp) = s.post_ingest("/api/v1/ingest/oncourse", &key, body).await;
        assert_eq!(st, 400, "{resp}");
        assert_eq!(resp["error"], "InvalidRequest");
        assert_eq!(resp["message"], message);
    }
    let (_, oc) = s.get("/api/v1/events/F/oncourse").await;
    assert_eq!(oc["oncourse"], json!([]), "nothing stored");
    let (st, resp) = s
        .post_ingest(
            "/api/v1/ingest/oncourse",
            &key,
            entry("Č".repeat(200), "K1M_ST_BR2_6"),
        )
        .await;
    assert_eq!(st, 200, "{resp}");

    let (_, before) = s.get("/api/v1/events/F/results/K1M_ST_BR2_6").await;
    for (field, value, message) in [
        (
            "participantId",
            "p".repeat(65),
            "results[0].participantId: longer than 64 characters",
        ),
        (
            "dtStart",
            "1".repeat(65),
            "results[0].dtStart: longer than 64 characters",
        ),
        (
            "status",
            "D".repeat(65),
            "results[0].status: longer than 64 characters",
        ),
    ] {
        let mut row = json!({"raceId": "K1M_ST_BR2_6", "participantId": "30034.K1M_ST", "bib": 9, "time": 9000});
        row[field] = json!(value);
        let (st, resp) = s
            .post_ingest("/api/v1/ingest/results", &key, json!({"results": [row]}))
            .await;
        assert_eq!(st, 400, "{resp}");
        assert_eq!(resp["message"], message);
    }
    let (_, after) = s.get("/api/v1/events/F/results/K1M_ST_BR2_6").await;
    assert_eq!(before, after, "nothing stored");
}
