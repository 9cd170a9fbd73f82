//! Fan-out under load: many clients, the exact connection limit, a client that stops reading.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::support::ws::*;
use c123_live::hub::HubConfig;
use futures_util::StreamExt;
use tokio::sync::{Barrier, Semaphore};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_thousand_clients_receive_every_diff_in_order() {
    const CLIENTS: usize = 1000;
    const UPDATES: u64 = 20;
    let h = start(HubConfig::default()).await;
    h.running_event().await;
    let url = h.url("");
    let connect_gate = Arc::new(Semaphore::new(100));
    let ready = Arc::new(Barrier::new(CLIENTS + 1));
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (url, gate, ready) = (url.clone(), connect_gate.clone(), ready.clone());
        tasks.push(tokio::spawn(async move {
            let permit = gate.acquire_owned().await.expect("gate");
            let (mut ws, _) = tokio_tungstenite::connect_async(url)
                .await
                .expect("connect");
            drop(permit);
            let full = next_json(&mut ws).await;
            assert_eq!(full["type"], "full");
            let mut seq = full["seq"].as_u64().expect("seq");
            ready.wait().await;
            let last = seq + UPDATES;
            let mut part = 0;
            while seq < last {
                let m = next_json(&mut ws).await;
                let s = m["seq"].as_u64().expect("seq");
                assert_eq!(s, seq + 1, "gap or reorder");
                assert_eq!(m["type"], "diff");
                // A best-run result is one frame per race id of the pair, same seq.
                let parts = m["parts"].as_u64().unwrap_or(1);
                part += 1;
                assert_eq!(m["part"].as_u64().unwrap_or(1), part, "parts in order");
                if part == parts {
                    seq = s;
                    part = 0;
                }
            }
            seq
        }));
    }
    ready.wait().await;
    assert_eq!(h.hub.connected(), CLIENTS);
    let start_seq = h.seq();
    let (race, pid) = h.some_row("C1M_ST_BR1_6");
    for i in 0..UPDATES as i64 {
        h.update_result(&race, &pid, 95_000 + i * 10).await;
    }
    for t in tasks {
        let last = tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .expect("all clients done (upper bound)")
            .expect("client task");
        assert_eq!(last, start_seq + UPDATES);
    }
    let stats = h.hub.stats();
    assert_eq!(stats.queue_overflows.load(Ordering::Relaxed), 0);
    // One message built per change set, whatever the number of clients (invariant 4);
    // plus the one `full` every client shared. Changes that arrived while the hub was still
    // fanning out the previous one are folded into the next message (`superseded` diffs).
    assert_eq!(
        stats.messages_built.load(Ordering::Relaxed) + stats.coalesced.load(Ordering::Relaxed),
        UPDATES + 1
    );
    println!(
        "fan-out to {CLIENTS}: mean {} µs, max {} µs (commit → queued)",
        stats.fanout_micros_sum.load(Ordering::Relaxed)
            / stats.fanout_count.load(Ordering::Relaxed).max(1),
        stats.fanout_micros_max.load(Ordering::Relaxed)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_room_limit_is_exact_under_concurrent_upgrades() {
    let h = start(HubConfig {
        max_per_event: 50,
        ..HubConfig::default()
    })
    .await;
    h.running_event().await;
    let url = h.url("");
    let go = Arc::new(Barrier::new(80));
    let mut tasks = Vec::new();
    for _ in 0..80 {
        let (url, go) = (url.clone(), go.clone());
        tasks.push(tokio::spawn(async move {
            go.wait().await;
            match tokio_tungstenite::connect_async(url).await {
                Ok((ws, _)) => Ok(ws),
                Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                    let body: serde_json::Value =
                        serde_json::from_slice(resp.body().as_deref().unwrap_or(b"{}"))
                            .expect("json");
                    Err((resp.status().as_u16(), body))
                }
                Err(e) => panic!("{e}"),
            }
        }));
    }
    let mut open = Vec::new();
    let mut refused = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(ws) => open.push(ws),
            Err((status, body)) => {
                assert_eq!(status, 503);
                assert_eq!(body["error"], "ConnectionLimitReached");
                assert_eq!(body["maxConnections"], 50);
                refused += 1;
            }
        }
    }
    assert_eq!((open.len(), refused), (50, 30));
    assert_eq!(h.hub.clients_per_event(), vec![(EV.to_owned(), 50)]);
    let metrics = reqwest::get(format!("http://{}/metrics", h.addr))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("ws_clients_per_event{event=\"EV\"} 50"),
        "{metrics}"
    );
    assert!(metrics.contains("ws_refused_limit_total 30"), "{metrics}");
    // A closed connection frees its slot.
    let mut one = open.pop().expect("one");
    let _ = one.close(None).await;
    while let Some(Ok(_)) = one.next().await {}
    poll_until("the closed slot released", Duration::from_secs(10), || {
        h.hub.connected() == 49
    })
    .await;
    let _again = h.connect("").await;
    assert_eq!(refused_status(&h.url("")).await, Some(503));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_paused_reader_is_bounded_then_disconnected_while_others_keep_up() {
    let cfg = HubConfig {
        queue_bytes: 64 * 1024,
        drain_timeout: Duration::from_millis(500),
        ..HubConfig::default()
    };
    let queue_bytes = cfg.queue_bytes as u64;
    let h = start(cfg).await;
    h.running_event().await;

    // The paused reader: a tiny receive buffer, and it never reads after the handshake.
    let sock = tokio::net::TcpSocket::new_v4().expect("socket");
    sock.set_recv_buffer_size(4096).expect("rcvbuf");
    let stream = sock.connect(h.addr).await.expect("connect");
    let (paused, _) = tokio_tungstenite::client_async(h.url(""), stream)
        .await
        .expect("handshake");

    let mut good = h.connect("").await;
    let full = next_json(&mut good).await;
    let mut seq = full["seq"].as_u64().expect("seq");
    let full_len = full.to_string().len() as u64;

    let stats = h.hub.stats();
    let mut sent = 0u32;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    // On-course lists and results in turn: a list queued right behind another supersedes it
    // (protocol/websocket.md, "Coalescing"), results are never dropped, so the queue fills.
    let (race, pid) = h.some_row("C1M_ST_BR1_6");
    while stats.slow_client_closes.load(Ordering::Relaxed) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "paused client never disconnected"
        );
        sent += 1;
        if sent % 2 == 0 {
            h.oncourse(40, sent).await; // ~8 KiB per diff
        } else {
            // First, then last: every row between changes rank (two frames of several KiB).
            let time = if sent % 4 == 1 { 40_000 } else { 900_000 };
            h.update_result(&race, &pid, time).await;
        }
        let m = next_msg(&mut good).await;
        assert_eq!(
            m["seq"].as_u64(),
            Some(seq + 1),
            "the reading client misses nothing"
        );
        assert_eq!(m["type"], "diff");
        seq += 1;
    }
    let peak = stats.queue_bytes_peak.load(Ordering::Relaxed);
    println!(
        "paused reader: {sent} diffs sent, overflows {}, resyncs {}, queue peak {peak} B (bound {queue_bytes} B, full {full_len} B)",
        stats.queue_overflows.load(Ordering::Relaxed),
        stats.resyncs.load(Ordering::Relaxed),
    );
    assert!(
        stats.queue_overflows.load(Ordering::Relaxed) >= 1,
        "the queue overflowed first"
    );
    assert!(
        stats.resyncs.load(Ordering::Relaxed) >= 1,
        "and was replaced by a full"
    );
    assert!(
        peak <= queue_bytes.max(full_len),
        "queue stayed within its bound"
    );
    // The server let the paused client go; the reading one is still connected.
    poll_until("the paused client let go", Duration::from_secs(10), || {
        h.hub.connected() == 1
    })
    .await;
    h.oncourse(1, 0).await;
    let m = next_msg(&mut good).await;
    assert_eq!(m["seq"].as_u64(), Some(seq + 1));
    drop(paused);
    let _ = good.send(Message::Close(None)).await;
}

use crate::support::wait::poll_until;
use futures_util::SinkExt;
