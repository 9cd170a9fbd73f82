//! The real recording through real TCP sockets into the merge loop, in both modes.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::wait::{eventually, poll_until};
use c123_live::c123::recording::Recording;
use c123_live::ingest::replay::{self, ReplaySettings};
use c123_live::ingest::tcp::{self, SharedSourceStatus, TcpSettings};
use c123_live::merge::{
    self, MergeHandle, MergeSettings, Published, Snapshot, XmlOrigin, XmlTarget,
};
use c123_live::model::MergeStrategy;
use c123_live::shutdown::Shutdown;
use c123_live::store::{Store, Synchronous};
use tokio::net::TcpListener;
use tokio::sync::broadcast;

const BR2: &str = "K1M_ST_BR2_6";

fn read(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(name),
    )
    .unwrap()
}

fn recording() -> Recording {
    Recording::parse(&read("jarni-2024.tcp.jsonl")).unwrap()
}

async fn daemon(strategy: MergeStrategy) -> (tempfile::TempDir, MergeHandle) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("live.db"), Synchronous::Off).unwrap();
    let settings = MergeSettings {
        default_strategy: strategy,
        ..MergeSettings::default()
    };
    let (merge, _join) = merge::start(store, settings).unwrap();
    import(&merge).await;
    (dir, merge)
}

async fn import(merge: &MergeHandle) {
    c123_live::ingest::import_bytes(
        merge,
        read("jarni-2024.xml").into_bytes(),
        XmlTarget::ByExport {
            event_id: Some("ev".into()),
        },
        XmlOrigin::Cli,
    )
    .await
    .unwrap();
}

/// (time, pen, total) of a run.
fn run(merge: &MergeHandle, pid: &str) -> (Option<i64>, Option<i64>, Option<i64>) {
    let snap = merge.snapshot();
    let r = snap
        .event("ev")
        .unwrap()
        .result(BR2, pid)
        .cloned()
        .unwrap_or_default();
    (r.time_ms, r.pen_s, r.total_ms)
}

/// Every distinct on-course list (bibs by position) the merge loop published, in order.
async fn collect_oncourse(
    mut rx: broadcast::Receiver<Arc<Published>>,
    until: Instant,
) -> Vec<Vec<u32>> {
    let mut seen: Vec<Vec<u32>> = vec![vec![]];
    while let Ok(Ok(p)) = tokio::time::timeout_at(until.into(), rx.recv()).await {
        if p.changes
            .events
            .iter()
            .any(|c| c.event_id == "ev" && c.oncourse)
        {
            let list: Vec<u32> = p.snapshot.events["ev"]
                .oncourse
                .iter()
                .map(|e| e.bib)
                .collect();
            if seen.last() != Some(&list) {
                seen.push(list);
            }
        }
    }
    seen
}

fn is_subsequence(expected: &[Vec<u32>], seen: &[Vec<u32>]) -> bool {
    let mut it = seen.iter();
    expected.iter().all(|e| it.any(|s| s == e))
}

/// The states the recording goes through (see tests/c123_recording.rs for how they were read).
fn expected_states() -> Vec<Vec<u32>> {
    vec![
        vec![],
        vec![9],
        vec![9, 10],
        vec![10],
        vec![10, 11, 12, 13, 14],
        vec![11, 12, 13, 14],
        vec![12, 13, 14],
        vec![12, 14],
        vec![14],
        vec![],
        vec![1],
        vec![1, 2],
    ]
}

fn assert_recording_results(merge: &MergeHandle) {
    assert_eq!(
        run(merge, "30034.K1M_ST"),
        (Some(51_200), Some(52), Some(103_200)),
        "bib 9"
    );
    assert_eq!(
        run(merge, "36019.K1M_ST"),
        (Some(75_090), Some(52), Some(127_090)),
        "bib 10"
    );
}

const SPEED: f64 = 40.0;

#[tokio::test]
async fn connect_mode_replay_gives_the_recorded_results_and_oncourse() {
    let (_dir, merge) = daemon(MergeStrategy::TcpWins).await;
    let shutdown = Shutdown::new();
    let fake = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fake_addr = fake.local_addr().unwrap();
    let rx = merge.subscribe();
    tokio::spawn(replay::serve(
        fake,
        recording(),
        ReplaySettings {
            speed: SPEED,
            looped: false,
        },
        shutdown.clone(),
    ));
    let (status, _task) = tcp::spawn_connect(
        fake_addr.to_string(),
        TcpSettings::new(Some("ev".into())),
        merge.clone(),
        shutdown.clone(),
    );
    let duration = Duration::from_secs_f64(248.0 / SPEED + 3.0);
    let seen = collect_oncourse(rx, Instant::now() + duration).await;
    assert!(
        is_subsequence(&expected_states(), &seen),
        "on-course states: {seen:?}"
    );
    assert_recording_results(&merge);
    let st = status.lock().unwrap().report();
    assert_eq!(st.frames_total, 1051);
    assert_eq!(st.frames_by_type.get("OnCourse"), Some(&756));
    assert_eq!(st.parse_errors, 0);
    shutdown.cancel();
}

#[tokio::test]
async fn listen_mode_replay_gives_the_recorded_results() {
    let (_dir, merge) = daemon(MergeStrategy::TcpWins).await;
    let shutdown = Shutdown::new();
    let (status, addr, _task) = tcp::spawn_listen(
        "127.0.0.1:0".parse().unwrap(),
        TcpSettings::new(Some("ev".into())),
        merge.clone(),
        shutdown.clone(),
    )
    .await
    .unwrap();
    let rx = merge.subscribe();
    let rec = recording();
    let pusher = {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            replay::push_to(
                addr,
                &rec,
                ReplaySettings {
                    speed: SPEED,
                    looped: false,
                },
                &shutdown,
            )
            .await
        })
    };
    let seen = collect_oncourse(
        rx,
        Instant::now() + Duration::from_secs_f64(248.0 / SPEED + 3.0),
    )
    .await;
    pusher.await.unwrap().unwrap();
    assert!(
        is_subsequence(&expected_states(), &seen),
        "on-course states: {seen:?}"
    );
    assert_recording_results(&merge);
    assert_eq!(status.lock().unwrap().frames_total, 1051);
    shutdown.cancel();
}

async fn replay_fast(merge: &MergeHandle) {
    let shutdown = Shutdown::new();
    let (status, addr, _task) = tcp::spawn_listen(
        "127.0.0.1:0".parse().unwrap(),
        TcpSettings::new(Some("ev".into())),
        merge.clone(),
        shutdown.clone(),
    )
    .await
    .unwrap();
    replay::push_to(
        addr,
        &recording(),
        ReplaySettings {
            speed: 0.0,
            looped: false,
        },
        &shutdown,
    )
    .await
    .unwrap();
    let st = status.clone();
    poll_until("all frames processed", Duration::from_secs(30), move || {
        st.lock().unwrap().frames_total == 1051
    })
    .await;
    shutdown.cancel();
}

#[tokio::test]
async fn tcp_wins_keeps_the_replayed_results_over_the_older_export() {
    let (_dir, merge) = daemon(MergeStrategy::TcpWins).await;
    replay_fast(&merge).await;
    assert_recording_results(&merge);
    import(&merge).await;
    assert_recording_results(&merge);
}

#[tokio::test]
async fn xml_wins_brings_the_export_values_back() {
    let (_dir, merge) = daemon(MergeStrategy::XmlWins).await;
    replay_fast(&merge).await;
    assert_recording_results(&merge);
    import(&merge).await;
    assert_eq!(
        run(&merge, "30034.K1M_ST"),
        (Some(90_350), Some(56), Some(146_350))
    );
    // Bib 10 has no second run in the export.
    assert_eq!(run(&merge, "36019.K1M_ST"), (None, None, None));
}

/// A fake Canoe123 that sends TimeOfDay frames every 100 ms, counting connections.
async fn heartbeat_server(
    listener: TcpListener,
    connections: Arc<std::sync::atomic::AtomicUsize>,
    stop: Shutdown,
) {
    use tokio::io::AsyncWriteExt;
    loop {
        let (mut s, _) = tokio::select! {
            _ = stop.cancelled() => return,
            a = listener.accept() => a.unwrap(),
        };
        connections.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let stop = stop.clone();
        tokio::spawn(async move {
            loop {
                let frame =
                    b"<Canoe123 System=\"Main\"><TimeOfDay>19:04:20</TimeOfDay></Canoe123>|";
                if s.write_all(frame).await.is_err() {
                    return;
                }
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        });
    }
}

fn state(status: &SharedSourceStatus) -> &'static str {
    status.lock().unwrap().state.as_str()
}

#[tokio::test]
async fn reconnects_after_the_server_restarts() {
    let (_dir, merge) = daemon(MergeStrategy::TcpWins).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let conns = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let server = Shutdown::new();
    tokio::spawn(heartbeat_server(listener, conns.clone(), server.clone()));
    let shutdown = Shutdown::new();
    let mut settings = TcpSettings::new(Some("ev".into()));
    settings.backoff_min = Duration::from_millis(100);
    settings.backoff_max = Duration::from_millis(400);
    let (status, _task) =
        tcp::spawn_connect(addr.to_string(), settings, merge.clone(), shutdown.clone());
    let st = status.clone();
    poll_until("connected", Duration::from_secs(10), move || {
        state(&st) == "connected"
    })
    .await;

    // Kill the fake Canoe123 (listener and connections), then start it again on the same port.
    server.cancel();
    let st = status.clone();
    poll_until("noticed the loss", Duration::from_secs(10), move || {
        state(&st) != "connected"
    })
    .await;
    let listener = TcpListener::bind(addr).await.unwrap();
    let server2 = Shutdown::new();
    tokio::spawn(heartbeat_server(listener, conns.clone(), server2.clone()));
    let st = status.clone();
    poll_until("reconnected", Duration::from_secs(10), move || {
        state(&st) == "connected" && st.lock().unwrap().connections >= 2
    })
    .await;
    assert!(
        status
            .lock()
            .unwrap()
            .frames_by_type
            .get("TimeOfDay")
            .copied()
            .unwrap_or(0)
            > 0
    );
    shutdown.cancel();
    server2.cancel();
}

#[tokio::test]
async fn a_silent_source_is_reconnected() {
    let (_dir, merge) = daemon(MergeStrategy::TcpWins).await;
    // Accepts and then never sends a byte.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let a = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            a.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(s);
        }
    });
    let shutdown = Shutdown::new();
    let mut settings = TcpSettings::new(Some("ev".into()));
    // Longer than the session's 1 s tick: a timeout re-armed by each tick never fires.
    settings.silence = Duration::from_millis(1500);
    settings.backoff_min = Duration::from_millis(50);
    let (status, _task) = tcp::spawn_connect(addr.to_string(), settings, merge, shutdown.clone());
    let acc = accepted.clone();
    poll_until(
        "a second connection after silence",
        Duration::from_secs(10),
        move || acc.load(std::sync::atomic::Ordering::SeqCst) >= 2,
    )
    .await;
    let err = status
        .lock()
        .unwrap()
        .last_error
        .clone()
        .unwrap_or_default();
    assert!(err.contains("nothing received"), "{err}");
    shutdown.cancel();
}

/// The silence timeout at its default (10 s), connect mode: a Canoe123 that accepts and then
/// never sends a byte is dropped after 10 s and connected to again after the 1 s backoff.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_canoe123_is_reconnected_after_the_default_10_s() {
    let (_dir, merge) = daemon(MergeStrategy::TcpWins).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted_at = Arc::new(std::sync::Mutex::new(Vec::<Instant>::new()));
    let a = accepted_at.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            a.lock().unwrap().push(Instant::now());
            held.push(s);
        }
    });
    let shutdown = Shutdown::new();
    let settings = TcpSettings::new(Some("ev".into()));
    assert_eq!(settings.silence, Duration::from_secs(10), "the default");
    assert_eq!(settings.backoff_min, Duration::from_secs(1), "the default");
    let (status, _task) = tcp::spawn_connect(addr.to_string(), settings, merge, shutdown.clone());
    let acc = accepted_at.clone();
    poll_until(
        "a second connection after 10 s of silence",
        Duration::from_secs(20),
        move || acc.lock().unwrap().len() >= 2,
    )
    .await;
    let times = accepted_at.lock().unwrap().clone();
    let gap = times[1] - times[0];
    println!("silent Canoe123: reconnected after {gap:?}");
    assert!(
        gap >= Duration::from_millis(10_900) && gap < Duration::from_secs(14),
        "10 s silence + 1 s backoff, got {gap:?}"
    );
    let err = status
        .lock()
        .unwrap()
        .last_error
        .clone()
        .unwrap_or_default();
    assert!(err.contains("nothing received for 10 s"), "{err}");
    shutdown.cancel();
}

#[tokio::test]
async fn garbage_and_oversized_frames_do_not_stop_the_daemon() {
    use tokio::io::AsyncWriteExt;
    let (_dir, merge) = daemon(MergeStrategy::TcpWins).await;
    let shutdown = Shutdown::new();
    let mut settings = TcpSettings::new(Some("ev".into()));
    settings.max_frame = 64 * 1024;
    let (status, addr, _task) = tcp::spawn_listen(
        "127.0.0.1:0".parse().unwrap(),
        settings,
        merge.clone(),
        shutdown.clone(),
    )
    .await
    .unwrap();
    let seq = merge.snapshot().event("ev").unwrap().header.seq;
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        b"\xff\xfe garbage|<not-canoe123/>|<Canoe123 System=\"Main\"><OnCourse Total=\"x\"|",
    )
    .await
    .unwrap();
    // 1 MB without a delimiter: over the 64 KiB limit, the connection is dropped.
    let big = vec![b'a'; 1024 * 1024];
    let _ = s.write_all(&big).await;
    let st = status.clone();
    poll_until("errors counted", Duration::from_secs(10), move || {
        let s = st.lock().unwrap();
        s.parse_errors >= 3
            && s.last_error
                .as_deref()
                .is_some_and(|e| e.contains("stream error"))
    })
    .await;
    assert_eq!(
        merge.snapshot().event("ev").unwrap().header.seq,
        seq,
        "nothing changed"
    );
    // Still accepting: a good frame on a new connection is processed.
    let mut s2 = tokio::net::TcpStream::connect(addr).await.unwrap();
    s2.write_all(b"<Canoe123 System=\"Main\"><TimeOfDay>10:00:00</TimeOfDay></Canoe123>|")
        .await
        .unwrap();
    let st = status.clone();
    poll_until("good frame", Duration::from_secs(10), move || {
        st.lock().unwrap().frames_total >= 1
    })
    .await;
    shutdown.cancel();
}

use crate::support::frames;

/// A finished run of bib 9 (`Id="30034.K1M_ST"`, known to the export) with another race
/// and bib string: what a hostile source sends to grow the per-connection maps.
fn finish_frame(race_id: &str, bib: &str, time: &str) -> String {
    frames::ONCOURSE_FINISH_BIB9
        .replace("RaceId=\"K1M_ST_BR2_6\"", &format!("RaceId=\"{race_id}\""))
        .replace("Bib=\"9\"", &format!("Bib=\"{bib}\""))
        .replace("Time=\"51.20\"", &format!("Time=\"{time}\""))
}

fn is_results(input: &c123_live::merge::Input) -> bool {
    matches!(input, c123_live::merge::Input::Results { .. })
}

fn messages(frame: &str) -> Vec<c123_live::c123::frame::Message> {
    c123_live::c123::frame::parse_frame(frame).unwrap()
}

/// `LiveStream`'s memory of finished runs (and on-course penalties) holds only races and
/// participants the event knows, one entry per run: 1 500 finishes with unknown race ids
/// and 1 500 bib strings for one known run leave it at one run. (The report's 100 KB race
/// ids no longer parse: ids are bounded at the parser, see `c123_frame`.)
#[tokio::test]
async fn finished_run_memory_is_bounded_by_the_event() {
    let (_dir, merge) = daemon(MergeStrategy::TcpWins).await;
    let snapshot = merge.snapshot();
    let mut live = c123_live::ingest::live::LiveStream::new(Some("ev".into()), false);
    let long_race = "R".repeat(50);
    for i in 0..1_500 {
        for m in messages(&finish_frame(&format!("{long_race}{i}"), "9", "51.20")) {
            let inputs = live.on_message(&m, i, &snapshot);
            assert!(
                !inputs.iter().any(is_results),
                "a finish in an unknown race sends no result"
            );
        }
    }
    assert_eq!(
        live.remembered_runs(),
        0,
        "unknown races are not remembered"
    );
    let mut results_sent = 0;
    for i in 0..1_500u64 {
        for m in messages(&finish_frame(BR2, &format!("9{i:04}"), "51.20")) {
            let inputs = live.on_message(&m, 2_000 + i, &snapshot);
            results_sent += inputs.iter().filter(|i| is_results(i)).count();
        }
    }
    assert_eq!(
        live.remembered_runs(),
        2,
        "one finished run and one on-course penalty, whatever the bib strings"
    );
    assert_eq!(
        results_sent, 1,
        "the finish is sent once, not once per bib string"
    );
    // A changed time of the same run is sent again.
    let changed: Vec<_> = messages(&finish_frame(BR2, "9", "51.30"))
        .iter()
        .flat_map(|m| live.on_message(m, 5_000, &snapshot))
        .collect();
    assert!(changed.iter().any(is_results));
    assert_eq!(live.remembered_runs(), 2);
}

/// Direct mode (no `--event`): TCP feeds the event whose export the folder imported last,
/// not the newest event. Event `a` is created first, `b` second, then `a`'s export is
/// imported again (unchanged): the finish goes to `a`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_mode_tcp_feeds_the_event_of_the_latest_import() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("live.db"), Synchronous::Off).unwrap();
    let (merge, _join) = merge::start(store, MergeSettings::default()).unwrap();
    let from_folder = |name: &str| XmlOrigin::File(dir.path().join(name));
    for (event, file) in [("a", "a.xml"), ("b", "b.xml"), ("a", "a.xml")] {
        c123_live::ingest::import_bytes(
            &merge,
            read("jarni-2024.xml").into_bytes(),
            XmlTarget::ByExport {
                event_id: Some(event.into()),
            },
            from_folder(file),
        )
        .await
        .unwrap();
    }
    let snap = merge.snapshot();
    assert!(snap.event("a").unwrap().header.id < snap.event("b").unwrap().header.id);
    let shutdown = Shutdown::new();
    let (status, addr, _task) = tcp::spawn_listen(
        "127.0.0.1:0".parse().unwrap(),
        TcpSettings::new(None),
        merge.clone(),
        shutdown.clone(),
    )
    .await
    .unwrap();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    use tokio::io::AsyncWriteExt;
    s.write_all(format!("{}|", finish_frame(BR2, "9", "49.99")).as_bytes())
        .await
        .unwrap();
    let st = status.clone();
    poll_until("frame read", Duration::from_secs(5), move || {
        st.lock().unwrap().frames_total >= 1
    })
    .await;
    let time_in = |snapshot: &Snapshot, event: &str| {
        snapshot
            .event(event)
            .unwrap()
            .result(BR2, "30034.K1M_ST")
            .and_then(|r| r.time_ms)
    };
    let fed = eventually(
        &merge,
        "the finish applied to one of the events",
        Duration::from_secs(5),
        |s| time_in(s, "a") == Some(49_990) || time_in(s, "b") == Some(49_990),
    )
    .await;
    assert_eq!(
        time_in(&fed, "a"),
        Some(49_990),
        "a, the latest import, was fed"
    );
    assert_ne!(time_in(&fed, "b"), Some(49_990), "b was not fed");
    shutdown.cancel();
}
