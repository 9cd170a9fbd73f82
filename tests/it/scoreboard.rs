//! c123-scoreboard's protocol (`protocol/scoreboard.md`) end to end: the daemon as `serve`
//! wires it (`App::start`) on a real SQLite file, the real export imported over HTTP, the
//! real recording played into the daemon's own `--tcp-listen` port, a real WebSocket client
//! on the `--scoreboard-listen` port, and the phones' REST API as the reference.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use c123_live::scoreboard::ScoreboardSettings;
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::support::scoreboard::*;
use crate::support::{fixture_xml, MASTER};

/// The acceptance scenario: the message sequence around bib 9's finish in K1M_ST_BR2_6,
/// `Results` of the current race, the merged best-run REST against the phones' API, and a
/// scoreboard model that ends where REST is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bib_9_finish_reaches_the_scoreboard_as_c123_server_sends_it() {
    let d = start(Some(EV), ScoreboardSettings::default()).await;
    d.running_event().await;
    let tcp = d
        .app
        .as_ref()
        .and_then(|a| a.tcp_listen_addr)
        .expect("tcp port");
    let second_runs_before = assert_merged_equals_phones(&d).await;

    let mut ws = d.connect().await;
    let first = next(&mut ws, Duration::from_secs(5))
        .await
        .expect("Connected");
    assert_eq!(first["type"], "Connected", "{first}");
    assert_eq!(first["data"]["xmlLoaded"], true);
    assert_eq!(first["data"]["c123Connected"], false, "no source yet");
    assert!(first["timestamp"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    let schedule = next(&mut ws, Duration::from_secs(5))
        .await
        .expect("Schedule");
    assert_eq!(schedule["type"], "Schedule");
    let races = schedule["data"]["races"].as_array().expect("races");
    assert!(races
        .iter()
        .any(|r| r["raceId"] == BR2 && r["mainTitle"] == "K1m - střední trať"));

    const SPEED: f64 = 20.0;
    let pusher = tokio::spawn(play(tcp, SPEED));
    let mut msgs = vec![first, schedule];
    let deadline = Instant::now() + Duration::from_secs_f64(250.0 / SPEED + 10.0);
    while Instant::now() < deadline {
        match next(&mut ws, Duration::from_millis(500)).await {
            Some(m) => msgs.push(m),
            None if pusher.is_finished() => break,
            None => {}
        }
    }
    let _conn = pusher.await.expect("pusher");

    assert_finish_sequence(&d, &msgs).await;

    // `TimeOfDay` at its default rate (1/s) throughout.
    let ticks: Vec<&Value> = msgs.iter().filter(|m| m["type"] == "TimeOfDay").collect();
    let wall = 250.0 / SPEED;
    assert!(
        ticks.len() as f64 >= wall * 0.7,
        "{} TimeOfDay in ~{wall} s",
        ticks.len()
    );
    assert!(ticks
        .iter()
        .all(|t| t["data"]["time"].as_str().is_some_and(|s| s.len() == 8)));
    // While the recording plays, the ticks show Canoe123's clock (the venue's, 10:34:11 to
    // 10:38:xx in the recording; here at 20x), as c123-server relays it, not this machine's.
    let venue: Vec<&str> = ticks
        .iter()
        .filter_map(|t| t["data"]["time"].as_str())
        .filter(|t| ("10:34:11".."10:39:00").contains(t))
        .collect();
    assert!(
        venue.len() * 2 >= ticks.len(),
        "{} of {} TimeOfDay carry the recording's clock: {venue:?}",
        venue.len(),
        ticks.len()
    );
    assert!(
        venue.windows(2).all(|w| w[0] <= w[1]),
        "in order: {venue:?}"
    );

    assert_model_ends_where_rest_is(&d, &mut ws, &msgs).await;

    // Merged best-run results after the recording: still the phones' numbers, with the
    // recording's second runs in them.
    let second_runs_after = assert_merged_equals_phones(&d).await;
    assert!(
        second_runs_after > second_runs_before,
        "{second_runs_before} → {second_runs_after}"
    );
    let (_, merged) = d
        .board(&format!("/api/xml/races/{BR2}/results?merged=true"))
        .await;
    let m9 = merged["results"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["bib"] == "9")
        .cloned()
        .expect("bib 9");
    assert_eq!(
        m9["run2"],
        json!({"time": 51200, "pen": 52, "total": 103200, "rank": m9["run2"]["rank"]})
    );
    d.stop().await;
}

/// The sequence around bib 9's finish (see `protocol/scoreboard.md`, "Order around a finish").
async fn assert_finish_sequence(d: &Daemon, msgs: &[Value]) {
    // Over 80 lines: one ordered list of checks over the same messages.
    // The sequence around the finish: the rider on course without a finish time, then the
    // current race's `Results` with bib 9's second run (its own penalty, 52 s, not the
    // better first run's 4 s that the TCP row carries), then the `OnCourse` where `dtFinish`
    // appears (what the scoreboard's highlight keys on), then `Results` again, and later an
    // `OnCourse` without bib 9.
    let nine = |m: &Value| -> Option<Value> {
        (m["type"] == "OnCourse").then_some(())?;
        m["data"]["competitors"]
            .as_array()?
            .iter()
            .find(|c| c["bib"] == "9")
            .cloned()
    };
    let finish_at = msgs
        .iter()
        .position(|m| nine(m).is_some_and(|c| !c["dtFinish"].is_null()))
        .expect("an OnCourse with bib 9's dtFinish");
    let fin = nine(&msgs[finish_at]).expect("bib 9");
    assert_eq!(fin["dtFinish"], "10:35:11.325");
    assert_eq!(
        (&fin["time"], &fin["total"], &fin["pen"]),
        (&json!("51.20"), &json!("103.20"), &json!(52))
    );
    assert_eq!(fin["raceId"], BR2);
    assert!(msgs[..finish_at]
        .iter()
        .any(|m| nine(m).is_some_and(|c| c["dtFinish"].is_null())));
    let nine_row = |m: &Value| -> Option<Value> {
        (m["type"] == "Results" && m["data"]["raceId"] == BR2).then_some(())?;
        m["data"]["rows"]
            .as_array()?
            .iter()
            .find(|r| r["bib"] == "9")
            .cloned()
    };
    let run_row = msgs[..finish_at]
        .iter()
        .rposition(|m| nine_row(m).is_some_and(|r| r["time"] == "51.20"))
        .expect("Results with bib 9's second run before its dtFinish");
    assert!(
        msgs[..run_row]
            .iter()
            .any(|m| nine(m).is_some_and(|c| c["dtFinish"].is_null() && c["time"] != "51.20")),
        "bib 9 running before the Results with its time"
    );
    assert_eq!(msgs[run_row]["data"]["isCurrent"], true);
    assert_eq!(msgs[run_row]["data"]["classId"], "K1M_ST");
    let row = nine_row(&msgs[run_row]).expect("row");
    println!("bib 9 Results row: {row}\nbib 9 at the finish: {fin}");
    assert_eq!(row["pen"], 52, "the second run's own penalty: {row}");
    let after = &msgs[finish_at + 1..];
    let again = after
        .iter()
        .position(|m| nine_row(m).is_some())
        .expect("Results again after the finish");
    assert!(after[..again]
        .iter()
        .all(|m| m["type"] != "OnCourse" || nine(m).is_some()));
    assert!(
        after
            .iter()
            .any(|m| m["type"] == "OnCourse" && nine(m).is_none()),
        "bib 9 leaves"
    );
    let phones = phone_rows(d, BR2).await;
    let p9 = &phones["9"];
    assert_eq!(
        (
            p9["time"].as_i64(),
            p9["pen"].as_i64(),
            p9["total"].as_i64()
        ),
        (Some(5120), Some(5200), Some(10320))
    );
    assert_eq!(
        row["total"],
        secs(&p9["totalTotal"]),
        "the better run's total, as phones show"
    );
    // (Its rank then is not its rank now: later finishers pass it. The end state is checked
    // against REST below.)
}

/// A scoreboard model fed everything received ends with REST's current competitor, on-course
/// list and results (and highlighted bib 9 on the way).
async fn assert_model_ends_where_rest_is(d: &Daemon, ws: &mut Ws, msgs: &[Value]) {
    // Over 80 lines: the model, the settle loop and the row-by-row comparison belong together.
    // The scoreboard model over everything received ends where REST is.
    let mut model = BoardModel::default();
    for m in msgs {
        model.apply(m);
    }
    assert!(
        model.highlighted.iter().any(|b| b == "9"),
        "bib 9 highlighted: {:?}",
        model.highlighted
    );
    let mut settled = false;
    for _ in 0..5 {
        while let Some(m) = next(ws, Duration::from_millis(300)).await {
            model.apply(&m);
        }
        let oncourse = d.api(&format!("/api/v1/events/{EV}/oncourse")).await;
        let started: Vec<&Value> = oncourse["oncourse"]
            .as_array()
            .expect("oncourse")
            .iter()
            .filter(|c| !c["dtStart"].is_null())
            .collect();
        let rest_bibs: Vec<String> = started.iter().map(|c| c["bib"].to_string()).collect();
        let model_bibs: Vec<String> = model
            .on_course
            .iter()
            .map(|c| c["bib"].as_str().unwrap_or_default().to_owned())
            .collect();
        let rest_current = started
            .iter()
            .min_by_key(|c| c["dtStart"].as_str().unwrap_or_default().to_owned())
            .map(|c| c["bib"].to_string());
        let model_current = model
            .current
            .as_ref()
            .map(|c| c["bib"].as_str().unwrap_or_default().to_owned());
        if rest_bibs == model_bibs && rest_current == model_current {
            settled = true;
            break;
        }
    }
    assert!(
        settled,
        "the model's on-course list and current competitor are REST's"
    );
    let race = model.race.clone().expect("the model shows a race");
    let (_, status) = d.board("/api/status").await;
    assert_eq!(status["event"]["currentRaceId"], race.as_str());
    let phones = phone_rows(d, &race).await;
    assert!(!model.rows.is_empty(), "{race} has rows");
    assert_eq!(model.rows.len(), phones.len(), "rows of {race}");
    println!(
        "model ends on {race} with {} rows, current {:?}",
        model.rows.len(),
        model.current.as_ref().map(|c| &c["bib"])
    );
    // Rank and total are the phones' (the overall ones of a best-run pair); time and penalty
    // are this run's own, as the run's REST rows have them (ms and seconds).
    let (_, own) = d.board(&format!("/api/xml/races/{race}/results")).await;
    let own: BTreeMap<String, Value> = own["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| (r["bib"].as_str().unwrap_or_default().to_owned(), r.clone()))
        .collect();
    for r in &model.rows {
        let bib = r["bib"].as_str().expect("bib");
        let p = &phones[bib];
        let total = if p.get("totalTotal").is_none() {
            &p["total"]
        } else {
            &p["totalTotal"]
        };
        assert_eq!(r["rank"], p["rnk"].as_i64().unwrap_or(0), "{r}");
        assert_eq!(r["total"], secs(total), "{r}");
        let o = own.get(bib);
        let time = o.and_then(|o| o["time"].as_i64()).map(|ms| json!(ms / 10));
        assert_eq!(r["time"], secs(&time.unwrap_or(Value::Null)), "{r}");
        assert_eq!(
            r["pen"],
            o.map(|o| o["pen"].clone()).unwrap_or(Value::Null),
            "{r}"
        );
    }
}

/// Without `--event` the scoreboard serves the event the TCP sources feed (the one the XML
/// folder imported last); it starts with nothing served, REST says so, and a connected
/// scoreboard is given the event's state when the export arrives. Bad input is a 4xx naming what is wrong, the refresh
/// broadcast needs the master key, and the scoreboard count has its bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_event_the_imported_event_is_served() {
    // Over 80 lines: one daemon walked through nothing served, served, bad input, refresh,
    // the client bound and shutdown; each step needs the state the one before left.
    let d = start(
        None,
        ScoreboardSettings {
            max_clients: 2,
            ..ScoreboardSettings::default()
        },
    )
    .await;
    let (st, body) = d.board("/api/xml/schedule").await;
    assert_eq!(
        (st, body["error"].as_str()),
        (404, Some("NotFound")),
        "{body}"
    );
    // The second listener (often every address, port 27123) serves the scoreboard's routes
    // and the health checks only: no admin, ingest or phone API there.
    for path in [
        "/api/v1/events",
        "/api/v1/admin/status",
        "/api/v1/admin/log",
        "/metrics",
    ] {
        assert_eq!(
            d.board(path).await.0,
            404,
            "{path} on the scoreboard listener"
        );
    }
    assert_eq!(d.board("/readyz").await.0, 200);
    assert_eq!(
        d.get(&d.api, "/api/v1/events").await.0,
        200,
        "the main listener has it"
    );
    assert!(body["message"]
        .as_str()
        .is_some_and(|m| m.contains("No event is served")));
    let (_, status) = d.board("/api/xml/status").await;
    assert_eq!(status["available"], false);
    let port: u16 = d
        .board
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let (_, disc) = d.board("/api/discover").await;
    assert_eq!(
        (&disc["service"], &disc["port"], &disc["eventName"]),
        (&json!("c123-server"), &json!(port), &Value::Null)
    );

    let mut ws = d.connect().await;
    let hello = next(&mut ws, Duration::from_secs(5))
        .await
        .expect("Connected");
    assert_eq!(
        (&hello["type"], &hello["data"]["xmlLoaded"]),
        (&json!("Connected"), &json!(false))
    );
    let file = d.dir.path().join("xml").join("jarni-2024.xml");
    std::fs::write(&file, fixture_xml()).expect("export into the folder");
    // A draft is nobody's to read yet: nothing is served until the event is public.
    let merge = &d.app.as_ref().expect("running").merge;
    crate::support::wait::eventually(merge, "the draft event", Duration::from_secs(15), |s| {
        s.event("CZE2.2024040600").is_some()
    })
    .await;
    let (st, _) = d.board("/api/xml/schedule").await;
    assert_eq!(st, 404, "a draft's schedule is not served");
    d.publish("CZE2.2024040600").await;
    let schedule = next_of(&mut ws, "Schedule", Duration::from_secs(15))
        .await
        .expect("Schedule once the event exists");
    assert!(schedule["data"]["races"]
        .as_array()
        .is_some_and(|r| r.len() > 4));

    // The same routes on the main listener, with CORS for a page served elsewhere.
    let r = d
        .http
        .get(format!("{}/api/discover", d.api))
        .send()
        .await
        .expect("GET");
    assert_eq!(
        r.headers()
            .get("access-control-allow-origin")
            .map(|v| v.as_bytes()),
        Some(&b"*"[..])
    );
    let disc: Value = r.json().await.expect("json");
    assert!(
        disc["eventName"].as_str().is_some_and(|n| !n.is_empty()),
        "{disc}"
    );
    let (_, status) = d.board("/api/xml/status").await;
    assert_eq!(
        (&status["available"], &status["scheduleCount"]),
        (
            &json!(true),
            &schedule["data"]["races"].as_array().map(|r| r.len()).into()
        )
    );
    let (st, race) = d.board("/api/xml/races/K1M_ST_BR1_6").await;
    assert_eq!(st, 200);
    assert_eq!(race["race"]["relatedRaces"], json!([BR2]));
    assert_eq!(race["race"]["disId"], "BR1");
    let (st, plain) = d.board(&format!("/api/xml/races/{BR2}/results")).await;
    assert_eq!(st, 200);
    let first = &plain["results"][0];
    assert!(
        first["time"].is_i64() && first["participant"]["familyName"].is_string(),
        "{first}"
    );

    for (path, code, names) in [
        ("/api/xml/races/NOPE", 404, "NOPE"),
        ("/api/xml/races/NOPE/results?merged=true", 404, "NOPE"),
        (
            "/api/xml/races/K1M_ST_BR2_6/results?merged=yes",
            400,
            "merged",
        ),
    ] {
        let (st, body) = d.board(path).await;
        assert_eq!(st, code, "{path}: {body}");
        assert!(
            body["message"].as_str().is_some_and(|m| m.contains(names)),
            "{path}: {body}"
        );
    }

    // ForceRefresh: the master key or nothing.
    let url = format!("http://{}/api/broadcast/refresh", d.board);
    let r = d.http.post(&url).send().await.expect("POST");
    assert_eq!(r.status().as_u16(), 401);
    let r = d
        .http
        .post(&url)
        .header("X-Master-Key", MASTER)
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status().as_u16(), 200);
    let refresh = next_of(&mut ws, "ForceRefresh", Duration::from_secs(5))
        .await
        .expect("ForceRefresh");
    assert!(refresh["data"]["reason"].is_string());

    // Two scoreboards at most here: the third is refused before the upgrade.
    let mut second = d.connect().await;
    next_of(&mut second, "Connected", Duration::from_secs(5))
        .await
        .expect("second joins");
    let third = tokio_tungstenite::connect_async(format!("ws://{}/ws", d.board)).await;
    match third {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 503)
        }
        other => panic!("third scoreboard: {:?}", other.map(|_| ())),
    }

    // On shutdown every scoreboard is told "going away" (1001) and reconnects later.
    let stopping = tokio::spawn(d.stop());
    let code = loop {
        match tokio::time::timeout(Duration::from_secs(10), second.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => break frame.map(|f| u16::from(f.code)),
            Ok(Some(Ok(_))) => continue,
            other => panic!("no close frame: {other:?}"),
        }
    };
    assert_eq!(code, Some(1001));
    stopping.await.expect("stopped");
}

/// A `--scoreboard-listen` address that cannot be bound refuses the start, naming it, before
/// anything runs (no database is created).
#[tokio::test]
async fn a_taken_scoreboard_address_refuses_the_start() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = taken.local_addr().expect("addr");
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("live.db");
    let result = c123_live::app::App::start(c123_live::settings::Settings {
        db: db.clone(),
        listen: "127.0.0.1:0".parse().expect("addr"),
        http: crate::support::settings(),
        scoreboard: ScoreboardSettings {
            listen: Some(addr),
            ..ScoreboardSettings::default()
        },
        ..c123_live::settings::Settings::default()
    })
    .await;
    let err = result.err().expect("refused");
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
    assert!(!db.exists(), "nothing started");
}

/// When the folder brings another event's export, the venue's feeds move to it: every
/// connected scoreboard is told to reload (`ForceRefresh`), and after the reload it gets the
/// new event's state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_event_in_the_folder_makes_the_scoreboards_reload() {
    let d = start(None, ScoreboardSettings::default()).await;
    let folder = d.dir.path().join("xml");
    std::fs::write(folder.join("a.xml"), fixture_xml()).expect("export");
    d.publish("CZE2.2024040600").await;
    let mut ws = d.connect().await;
    // Connected, then (once the import is in) the first event's state.
    next_of(&mut ws, "Schedule", Duration::from_secs(15))
        .await
        .expect("first event");
    let (_, status) = d.board("/api/xml/status").await;
    let first = status["checksum"].as_str().expect("checksum").to_owned();
    let other = fixture_xml().replace(
        "<EventId>CZE2.2024040600</EventId>",
        "<EventId>CZE2.2024040700</EventId>",
    );
    std::fs::write(folder.join("b.xml"), other).expect("export");
    d.publish("CZE2.2024040700").await;
    let refresh = next_of(&mut ws, "ForceRefresh", Duration::from_secs(15))
        .await
        .expect("ForceRefresh when the served event changes");
    assert!(refresh["data"]["reason"]
        .as_str()
        .is_some_and(|r| r.contains("event")));
    let (_, status) = d.board("/api/xml/status").await;
    let second = status["checksum"].as_str().expect("checksum");
    assert_ne!(
        first.split('-').next(),
        second.split('-').next(),
        "{first} → {second}"
    );
    let mut again = d.connect().await;
    let hello = next(&mut again, Duration::from_secs(5))
        .await
        .expect("Connected");
    assert_eq!(hello["data"]["xmlLoaded"], true);
    next_of(&mut again, "Schedule", Duration::from_secs(5))
        .await
        .expect("the new event's schedule");
    d.stop().await;
}
