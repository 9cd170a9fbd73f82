//! The timers at their defaults, all in one test so that they run side by side.

use super::*;

// ---------------------------------------------------------------------------------------
// Timers (run concurrently in one test).

/// The default timers together; each check is its own task, the test fails with every
/// failing check named.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn all_timers_at_their_defaults() {
    let _solo = crate::solo();
    let mut checks: Vec<(&str, tokio::task::JoinHandle<()>)> = vec![
        (
            "ws ping 15 s + pong 10 s",
            tokio::spawn(ws_heartbeat_default()),
        ),
        ("ws close grace 5 s", tokio::spawn(ws_close_grace_default())),
        (
            "http header read timeout 10 s",
            tokio::spawn(http_header_read_timeout_default()),
        ),
        ("on-course TTL 10 s", tokio::spawn(oncourse_ttl_default())),
    ];
    checks.push((
        "SQLite busy timeout 5 s",
        tokio::spawn(store_busy_timeout_default()),
    ));
    checks.push((
        "XML folder settle 250 ms + stable 150 ms",
        tokio::spawn(watcher_debounce_default()),
    ));
    checks.push((
        "HTTP shutdown grace 10 s",
        tokio::spawn(http_shutdown_grace_default()),
    ));
    let mut failed = Vec::new();
    for (name, task) in checks {
        if let Err(e) = task.await {
            eprintln!("{name}: FAILED: {e}");
            failed.push(name);
        }
    }
    assert!(failed.is_empty(), "failed: {failed:?}");
}

/// A raw client that reads but never answers pings: first ping at 15 s (ping interval), close
/// 1008 "Ping timeout" 10 s later (pong timeout): at ~25 s, not before 24.5 s.
async fn ws_heartbeat_default() {
    let d = daemon().await;
    d.running_event().await;
    let mut sock = TcpStream::connect(d.addr).await.expect("connect");
    let started = Instant::now();
    let req = format!(
        "GET /api/v1/events/{EV}/ws HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        d.addr
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
    let mut pings = Vec::new();
    let (code, reason) = tokio::time::timeout(Duration::from_secs(40), async {
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
                0x9 => pings.push(started.elapsed()),
                0x8 => {
                    let code = u16::from_be_bytes([payload[0], payload[1]]);
                    let reason = String::from_utf8_lossy(&payload[2..]).into_owned();
                    return (code, reason);
                }
                _ => {}
            }
        }
    })
    .await
    .expect("no close within 40 s");
    let closed = started.elapsed();
    // This client never answers the close either: the server waits 2 s for it, then drops
    // the socket.
    let mut rest = Vec::new();
    let eof = tokio::time::timeout(Duration::from_secs(10), sock.read_to_end(&mut rest)).await;
    let dropped_after = started.elapsed() - closed;
    eprintln!(
        "heartbeat: pings at {pings:?}, close {code} {reason:?} at {closed:?}, \
         socket dropped {dropped_after:?} later"
    );
    assert!(
        eof.is_ok(),
        "socket not dropped within 10 s of the close frame"
    );
    assert!(
        dropped_after >= Duration::from_millis(1_900)
            && dropped_after <= Duration::from_millis(2_800),
        "socket dropped {dropped_after:?} after the unanswered close, expected ~2 s"
    );
    assert_eq!((code, reason.as_str()), (1008, "Ping timeout"));
    assert_eq!(pings.len(), 1, "one ping before the close: {pings:?}");
    assert!(
        pings[0] >= Duration::from_millis(14_500) && pings[0] <= Duration::from_millis(15_800),
        "first ping at {:?}, expected ~15 s",
        pings[0]
    );
    assert!(
        closed >= Duration::from_millis(24_500) && closed <= Duration::from_millis(25_800),
        "closed at {closed:?}, expected ~25 s (15 s ping + 10 s pong timeout)"
    );
    assert_eq!(metric(&d.metrics().await, "ws_heartbeat_timeouts"), 1.0);
    d.stop().await;
}

/// `official`: the spectator gets the status message, then the close 1000 after 5 s.
async fn ws_close_grace_default() {
    let d = daemon().await;
    let key = d.running_event().await;
    d.transition(&key, "finished").await;
    let mut ws = connect_ws(&d.ws_url()).await;
    assert_eq!(next_json(&mut ws).await["type"], "full");
    let made_official = Instant::now();
    d.transition(&key, "official").await;
    let (code, _reason) = expect_close(&mut ws, Duration::from_secs(15)).await;
    let after = made_official.elapsed();
    eprintln!("close grace: close {code} {after:?} after official");
    assert_eq!(code, 1000);
    assert!(
        after >= Duration::from_millis(4_900) && after <= Duration::from_millis(5_800),
        "closed {after:?} after official, expected ~5 s"
    );
    d.stop().await;
}

/// A request head that never completes: the connection is closed after 10 s, not before.
async fn http_header_read_timeout_default() {
    let d = daemon().await;
    let mut sock = TcpStream::connect(d.addr).await.expect("connect");
    let started = Instant::now();
    sock.write_all(b"GET /api/v1/events HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), sock.read_to_end(&mut got)).await;
    let after = started.elapsed();
    eprintln!(
        "header read timeout: closed after {after:?} ({} bytes: {:?})",
        got.len(),
        String::from_utf8_lossy(&got)
    );
    assert!(read.is_ok(), "connection still open after 30 s");
    assert!(
        after >= Duration::from_millis(9_900) && after <= Duration::from_millis(10_800),
        "closed after {after:?}, expected ~10 s"
    );
    d.stop().await;
}

/// On-course entries posted once: still listed just before 10 s, gone by the next tick after
/// 10 s (the daemon ticks every second).
async fn oncourse_ttl_default() {
    let d = daemon().await;
    let key = d.running_event().await;
    let pid = d.participants().into_iter().next().expect("participant");
    let sent = Instant::now();
    let (st, b) = d
        .send(
            reqwest::Method::POST,
            "/api/v1/ingest/oncourse",
            ("X-API-Key", &key),
            json!({"oncourse": [{"participantId": pid, "raceId": RACE, "bib": 1}]}),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    let accepted = Instant::now();
    let path = format!("/api/v1/events/{EV}/oncourse");
    let gone = loop {
        let r = d.http.get(d.url(&path)).send().await.expect("GET");
        let body: Value = r.json().await.expect("json");
        let n = body
            .as_array()
            .or_else(|| body["oncourse"].as_array())
            .map_or(0, |a| a.len());
        if n == 0 {
            break Instant::now();
        }
        assert!(
            sent.elapsed() < Duration::from_secs(20),
            "never expired: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let listed_for = gone - accepted;
    let upper = gone - sent;
    eprintln!("on-course TTL: listed for {listed_for:?} (≤ {upper:?})");
    assert!(
        listed_for >= Duration::from_millis(9_900),
        "expired after {listed_for:?}, before the 10 s TTL"
    );
    assert!(
        upper <= Duration::from_millis(11_500),
        "still listed {upper:?} after it was posted, expected ≤ 10 s + one 1 s tick"
    );
    d.stop().await;
}

/// Another process holds the database's write lock: a write waits for it up to 5 s. Held
/// for 3 s, the write is applied when it is released; held for 7 s, the write is refused
/// after 5 s (and changes nothing), and the next write after the release is applied.
async fn store_busy_timeout_default() {
    let d = daemon().await;
    let key = d.running_event_from(&small_xml()).await;
    let db = d._dir.path().join("live.db");
    let post = |time: u32| {
        d.send(
            reqwest::Method::POST,
            "/api/v1/ingest/results",
            ("X-API-Key", &key),
            json!({"results": [{"raceId": SMALL_RACE, "participantId": SMALL_PARTICIPANT,
                                "bib": 1, "time": time}]}),
        )
    };
    let hold = |secs: u64| {
        let db = db.clone();
        let (locked_tx, locked_rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            let conn = rusqlite::Connection::open(&db).expect("open");
            conn.execute_batch("BEGIN IMMEDIATE").expect("lock");
            locked_tx.send(()).expect("signal");
            std::thread::sleep(Duration::from_secs(secs));
            conn.execute_batch("ROLLBACK").expect("unlock");
        });
        locked_rx.recv().expect("locked");
        t
    };
    let time_of_bib1 = || {
        d.running()
            .merge
            .snapshot()
            .event(EV)
            .and_then(|e| e.result(SMALL_RACE, SMALL_PARTICIPANT).cloned())
            .and_then(|r| r.time_ms)
    };

    // Held 3 s: the write waits and is applied.
    let locker = hold(3);
    let sent = Instant::now();
    let (st, b) = post(9_100).await;
    let waited = sent.elapsed();
    locker.join().expect("locker");
    eprintln!("busy 3 s: {st} after {waited:?}");
    assert_eq!(st, 200, "write behind a 3 s lock: {b}");
    assert!(
        waited >= Duration::from_millis(2_800),
        "answered after {waited:?}, before the lock was released"
    );
    assert_eq!(time_of_bib1(), Some(91_000));

    // Held 7 s: refused after 5 s, nothing changed.
    let locker = hold(7);
    let sent = Instant::now();
    let (st, b) = post(9_200).await;
    let waited = sent.elapsed();
    eprintln!("busy 7 s: {st} {b} after {waited:?}");
    assert_ne!(st, 200, "write behind a 7 s lock: {b}");
    assert!(
        waited >= Duration::from_millis(4_900) && waited <= Duration::from_millis(5_800),
        "refused after {waited:?}, expected ~5 s"
    );
    assert_eq!(
        time_of_bib1(),
        Some(91_000),
        "a refused write changed the state"
    );
    tokio::task::spawn_blocking(move || locker.join().expect("locker"))
        .await
        .expect("join");
    let (st, b) = post(9_300).await;
    assert_eq!(st, 200, "write after the lock was released: {b}");
    assert_eq!(time_of_bib1(), Some(93_000));
    d.stop().await;
}

/// An export written into `--xml-dir` is imported once the folder has been quiet for 250 ms
/// and two reads 150 ms apart agree: not before 400 ms after the write.
async fn watcher_debounce_default() {
    let folder = tempfile::tempdir().expect("tempdir");
    let dir = folder.path().to_owned();
    let d = daemon_with(move |a| a.xml_dir = Some(dir)).await;
    // The first (immediate) rescan of the empty folder must be over before the file appears,
    // else that scan imports it after `stable_for` alone (seen once under load: 164 ms).
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    let file = folder.path().join("small.xml");
    let xml = small_xml();
    let written = tokio::task::spawn_blocking(move || {
        std::fs::write(&file, xml).expect("write");
        Instant::now()
    })
    .await
    .expect("write task");
    let deadline = written + Duration::from_secs(10);
    while d.running().merge.snapshot().event(EV).is_none() {
        assert!(Instant::now() < deadline, "export not imported within 10 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let after = written.elapsed();
    eprintln!("watcher: imported {after:?} after the write");
    assert!(
        after >= Duration::from_millis(390),
        "imported {after:?} after the write, before settle (250 ms) + stable (150 ms)"
    );
    assert!(
        after <= Duration::from_millis(1_200),
        "imported {after:?} after the write, expected ~400 ms"
    );
    d.stop().await;
}

/// At shutdown a request still in flight (its body arrives a byte every 500 ms) gets 10 s to
/// finish; then its connection is closed. Not before.
async fn http_shutdown_grace_default() {
    let d = daemon().await;
    let key = d.running_event_from(&small_xml()).await;
    let sock = TcpStream::connect(d.addr).await.expect("connect");
    let (mut rd, mut wr) = sock.into_split();
    let head = format!(
        "POST /api/v1/ingest/results HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\n\
         content-type: application/json\r\ncontent-length: 1000\r\n\r\n"
    );
    wr.write_all(head.as_bytes()).await.expect("head");
    let dribble = tokio::spawn(async move {
        for _ in 0..100 {
            if wr.write_all(b" ").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let stopping = Instant::now();
    d.shutdown.cancel();
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), rd.read_to_end(&mut got)).await;
    let after = stopping.elapsed();
    dribble.abort();
    eprintln!(
        "shutdown grace: in-flight request's connection closed {after:?} after shutdown ({} bytes)",
        got.len()
    );
    assert!(read.is_ok(), "connection still open 30 s after shutdown");
    assert!(
        after >= Duration::from_millis(9_900) && after <= Duration::from_millis(10_800),
        "closed {after:?} after shutdown, expected the 10 s grace"
    );
    d.stop().await;
}

/// A TCP source remembers the penalty it saw on course for 60 s: a best-run second-run
/// Results row (which carries the better run's Pen/Total) takes it at 60 000 ms, and at
/// 60 001 ms it is forgotten (the row is not applied, and counted). The real stream logic
/// with its caller-supplied clock, on the real event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_penalty_memory_60_s() {
    let _solo = crate::solo();
    use c123_live::c123::frame::parse_frame;
    use c123_live::ingest::live::LiveStream;
    const ONCOURSE_BIB9_PEN52: &str = r#"<Canoe123 System="Main"><OnCourse Total="2" Position="1"><Participant StartOrder="9" Bib="9" Id="30034.K1M_ST" Name="HOLOČEK Čeněk" Club="VS Tábor" Nat="" Race="K1m - střední trať - 2. jízda" RaceId="K1M_ST_BR2_6" Warning="" /><Result Type="C" Gates="0,0,0,2,0,0,50,,,,,,,,,,,,,,,,," Completed="N" chStart="0" chSplit1="1" chSplit2="1" chFinish="1" dtStart="10:34:20.123" dtSplit1="" dtSplit2="" dtFinish="" /><Result Type="T" Pen="52" Time="13   " Total="65   " TTBDiff="" TTBName="G. ŘÍHĚNÝ" Rank="" /></OnCourse></Canoe123>"#;
    // Time 100.00 with the better run's Pen 4 / Total 90.00: not self-consistent.
    const RESULTS_BR2_BIB9: &str = r#"<Canoe123 System="Main"><Results RaceId="K1M_ST_BR2_6" ClassId="K1M_ST" Current="N" MainTitle="K1m" SubTitle="1st and 2nd Run"><Row Number="1"><Participant Bib="9" Id="30034.K1M_ST" Name="HOLOČEK Čeněk" Club="VS Tábor" Nat="" GivenName="Čeněk" FamilyName="HOLOČEK" StartOrder="9" StartTime="10:34:00" /><Result Type="T" HeatNr="0" Q="" IRM="" Pen="4" Gates="" Time="100.00" Total="90.00" Rank="1" RankOrder="1" Behind="" PP="" /></Row></Results></Canoe123>"#;
    let d = daemon().await;
    d.running_event().await;
    let snapshot = d.running().merge.snapshot();
    let oncourse = parse_frame(ONCOURSE_BIB9_PEN52).expect("oncourse frame");
    let results = parse_frame(RESULTS_BR2_BIB9).expect("results frame");
    let seen_at = 1_000_000u64;
    let pen_applied = |after_ms: u64| {
        let mut live = LiveStream::new(Some(EV.into()), false);
        for m in &oncourse {
            let _ = live.on_message(m, seen_at, &snapshot);
        }
        let mut pens = Vec::new();
        for m in &results {
            for input in live.on_message(m, seen_at + after_ms, &snapshot) {
                if let Input::Results { updates, .. } = input {
                    pens.extend(updates.iter().map(|u| u.pen_s));
                }
            }
        }
        (pens, live.counters.br2_without_penalty)
    };
    assert_eq!(
        pen_applied(60_000),
        (vec![Some(Some(52))], 0),
        "penalty seen on course 60 000 ms before"
    );
    assert_eq!(
        pen_applied(60_001),
        (vec![], 1),
        "penalty seen on course 60 001 ms before"
    );
    d.stop().await;
}
