//! The Canoe123 source's timers at their defaults on tokio's paused clock (`test-util`): the
//! reconnect back-off (1 s doubling to 30 s) and the 10 s silence limit cover two minutes of
//! the daemon's clock in about a second of wall time, measured to the millisecond. Real
//! sockets on 127.0.0.1 and a real merge loop; only the clock is tokio's test clock, which
//! the source's timers (`tokio::time`) read.
//!
//! The merge loop runs on a blocking thread, and tokio never auto-advances a paused clock
//! while blocking work is in flight, so these tests move the clock themselves
//! ([`step`]) and let the daemon's tasks and sockets run at each instant ([`settle`]).

use std::time::Duration;

use c123_live::ingest::tcp::{self, SharedSourceStatus, TcpSettings};
use c123_live::shutdown::Shutdown;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::support::tcp_source::daemon;

fn ms(d: Duration) -> i64 {
    d.as_millis() as i64
}

/// A port nothing listens on: connecting to it is refused at once.
fn refused_port() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// Lets every task that can run at this instant run (and the sockets be polled), without
/// moving the clock.
async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

/// Moves the paused clock by `d`, then settles.
async fn step(d: Duration) {
    tokio::time::advance(d).await;
    settle().await;
}

/// Settles until `cond` holds, the clock standing still; bounded in wall time.
async fn at_this_instant(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "{what}");
        settle().await;
    }
}

fn frames_of(status: &SharedSourceStatus, kind: &str) -> u64 {
    status
        .lock()
        .unwrap()
        .frames_by_type
        .get(kind)
        .copied()
        .unwrap_or(0)
}

#[tokio::test(start_paused = true)]
async fn connect_backoff_doubles_from_1_s_to_30_s_by_default() {
    let (_dir, merge) = daemon().await;
    let settings = TcpSettings::new(Some("ev".into()));
    assert_eq!(
        (settings.backoff_min, settings.backoff_max),
        (Duration::from_secs(1), Duration::from_secs(30)),
        "the defaults"
    );
    let shutdown = Shutdown::new();
    let start = Instant::now();
    let (status, _task) = tcp::spawn_connect(
        refused_port().to_string(),
        settings,
        merge,
        shutdown.clone(),
    );
    // The clock instant of each attempt, in 5 ms steps.
    let mut attempts = Vec::new();
    while attempts.len() < 9 {
        settle().await;
        let made = status.lock().unwrap().connect_attempts;
        assert!(
            made <= attempts.len() as u64 + 1,
            "one attempt per step at most"
        );
        if made > attempts.len() as u64 {
            attempts.push(start.elapsed());
        }
        assert!(
            start.elapsed() < Duration::from_secs(200),
            "attempts at {attempts:?}"
        );
        step(Duration::from_millis(5)).await;
    }
    let gaps: Vec<i64> = attempts.windows(2).map(|w| ms(w[1] - w[0])).collect();
    let expected = [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000];
    assert_eq!(gaps, expected, "ms between attempts");
    let st = status.lock().unwrap().clone();
    assert_eq!(st.connections, 0, "no attempt connected");
    assert!(
        st.last_error
            .as_deref()
            .unwrap_or("")
            .starts_with("connect "),
        "the refusal is reported: {:?}",
        st.last_error
    );
    shutdown.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_silent_connection_is_dropped_10_s_after_its_last_byte_and_redialled_1_s_later() {
    let (_dir, merge) = daemon().await;
    let settings = TcpSettings::new(Some("ev".into()));
    assert_eq!(settings.silence, Duration::from_secs(10), "the default");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shutdown = Shutdown::new();
    let (status, _task) = tcp::spawn_connect(
        listener.local_addr().unwrap().to_string(),
        settings,
        merge,
        shutdown.clone(),
    );
    let (mut source, _) = listener.accept().await.unwrap();
    // Three TimeOfDay frames a second apart, each read by the daemon before the clock moves;
    // then nothing.
    for second in 1..=3u64 {
        let frame =
            format!("<Canoe123 System=\"Main\"><TimeOfDay>10:00:0{second}</TimeOfDay></Canoe123>|");
        source.write_all(frame.as_bytes()).await.unwrap();
        at_this_instant("the frame is read", || {
            frames_of(&status, "TimeOfDay") == second
        })
        .await;
        if second < 3 {
            step(Duration::from_secs(1)).await;
        }
    }
    let last_byte = Instant::now();
    let closed = tokio::spawn(async move {
        let mut buf = [0u8; 64];
        let read = source.read(&mut buf).await;
        (Instant::now(), read.map_err(|e| e.kind()))
    });
    let redialled = tokio::spawn(async move {
        let accepted = listener.accept().await.map(|_| ());
        (Instant::now(), accepted.map_err(|e| e.kind()))
    });
    while !redialled.is_finished() {
        assert!(
            last_byte.elapsed() < Duration::from_secs(15),
            "no drop and redial"
        );
        step(Duration::from_millis(1)).await;
    }
    let (dropped_at, read) = closed.await.unwrap();
    assert_eq!(read, Ok(0), "the daemon closed the connection");
    assert_eq!(
        ms(dropped_at - last_byte),
        10_000,
        "ms from the last byte to the drop"
    );
    let (redialled_at, accepted) = redialled.await.unwrap();
    assert_eq!(accepted, Ok(()));
    assert_eq!(
        ms(redialled_at - dropped_at),
        1_000,
        "ms from the drop to the next connection (the back-off starts again at 1 s)"
    );
    let st = status.lock().unwrap().clone();
    assert_eq!(st.frames_by_type.get("TimeOfDay"), Some(&3));
    assert_eq!((st.connections, st.connect_attempts), (2, 2));
    shutdown.cancel();
}
