//! A Canoe123 source under a flood and under a 100 MB frame: processed in order, with the
//! memory growth of this process bounded (alone in `tests/solo`, so the growth is theirs).

use std::time::{Duration, Instant};

use c123_live::shutdown::Shutdown;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::rss_kib;
use crate::support::tcp_source::*;
use crate::support::wait::{eventually, poll_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_10000_frames_per_second_is_processed_in_order_with_bounded_memory() {
    let _solo = crate::solo();
    let (_dir, merge) = daemon().await;
    let shutdown = Shutdown::new();
    let (status, addr) = listen(&merge, &shutdown, |_| {}).await;
    let mut published = merge.subscribe();
    let rss_before = rss_kib();
    let total: u64 = 30_000; // 3 s at 10 000 frames/s
    let sender = tokio::spawn(async move {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let started = Instant::now();
        let mut sent = 0u64;
        while sent < total {
            // 100 frames every 10 ms = 10 000 frames/s offered.
            let mut batch = String::new();
            for _ in 0..100 {
                sent += 1;
                batch.push_str(&oncourse_frame(sent));
                batch.push('|');
            }
            s.write_all(batch.as_bytes()).await.unwrap();
            let due = started + Duration::from_millis(sent / 10);
            tokio::time::sleep_until(due.into()).await;
        }
        s.flush().await.unwrap();
        (s, started.elapsed())
    });
    // Every on-course change the loop publishes carries a time later than the one before.
    let m = merge.clone();
    let watcher = tokio::spawn(async move {
        let mut last = 0i64;
        let mut seen = 0u64;
        loop {
            match published.recv().await {
                Ok(p) => {
                    if let Some(t) = p.snapshot.event("ev").and_then(|e| {
                        e.oncourse
                            .iter()
                            .find(|x| x.bib == 9)
                            .and_then(|x| x.time_ms)
                    }) {
                        assert!(t >= last, "out of order: {t} after {last}");
                        last = t;
                        seen += 1;
                    }
                    if last == total as i64 * 10 {
                        return seen;
                    }
                }
                // A lagging observer skips change sets; order still holds for what it sees.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return seen,
            }
            let _ = &m;
        }
    });
    let (_conn, offered_for) = sender.await.unwrap();
    let st = status.clone();
    poll_until(
        "every frame processed",
        Duration::from_secs(120),
        move || st.lock().unwrap().frames_total >= total,
    )
    .await;
    let seen = tokio::time::timeout(Duration::from_secs(30), watcher)
        .await
        .expect("the last frame was published")
        .unwrap();
    assert_eq!(status.lock().unwrap().frames_total, total);
    assert_eq!(status.lock().unwrap().parse_errors, 0);
    assert_eq!(
        bib9_time(&merge),
        Some(total as i64 * 10),
        "the last frame wins"
    );
    let grew_mib = rss_kib().saturating_sub(rss_before) / 1024;
    assert!(grew_mib < 200, "memory grew by {grew_mib} MiB");
    println!(
        "flood: {total} frames offered in {offered_for:?}, {seen} on-course commits observed, RSS +{grew_mib} MiB"
    );
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mb_frame_without_delimiter_drops_the_connection_with_bounded_memory() {
    let _solo = crate::solo();
    let (_dir, merge) = daemon().await;
    let shutdown = Shutdown::new();
    // The default limit (4 MiB).
    let (status, addr) = listen(&merge, &shutdown, |_| {}).await;
    let before = seq(&merge);
    let rss_before = rss_kib();
    let mut s = TcpStream::connect(addr).await.unwrap();
    let chunk = vec![b'a'; 1024 * 1024];
    let mut sent = 0usize;
    for _ in 0..100 {
        match tokio::time::timeout(Duration::from_secs(10), s.write_all(&chunk)).await {
            Ok(Ok(())) => sent += chunk.len(),
            _ => break,
        }
    }
    assert!(
        sent < 100 * 1024 * 1024,
        "the daemon dropped the connection before 100 MB ({sent} bytes sent)"
    );
    let st = status.clone();
    poll_until("dropped", Duration::from_secs(10), move || {
        last_error(&st).contains("longer than")
    })
    .await;
    let grew_mib = rss_kib().saturating_sub(rss_before) / 1024;
    assert!(grew_mib < 64, "memory grew by {grew_mib} MiB");
    assert_eq!(seq(&merge), before);
    // The source reconnects.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("{}|", oncourse_frame(4242)).as_bytes())
        .await
        .unwrap();
    eventually(
        &merge,
        "frame after reconnect",
        Duration::from_secs(5),
        |s| bib9_in(s) == Some(42_420),
    )
    .await;
    shutdown.cancel();
}
