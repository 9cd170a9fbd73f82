//! Canoe123 source faults over real sockets: a disconnect mid-frame, a stall, a flood of
//! 10 000 frames/s, a 100 MB frame without `|`, and a source address that is not allowed.

#[path = "c123_support/frames.rs"]
mod frames;

use std::path::Path;
use std::time::{Duration, Instant};

use c123_live::ingest::tcp::{self, SharedSourceStatus, TcpSettings};
use c123_live::merge::{self, MergeHandle, MergeSettings, XmlOrigin, XmlTarget};
use c123_live::shutdown::Shutdown;
use c123_live::store::{Store, Synchronous};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn daemon() -> (tempfile::TempDir, MergeHandle) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("live.db"), Synchronous::Off).unwrap();
    let (merge, _join) = merge::start(store, MergeSettings::default()).unwrap();
    let xml = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/jarni-2024.xml"))
        .unwrap();
    c123_live::ingest::import_bytes(
        &merge,
        xml,
        XmlTarget::ByExport {
            event_id: Some("ev".into()),
        },
        XmlOrigin::Cli,
    )
    .await
    .unwrap();
    (dir, merge)
}

async fn listen(
    merge: &MergeHandle,
    shutdown: &Shutdown,
    f: impl FnOnce(&mut TcpSettings),
) -> (SharedSourceStatus, std::net::SocketAddr) {
    let mut settings = TcpSettings::new(Some("ev".into()));
    f(&mut settings);
    let (status, addr, _task) = tcp::spawn_listen(
        "127.0.0.1:0".parse().unwrap(),
        settings,
        merge.clone(),
        shutdown.clone(),
    )
    .await
    .unwrap();
    (status, addr)
}

async fn wait_until(what: &str, limit: Duration, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Bib 9 on course with a running time of `cs` hundredths.
fn oncourse_frame(cs: u64) -> String {
    let t = format!("{}.{:02}", cs / 100, cs % 100);
    frames::ONCOURSE_RUNNING
        .replace("Time=\"13   \"", &format!("Time=\"{t}\""))
        .replace("Total=\"65   \"", &format!("Total=\"{t}\""))
}

fn bib9_time(merge: &MergeHandle) -> Option<i64> {
    merge
        .snapshot()
        .event("ev")
        .unwrap()
        .oncourse
        .iter()
        .find(|e| e.bib == 9)
        .and_then(|e| e.time_ms)
}

fn seq(merge: &MergeHandle) -> u64 {
    merge.snapshot().event("ev").unwrap().header.seq
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn last_error(status: &SharedSourceStatus) -> String {
    status
        .lock()
        .unwrap()
        .last_error
        .clone()
        .unwrap_or_default()
}

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
    wait_until("session ended", Duration::from_secs(5), move || {
        last_error(&st).contains("inside a frame")
    })
    .await;
    assert_eq!(seq(&merge), before, "half a frame applies nothing");
    assert_eq!(bib9_time(&merge), None);
    // The source reconnects and sends the whole frame.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("{frame}|").as_bytes()).await.unwrap();
    let m = merge.clone();
    wait_until("frame applied", Duration::from_secs(5), move || {
        bib9_time(&m) == Some(12_340)
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
    wait_until("stall detected", Duration::from_secs(5), move || {
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
    let m = merge.clone();
    wait_until("frame applied", Duration::from_secs(5), move || {
        bib9_time(&m) == Some(7_770)
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
async fn a_flood_of_10000_frames_per_second_is_processed_in_order_with_bounded_memory() {
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
    wait_until(
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
    wait_until("dropped", Duration::from_secs(10), move || {
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
    let m = merge.clone();
    wait_until("frame after reconnect", Duration::from_secs(5), move || {
        bib9_time(&m) == Some(42_420)
    })
    .await;
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
    wait_until("accepted", Duration::from_secs(5), move || {
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
    wait_until("4 sessions", Duration::from_secs(5), move || {
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
    wait_until("16 sessions", Duration::from_secs(5), move || {
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
    wait_until("a place freed", Duration::from_secs(5), move || {
        sessions(&st).0 == 15
    })
    .await;
    let mut later = connect_from("127.0.0.5", addr).await;
    later
        .write_all(format!("{}|", oncourse_frame(321)).as_bytes())
        .await
        .unwrap();
    let m = merge.clone();
    wait_until("the new session works", Duration::from_secs(5), move || {
        bib9_time(&m) == Some(3_210)
    })
    .await;
    assert_eq!(sessions(&status), (16, 2));
    shutdown.cancel();
}
