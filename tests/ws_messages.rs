//! What spectators receive: `full` on connect, compact diffs, and a client applying them like
//! the live-mini page ends with the server's state.

#[path = "ws_common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use c123_live::hub::{HubConfig, WireBuilder};
use c123_live::model::EventStatus;
use common::*;
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
    println!("SC-003: full = {full_len} bytes, single-result diff = {diff_len} bytes");
    assert_eq!(diff["type"], "diff");
    assert_eq!(
        diff["seq"].as_u64(),
        Some(full["seq"].as_u64().unwrap_or(0) + 1)
    );
    assert_eq!(diff["data"]["raceId"], race.as_str());
    let ids: Vec<&str> = diff["data"]["raceIds"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert_eq!(
        ids,
        vec!["C1M_ST_BR1_6", "C1M_ST_BR2_6"],
        "a best-run pair goes out for both ids"
    );
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

/// The live-mini page: upserts `results` by bib into `raceId`, replaces `oncourse`, applies
/// `status`; after a `full` or `refresh` it refetches via REST.
#[derive(Default)]
struct PageModel {
    status: String,
    results: BTreeMap<String, BTreeMap<String, Value>>,
    oncourse: Value,
    seq: u64,
    refetches: usize,
}

impl PageModel {
    fn fetch(&mut self, h: &Harness, races: &[&str]) {
        let snap = h.merge.snapshot();
        let ev = snap.event(EV).expect("event");
        for r in races {
            let rows = TestWire.race_results(ev, r).unwrap_or_default();
            self.results.insert(
                r.to_string(),
                rows.into_iter()
                    .map(|v| (v["bib"].to_string(), v))
                    .collect(),
            );
        }
        self.oncourse = TestWire.oncourse(ev);
        self.status = ev.header.status.as_str().to_owned();
        self.refetches += 1;
    }

    fn apply(&mut self, msg: &Value, h: &Harness, races: &[&str]) {
        let seq = msg["seq"].as_u64().expect("seq");
        assert_eq!(seq, self.seq + 1, "no gap in seq");
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
            _ => self.fetch(h, races),
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
    page.fetch(&h, &races);

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
    while page.seq < target {
        let msg = next_json(&mut ws).await;
        page.apply(&msg, &h, &races);
    }
    let snap = h.merge.snapshot();
    let ev = snap.event(EV).expect("event");
    for r in races {
        let server: BTreeMap<String, Value> = TestWire
            .race_results(ev, r)
            .unwrap_or_default()
            .into_iter()
            .map(|v| (v["bib"].to_string(), v))
            .collect();
        assert_eq!(page.results.get(r), Some(&server), "race {r}");
    }
    assert_eq!(page.oncourse, TestWire.oncourse(ev));
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
