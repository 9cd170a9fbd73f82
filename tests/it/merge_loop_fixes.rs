//! The merge loop's own fixes, through the real HTTP API and real WebSocket clients:
//! concurrent config patches (issue 11 #10), a re-created event id and resume (#11), a keyed
//! export with another event's `EventId` (#7), an export that drops thousands of participants
//! (#12), and a merge-strategy switch mid-event (issue 12 #3).

use std::time::Duration;

use crate::support::ws::*;
use c123_live::hub::HubConfig;
use c123_live::merge::{self, Input, MergeSettings, XmlOrigin, XmlTarget};
use c123_live::store::{Store, Synchronous};
use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const MASTER: &str = "test-master-key-0123456789";
const XML_EVENT_ID: &str = "CZE2.2024040600";
const BR2: &str = "K1M_ST_BR2_6";
const BIB9: &str = "30034.K1M_ST";

async fn call(
    h: &Harness,
    method: Method,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let client = reqwest::Client::new();
    let header = if key == MASTER {
        "X-Master-Key"
    } else {
        "X-API-Key"
    };
    let mut rb = client
        .request(method, format!("http://{}{path}", h.addr))
        .header(header, key);
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let r = rb.send().await.expect("request");
    let st = r.status().as_u16();
    (st, r.json().await.unwrap_or(Value::Null))
}

async fn create(h: &Harness, id: &str) -> String {
    let (st, body) = call(
        h,
        Method::POST,
        "/api/v1/admin/events",
        MASTER,
        Some(json!({"eventId": id, "mainTitle": format!("Event {id}")})),
    )
    .await;
    assert_eq!(st, 201, "{body}");
    body["apiKey"].as_str().expect("apiKey").to_owned()
}

async fn post_xml(h: &Harness, key: &str, xml: &str) -> (u16, Value) {
    call(
        h,
        Method::POST,
        "/api/v1/ingest/xml",
        key,
        Some(json!({ "xml": xml })),
    )
    .await
}

fn fixture_str() -> String {
    String::from_utf8(fixture()).expect("utf-8")
}

async fn walk_to_running(h: &Harness, id: &str, key: &str) {
    for to in ["startlist", "running"] {
        let (st, body) = call(
            h,
            Method::PATCH,
            &format!("/api/v1/admin/events/{id}/status"),
            key,
            Some(json!({ "status": to })),
        )
        .await;
        assert_eq!(st, 200, "{body}");
    }
}

/// The next text message, or `None` when nothing arrives within `wait`.
async fn next_within(ws: &mut Ws, wait: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .ok()??
            .ok()?;
        if let Message::Text(t) = msg {
            return serde_json::from_str(t.as_str()).ok();
        }
    }
}

fn seq_of(h: &Harness, id: &str) -> u64 {
    h.merge.snapshot().event(id).map_or(0, |e| e.header.seq)
}

// ---- issue 11 #10 -------------------------------------------------------------------------

/// Four concurrent `PATCH .../config`, each of a different field, per round: every
/// acknowledged change survives (the old handler read the config from the snapshot and sent
/// the whole config, so the last writer undid the others).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_config_patches_of_different_fields_all_survive() {
    let h = start(HubConfig::default()).await;
    let key = create(&h, "CFG").await;
    let path = "/api/v1/admin/events/CFG/config";
    for round in 0..40u32 {
        let race = format!("RACE_{round}");
        let mode = if round % 2 == 0 { "simple" } else { "detailed" };
        let show = round % 2 == 0;
        let strategy = if round % 2 == 0 {
            "xml-wins"
        } else {
            "tcp-wins"
        };
        let patches = [
            json!({ "activeRaceId": race }),
            json!({ "displayMode": mode }),
            json!({ "showOnCourse": show }),
            json!({ "mergeStrategy": strategy }),
        ];
        let h = &h;
        let key = &key;
        let answers = futures_util::future::join_all(
            patches
                .into_iter()
                .map(|p| async move { call(h, Method::PATCH, path, key, Some(p)).await }),
        )
        .await;
        for (st, body) in &answers {
            assert_eq!(*st, 200, "round {round}: {body}");
        }
        let (st, config) = call(h, Method::GET, path, key, None).await;
        assert_eq!(st, 200);
        assert_eq!(
            config,
            json!({
                "activeRaceId": race,
                "displayMode": mode,
                "showOnCourse": show,
                "mergeStrategy": strategy,
            }),
            "round {round}: every acknowledged change survives"
        );
    }
}

// ---- issue 11 #11 -------------------------------------------------------------------------

/// A client that held a seq of the deleted event resumes against the re-created one with its
/// `since` and `epoch`: it must get a `full` of the new event, never an empty or partial replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreated_event_never_resumes_a_client_of_the_old_one() {
    let h = start(HubConfig::default()).await;
    let xml = fixture_str();
    let key = create(&h, EV).await;
    assert_eq!(post_xml(&h, &key, &xml).await.0, 200);
    walk_to_running(&h, EV, &key).await;
    let mut old_client = h.connect("").await;
    let full = next_within(&mut old_client, Duration::from_secs(10))
        .await
        .expect("full");
    assert_eq!(full["type"], "full");
    let held = full["seq"].as_u64().expect("seq");
    let epoch = full["epoch"].as_str().expect("epoch").to_owned();
    drop(old_client);

    let (st, body) = call(
        &h,
        Method::DELETE,
        &format!("/api/v1/admin/events/{EV}"),
        MASTER,
        None,
    )
    .await;
    assert_eq!(st, 200, "{body}");
    // The same id again, with the same steps: on the old numbering it lands on the same seq.
    let key = create(&h, EV).await;
    assert_eq!(post_xml(&h, &key, &xml).await.0, 200);
    walk_to_running(&h, EV, &key).await;
    assert!(
        seq_of(&h, EV) > held + 1,
        "the re-created event is numbered after the deleted one ({} vs held {held})",
        seq_of(&h, EV)
    );

    let mut resumed = h.connect(&format!("?since={held}&epoch={epoch}")).await;
    let first = next_within(&mut resumed, Duration::from_secs(5))
        .await
        .expect("a resuming client of the old event gets a message (not an empty replay)");
    assert_eq!(first["type"], "full", "{first}");
    assert_eq!(first["seq"].as_u64(), Some(seq_of(&h, EV)));
}

/// The numbering after a deleted id survives a restart.
#[tokio::test]
async fn the_seq_of_a_deleted_event_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("live.db");
    let import = |h: merge::MergeHandle| async move {
        let export = c123_live::xml::parse_export(&fixture()).unwrap();
        h.send(Input::Xml {
            target: XmlTarget::ByExport {
                event_id: Some("R".into()),
            },
            export: Box::new(export),
            origin: XmlOrigin::Cli,
        })
        .await
        .unwrap();
    };
    let deleted_at = {
        let store = Store::open(&db, Synchronous::Off).unwrap();
        let (h, join) = merge::start(store, MergeSettings::default()).unwrap();
        import(h.clone()).await;
        import(h.clone()).await; // identical: no new seq
        let seq = seq_of_handle(&h, "R");
        h.send(Input::Admin(merge::AdminCommand::DeleteEvent {
            event_id: "R".into(),
        }))
        .await
        .unwrap();
        h.shutdown().await;
        join.await.unwrap();
        seq + 1
    };
    let store = Store::open(&db, Synchronous::Off).unwrap();
    let (h, _join) = merge::start(store, MergeSettings::default()).unwrap();
    import(h.clone()).await;
    assert_eq!(seq_of_handle(&h, "R"), deleted_at + 1);
}

fn seq_of_handle(h: &merge::MergeHandle, id: &str) -> u64 {
    h.snapshot().event(id).map_or(0, |e| e.header.seq)
}

// ---- issue 11 #7 --------------------------------------------------------------------------

/// Direct mode: the folder created the venue's event from its export. Another event's key
/// posts an export with the venue's `EventId`: it lands in the key's event only, and the
/// folder's next export still lands in the venue's event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_events_key_cannot_take_over_the_folder_feed() {
    let h = start(HubConfig::default()).await;
    let xml = fixture_str();
    let folder = |xml: String| {
        let merge = h.merge.clone();
        async move {
            let export = c123_live::xml::parse_export(xml.as_bytes()).unwrap();
            match merge
                .send(Input::Xml {
                    target: XmlTarget::ByExport { event_id: None },
                    export: Box::new(export),
                    origin: XmlOrigin::File("exports/venue.xml".into()),
                })
                .await
                .unwrap()
            {
                merge::Outcome::XmlImported { event_id, .. } => event_id,
                other => panic!("{other:?}"),
            }
        }
    };
    assert_eq!(folder(xml.clone()).await, XML_EVENT_ID);

    // "AAA" sorts before the venue's id, as the lookup by EventId walks the events.
    let other_key = create(&h, "AAA").await;
    let (st, body) = post_xml(&h, &other_key, &xml).await;
    assert_eq!(st, 200, "the key imports into its own event: {body}");
    assert!(h.merge.snapshot().event("AAA").unwrap().header.has_xml_data);

    let changed = xml.replacen("<Time>76990</Time>", "<Time>76000</Time>", 1);
    assert_eq!(
        folder(changed).await,
        XML_EVENT_ID,
        "the folder's next export stays with the venue's event"
    );
    let snap = h.merge.snapshot();
    assert_ne!(
        snap.event("AAA").unwrap().header.seq,
        0,
        "sanity: the other event exists"
    );
    assert!(
        snap.event("AAA").unwrap().header.xml_event_id.is_none(),
        "a keyed export does not bind its event to the venue's EventId"
    );
}

// ---- issue 12 #3 --------------------------------------------------------------------------

/// While running: an export, then a TCP-style live result that disagrees with it (kept under
/// the default `tcp-wins`). Switching to `xml-wins` re-merges the last export in one commit:
/// REST and the WebSocket client both show the export's value, with one new seq.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strategy_switch_while_running_remerges_the_last_export_in_one_commit() {
    let h = start(HubConfig::default()).await;
    let key = create(&h, EV).await;
    assert_eq!(post_xml(&h, &key, &fixture_str()).await.0, 200);
    walk_to_running(&h, EV, &key).await;
    // bib 9's second run: the export holds 90.35 s + 56 s; the live result says 51.20 s + 52 s.
    let (st, body) = call(
        &h,
        Method::POST,
        "/api/v1/ingest/results",
        &key,
        Some(
            json!({"results": [{"participantId": BIB9, "raceId": BR2, "bib": 9,
            "time": 5120, "pen": 5200, "total": 10320, "status": null}]}),
        ),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    let rest_row = |h: &Harness| {
        let h = h.addr;
        async move {
            let v: Value = reqwest::get(format!("http://{h}/api/v1/events/{EV}/results/{BR2}"))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["results"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["bib"] == 9)
                .cloned()
                .unwrap()
        }
    };
    assert_eq!(rest_row(&h).await["time"], 5120);

    let mut ws = h.connect("").await;
    let full = next_within(&mut ws, Duration::from_secs(10))
        .await
        .expect("full");
    let before = full["seq"].as_u64().unwrap();

    let (st, body) = call(
        &h,
        Method::PATCH,
        &format!("/api/v1/admin/events/{EV}/config"),
        &key,
        Some(json!({"mergeStrategy": "xml-wins"})),
    )
    .await;
    assert_eq!(
        st, 200,
        "a strategy change is accepted while running: {body}"
    );
    assert_eq!(body["mergeStrategy"], "xml-wins");
    assert_eq!(seq_of(&h, EV), before + 1, "one commit");
    assert_eq!(
        rest_row(&h).await["time"],
        9035,
        "REST shows the export's value"
    );

    let msg = next_within(&mut ws, Duration::from_secs(10))
        .await
        .expect("the change reaches spectators");
    assert_eq!(msg["seq"].as_u64(), Some(before + 1), "{msg}");
    assert!(
        matches!(msg["type"].as_str(), Some("diff" | "full")),
        "{msg}"
    );
    assert!(
        msg.to_string().contains("\"time\":9035"),
        "the message carries bib 9's re-merged run: {msg}"
    );
    // A best-run race's diff goes out as one frame per race id of the pair (`part`/`parts`,
    // protocol/websocket.md), all with this commit's seq; nothing may carry a later seq.
    while let Some(more) = next_within(&mut ws, Duration::from_millis(500)).await {
        assert_eq!(
            more["seq"].as_u64(),
            Some(before + 1),
            "nothing else was committed: {more}"
        );
        assert!(more["parts"].as_u64().unwrap_or(1) > 1, "{more}");
    }

    // The other settings stay draft-only, also next to a strategy change.
    for patch in [
        json!({"displayMode": "simple"}),
        json!({"mergeStrategy": "tcp-wins", "displayMode": "simple"}),
    ] {
        let (st, body) = call(
            &h,
            Method::PATCH,
            &format!("/api/v1/admin/events/{EV}/config"),
            &key,
            Some(patch),
        )
        .await;
        assert_eq!(st, 403, "{body}");
    }
    assert_eq!(seq_of(&h, EV), before + 1, "refused patches change nothing");

    // Official: refused, nothing changes.
    for to in ["finished", "official"] {
        let (st, _) = call(
            &h,
            Method::PATCH,
            &format!("/api/v1/admin/events/{EV}/status"),
            &key,
            Some(json!({ "status": to })),
        )
        .await;
        assert_eq!(st, 200);
    }
    let (st, body) = call(
        &h,
        Method::PATCH,
        &format!("/api/v1/admin/events/{EV}/config"),
        &key,
        Some(json!({"mergeStrategy": "tcp-wins"})),
    )
    .await;
    assert_eq!(st, 403, "{body}");
}

// ---- issue 11 #12 -------------------------------------------------------------------------

/// The fixture's export with `n` more participants, each with a result in the first race that
/// has results.
fn export_with_extra(n: usize) -> c123_live::xml::Export {
    let mut export = c123_live::xml::parse_export(&fixture()).unwrap();
    let template_row = export.results[0].clone();
    let template = export
        .participants
        .iter()
        .find(|p| p.id == template_row.participant_id)
        .cloned()
        .unwrap();
    for i in 0..n {
        let mut p = template.clone();
        p.id = format!("X{i}.{}", template.id);
        p.event_bib = Some(10_000 + i as u32);
        let mut r = template_row.clone();
        r.participant_id = p.id.clone();
        r.bib = Some(10_000 + i as u32);
        export.participants.push(p);
        export.results.push(r);
    }
    export
}

/// An export that drops 10 000 participants (and their results) removes exactly them, in
/// memory and in the database (checked after a restart). Not timed here: `cargo bench --bench
/// import` prints the time.
#[tokio::test]
async fn an_export_that_drops_ten_thousand_participants_removes_exactly_them() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("live.db");
    let send = |h: merge::MergeHandle, export: c123_live::xml::Export| async move {
        h.send(Input::Xml {
            target: XmlTarget::ByExport {
                event_id: Some("big".into()),
            },
            export: Box::new(export),
            origin: XmlOrigin::Cli,
        })
        .await
        .unwrap()
    };
    let base = c123_live::xml::parse_export(&fixture()).unwrap();
    let (participants, results) = {
        let store = Store::open(&db, Synchronous::Off).unwrap();
        let (h, join) = merge::start(store, MergeSettings::default()).unwrap();
        send(h.clone(), export_with_extra(10_000)).await;
        let big = h.snapshot().event("big").unwrap().clone();
        assert_eq!(big.participants.len(), base.participants.len() + 10_000);
        let started = std::time::Instant::now();
        send(h.clone(), base.clone()).await;
        println!("removing 10 000 participants: {:?}", started.elapsed());
        let ev = h.snapshot().event("big").unwrap().clone();
        assert_eq!(ev.participants.len(), base.participants.len());
        assert!(ev.participants.keys().all(|id| !id.starts_with('X')));
        let results = ev.result_count();
        h.shutdown().await;
        join.await.unwrap();
        (ev.participants.len(), results)
    };
    let store = Store::open(&db, Synchronous::Off).unwrap();
    let rows: i64 = store
        .connection()
        .query_row("SELECT COUNT(*) FROM participants", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows as usize, participants);
    let stored_results: i64 = store
        .connection()
        .query_row("SELECT COUNT(*) FROM results", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored_results as usize, results);
    let (h, _join) = merge::start(store, MergeSettings::default()).unwrap();
    assert_eq!(
        h.snapshot().event("big").unwrap().participants.len(),
        participants
    );
}

/// The cause of #12: SQLite planned the cascade from a removed participant to its results on
/// the primary key's `event_id` prefix (a scan of the event's results per participant). The
/// schema must give it an index it takes for that lookup.
#[test]
fn removing_a_participant_finds_its_results_through_an_index() {
    let store = Store::open_in_memory().unwrap();
    let mut stmt = store
        .connection()
        .prepare(
            "EXPLAIN QUERY PLAN DELETE FROM participants WHERE event_id = ?1 AND participant_id = ?2",
        )
        .unwrap();
    let plan: Vec<String> = stmt
        .query_map(rusqlite::params![1i64, "p"], |r| r.get::<_, String>(3))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    let results = plan
        .iter()
        .find(|step| step.contains("results"))
        .unwrap_or_else(|| panic!("the cascade reaches results: {plan:?}"));
    assert!(
        results.contains("INDEX results_by_participant"),
        "the cascade uses the index, not a scan of the event's results: {plan:?}"
    );
}
