//! What one WebSocket client (or a hub that fell behind) may cost the server, at the default
//! limits: the handshake is checked before the 101, a client that pings and never reads is
//! bounded and closed, and a backlog of committed changes does not keep snapshots alive.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::rss_kib;
use crate::support::ws::*;
use c123_live::http::HttpSettings;
use c123_live::hub::{HubConfig, PublicWire, WireBuilder};
use c123_live::model::Event;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends a raw upgrade request with these extra header lines; returns the status code, the
/// response head and (for a refusal) the body.
async fn raw_upgrade(h: &Harness, headers: &str) -> (u16, String, String) {
    let mut sock = TcpStream::connect(h.addr).await.expect("connect");
    let req = format!(
        "GET /api/v1/events/{EV}/ws HTTP/1.1\r\nHost: {}\r\n{headers}\r\n",
        h.addr
    );
    sock.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    let mut b = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n");
        if let Some(end) = head_end {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let status: u16 = head
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .expect("status");
            if status == 101 {
                return (status, head, String::new());
            }
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).to_string();
                return (status, head, body);
            }
        }
        let n = tokio::time::timeout_at(deadline, sock.read(&mut b))
            .await
            .expect("response in time")
            .expect("read");
        assert!(
            n > 0,
            "connection closed: {}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&b[..n]);
    }
}

const VALID_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fn upgrade_headers(upgrade: &str, key: Option<&str>) -> String {
    let mut s =
        format!("Connection: Upgrade\r\nUpgrade: {upgrade}\r\nSec-WebSocket-Version: 13\r\n");
    if let Some(k) = key {
        s.push_str(&format!("Sec-WebSocket-Key: {k}\r\n"));
    }
    s
}

/// RFC 6455 4.2.1: the key must be base64 of 16 bytes and `Upgrade` must name `websocket`;
/// anything else is a 400 with the JSON error body, never a 101.
#[tokio::test]
async fn ws_handshake_with_bad_key_or_other_upgrade_is_400() {
    let _solo = crate::solo();
    let h = start(HubConfig::default()).await;
    h.running_event().await;
    let (st, head, _) = raw_upgrade(&h, &upgrade_headers("websocket", Some(VALID_KEY))).await;
    assert_eq!(st, 101, "{head}");
    let cases = [
        ("empty key", upgrade_headers("websocket", Some(""))),
        (
            "key not base64",
            upgrade_headers("websocket", Some("not a key!!")),
        ),
        // Base64 of 15 bytes, then of 17 bytes.
        (
            "short key",
            upgrade_headers("websocket", Some("AAAAAAAAAAAAAAAAAAAA")),
        ),
        (
            "long key",
            upgrade_headers("websocket", Some("AAAAAAAAAAAAAAAAAAAAAAA=")),
        ),
        ("missing key", upgrade_headers("websocket", None)),
        ("h2c", upgrade_headers("h2c", Some(VALID_KEY))),
    ];
    for (what, headers) in cases {
        let (st, head, body) = raw_upgrade(&h, &headers).await;
        assert_eq!(st, 400, "{what}: {head}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("JSON body");
        assert_eq!(v["error"], "InvalidRequest", "{what}: {body}");
        assert!(
            v["message"]
                .as_str()
                .is_some_and(|m| m.contains("Sec-WebSocket-Key") || m.contains("Upgrade")),
            "{what}: {body}"
        );
    }
    assert_eq!(
        h.hub.stats().connections_total.load(Ordering::Relaxed),
        1,
        "only the valid handshake was upgraded"
    );
}

/// A masked client ping frame with a 125-byte payload.
fn masked_ping() -> Vec<u8> {
    let mut f = vec![0x89, 0x80 | 125, 1, 2, 3, 4];
    f.extend((0..125u8).map(|i| i ^ [1, 2, 3, 4][usize::from(i % 4)]));
    f
}

/// Finding 2 of issue 11: a client that sends pings as fast as it can and never reads made the
/// server queue a pong per ping without bound (2.45 GB in 10 s). At the default limits the
/// server's memory stays bounded, it stops reading while the pongs cannot be written, and it
/// closes the client after `drain_timeout` (10 s), counting it as a slow client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_client_that_pings_and_never_reads_is_bounded_and_closed() {
    let _solo = crate::solo();
    let h = start(HubConfig::default()).await;
    h.running_event().await;
    let mut sock = TcpStream::connect(h.addr).await.expect("connect");
    let req = format!(
        "GET /api/v1/events/{EV}/ws HTTP/1.1\r\nHost: x\r\n{}\r\n",
        upgrade_headers("websocket", Some(VALID_KEY))
    );
    sock.write_all(req.as_bytes()).await.expect("write");
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        sock.read_exact(&mut b).await.expect("read head");
        head.push(b[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = rss_kib();
    // From here on the client only writes: pings, as fast as the server reads them.
    let (_read_half, mut write_half) = sock.into_split();
    let writer = tokio::spawn(async move {
        let batch: Vec<u8> = masked_ping().repeat(256);
        loop {
            if write_half.write_all(&batch).await.is_err() {
                return;
            }
        }
    });
    let started = Instant::now();
    let mut peak_growth_kib = 0;
    while !writer.is_finished() && started.elapsed() < Duration::from_secs(25) {
        peak_growth_kib = peak_growth_kib.max(rss_kib().saturating_sub(before));
        // The old code grew by hundreds of MB per second: stop before it takes the machine.
        if peak_growth_kib > 256 * 1024 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let closed_after = started.elapsed();
    let finished = writer.is_finished();
    writer.abort();
    println!(
        "RSS growth peak {} MiB; client closed by the server: {finished} after {closed_after:?}",
        peak_growth_kib / 1024
    );
    assert!(
        peak_growth_kib < 64 * 1024,
        "server memory grew by {} MiB",
        peak_growth_kib / 1024
    );
    assert!(finished, "the server never closed the client");
    assert!(
        closed_after >= Duration::from_secs(9),
        "closed by the drain timeout (10 s), not earlier: {closed_after:?}"
    );
    assert_eq!(h.hub.stats().slow_client_closes.load(Ordering::Relaxed), 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(h.hub.connected(), 0, "slot released");
}

/// The production wire, but building an on-course list takes `0` longer: a hub that cannot
/// keep up with the merge loop (issue 11, finding 5: 500 bibs cycling, one spectator).
struct SlowWire(Duration);

impl WireBuilder for SlowWire {
    fn event_detail(&self, event: &Event) -> Value {
        PublicWire.event_detail(event)
    }
    fn race_results(&self, event: &Event, race_id: &str) -> Option<Vec<Value>> {
        PublicWire.race_results(event, race_id)
    }
    fn oncourse(&self, event: &Event) -> Value {
        std::thread::sleep(self.0);
        PublicWire.oncourse(event)
    }
}

/// Finding 5 of issue 11 (the hub part): committed snapshots queued in the merge loop's
/// broadcast while the hub serialized each (1.13 GB, 7 s of lag). Now a hub that is behind
/// keeps one version of the event however long the backlog: the number of event versions
/// alive stays small during a burst of on-course commits, the spectator still gets every seq
/// (superseded diffs, or one `full` for a long run) and ends with exactly the REST list, soon
/// after the last commit. Default `HubConfig` (backlog 256, 64 superseded diffs at most).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ws_backlog_behind_a_slow_hub_keeps_few_event_versions_and_exact_seq() {
    let _solo = crate::solo();
    let h = start_with_wire(
        HubConfig::default(),
        HttpSettings {
            master_keys: vec!["test-master-key-0123456789".into()],
            ..HttpSettings::default()
        },
        Arc::new(SlowWire(Duration::from_millis(20))),
    )
    .await;
    h.running_event().await;
    let mut ws = h.connect("").await;
    let full = next_json(&mut ws).await;
    let mut seq = full["seq"].as_u64().expect("seq");
    // The spectator reads all the time (a reader that stops is another bound: its queue).
    let (tx, mut inbox) = tokio::sync::mpsc::unbounded_channel::<Value>();
    tokio::spawn(async move {
        loop {
            if tx.send(next_json(&mut ws).await).is_err() {
                return;
            }
        }
    });

    // Every version of the event the merge loop commits (each `send` returns after its
    // commit and nothing else commits here), observed without keeping it alive.
    let versions: Arc<Mutex<Vec<Weak<Event>>>> = Arc::default();
    let record = |versions: &Mutex<Vec<Weak<Event>>>| {
        if let Some(ev) = h.merge.snapshot().event(EV) {
            versions.lock().expect("lock").push(Arc::downgrade(ev));
        }
    };
    let alive = || {
        versions
            .lock()
            .expect("lock")
            .iter()
            .filter(|w| w.strong_count() > 0)
            .count()
    };

    let mut superseded = 0;
    let mut fulls = 0;
    let mut tag = 0;
    for burst in [30u32, 400] {
        let mut peak = 0;
        for _ in 0..burst {
            tag += 1;
            h.oncourse(50, tag).await;
            record(&versions);
            peak = peak.max(alive());
        }
        let last_commit = Instant::now();
        let target = h.seq();
        let mut data = Value::Null;
        while seq < target {
            let m = tokio::time::timeout(Duration::from_secs(20), inbox.recv())
                .await
                .expect("a message in time")
                .expect("reader alive");
            let s = m["seq"].as_u64().expect("seq");
            if m["type"] == "full" {
                fulls += 1;
                assert!(s > seq, "a full supersedes what it replaces");
                data = Value::Null; // the page refetches (checked below via REST)
            } else {
                assert_eq!(s, seq + 1, "gap: {m}");
                assert_eq!(m["type"], "diff");
                if m["superseded"] == true {
                    superseded += 1;
                    assert_eq!(m["data"], serde_json::json!({}));
                } else {
                    data = m["data"]["oncourse"].clone();
                }
            }
            seq = s;
        }
        let lag = last_commit.elapsed();
        let rest = h.rest(&format!("/api/v1/events/{EV}/oncourse")).await["oncourse"].clone();
        if !data.is_null() {
            assert_eq!(data, rest, "the last diff carries the final on-course list");
        }
        println!(
            "burst of {burst} on-course commits (50 entries each): peak {peak} event versions \
             alive, last change reached the spectator {lag:?} after the last commit"
        );
        // One in the merge loop's state, one per room, one pending, the one being built, and
        // the few the follower has not taken off the broadcast yet (it may wait for a CPU on
        // a loaded machine). Before the fix every unprocessed commit stayed alive (about the
        // whole burst: the hub needs 20 ms per commit, the loop well under 1 ms).
        assert!(
            peak <= (burst as usize / 4).max(32),
            "{peak} event versions alive during a burst of {burst}"
        );
        assert!(lag < Duration::from_secs(2), "lag {lag:?}");
    }
    let stats = h.hub.stats();
    let coalesced = stats.coalesced.load(Ordering::Relaxed);
    println!(
        "coalesced {coalesced} changes: {superseded} superseded diffs, {fulls} full(s); \
         hub resyncs {}, queue overflows {}",
        stats.lagged.load(Ordering::Relaxed),
        stats.queue_overflows.load(Ordering::Relaxed)
    );
    assert!(
        superseded > 0,
        "a run of folded changes goes out as superseded diffs"
    );
    assert!(
        coalesced > 300,
        "the hub folded most of the burst: {coalesced}"
    );
    // A run over 64 changes (or the spectator's own queue bound, if it read too slowly on a
    // loaded machine) went out as one `full`.
    assert!(fulls >= 1);
}
