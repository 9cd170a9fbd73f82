//! Issue 12, item 1: the live-mini page applies a `diff` to `data.raceId` alone (it upserts
//! the rows by `bib` into that race's results and ignores every other field) and refetches
//! over REST after a `full` or `refresh`. A client that does exactly that, fed by the WHOLE
//! real recording through the real TCP source after the real export, must hold what REST
//! serves for both races of every best-run pair at every checkpoint; its `seq` checks (gap
//! detection) and a resume with `since`/`epoch` (also in the middle of a multi-frame change)
//! must stay correct.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::support::ws::*;
use c123_live::c123::recording::Recording;
use c123_live::hub::HubConfig;
use c123_live::ingest::tcp::{self, TcpSettings};
use c123_live::merge::{Input, Snapshot};
use futures_util::StreamExt;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;

type Rows = BTreeMap<String, Value>;

/// The live-mini page's reducer, plus the seq bookkeeping a resuming client needs.
struct LiveMini {
    results: BTreeMap<String, Rows>,
    /// seq of the last frame applied.
    seq: u64,
    /// That frame was not the last part of its change.
    partial: bool,
    epoch: String,
    refetches: usize,
    frames: usize,
}

struct Rest {
    client: reqwest::Client,
    base: String,
}

impl Rest {
    async fn rows(&self, race: &str) -> Rows {
        let body: Value = self
            .client
            .get(format!("{}/api/v1/events/{EV}/results/{race}", self.base))
            .send()
            .await
            .expect("GET results")
            .json()
            .await
            .expect("json");
        body["results"]
            .as_array()
            .expect("results")
            .iter()
            .map(|r| (r["bib"].to_string(), r.clone()))
            .collect()
    }
}

impl LiveMini {
    async fn refetch(&mut self, rest: &Rest, races: &[String]) {
        for r in races {
            self.results.insert(r.clone(), rest.rows(r).await);
        }
        self.refetches += 1;
    }

    /// Applies one frame as the live-mini page does. Returns whether the client decides to
    /// reconnect (the caller handles it).
    async fn apply(&mut self, msg: &Value, rest: &Rest, races: &[String]) {
        self.frames += 1;
        let seq = msg["seq"].as_u64().expect("seq");
        let kind = msg["type"].as_str().expect("type");
        let part = msg["part"].as_u64().unwrap_or(1);
        let parts = msg["parts"].as_u64().unwrap_or(1);
        if kind == "full" {
            self.seq = seq;
            self.partial = false;
            self.epoch = msg["epoch"].as_str().expect("epoch").to_owned();
            self.refetch(rest, races).await;
            return;
        }
        // Gap detection: the first frame of a change has the next seq, its other parts the
        // same one, in order.
        if self.partial {
            assert_eq!(seq, self.seq, "parts of one change share its seq: {msg}");
        } else {
            assert_eq!(seq, self.seq + 1, "gap in seq: {msg}");
            assert_eq!(part, 1, "a change starts with part 1: {msg}");
        }
        self.seq = seq;
        self.partial = part < parts;
        match kind {
            "diff" => {
                let d = &msg["data"];
                // live-mini: `data.raceId` alone; `raceIds`, `part`, … are ignored.
                if let (Some(rows), Some(race)) = (d["results"].as_array(), d["raceId"].as_str()) {
                    let cached = self.results.entry(race.to_owned()).or_default();
                    for r in rows {
                        cached.insert(r["bib"].to_string(), r.clone());
                    }
                }
            }
            "refresh" => self.refetch(rest, races).await,
            other => panic!("unexpected message type {other}"),
        }
    }

    /// `?since=` of a reconnect: the last seq whose every part was applied.
    fn resume_query(&self) -> String {
        let since = if self.partial { self.seq - 1 } else { self.seq };
        format!("?since={since}&epoch={}", self.epoch)
    }
}

fn partner(race: &str) -> String {
    if race.contains("_BR1_") {
        race.replacen("_BR1_", "_BR2_", 1)
    } else {
        race.replacen("_BR2_", "_BR1_", 1)
    }
}

/// Whether REST's rows of `race` may differ between two snapshots (the inputs of the
/// combined best-run rows kept their allocation otherwise: structural sharing).
fn inputs_changed(a: &Snapshot, b: &Snapshot, race: &str) -> bool {
    let (Some(x), Some(y)) = (a.event(EV), b.event(EV)) else {
        return true;
    };
    let same_results = |id: &str| match (x.results.get(id), y.results.get(id)) {
        (Some(p), Some(q)) => Arc::ptr_eq(p, q),
        (None, None) => true,
        _ => false,
    };
    !(Arc::ptr_eq(&x.participants, &y.participants)
        && Arc::ptr_eq(&x.races, &y.races)
        && Arc::ptr_eq(&x.classes, &y.classes)
        && same_results(race)
        && same_results(&partner(race)))
}

async fn next_frame(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .expect("a message in time")
            .expect("stream open")
            .expect("ws ok");
        if let Message::Text(t) = msg {
            return serde_json::from_str(t.as_str()).expect("json");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_mini_reducer_matches_rest_for_every_best_run_race_over_the_whole_recording() {
    let h = start(HubConfig::default()).await;
    h.running_event().await;
    let snap = h.merge.snapshot();
    let races: Vec<String> = snap
        .event(EV)
        .expect("event")
        .races
        .values()
        .filter(|r| r.race_type().is_best_run())
        .map(|r| r.race_id.clone())
        .collect();
    assert!(
        races.len() >= 20,
        "best-run races of the fixture: {races:?}"
    );
    let rest = Rest {
        client: reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(3))
            .build()
            .expect("client"),
        base: format!("http://{}", h.addr),
    };

    let mut ws = h.connect("").await;
    let mut page = LiveMini {
        results: BTreeMap::new(),
        seq: 0,
        partial: false,
        epoch: String::new(),
        refetches: 0,
        frames: 0,
    };
    let full = next_frame(&mut ws).await;
    assert_eq!(full["type"], "full");
    page.apply(&full, &rest, &races).await;

    let (status, addr, _task) = tcp::spawn_listen(
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
    let mut source = tokio::net::TcpStream::connect(addr).await.expect("connect");

    // REST's rows per race at the last checkpoint, and the snapshot they were read from.
    let mut expected: BTreeMap<String, Rows> = BTreeMap::new();
    for r in &races {
        expected.insert(r.clone(), rest.rows(r).await);
    }
    let mut expected_at: Arc<Snapshot> = h.merge.snapshot();
    let mut compared_seqs = std::collections::BTreeSet::new();
    let mut multi_part_changes = 0usize;
    let mut cut_mid_change = false;
    let mut reconnects = 0usize;
    let start_seq = h.seq();

    for (i, frame) in recording.frames.iter().enumerate() {
        source
            .write_all(frame.data.as_bytes())
            .await
            .expect("write");
        source.write_all(b"|").await.expect("write");
        // Wait until the source read the frame, then let the merge loop drain (a Tick
        // queued behind its inputs, normally).
        let until = tokio::time::Instant::now() + Duration::from_secs(10);
        while status.lock().expect("status").frames_total < i as u64 + 1 {
            assert!(tokio::time::Instant::now() < until, "frame {i} not read");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::task::yield_now().await;
        h.merge.send(Input::Tick).await.expect("tick");

        // A consistent checkpoint: the client caught up with seq `s`, REST read at `s`.
        loop {
            let snap = h.merge.snapshot();
            let s = snap.event(EV).map_or(0, |e| e.header.seq);
            while page.seq < s || page.partial {
                let m = next_frame(&mut ws).await;
                if m["parts"].as_u64().unwrap_or(1) > 1 && m["part"].as_u64() == Some(1) {
                    multi_part_changes += 1;
                }
                page.apply(&m, &rest, &races).await;
                // Once, drop the connection between the parts of a change and resume: the
                // replay must start with that change's first part again.
                if page.partial && !cut_mid_change {
                    cut_mid_change = true;
                    reconnects += 1;
                    drop(ws);
                    ws = h.connect(&page.resume_query()).await;
                    page.partial = false;
                    page.seq -= 1;
                }
            }
            for r in &races {
                if inputs_changed(&expected_at, &snap, r) {
                    expected.insert(r.clone(), rest.rows(r).await);
                }
            }
            if h.seq() != s {
                // A commit landed while REST was read: read again.
                for r in &races {
                    expected.insert(r.clone(), rest.rows(r).await);
                }
                expected_at = h.merge.snapshot();
                continue;
            }
            expected_at = snap;
            for r in &races {
                let (got, want) = (page.results.get(r), expected.get(r));
                if got != want {
                    let empty = Rows::new();
                    let (got, want) = (got.unwrap_or(&empty), want.unwrap_or(&empty));
                    let differing: Vec<&String> = want
                        .keys()
                        .chain(got.keys())
                        .filter(|b| got.get(*b) != want.get(*b))
                        .collect();
                    panic!(
                        "race {r} after frame {i} ({}) at seq {s}: the page differs from REST \
                         for bibs {differing:?}",
                        frame.kind
                    );
                }
            }
            compared_seqs.insert(s);
            break;
        }
        // Every 150 frames the client reconnects with `since`/`epoch` (a page reload keeps
        // its state in live-mini only via REST; a resuming client keeps its own).
        if i % 150 == 149 {
            reconnects += 1;
            drop(ws);
            ws = h.connect(&page.resume_query()).await;
        }
    }
    let end_seq = h.seq();
    println!(
        "{} frames, seq {start_seq}..{end_seq}: {} checkpoints compared {} best-run races each \
         ({} distinct seqs), {} multi-frame changes, {} WebSocket frames, {} REST refetches, \
         {reconnects} resumes",
        recording.frames.len(),
        compared_seqs.len(),
        races.len(),
        compared_seqs.len(),
        multi_part_changes,
        page.frames,
        page.refetches
    );
    assert!(
        cut_mid_change,
        "the recording has best-run results (two frames)"
    );
    assert!(
        multi_part_changes >= 4,
        "best-run result changes: {multi_part_changes}"
    );
    assert!(
        compared_seqs.len() as u64 * 2 >= end_seq - start_seq,
        "compared at least every other commit"
    );
    // Resumes replayed diffs; only the initial full made the page refetch.
    assert_eq!(page.refetches, 1, "resumes went through the ring, no full");
}
