//! Measurement, not a default test (RSS is process-wide and noisy): server memory per idle
//! connection after its `full`. Run: `cargo test --release --test solo ws_memory:: -- --ignored --nocapture`.

use std::time::Duration;

use crate::rss_kib;
use crate::support::ws::*;
use c123_live::hub::HubConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A client costing almost nothing itself: handshake by hand, then read and discard.
async fn idle_client(h: &Harness) {
    let mut sock = tokio::net::TcpStream::connect(h.addr)
        .await
        .expect("connect");
    let req = format!(
        "GET /api/v1/events/{EV}/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    sock.write_all(req.as_bytes()).await.expect("write");
    let mut total = 0usize;
    let mut b = [0u8; 1024];
    while total < 15_000 {
        total += sock.read(&mut b).await.expect("read");
    }
    tokio::spawn(async move {
        let mut b = [0u8; 64];
        while sock.read(&mut b).await.unwrap_or(0) > 0 {}
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; run in release with --ignored"]
async fn ws_idle_connection_memory() {
    let _solo = crate::solo();
    const N: u64 = 2000;
    let h = start(HubConfig::default()).await;
    h.running_event().await;
    for _ in 0..50 {
        idle_client(&h).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_kib();
    for _ in 0..N {
        idle_client(&h).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let per = (rss_kib().saturating_sub(before)) / N;
    println!("server memory per idle WebSocket connection (after its full): {per} KiB");
    assert!(per < 20, "target: < 20 KiB per idle connection");
}
