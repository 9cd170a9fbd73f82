//! Canoe123 source faults over real sockets: a disconnect mid-frame, a stall, silence,
//! a source address that is not allowed, and the session caps. The flood and the 100 MB
//! frame, which measure this process's memory, are in `tests/solo/tcp_memory.rs`.

use std::time::{Duration, Instant};

use c123_live::ingest::tcp::SharedSourceStatus;
use c123_live::shutdown::Shutdown;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::tcp_source::*;
use crate::support::wait::{eventually, poll_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_mid_frame_applies_nothing_and_the_source_comes_back() {
    let (_dir, merge) = daemon().await;
    let shutdown = Shutdown::new();
    let (status, addr) = listen(&merge, &shutdown, |_| {}).await;
    let before = seq(&merge);
    let frame = oncourse_frame(1234);
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&frame.as_bytes()[..frame.len() / 2])
        .await
        .unwrap();
    drop(s);
    let st = status.clone();
    poll_until("session ended", Duration::from_secs(5), move || {
        last_error(&st).contains("inside a frame")
    })
    .await;
    assert_eq!(seq(&merge), before, "half a frame applies nothing");
    assert_eq!(bib9_time(&merge), None);
    // The source reconnects and sends the whole frame.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("{frame}|").as_bytes()).await.unwrap();
    eventually(&merge, "frame applied", Duration::from_secs(5), |s| {
        bib9_in(s) == Some(12_340)
    })
    .await;
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_source_is_dropped_and_its_partial_frame_discarded() {
    let (_dir, merge) = daemon().await;
    let shutdown = Shutdown::new();
    let (status, addr) = listen(&merge, &shutdown, |s| {
        s.silence = Duration::from_millis(500)
    })
    .await;
    let before = seq(&merge);
    let frame = oncourse_frame(777);
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&frame.as_bytes()[..100]).await.unwrap();
    // The stall: nothing more, connection open.
    let st = status.clone();
    poll_until("stall detected", Duration::from_secs(5), move || {
        last_error(&st).contains("nothing received")
    })
    .await;
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf))
        .await
        .expect("closed by the daemon");
    assert!(matches!(n, Ok(0) | Err(_)), "connection closed");
    // The rest of the frame arriving late on the dead connection changes nothing.
    let _ = s.write_all(format!("{}|", &frame[100..]).as_bytes()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(seq(&merge), before);
    // A new connection works.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("{frame}|").as_bytes()).await.unwrap();
    eventually(&merge, "frame applied", Duration::from_secs(5), |s| {
        bib9_in(s) == Some(7_770)
    })
    .await;
    shutdown.cancel();
}

/// The silence timeout at its default (10 s), listen mode: a source that sends part of a
/// frame, a little more 4 s later, then nothing, is dropped 10 s after its last byte (bytes,
/// not only whole frames, keep a session alive; a silent one no longer holds its buffer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_source_is_dropped_10_s_after_its_last_byte_by_default() {
    let (_dir, merge) = daemon().await;
    let shutdown = Shutdown::new();
    let (status, addr) = listen(&merge, &shutdown, |s| {
        assert_eq!(s.silence, Duration::from_secs(10), "the default")
    })
    .await;
    let frame = oncourse_frame(555);
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&frame.as_bytes()[..50]).await.unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    s.write_all(&frame.as_bytes()[50..100]).await.unwrap();
    let last_byte = Instant::now();
    let mut buf = [0u8; 16];
    let r = tokio::time::timeout(Duration::from_secs(20), s.read(&mut buf))
        .await
        .expect("the daemon closes a silent session");
    let after = last_byte.elapsed();
    println!("silent source: closed {after:?} after its last byte");
    assert!(matches!(r, Ok(0) | Err(_)), "connection closed");
    assert!(
        after >= Duration::from_millis(9_800) && after < Duration::from_secs(12),
        "closed {after:?} after the last byte"
    );
    assert!(
        last_error(&status).contains("nothing received for 10 s"),
        "{}",
        last_error(&status)
    );
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_allowed_source_addresses_are_accepted() {
    let (_dir, merge) = daemon().await;
    let shutdown = Shutdown::new();
    let before = seq(&merge);
    let (status, addr) = listen(&merge, &shutdown, |s| {
        s.allowed_peers = vec!["192.0.2.1".parse().unwrap()];
    })
    .await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let _ = s
        .write_all(format!("{}|", oncourse_frame(100)).as_bytes())
        .await;
    let mut buf = [0u8; 16];
    let r = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("closed at once");
    assert!(matches!(r, Ok(0) | Err(_)));
    assert_eq!(status.lock().unwrap().refused_peers, 1);
    assert_eq!(status.lock().unwrap().frames_total, 0);
    assert_eq!(seq(&merge), before);

    // The same source, allowed (IPv4 and its IPv6-mapped form are one address).
    let (status, addr) = listen(&merge, &shutdown, |s| {
        s.allowed_peers = vec!["::ffff:127.0.0.1".parse().unwrap()];
    })
    .await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("{}|", oncourse_frame(100)).as_bytes())
        .await
        .unwrap();
    let st = status.clone();
    poll_until("accepted", Duration::from_secs(5), move || {
        st.lock().unwrap().frames_total == 1
    })
    .await;
    assert_eq!(status.lock().unwrap().refused_peers, 0);
    shutdown.cancel();
}

/// A connection from `ip` (any 127.0.0.0/8 address is this machine on Linux) to `addr`.
async fn connect_from(ip: &str, addr: std::net::SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{ip}:0").parse().unwrap()).unwrap();
    socket.connect(addr).await.unwrap()
}

/// Whether the daemon closed `s` at once (a refused connection) rather than keeping it open.
async fn closed_at_once(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 16];
    match tokio::time::timeout(Duration::from_millis(500), s.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(_)) | Err(_) => false,
    }
}

fn sessions(status: &SharedSourceStatus) -> (u64, u64) {
    let s = status.lock().unwrap();
    (s.sessions, s.refused_sessions)
}

/// The listen-mode session caps at their defaults (4 per address, 16 in all): the 5th
/// connection from one address and the 17th in all are closed at once, counted and shown in
/// /metrics; a session that ends gives its place back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_sessions_are_capped_at_4_per_address_and_16_in_all_by_default() {
    let (_dir, merge) = daemon().await;
    let shutdown = Shutdown::new();
    let (status, addr) = listen(&merge, &shutdown, |s| {
        assert_eq!(
            (s.max_sessions_per_ip, s.max_sessions),
            (4, 16),
            "the defaults"
        );
    })
    .await;
    // Four from one address are sessions; each holds a partial frame, as in the report.
    let mut first = Vec::new();
    for _ in 0..4 {
        let mut s = connect_from("127.0.0.1", addr).await;
        s.write_all(&oncourse_frame(1).as_bytes()[..100])
            .await
            .unwrap();
        first.push(s);
    }
    let st = status.clone();
    poll_until("4 sessions", Duration::from_secs(5), move || {
        sessions(&st).0 == 4
    })
    .await;
    let mut fifth = connect_from("127.0.0.1", addr).await;
    assert!(
        closed_at_once(&mut fifth).await,
        "the 5th from one address is refused"
    );
    assert_eq!(sessions(&status), (4, 1));
    for s in &mut first {
        assert!(!closed_at_once(s).await, "the first four stay");
    }
    // Another address still gets its four, up to 16 in all.
    let mut others = Vec::new();
    for ip in ["127.0.0.2", "127.0.0.3", "127.0.0.4"] {
        for _ in 0..4 {
            others.push(connect_from(ip, addr).await);
        }
    }
    let st = status.clone();
    poll_until("16 sessions", Duration::from_secs(5), move || {
        sessions(&st).0 == 16
    })
    .await;
    let mut seventeenth = connect_from("127.0.0.5", addr).await;
    assert!(
        closed_at_once(&mut seventeenth).await,
        "the 17th in all is refused"
    );
    assert_eq!(sessions(&status), (16, 2));
    let metrics = c123_live::http::metrics::Metrics::new(
        &merge,
        &c123_live::ingest::InputStatus {
            watcher: None,
            sources: vec![status.clone()],
        },
    )
    .render();
    let source = format!("{{source=\"listen:{addr}\"}}");
    assert!(
        metrics.contains(&format!("c123_source_sessions{source} 16")),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!("c123_source_refused_sessions_total{source} 2")),
        "{metrics}"
    );
    // A session that ends frees its place.
    drop(first.pop());
    let st = status.clone();
    poll_until("a place freed", Duration::from_secs(5), move || {
        sessions(&st).0 == 15
    })
    .await;
    let mut later = connect_from("127.0.0.5", addr).await;
    later
        .write_all(format!("{}|", oncourse_frame(321)).as_bytes())
        .await
        .unwrap();
    eventually(
        &merge,
        "the new session works",
        Duration::from_secs(5),
        |s| bib9_in(s) == Some(3_210),
    )
    .await;
    assert_eq!(sessions(&status), (16, 2));
    shutdown.cancel();
}
