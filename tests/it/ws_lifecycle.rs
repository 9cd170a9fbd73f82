//! Resume, heartbeat, official/delete closes, shutdown.

use std::time::Duration;

use crate::support::wait::poll_until;
use crate::support::ws::*;
use c123_live::hub::HubConfig;
use c123_live::merge::{AdminCommand, Input};
use c123_live::model::EventStatus;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `n` committed result changes (each a new time, so none is a no-op).
async fn bump(h: &Harness, n: usize) {
    static NEXT: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
    let (race, pid) = h.some_row("C1M_ST_BR1_6");
    for _ in 0..n {
        let i = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        h.update_result(&race, &pid, 90_000 + i * 10).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_resume_replays_exactly_the_missed_diffs() {
    let h = start(HubConfig {
        ring_len: 8,
        ..HubConfig::default()
    })
    .await;
    h.running_event().await;
    // A second spectator keeps the room (and so its ring) alive.
    let mut keeper = h.connect("").await;
    let mut a = h.connect("").await;
    let s = next_msg(&mut a).await["seq"].as_u64().expect("seq");
    let _ = next_msg(&mut keeper).await;
    drop(a);
    bump(&h, 3).await;
    for _ in 0..3 {
        let _ = next_msg(&mut keeper).await;
    }
    let epoch = h.epoch();

    // Inside the ring: exactly s+1..=s+3, then the live stream continues.
    let mut r = h.connect(&format!("?since={s}&epoch={epoch}")).await;
    for k in 1..=3 {
        let m = next_msg(&mut r).await;
        assert_eq!(m["type"], "diff");
        assert_eq!(m["seq"].as_u64(), Some(s + k));
    }
    bump(&h, 1).await;
    let m = next_msg(&mut r).await;
    assert_eq!(
        (m["type"].as_str(), m["seq"].as_u64()),
        (Some("diff"), Some(s + 4))
    );
    let _ = next_msg(&mut keeper).await;

    // Already up to date: nothing until the next change.
    let mut up = h.connect(&format!("?since={}&epoch={epoch}", s + 4)).await;
    bump(&h, 1).await;
    let m = next_msg(&mut up).await;
    assert_eq!(
        (m["type"].as_str(), m["seq"].as_u64()),
        (Some("diff"), Some(s + 5))
    );
    let _ = next_msg(&mut keeper).await;

    // Other epoch: full.
    let mut e = h.connect(&format!("?since={}&epoch=other", s + 4)).await;
    let m = next_msg(&mut e).await;
    assert_eq!(
        (m["type"].as_str(), m["seq"].as_u64()),
        (Some("full"), Some(s + 5))
    );

    // Outside the ring (8 kept, 10 missed): full, never a partial replay.
    bump(&h, 10).await;
    for _ in 0..10 {
        let _ = next_msg(&mut keeper).await; // the hub has processed all ten
    }
    let mut o = h.connect(&format!("?since={}&epoch={epoch}", s + 5)).await;
    let m = next_msg(&mut o).await;
    assert_eq!(
        (m["type"].as_str(), m["seq"].as_u64()),
        (Some("full"), Some(s + 15))
    );
    // A `since` from the future: full.
    let mut f = h.connect(&format!("?since={}&epoch={epoch}", s + 99)).await;
    assert_eq!(next_msg(&mut f).await["type"], "full");
}

/// A raw WebSocket client that never answers pings: handshake by hand, then only read.
async fn raw_client_without_pong(h: &Harness) -> tokio::net::TcpStream {
    let mut sock = tokio::net::TcpStream::connect(h.addr)
        .await
        .expect("connect");
    let req = format!(
        "GET /api/v1/events/{EV}/ws HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        h.addr
    );
    sock.write_all(req.as_bytes()).await.expect("write");
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        sock.read_exact(&mut b).await.expect("read head");
        head.push(b[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    sock
}

/// Reads server frames until a close frame; returns its code (pings are never answered).
async fn read_until_close(sock: &mut tokio::net::TcpStream) -> (u16, usize) {
    let mut pings = 0;
    loop {
        let mut hdr = [0u8; 2];
        sock.read_exact(&mut hdr).await.expect("frame header");
        let mut len = u64::from(hdr[1] & 0x7f);
        if len == 126 {
            let mut l = [0u8; 2];
            sock.read_exact(&mut l).await.expect("len");
            len = u64::from(u16::from_be_bytes(l));
        } else if len == 127 {
            let mut l = [0u8; 8];
            sock.read_exact(&mut l).await.expect("len");
            len = u64::from_be_bytes(l);
        }
        let mut payload = vec![0u8; len as usize];
        sock.read_exact(&mut payload).await.expect("payload");
        match hdr[0] & 0x0f {
            0x9 => pings += 1,
            0x8 => return (u16::from_be_bytes([payload[0], payload[1]]), pings),
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_client_without_pong_is_closed_and_slot_freed() {
    let cfg = HubConfig {
        ping_interval: Duration::from_millis(200),
        pong_timeout: Duration::from_millis(300),
        ..HubConfig::default()
    };
    let h = start(cfg).await;
    h.running_event().await;
    // A well-behaved client (tungstenite answers pings while it reads).
    let mut good = h.connect("").await;
    let _ = next_json(&mut good).await;
    let reader = tokio::spawn(async move {
        use futures_util::StreamExt;
        while let Some(Ok(_)) = good.next().await {}
    });
    let mut raw = raw_client_without_pong(&h).await;
    let (code, pings) = tokio::time::timeout(Duration::from_secs(10), read_until_close(&mut raw))
        .await
        .expect("closed within ping interval + timeout (upper bound)");
    assert_eq!(code, 1008);
    assert!(pings >= 1);
    assert_eq!(
        h.hub
            .stats()
            .heartbeat_timeouts
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    // The slot is released once the close handshake times out or completes.
    poll_until("the slot released", Duration::from_secs(10), || {
        h.hub.connected() == 1
    })
    .await;
    assert!(
        !reader.is_finished(),
        "the answering client stays connected"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_official_closes_1000_after_grace_then_410() {
    let h = start(HubConfig {
        close_grace: Duration::from_millis(300),
        ..HubConfig::default()
    })
    .await;
    h.running_event().await;
    let mut ws = h.connect("").await;
    let _ = next_json(&mut ws).await;
    h.transition(EventStatus::Finished).await;
    h.transition(EventStatus::Official).await;
    assert_eq!(next_json(&mut ws).await["data"]["status"], "finished");
    assert_eq!(next_json(&mut ws).await["data"]["status"], "official");
    let (code, reason) = expect_close(&mut ws, Duration::from_secs(10)).await;
    assert_eq!(
        (code, reason.as_str()),
        (1000, "Event results are official")
    );
    assert_eq!(refused_status(&h.url("")).await, Some(410));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_deleted_event_closes_1000_then_404() {
    let h = start(HubConfig {
        close_grace: Duration::from_millis(200),
        ..HubConfig::default()
    })
    .await;
    h.running_event().await;
    let mut ws = h.connect("").await;
    let _ = next_json(&mut ws).await;
    h.merge
        .send(Input::Admin(AdminCommand::DeleteEvent {
            event_id: EV.into(),
        }))
        .await
        .expect("delete");
    let (code, reason) = expect_close(&mut ws, Duration::from_secs(10)).await;
    assert_eq!((code, reason.as_str()), (1000, "Event deleted"));
    assert_eq!(refused_status(&h.url("")).await, Some(404));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_shutdown_closes_1001_going_away() {
    let h = start(HubConfig::default()).await;
    h.running_event().await;
    let mut a = h.connect("").await;
    let mut b = h.connect("").await;
    let _ = next_json(&mut a).await;
    let _ = next_json(&mut b).await;
    h.shutdown.cancel();
    for ws in [&mut a, &mut b] {
        let (code, reason) = expect_close(ws, Duration::from_secs(10)).await;
        assert_eq!((code, reason.as_str()), (1001, "going away"));
    }
    tokio::time::timeout(Duration::from_secs(10), h.hub_task)
        .await
        .expect("hub returns after shutdown")
        .expect("hub task");
    assert_eq!(h.hub.connected(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_client_messages_are_discarded_and_oversized_ones_disconnect() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let h = start(HubConfig::default()).await;
    h.running_event().await;
    let mut chatty = h.connect("").await;
    let s = next_json(&mut chatty).await["seq"].as_u64().expect("seq");
    for i in 0..20_000 {
        chatty
            .feed(Message::Text(format!("noise {i}").into()))
            .await
            .expect("send");
    }
    chatty.flush().await.expect("flush");
    bump(&h, 1).await;
    let m = next_json(&mut chatty).await;
    assert_eq!(
        (m["type"].as_str(), m["seq"].as_u64()),
        (Some("diff"), Some(s + 1))
    );

    // Larger than max_client_message: the server drops the connection and frees the slot.
    let _ = chatty
        .send(Message::Text("x".repeat(64 * 1024).into()))
        .await;
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match chatty.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "connection ended");
    poll_until("the slot released", Duration::from_secs(10), || {
        h.hub.connected() == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_retract_to_draft_closes_after_grace_then_404() {
    let h = start(HubConfig {
        close_grace: Duration::from_millis(200),
        ..HubConfig::default()
    })
    .await;
    let export = c123_live::xml::parse_export(&fixture()).expect("parse");
    h.merge
        .send(Input::Xml {
            target: c123_live::merge::XmlTarget::ByExport {
                event_id: Some(EV.into()),
            },
            export: Box::new(export),
            origin: c123_live::merge::XmlOrigin::Cli,
        })
        .await
        .expect("import");
    h.transition(EventStatus::Startlist).await;
    let mut ws = h.connect("").await;
    let _ = next_json(&mut ws).await;
    h.transition(EventStatus::Draft).await;
    assert_eq!(next_json(&mut ws).await["data"]["status"], "draft");
    let (code, reason) = expect_close(&mut ws, Duration::from_secs(10)).await;
    assert_eq!(
        (code, reason.as_str()),
        (1000, "Event not found or not publicly available")
    );
    assert_eq!(refused_status(&h.url("")).await, Some(404));
}
