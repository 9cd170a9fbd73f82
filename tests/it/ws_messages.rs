//! What spectators receive: `full` on connect, compact diffs, and a client applying them like
//! the live-mini page ends with the server's state.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::support::ws::*;
use c123_live::hub::HubConfig;
use c123_live::model::EventStatus;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_full_on_connect_then_small_diff() {
    let h = start(HubConfig::default()).await;
    h.running_event().await;
    let mut ws = h.connect("").await;
    let (full_len, full) = next_text(&mut ws).await;
    assert_eq!(full["type"], "full");
    assert_eq!(full["seq"].as_u64(), Some(h.seq()));
    assert_eq!(full["epoch"].as_str(), Some(h.epoch().as_str()));
    assert_eq!(full["data"]["event"]["eventId"], EV);
    assert!(full["data"]["races"]
        .as_array()
        .is_some_and(|a| !a.is_empty()));

    // A typical single-result update: one rider's run is corrected without moving ranks
    // (same total, different split between time and penalty).
    let (race, pid) = h.some_row("C1M_ST_BR1_6");
    let (bib, total) = {
        let snap = h.merge.snapshot();
        let row = snap
            .event(EV)
            .and_then(|e| e.result(&race, &pid))
            .cloned()
            .expect("row");
        (row.bib, row.total_ms.expect("a finished run"))
    };
    h.update_result(&race, &pid, total - 2000).await;
    let (diff_len, diff) = next_text(&mut ws).await;
    let (_, second) = next_text(&mut ws).await;
    println!("SC-003: full = {full_len} bytes, single-result diff = {diff_len} bytes");
    assert_eq!(diff["type"], "diff");
    assert_eq!(
        diff["seq"].as_u64(),
        Some(full["seq"].as_u64().unwrap_or(0) + 1)
    );
    // A best-run pair goes out once per race id, as the live-mini page applies a diff to
    // its `raceId` alone: same seq, same rows, parts 1 and 2.
    assert_eq!(race, "C1M_ST_BR1_6");
    assert_eq!(
        (
            diff["data"]["raceId"].as_str(),
            second["data"]["raceId"].as_str()
        ),
        (Some("C1M_ST_BR1_6"), Some("C1M_ST_BR2_6"))
    );
    assert_eq!(second["seq"], diff["seq"]);
    assert_eq!(
        (diff["part"].as_u64(), diff["parts"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(
        (second["part"].as_u64(), second["parts"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(second["data"]["results"], diff["data"]["results"]);
    assert!(diff["data"].get("raceIds").is_none());
    let rows = diff["data"]["results"].as_array().expect("results");
    assert!(!rows.is_empty());
    assert_eq!(rows.len(), 1, "only the changed row: {rows:?}");
    assert_eq!(rows[0]["bib"].as_u64(), bib.map(u64::from));
    assert!(
        diff_len * 5 <= full_len,
        "diff ({diff_len} B) must be at least 80 % smaller than full ({full_len} B)"
    );
    assert!(diff["data"].get("oncourse").is_none());
    assert!(diff["data"].get("status").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_event_without_data_gets_empty_full_and_unknown_gets_404() {
    let h = start(HubConfig::default()).await;
    assert_eq!(refused_status(&h.url("")).await, Some(404), "unknown event");
    h.merge
        .send(c123_live::merge::Input::Admin(
            c123_live::merge::AdminCommand::CreateEvent {
                event_id: EV.into(),
                meta: Default::default(),
                image: None,
                api_key: "k".repeat(64),
            },
        ))
        .await
        .expect("create");
    assert_eq!(refused_status(&h.url("")).await, Some(404), "draft event");
    h.transition(EventStatus::Startlist).await;
    let mut ws = h.connect("").await;
    let full = next_json(&mut ws).await;
    assert_eq!(full["type"], "full");
    for key in ["classes", "races", "categories"] {
        assert_eq!(full["data"][key], Value::Array(vec![]), "{key}");
    }
}

/// The rows of a race as the REST API serves them, by bib.
async fn rest_rows(h: &Harness, race: &str) -> BTreeMap<String, Value> {
    let body = h.rest(&format!("/api/v1/events/{EV}/results/{race}")).await;
    body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|v| (v["bib"].to_string(), v.clone()))
        .collect()
}

/// The live-mini page: upserts `results` by bib into `raceId`, replaces `oncourse`, applies
/// `status`; after a `full` or `refresh` it refetches via REST.
#[derive(Default)]
struct PageModel {
    status: String,
    results: BTreeMap<String, BTreeMap<String, Value>>,
    oncourse: Value,
    seq: u64,
    /// The last frame applied was not the last part of its change.
    partial: bool,
    refetches: usize,
}

impl PageModel {
    /// What the page does after a `full`: GET results, oncourse and the event over REST.
    async fn fetch(&mut self, h: &Harness, races: &[&str]) {
        for r in races {
            self.results.insert(r.to_string(), rest_rows(h, r).await);
        }
        self.oncourse = h.rest(&format!("/api/v1/events/{EV}/oncourse")).await["oncourse"].clone();
        self.status = h.rest(&format!("/api/v1/events/{EV}")).await["event"]["status"]
            .as_str()
            .expect("status")
            .to_owned();
        self.refetches += 1;
    }

    async fn apply(&mut self, msg: &Value, h: &Harness, races: &[&str]) {
        let seq = msg["seq"].as_u64().expect("seq");
        // One change may be several frames (one per race id), all with its seq.
        if self.partial {
            assert_eq!(seq, self.seq, "the parts of a change share its seq");
        } else {
            assert_eq!(seq, self.seq + 1, "no gap in seq");
        }
        self.partial = msg["part"].as_u64() < msg["parts"].as_u64();
        self.seq = seq;
        match msg["type"].as_str() {
            Some("diff") => {
                let d = &msg["data"];
                if let Some(s) = d["status"].as_str() {
                    self.status = s.to_owned();
                }
                if d.get("oncourse").is_some() {
                    self.oncourse = d["oncourse"].clone();
                }
                if let Some(rows) = d["results"].as_array() {
                    let mut ids = vec![d["raceId"].as_str().expect("raceId").to_owned()];
                    if let Some(all) = d["raceIds"].as_array() {
                        ids = all
                            .iter()
                            .filter_map(|v| v.as_str().map(str::to_owned))
                            .collect();
                    }
                    for id in ids {
                        let race = self.results.entry(id).or_default();
                        for r in rows {
                            race.insert(r["bib"].to_string(), r.clone());
                        }
                    }
                }
            }
            _ => self.fetch(h, races).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_applying_client_matches_server_state() {
    let h = start(HubConfig::default()).await;
    h.running_event().await;
    let races = [
        "C1M_ST_BR1_6",
        "C1M_ST_BR2_6",
        "K1M_ST_BR1_6",
        "K1M_ST_BR2_6",
    ];
    let mut ws = h.connect("").await;
    let full = next_json(&mut ws).await;
    let mut page = PageModel {
        seq: full["seq"].as_u64().expect("seq"),
        ..PageModel::default()
    };
    page.fetch(&h, &races).await;

    let target = h.seq() + 9;
    for (i, race) in races.iter().enumerate() {
        let snap = h.merge.snapshot();
        let ev = snap.event(EV).expect("event");
        let pids: Vec<String> = ev
            .race_results(race)
            .take(2)
            .map(|r| r.participant_id.clone())
            .collect();
        for (j, pid) in pids.iter().enumerate() {
            h.update_result(race, pid, 80_000 + (i * 7 + j * 3) as i64 * 1000)
                .await;
        }
    }
    h.oncourse(3, 1).await;
    assert_eq!(h.seq(), target, "nine commits");
    while page.seq < target || page.partial {
        let msg = next_json(&mut ws).await;
        page.apply(&msg, &h, &races).await;
    }
    // The page now holds exactly what the REST API serves.
    for r in races {
        assert_eq!(
            page.results.get(r),
            Some(&rest_rows(&h, r).await),
            "race {r}"
        );
    }
    assert_eq!(
        page.oncourse,
        h.rest(&format!("/api/v1/events/{EV}/oncourse")).await["oncourse"]
    );
    assert_eq!(page.status, "running");
    assert_eq!(page.refetches, 1, "everything went out as diffs");

    h.transition(EventStatus::Finished).await;
    let msg = next_json(&mut ws).await;
    assert_eq!(msg["data"]["status"], "finished");
    assert_eq!(msg["seq"].as_u64(), Some(target + 1));
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        send_ignored(&mut ws).await
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_multi_race_commit_sends_one_frame_per_race_and_silent_change_keeps_seq_contiguous() {
    use c123_live::merge::{Input, ResultUpdate, Via};
    let h = start(HubConfig::default()).await;
    h.running_event().await;
    let mut ws = h.connect("").await;
    let full = next_json(&mut ws).await;
    let seq = full["seq"].as_u64().expect("seq");

    // One commit touching two unrelated races (two best-run pairs): one diff, one frame per
    // race id (the live-mini page applies one raceId per diff), all with the same seq.
    let (r1, p1) = h.some_row("C1M_ST_BR1_6");
    let (r2, p2) = h.some_row("K1M_ST_BR1_6");
    let upd = |race: String, pid: String| ResultUpdate {
        race_id: race,
        participant_id: pid,
        status: Some(Some("DNS".into())),
        ..ResultUpdate::default()
    };
    h.merge
        .send(Input::Results {
            event_id: EV.into(),
            updates: vec![upd(r1, p1), upd(r2, p2)],
            via: Via::Tcp,
        })
        .await
        .expect("results");
    let frames = next_change(&mut ws).await;
    let ids: Vec<&str> = frames
        .iter()
        .map(|m| {
            assert_eq!(
                (m["type"].as_str(), m["seq"].as_u64()),
                (Some("diff"), Some(seq + 1))
            );
            m["data"]["raceId"].as_str().expect("raceId")
        })
        .collect();
    assert_eq!(
        ids,
        [
            "C1M_ST_BR1_6",
            "C1M_ST_BR2_6",
            "K1M_ST_BR1_6",
            "K1M_ST_BR2_6"
        ]
    );

    // A change with no public effect (a run's start time of day, a detail field the
    // non-detailed rows do not show): an empty diff, so `seq` has no gap.
    let (r3, p3) = h.some_row("C1W_ST_BR1_6");
    h.merge
        .send(Input::Results {
            event_id: EV.into(),
            updates: vec![ResultUpdate {
                race_id: r3,
                participant_id: p3,
                dt_start: Some(Some("10:00:00.000".into())),
                ..ResultUpdate::default()
            }],
            via: Via::Tcp,
        })
        .await
        .expect("results");
    let m = next_json(&mut ws).await;
    assert_eq!(
        (m["type"].as_str(), m["seq"].as_u64()),
        (Some("diff"), Some(seq + 2))
    );
    assert_eq!(m["data"], serde_json::json!({}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_removed_rows_without_structure_change_send_refresh() {
    use c123_live::merge::{Input, XmlOrigin, XmlTarget};
    let h = start(HubConfig::default()).await;
    h.running_event().await;
    let mut ws = h.connect("").await;
    let seq = next_json(&mut ws).await["seq"].as_u64().expect("seq");
    // The same export without its first result row: structure unchanged, one row removed,
    // which upserts cannot express.
    let xml = String::from_utf8(fixture()).expect("utf8");
    let start = xml.find("<Results>").expect("a result row");
    let end = start + xml[start..].find("</Results>").expect("its end") + "</Results>".len();
    let trimmed = format!("{}{}", &xml[..start], &xml[end..]);
    let export = c123_live::xml::parse_export(trimmed.as_bytes()).expect("parse");
    h.merge
        .send(Input::Xml {
            target: XmlTarget::ByExport {
                event_id: Some(EV.into()),
            },
            export: Box::new(export),
            origin: XmlOrigin::Cli,
        })
        .await
        .expect("import");
    let m = next_json(&mut ws).await;
    assert_eq!(m["type"], "refresh");
    assert_eq!(m["seq"].as_u64(), Some(seq + 1));
    assert!(m.get("data").is_none());
    assert_eq!(m["epoch"].as_str(), Some(h.epoch().as_str()));
}

/// FR-010: data ingested over the real HTTP ingest API reaches spectators, after the 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_http_ingest_is_pushed() {
    let h = start(HubConfig::default()).await;
    h.running_event().await;
    let key = h
        .merge
        .snapshot()
        .event(EV)
        .expect("event")
        .header
        .api_key
        .clone();
    let mut ws = h.connect("").await;
    let seq = next_json(&mut ws).await["seq"].as_u64().expect("seq");
    let (race, pid) = h.some_row("C1M_ST_BR1_6");
    let bib = h
        .merge
        .snapshot()
        .event(EV)
        .and_then(|e| e.result(&race, &pid).and_then(|r| r.bib))
        .expect("bib");
    let resp = reqwest::Client::new()
        .post(format!("http://{}/api/v1/ingest/results", h.addr))
        .header("X-API-Key", key)
        .json(
            &serde_json::json!({"results": [{"raceId": race, "participantId": pid, "bib": bib,
            "time": 7777, "pen": 0, "total": 7777, "status": null}]}),
        )
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status().as_u16(), 200);
    let m = next_json(&mut ws).await;
    assert_eq!(
        (m["type"].as_str(), m["seq"].as_u64()),
        (Some("diff"), Some(seq + 1))
    );
    assert_eq!(m["data"]["raceId"], race.as_str());
    let rows = m["data"]["results"].as_array().expect("rows");
    assert!(rows.iter().any(|r| r["bib"] == bib), "{rows:?}");
}

/// The fixture scenario end to end: the real export, the event running, a spectator
/// connected, the real recording through a real TCP source. The spectator sees the riders on
/// course and bib 9's and bib 10's second runs with the recording's values within 2 s of the
/// frame, and a client applying messages like the live-mini page ends with what REST serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_fixture_recording_reaches_the_spectator() {
    use c123_live::c123::recording::Recording;
    use c123_live::ingest::tcp::{self, TcpSettings};
    use futures_util::StreamExt;
    use std::sync::{Arc, Mutex};
    use std::time::Instant;
    use tokio::io::AsyncWriteExt;
    use tokio_tungstenite::tungstenite::Message;

    const SPEED: f64 = 40.0;
    let h = start(HubConfig::default()).await;
    h.running_event().await;
    let races = [
        "K1M_ST_BR1_6",
        "K1M_ST_BR2_6",
        "C1W_ST_BR1_6",
        "C1W_ST_BR2_6",
    ];
    let mut ws = h.connect("").await;
    let full = next_json(&mut ws).await;
    assert_eq!(full["type"], "full");
    let mut page = PageModel {
        seq: full["seq"].as_u64().expect("seq"),
        ..PageModel::default()
    };
    page.fetch(&h, &races).await;

    let (_status, addr, _task) = tcp::spawn_listen(
        "127.0.0.1:0".parse().expect("addr"),
        TcpSettings::new(Some(EV.into())),
        h.merge.clone(),
        h.shutdown.clone(),
    )
    .await
    .expect("listen");
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/jarni-2024.tcp.jsonl"
    ))
    .expect("recording");
    let recording = Recording::parse(&text).expect("parses");
    let finish_frame = recording
        .frames
        .iter()
        .position(|f| f.data.contains("Time=\"51.20\""))
        .expect("bib 9's finish in the recording");
    let sent: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let pusher = {
        let sent = sent.clone();
        tokio::spawn(async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let start = tokio::time::Instant::now();
            for f in &recording.frames {
                let at = start + Duration::from_secs_f64(f.ts_ms as f64 / 1000.0 / SPEED);
                tokio::time::sleep_until(at).await;
                s.write_all(f.data.as_bytes()).await.expect("write");
                s.write_all(b"|").await.expect("write");
                sent.lock().expect("lock").push(Instant::now());
            }
            s
        })
    };

    let mut oncourse_diffs = 0;
    let mut saw_nine_on_course = false;
    let mut nine_at: Option<Instant> = None;
    let mut ten_final = false;
    let deadline = Instant::now() + Duration::from_secs_f64(250.0 / SPEED + 5.0);
    while Instant::now() < deadline {
        let Ok(Some(Ok(Message::Text(t)))) =
            tokio::time::timeout(Duration::from_millis(500), ws.next()).await
        else {
            if pusher.is_finished() {
                break;
            } else {
                continue;
            }
        };
        let msg: Value = serde_json::from_str(&t).expect("json");
        if let Some(list) = msg["data"]["oncourse"].as_array() {
            oncourse_diffs += 1;
            saw_nine_on_course |= list.iter().any(|r| r["bib"] == 9);
        }
        for r in msg["data"]["results"].as_array().into_iter().flatten() {
            if r["bib"] == 9 && r["time"] == 5120 && r["pen"] == 5200 && r["total"] == 10320 {
                nine_at.get_or_insert_with(Instant::now);
            }
            if r["bib"] == 10 && r["time"] == 7509 && r["pen"] == 5200 && r["total"] == 12709 {
                ten_final = true;
            }
        }
        page.apply(&msg, &h, &races).await;
    }
    let _conn = pusher.await.expect("pusher");
    assert!(oncourse_diffs > 10, "on-course diffs: {oncourse_diffs}");
    assert!(saw_nine_on_course);
    assert!(ten_final, "bib 10's second run reached the spectator");
    let nine_at = nine_at.expect("bib 9's second run reached the spectator");
    let frame_sent = sent.lock().expect("lock")[finish_frame];
    let latency = nine_at.saturating_duration_since(frame_sent);
    println!("bib 9 finish: frame written → diff received in {latency:?}");
    assert!(latency < Duration::from_secs(2), "{latency:?}");

    for r in races {
        assert_eq!(
            page.results.get(r),
            Some(&rest_rows(&h, r).await),
            "race {r}"
        );
    }
    assert_eq!(
        page.oncourse,
        h.rest(&format!("/api/v1/events/{EV}/oncourse")).await["oncourse"]
    );
}
