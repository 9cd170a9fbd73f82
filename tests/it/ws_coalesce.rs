//! Issue 14: a client that reads slowly is sent only the newest of the on-course lists it had
//! not been sent yet (protocol/websocket.md, "Coalescing"). Against a client that reads at
//! once, message by message: results, status and `full` are never dropped; a superseded list
//! arrives as a `"superseded":true` diff of its own `seq` (so the slow client tells a
//! deliberate skip from a loss, which is a `seq` gap), followed at once by the list that
//! replaces it; a resume after a superseded diff whose list has not arrived yet restarts at
//! that `seq` and ends exact.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::support::ws::*;
use c123_live::hub::HubConfig;
use futures_util::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

const RACE: &str = "C1M_ST_BR1_6";

/// What a client holds: the result rows it upserted, the last on-course list, and the
/// bookkeeping of `seq` a resuming client needs.
#[derive(Default)]
struct Client {
    results: BTreeMap<String, BTreeMap<String, Value>>,
    oncourse: Value,
    seq: u64,
    /// The frame applied last was not the last part of its change.
    partial: bool,
    /// The `seq` before a run of superseded diffs whose replacing message has not arrived.
    unresolved: Option<u64>,
    epoch: String,
    /// Every message, in order.
    log: Vec<Value>,
}

impl Client {
    /// Applies one message. A `seq` that does not follow is a loss: the test fails.
    async fn apply(&mut self, h: &Harness, m: Value) {
        let seq = m["seq"].as_u64().expect("seq");
        let (part, parts) = (
            m["part"].as_u64().unwrap_or(1),
            m["parts"].as_u64().unwrap_or(1),
        );
        match m["type"].as_str() {
            Some("full") => {
                self.seq = seq;
                self.partial = false;
                self.unresolved = None;
                self.epoch = m["epoch"].as_str().expect("epoch").to_owned();
                self.refetch(h).await;
            }
            Some("diff") => {
                if self.partial {
                    assert_eq!(seq, self.seq, "the parts of one change share its seq: {m}");
                } else {
                    assert_ne!(step(self.seq, &m), Step::Loss, "a seq gap is a loss: {m}");
                }
                self.seq = seq;
                self.partial = part < parts;
                if m["superseded"] == Value::Bool(true) {
                    assert_eq!(m["data"], serde_json::json!({}), "a skip carries nothing");
                    self.unresolved.get_or_insert(seq - 1);
                } else {
                    let d = &m["data"];
                    if let (Some(rows), Some(race)) =
                        (d["results"].as_array(), d["raceId"].as_str())
                    {
                        let cached = self.results.entry(race.to_owned()).or_default();
                        for r in rows {
                            cached.insert(r["bib"].to_string(), r.clone());
                        }
                    }
                    if d.get("oncourse").is_some() {
                        self.oncourse = d["oncourse"].clone();
                    }
                    if !self.partial {
                        self.unresolved = None;
                    }
                }
            }
            other => panic!("unexpected message {other:?}: {m}"),
        }
        self.log.push(m);
    }

    async fn refetch(&mut self, h: &Harness) {
        for race in [RACE, "C1M_ST_BR2_6"] {
            let body = h.rest(&format!("/api/v1/events/{EV}/results/{race}")).await;
            let rows = body["results"].as_array().expect("rows").iter();
            let rows = rows.map(|r| (r["bib"].to_string(), r.clone())).collect();
            self.results.insert(race.to_owned(), rows);
        }
        self.oncourse = h.rest(&format!("/api/v1/events/{EV}/oncourse")).await["oncourse"].clone();
    }

    /// `?since=` of a reconnect: the last `seq` whose every frame arrived and that no
    /// unanswered superseded diff follows.
    fn resume_query(&self) -> String {
        let complete = if self.partial { self.seq - 1 } else { self.seq };
        let since = self.unresolved.map_or(complete, |u| u.min(complete));
        format!("?since={since}&epoch={}", self.epoch)
    }

    /// Reads and applies until `seq` is complete.
    async fn read_until(&mut self, h: &Harness, ws: &mut Ws, seq: u64) {
        while self.seq < seq || self.partial {
            let m = next_json(ws).await;
            self.apply(h, m).await;
        }
    }

    /// [`Client::read_until`] from a channel the messages are read into.
    async fn read_from(
        &mut self,
        h: &Harness,
        rx: &mut tokio::sync::mpsc::UnboundedReceiver<Value>,
        seq: u64,
    ) {
        while self.seq < seq || self.partial {
            let m = tokio::time::timeout(Duration::from_secs(20), rx.recv())
                .await
                .expect("a message in time")
                .expect("the fast client is connected");
            self.apply(h, m).await;
        }
    }

    /// What REST serves now must be what this client holds.
    async fn assert_matches_rest(&self, h: &Harness) {
        let mut rest = Client::default();
        rest.refetch(h).await;
        for race in [RACE, "C1M_ST_BR2_6"] {
            assert_eq!(
                self.results.get(race),
                rest.results.get(race),
                "rows of {race}"
            );
        }
        assert_eq!(self.oncourse, rest.oncourse, "the on-course list");
    }
}

/// What a client makes of the next change after `prev`, from the envelope alone.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// The next change, applied.
    Next,
    /// The next change, deliberately skipped: its effect arrives with the next message
    /// without the flag.
    Skip,
    /// Changes are missing: only a resume (or a `full`) makes the client exact again.
    Loss,
}

fn step(prev: u64, m: &Value) -> Step {
    match m["seq"].as_u64() {
        Some(s) if s == prev + 1 && is_superseded(m) => Step::Skip,
        Some(s) if s == prev + 1 => Step::Next,
        _ => Step::Loss,
    }
}

#[test]
fn a_skip_is_told_from_a_loss() {
    let diff = |seq: u64, skip: bool| serde_json::json!({"type":"diff","seq":seq,"epoch":"e","superseded":skip,"data":{}});
    assert_eq!(step(4, &diff(5, false)), Step::Next);
    assert_eq!(step(4, &diff(5, true)), Step::Skip);
    assert_eq!(step(4, &diff(6, false)), Step::Loss, "seq 5 lost");
    assert_eq!(
        step(4, &diff(6, true)),
        Step::Loss,
        "a skip of 6 does not cover 5"
    );
    assert_eq!(
        step(4, &diff(4, false)),
        Step::Loss,
        "a repeat is no next change"
    );
}

fn is_superseded(m: &Value) -> bool {
    m["superseded"] == Value::Bool(true)
}

/// A one-frame diff whose only content is the on-course list (the only kind ever skipped).
fn is_list_only(m: &Value) -> bool {
    m["type"] == "diff"
        && m.get("parts").is_none()
        && m["data"]
            .as_object()
            .is_some_and(|d| d.len() == 1 && d.contains_key("oncourse"))
}

/// Changes `from..from + n`: mostly on-course lists (~8 KB each), a small result update
/// every fourth change.
async fn publish(h: &Harness, from: u32, n: u32) {
    let (race, pid) = h.some_row(RACE);
    for i in from..from + n {
        if i % 4 == 3 {
            // Slower than everyone: the rider stays last, so only its own row changes.
            h.update_result(&race, &pid, 900_000 + i64::from(i) * 10)
                .await;
        } else {
            h.oncourse(40, i).await;
        }
    }
}

/// A WebSocket client with a 4 KiB receive buffer: it holds almost nothing in its kernel,
/// so what it does not read stays in the server's queue for it.
async fn slow_client(h: &Harness, query: &str) -> Ws {
    let sock = tokio::net::TcpSocket::new_v4().expect("socket");
    sock.set_recv_buffer_size(4096).expect("rcvbuf");
    let stream = sock.connect(h.addr).await.expect("connect");
    let stream = tokio_tungstenite::MaybeTlsStream::Plain(stream);
    let (ws, _) = tokio_tungstenite::client_async(h.url(query), stream)
        .await
        .expect("handshake");
    ws
}

/// Long (~165 lines) on purpose: one story in four steps on the same two connections (both
/// clients fed, the slow one read up to its first skip, its resume, the comparison with
/// the fast one and REST); the client's rules are `Client` and `step`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_slow_reader_gets_newest_list_every_result_and_resumes_exact() {
    let h = start(HubConfig {
        // The slow client pauses for a few seconds: neither the drain timeout nor the
        // heartbeat lets it go meanwhile.
        drain_timeout: Duration::from_secs(60),
        ping_interval: Duration::from_secs(120),
        ..HubConfig::default()
    })
    .await;
    h.running_event().await;

    let mut fast_ws = h.connect("").await;
    let mut slow_ws = slow_client(&h, "").await;
    let (mut fast, mut slow) = (Client::default(), Client::default());
    let full = next_json(&mut fast_ws).await;
    fast.apply(&h, full).await;
    let full = next_json(&mut slow_ws).await;
    slow.apply(&h, full).await;

    // The fast client reads all along (into a channel); the slow one does not read. Loopback
    // sockets take a megabyte or more before the server's queue for the slow client fills,
    // so changes are committed until lists were superseded for it, then a few more.
    let (tx, mut fast_rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    tokio::spawn(async move {
        while let Some(Ok(msg)) = fast_ws.next().await {
            if let Message::Text(t) = msg {
                let v = serde_json::from_str(t.as_str()).expect("json");
                if tx.send(v).is_err() {
                    return;
                }
            }
        }
    });
    let stats = h.hub.stats();
    let superseded = || stats.lists_superseded.load(Ordering::Relaxed);
    // One change at a time, each read by the fast client before the next: the hub keeps up
    // with the merge loop (it folds nothing itself), so the slow client's queue gets every
    // message on its own and only its own lists are superseded.
    let mut changes = 0;
    while superseded() < 3 {
        assert!(
            changes < 4000,
            "no list superseded after {changes} changes: {} connected, {} overflows",
            h.hub.connected(),
            stats.queue_overflows.load(Ordering::Relaxed),
        );
        publish(&h, changes, 1).await;
        changes += 1;
        fast.read_from(&h, &mut fast_rx, h.seq()).await;
    }
    for i in changes..changes + 8 {
        publish(&h, i, 1).await;
        fast.read_from(&h, &mut fast_rx, h.seq()).await;
    }
    changes += 8;
    let end_seq = h.seq();
    assert_eq!(
        stats.resyncs.load(Ordering::Relaxed),
        0,
        "the slow client's queue never overflowed (its lists were superseded)"
    );

    // The slow client reads now, up to its first list superseded for it alone, and stops
    // right there: the list that replaces it has not been read.
    let key = |m: &Value| (m["seq"].as_u64(), m["part"].as_u64());
    let by_key = |log: &[Value]| {
        // Inserted in order: a later frame of the same (seq, part) (a replay) replaces it.
        let mut by = BTreeMap::new();
        for m in log {
            by.insert(key(m), m.clone());
        }
        by
    };
    let fast_by = by_key(&fast.log[1..]);
    let cut = loop {
        let m = next_json(&mut slow_ws).await;
        let f = fast_by
            .get(&key(&m))
            .unwrap_or_else(|| panic!("the fast client lacks {m}"));
        let own_skip = is_superseded(&m) && !is_superseded(f);
        if own_skip {
            assert!(is_list_only(f), "only a list-only diff is skipped: {f}");
        }
        slow.apply(&h, m).await;
        if own_skip {
            break slow.seq;
        }
        assert!(
            slow.seq < end_seq,
            "no list was superseded for the slow client"
        );
    };
    drop(slow_ws);
    // Resume from before the skip (before an earlier run of skips it may end).
    let since = slow.unresolved.expect("a skip leaves its seq unresolved");
    assert!(since < cut, "resume before the skip of {cut}: {since}");
    let query = slow.resume_query();
    assert!(query.starts_with(&format!("?since={since}&")), "{query}");

    // Resumed: the replay, from the room's resume ring, brings the real list of `cut`.
    let mut slow_ws = slow_client(&h, &query).await;
    slow.seq = since;
    slow.partial = false;
    slow.unresolved = None;
    let first = next_json(&mut slow_ws).await;
    assert_eq!(first["seq"].as_u64(), Some(since + 1), "{first}");
    slow.apply(&h, first).await;
    slow.read_until(&h, &mut slow_ws, cut).await;
    let replayed = slow.log.last().expect("the replay");
    assert!(
        is_list_only(replayed) && !is_superseded(replayed),
        "{replayed}"
    );
    slow.read_until(&h, &mut slow_ws, end_seq).await;

    // Message by message (the replay's list of `cut` in place of its skip): the same as the
    // fast client's, or one side's skip of a list-only diff. So every result and status
    // frame arrived at both, and every skip is marked as one.
    let slow_by = by_key(&slow.log[1..]);
    assert_eq!(
        slow_by.len(),
        fast_by.len(),
        "the same changes, frame for frame"
    );
    let mut results_seen = 0;
    for (k, f) in &fast_by {
        let s = slow_by
            .get(k)
            .unwrap_or_else(|| panic!("the slow client lacks {f}"));
        if s == f {
            results_seen += usize::from(f["data"].get("results").is_some());
            continue;
        }
        let skip = (is_list_only(f) && is_superseded(s)) || (is_list_only(s) && is_superseded(f));
        assert!(skip, "only a list is ever skipped: {f} vs {s}");
    }
    // Two frames (BR1, BR2) per result change (fewer only if the hub itself folded two).
    assert!(results_seen >= 2, "result frames arrived: {results_seen}");
    // A list skipped for this client alone is answered by the next message that is not a
    // skip: it carries the newer list.
    for (i, m) in slow.log.iter().enumerate() {
        let own = is_superseded(m) && fast_by.get(&key(m)).is_some_and(|f| !is_superseded(f));
        let next = slow.log[i + 1..].iter().find(|n| !is_superseded(n));
        if let (true, Some(next)) = (own, next) {
            assert!(next["data"].get("oncourse").is_some(), "{m} then {next}");
        }
    }

    // More changes while both read: the slow client ends where REST is.
    publish(&h, changes, 8).await;
    let last = h.seq();
    slow.read_until(&h, &mut slow_ws, last).await;
    fast.read_from(&h, &mut fast_rx, last).await;
    slow.assert_matches_rest(&h).await;
    fast.assert_matches_rest(&h).await;
    println!(
        "slow client: {} messages, {} lists superseded (all clients), resumed at {cut}",
        slow.log.len(),
        stats.lists_superseded.load(Ordering::Relaxed)
    );
    let _ = slow_ws.close(None).await;
    while let Some(Ok(m)) = slow_ws.next().await {
        if matches!(m, Message::Close(_)) {
            break;
        }
    }
}
