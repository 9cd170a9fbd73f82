//! Every existing limit and timer at its DEFAULT value (issue 11, class-level guard), against
//! the real daemon (`app::App::start` with the settings `serve` resolves from no flags):
//! real SQLite file, HTTP and WebSocket on 127.0.0.1 port 0, real clients.
//!
//! Each check asserts both sides of its bound (not closed / not refused before the default,
//! closed / refused at it), so a changed default fails here. The slow timers run concurrently
//! inside one test ([`all_timers_at_their_defaults`], named so that it starts first), so the
//! file takes about as long as the slowest of them (15 s ping + 10 s pong timeout, ~25 s).

mod wscommon;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use c123_live::app::{App, RunningApp as Running};
use c123_live::config::{FileConfig, ServeArgs};
use c123_live::merge::{Input, ResultUpdate, Via};
use c123_live::shutdown::Shutdown;
use c123_live::store::Synchronous;
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use wscommon::{expect_close, next_json, Ws};

const MASTER: &str = "limits-master-key-0123456789";
const EV: &str = "LIM";
const RACE: &str = "C1M_ST_BR1_6";
const MIB: usize = 1024 * 1024;

/// The real daemon as `serve` runs it with no flags except a master key, a port-0 listen
/// address and a database file in a temporary directory (`synchronous=off` only to keep
/// the test fast; it is not a bound).
struct Daemon {
    running: Option<Running>,
    shutdown: Shutdown,
    addr: SocketAddr,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

async fn daemon_with(tweak: impl FnOnce(&mut ServeArgs)) -> Daemon {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut args = ServeArgs {
        listen: Some("127.0.0.1:0".parse().expect("addr")),
        master_keys: vec![MASTER.into()],
        ..ServeArgs::default()
    };
    tweak(&mut args);
    let mut settings = c123_live::config::resolve(&args, &FileConfig::default()).expect("config");
    settings.db = dir.path().join("live.db");
    settings.synchronous = Synchronous::Off;
    let running = App::start(settings).await.expect("daemon");
    let shutdown = running.shutdown().clone();
    let addr = running.local_addr;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .pool_idle_timeout(Duration::from_secs(3))
        .build()
        .expect("client");
    Daemon {
        running: Some(running),
        shutdown,
        addr,
        http,
        _dir: dir,
    }
}

async fn daemon() -> Daemon {
    daemon_with(|_| {}).await
}

impl Daemon {
    fn running(&self) -> &Running {
        self.running.as_ref().expect("running")
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn ws_url(&self) -> String {
        format!("ws://{}/api/v1/events/{EV}/ws", self.addr)
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        header: (&str, &str),
        body: Value,
    ) -> (u16, Value) {
        let r = self
            .http
            .request(method, self.url(path))
            .header(header.0, header.1)
            .json(&body)
            .send()
            .await
            .expect("request");
        let st = r.status().as_u16();
        (st, r.json().await.unwrap_or(Value::Null))
    }

    /// `EV` created through the admin API, the real export imported with its key, and
    /// opened to spectators (`running`). Returns the event's API key.
    async fn running_event(&self) -> String {
        self.running_event_from(&fixture_xml()).await
    }

    /// As [`Daemon::running_event`] with another export.
    async fn running_event_from(&self, xml: &str) -> String {
        let (st, b) = self
            .send(
                reqwest::Method::POST,
                "/api/v1/admin/events",
                ("X-Master-Key", MASTER),
                json!({"eventId": EV, "mainTitle": "Limits"}),
            )
            .await;
        assert_eq!(st, 201, "{b}");
        let key = b["apiKey"].as_str().expect("apiKey").to_owned();
        let (st, b) = self
            .send(
                reqwest::Method::POST,
                "/api/v1/ingest/xml",
                ("X-API-Key", &key),
                json!({ "xml": xml }),
            )
            .await;
        assert_eq!(st, 200, "{b}");
        for to in ["startlist", "running"] {
            self.transition(&key, to).await;
        }
        key
    }

    async fn transition(&self, key: &str, to: &str) {
        let (st, b) = self
            .send(
                reqwest::Method::PATCH,
                &format!("/api/v1/admin/events/{EV}/status"),
                ("X-API-Key", key),
                json!({ "status": to }),
            )
            .await;
        assert_eq!(st, 200, "{b}");
    }

    /// A result change of `participant` in `race` (a new time each call).
    async fn bump(&self, race: &str, participant: &str, time_ms: i64) {
        self.running()
            .merge
            .send(Input::Results {
                event_id: EV.into(),
                updates: vec![ResultUpdate {
                    race_id: race.into(),
                    participant_id: participant.into(),
                    time_ms: Some(Some(time_ms)),
                    pen_s: Some(Some(2)),
                    total_ms: Some(Some(time_ms + 2000)),
                    status: Some(None),
                    ..ResultUpdate::default()
                }],
                via: Via::Tcp,
            })
            .await
            .expect("results");
    }

    /// Participants with a row in [`RACE`].
    fn participants(&self) -> Vec<String> {
        let snap = self.running().merge.snapshot();
        let ev = snap.event(EV).expect("event");
        ev.race_results(RACE)
            .map(|r| r.participant_id.clone())
            .collect()
    }

    fn seq(&self) -> u64 {
        self.running()
            .merge
            .snapshot()
            .event(EV)
            .map_or(0, |e| e.header.seq)
    }

    fn epoch(&self) -> String {
        self.running().merge.snapshot().epoch.clone()
    }

    /// One sample of `/metrics` as name → value (labels kept in the name).
    async fn metrics(&self) -> std::collections::HashMap<String, f64> {
        let text = self
            .http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text");
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (name, value) = l.rsplit_once(' ')?;
                Some((name.to_owned(), value.parse().ok()?))
            })
            .collect()
    }

    async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await;
        }
    }
}

/// The value of the first metric whose name contains `part`.
fn metric(m: &std::collections::HashMap<String, f64>, part: &str) -> f64 {
    m.iter()
        .find(|(k, _)| k.contains(part))
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("metric {part} missing"))
}

fn fixture_xml() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/jarni-2024.xml"
    ))
    .expect("fixture")
}

/// A three-rider export (one race): cheap commits for the tests that need thousands of them.
const SMALL_RACE: &str = "K1M_QUA_1";
const SMALL_PARTICIPANT: &str = "1.K1M";

fn small_xml() -> String {
    let p = |id: &str, bib: u32, fam: &str| {
        format!("<Participants><Id>{id}</Id><ClassId>K1M</ClassId><EventBib>{bib}</EventBib><FamilyName>{fam}</FamilyName><GivenName>G</GivenName><CatId>SEN</CatId></Participants>")
    };
    let r = |id: &str, bib: u32| {
        format!("<Results><RaceId>{SMALL_RACE}</RaceId><Id>{id}</Id><Bib>{bib}</Bib><StartOrder>{bib}</StartOrder></Results>")
    };
    format!(
        r#"<?xml version="1.0" standalone="yes"?>
<Canoe123Data xmlns="http://siwidata.com/Canoe123/Data.xsd">
{}{}{}
<Classes><ClassId>K1M</ClassId><Class>K1M</Class><Categories><CatId>SEN</CatId><Category>Senior</Category></Categories></Classes>
<Schedule><RaceId>{SMALL_RACE}</RaceId><ClassId>K1M</ClassId><DisId>QUA</DisId><RaceOrder>1</RaceOrder><CourseNr>1</CourseNr></Schedule>
{}{}{}
<CourseData><CourseNr>1</CourseNr><CourseConfig>NNRN</CourseConfig></CourseData>
<Events><EventId>{EV}</EventId><MainTitle>Small</MainTitle></Events>
</Canoe123Data>"#,
        p("1.K1M", 1, "ALPHA"),
        p("2.K1M", 2, "BETA"),
        p("3.K1M", 3, "GAMMA"),
        r("1.K1M", 1),
        r("2.K1M", 2),
        r("3.K1M", 3)
    )
}

async fn connect_ws(url: &str) -> Ws {
    tokio_tungstenite::connect_async(url)
        .await
        .expect("connect")
        .0
}

// ---------------------------------------------------------------------------------------
// Timers (run concurrently in one test).

/// The default timers together; each check is its own task, the test fails with every
/// failing check named.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn all_timers_at_their_defaults() {
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

// ---------------------------------------------------------------------------------------
// Sizes and counts.

/// `?since=N` inside the last 1024 diffs is replayed diff by diff; one older is a `full`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_resume_ring_keeps_1024_diffs() {
    let d = daemon().await;
    d.running_event_from(&small_xml()).await;
    // A spectator keeps the room, and so its ring, alive.
    let mut keeper = connect_ws(&d.ws_url()).await;
    let s0 = next_json(&mut keeper).await["seq"].as_u64().expect("seq");
    let n = 1100u64;
    for i in 0..n {
        d.bump(SMALL_RACE, SMALL_PARTICIPANT, 90_000 + i as i64 * 10)
            .await;
    }
    // The hub has processed every change once the keeper has seen the last one.
    let last = s0 + n;
    loop {
        let m = next_json(&mut keeper).await;
        if m["seq"].as_u64() == Some(last) {
            break;
        }
    }
    assert_eq!(d.seq(), last);
    let epoch = d.epoch();
    let base = d.ws_url();
    // Oldest replayable: exactly 1024 diffs.
    let mut r = connect_ws(&format!("{base}?since={}&epoch={epoch}", last - 1024)).await;
    for k in 1..=1024u64 {
        let m = next_json(&mut r).await;
        assert_eq!(
            (m["type"].as_str(), m["seq"].as_u64()),
            (Some("diff"), Some(last - 1024 + k)),
            "replayed message {k}"
        );
    }
    // One more missed than the ring holds: a full, never a partial replay.
    let mut o = connect_ws(&format!("{base}?since={}&epoch={epoch}", last - 1025)).await;
    let m = next_json(&mut o).await;
    assert_eq!(
        (m["type"].as_str(), m["seq"].as_u64()),
        (Some("full"), Some(last))
    );
    drop((keeper, r, o));
    d.stop().await;
}

/// The per-client queue holds 256 KiB: 256 messages of 1 KiB fit, the 257th overflows (its
/// pending diffs are then replaced by one `full`). The hub's real queue, without sockets.
#[test]
fn ws_client_queue_holds_256_kib() {
    use c123_live::hub::bench::Queues;
    let q = Queues::new(1);
    let msg: tokio_tungstenite::tungstenite::Utf8Bytes = "x".repeat(1024).into();
    for i in 0..256 {
        assert_eq!(
            q.publish(std::slice::from_ref(&msg)),
            0,
            "message {i} overflowed below 256 KiB"
        );
    }
    assert_eq!(
        q.publish(std::slice::from_ref(&msg)),
        1,
        "257 KiB did not overflow"
    );
    assert_eq!(q.drain(), 256);
}

/// Bodies: 1 MiB for JSON requests, 10 MiB for `/ingest/xml`; exactly the limit is read,
/// one byte more is 413.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_limits_1_mib_and_10_mib() {
    let d = daemon().await;
    let key = d.running_event().await;
    // Raw requests: past the limit the server answers 413 from the declared length and
    // closes, so the body write may fail; only the answer counts.
    let addr = d.addr;
    let post = |path: &'static str, ct: &'static str, body: Vec<u8>| {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\ncontent-type: {ct}\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        async move {
            let sock = TcpStream::connect(addr).await.expect("connect");
            let (mut rd, mut wr) = sock.into_split();
            let writer = tokio::spawn(async move {
                if wr.write_all(head.as_bytes()).await.is_ok() {
                    let _ = wr.write_all(&body).await;
                }
                wr
            });
            let mut got = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(60), rd.read_to_end(&mut got)).await;
            drop(writer.await);
            let text = String::from_utf8_lossy(&got).into_owned();
            let status = text
                .get(9..12)
                .and_then(|s| s.parse::<u16>().ok())
                .unwrap_or(0);
            (status, text)
        }
    };
    let padded = |prefix: &str, len: usize| {
        let mut b = prefix.as_bytes().to_vec();
        assert!(b.len() <= len);
        b.resize(len, b' ');
        b
    };
    let results = r#"{"results": []}"#;
    let (st, b) = post(
        "/api/v1/ingest/results",
        "application/json",
        padded(results, MIB),
    )
    .await;
    assert_eq!(st, 200, "exactly 1 MiB: {b}");
    let (st, b) = post(
        "/api/v1/ingest/results",
        "application/json",
        padded(results, MIB + 1),
    )
    .await;
    assert_eq!(st, 413, "1 MiB + 1: {b}");
    assert!(b.contains("PayloadTooLarge"), "{b}");

    let xml = fixture_xml();
    let (st, b) = post(
        "/api/v1/ingest/xml",
        "application/xml",
        padded(&xml, 10 * MIB),
    )
    .await;
    assert_eq!(st, 200, "exactly 10 MiB: {b}");
    let (st, b) = post(
        "/api/v1/ingest/xml",
        "application/xml",
        padded(&xml, 10 * MIB + 1),
    )
    .await;
    assert_eq!(st, 413, "10 MiB + 1: {b}");
    assert!(b.contains("PayloadTooLarge"), "{b}");
    d.stop().await;
}

/// `/ingest/oncourse` takes at most 1000 items, `/ingest/results` at most 10 000: the cap is
/// accepted, one more is a 400 naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_item_caps_1000_and_10000() {
    let d = daemon().await;
    let key = d.running_event().await;
    let pids = d.participants();
    let oncourse = |n: usize| {
        let items: Vec<Value> = (0..n)
            .map(|i| {
                json!({"participantId": pids[i % pids.len()], "raceId": RACE,
                       "bib": i + 1, "position": i + 1})
            })
            .collect();
        json!({ "oncourse": items })
    };
    let (st, b) = d
        .send(
            reqwest::Method::POST,
            "/api/v1/ingest/oncourse",
            ("X-API-Key", &key),
            oncourse(1000),
        )
        .await;
    assert_eq!(st, 200, "1000 on-course items: {b}");
    let (st, b) = d
        .send(
            reqwest::Method::POST,
            "/api/v1/ingest/oncourse",
            ("X-API-Key", &key),
            oncourse(1001),
        )
        .await;
    assert_eq!(st, 400, "1001 on-course items: {b}");
    assert!(b["message"].as_str().unwrap_or("").contains("1000"), "{b}");

    let results = |n: usize| {
        let items: Vec<Value> = (0..n)
            .map(|i| json!({"raceId": RACE, "participantId": pids[i % pids.len()], "bib": i + 1, "time": 9000}))
            .collect();
        json!({ "results": items })
    };
    let (st, b) = d
        .send(
            reqwest::Method::POST,
            "/api/v1/ingest/results",
            ("X-API-Key", &key),
            results(10_000),
        )
        .await;
    assert_eq!(st, 200, "10 000 result items: {b}");
    let (st, b) = d
        .send(
            reqwest::Method::POST,
            "/api/v1/ingest/results",
            ("X-API-Key", &key),
            results(10_001),
        )
        .await;
    assert_eq!(st, 400, "10 001 result items: {b}");
    assert!(b["message"].as_str().unwrap_or("").contains("10000"), "{b}");
    d.stop().await;
}

/// An event image is at most 1 MiB decoded: exactly 1 MiB is accepted, one byte more is
/// refused naming `imageData`. (Through the API a 1 MiB image cannot arrive at all: its
/// base64 is 1.33 MiB, over the 1 MiB body limit; see the report in RELIABILITY.md.)
#[test]
fn event_image_limit_1_mib() {
    use base64::Engine;
    use c123_live::http::routes::decode_image;
    let png = |len: usize| {
        let mut b = b"\x89PNG\r\n\x1a\n".to_vec();
        b.resize(len, 0);
        base64::engine::general_purpose::STANDARD.encode(&b)
    };
    assert!(decode_image(&png(MIB)).is_ok(), "exactly 1 MiB refused");
    let err = decode_image(&png(MIB + 1)).expect_err("1 MiB + 1 accepted");
    assert!(format!("{err:?}").contains("imageData"), "{err:?}");
}

/// A Canoe123 source (connect mode) may send frames of up to 4 MiB: a frame of exactly 4 MiB
/// is read (and counted), one of 4 MiB + 1 ends the session with a stream error and the
/// source reconnects after the default 1 s back-off (not before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_frame_limit_4_mib() {
    let fake = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let fake_addr = fake.local_addr().expect("addr");
    let d = daemon_with(|a| {
        a.c123 = Some(fake_addr.to_string());
        a.event = Some(EV.into());
    })
    .await;
    d.running_event().await;
    let status = d.running().sources[0].clone();
    let snapshot = move || {
        let s = status.lock().expect("status");
        (
            s.frames_total,
            s.parse_errors,
            s.connections,
            s.last_error.clone(),
        )
    };
    let tod = "<Canoe123 System=\"Main\"><TimeOfDay>19:04:20</TimeOfDay></Canoe123>";
    let frame_of = |len: usize| {
        let mut b = tod.as_bytes().to_vec();
        b.resize(len, b' ');
        b.push(b'|');
        b
    };
    let (mut s, _) = fake.accept().await.expect("accept");
    // Exactly the limit: one frame, parsed.
    s.write_all(&frame_of(4 * MIB)).await.expect("write");
    let deadline = Instant::now() + Duration::from_secs(20);
    while snapshot().0 < 1 {
        assert!(
            Instant::now() < deadline,
            "4 MiB frame not read: {:?}",
            snapshot()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (frames, errors, conns, _) = snapshot();
    assert_eq!((frames, errors, conns), (1, 0, 1), "after the 4 MiB frame");
    // One byte over: the session ends; the daemon closes the socket.
    let _ = s.write_all(&frame_of(4 * MIB + 1)).await;
    let mut sink = vec![0u8; 64 * 1024];
    let closed = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match s.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    let dropped = Instant::now();
    assert!(closed.is_ok(), "over-long frame did not end the session");
    // The source records why the session ended just after dropping the socket.
    let deadline = Instant::now() + Duration::from_secs(5);
    let last_error = loop {
        let e = snapshot().3.unwrap_or_default();
        if e.contains("stream error") || Instant::now() > deadline {
            break e;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(last_error.contains("stream error"), "{last_error}");
    let (mut again, _) = tokio::time::timeout(Duration::from_secs(10), fake.accept())
        .await
        .expect("no reconnect within 10 s")
        .expect("accept");
    let backoff = dropped.elapsed();
    eprintln!("tcp frame: over-long frame error {last_error:?}, reconnect after {backoff:?}");
    assert!(
        backoff >= Duration::from_millis(900) && backoff <= Duration::from_millis(1_800),
        "reconnected after {backoff:?}, expected the 1 s minimum back-off"
    );
    again.write_all(&frame_of(100)).await.expect("write");
    let deadline = Instant::now() + Duration::from_secs(10);
    while snapshot().0 < 2 {
        assert!(Instant::now() < deadline, "frame after reconnect not read");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(snapshot().2, 2);
    d.stop().await;
}

/// 1000 WebSocket clients per client address (here the `X-Forwarded-For` address behind a
/// trusted proxy, so the per-address HTTP connection cap, also 1000, does not fire first):
/// the 1000th is accepted, the 1001st is refused; another address still connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_per_address_cap_1000() {
    let d = daemon_with(|a| a.trusted_proxies = vec!["127.0.0.1".parse().expect("ip")]).await;
    d.running_event().await;
    let url = d.ws_url();
    let connect_as = |ip: &'static str| {
        let url = url.clone();
        async move {
            use tokio_tungstenite::tungstenite::client::IntoClientRequest;
            let mut req = url.into_client_request().expect("request");
            req.headers_mut()
                .insert("x-forwarded-for", ip.parse().expect("header"));
            match tokio_tungstenite::connect_async(req).await {
                Ok((ws, _)) => Ok(ws),
                Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
                Err(e) => panic!("connect: {e}"),
            }
        }
    };
    let mut clients = Vec::new();
    for i in 0..1000 {
        match connect_as("10.9.9.9").await {
            Ok(ws) => clients.push(ws),
            Err(st) => panic!("client {} refused with {st} below the cap", i + 1),
        }
    }
    // Every client reads its `full` in the background so no socket backs up.
    let readers: Vec<_> = clients
        .into_iter()
        .map(|mut ws| {
            tokio::spawn(async move {
                while let Some(Ok(m)) = ws.next().await {
                    if matches!(m, Message::Close(_)) {
                        break;
                    }
                }
            })
        })
        .collect();
    let refused = connect_as("10.9.9.9").await.err();
    assert!(
        matches!(refused, Some(429) | Some(503)),
        "1001st client from one address: {refused:?}"
    );
    assert!(
        connect_as("10.9.9.10").await.is_ok(),
        "another address refused"
    );
    for r in readers {
        r.abort();
    }
    d.stop().await;
}

/// 1000 open HTTP connections per client address: the 1000th is served, the 1001st is
/// answered 503 and closed; another address is still served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_connections_per_address_cap_1000() {
    let d = daemon().await;
    let from = |ip: &str| {
        let local: SocketAddr = format!("{ip}:0").parse().expect("addr");
        let server = d.addr;
        async move {
            let sock = tokio::net::TcpSocket::new_v4().expect("socket");
            sock.bind(local).expect("bind");
            sock.connect(server).await.expect("connect")
        }
    };
    let mut held = Vec::new();
    for _ in 0..1000 {
        held.push(from("127.0.0.2").await);
    }
    // The 1000th is served (a complete request on it gets its answer).
    let last = held.last_mut().expect("held");
    last.write_all(b"GET /api/v1/events HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 12];
    last.read_exact(&mut buf).await.expect("answer");
    assert_eq!(&buf, b"HTTP/1.1 200", "1000th connection");
    // The 1001st is refused at once.
    let mut over = from("127.0.0.2").await;
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), over.read_to_end(&mut got)).await;
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("HTTP/1.1 503"),
        "1001st connection: {text}"
    );
    // Another address is not affected.
    let mut other = from("127.0.0.3").await;
    other
        .write_all(b"GET /api/v1/events HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    other.read_exact(&mut buf).await.expect("answer");
    assert_eq!(&buf, b"HTTP/1.1 200", "other address");
    drop(held);
    d.stop().await;
}

/// A client message of 4096 bytes is read and discarded; one of 4097 ends the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_client_message_limit_4096() {
    use futures_util::SinkExt;
    let d = daemon().await;
    d.running_event().await;
    let pid = d.participants().into_iter().next().expect("participant");
    let mut ws = connect_ws(&d.ws_url()).await;
    let s = next_json(&mut ws).await["seq"].as_u64().expect("seq");
    ws.send(Message::Text("x".repeat(4096).into()))
        .await
        .expect("send 4096");
    d.bump(RACE, &pid, 91_230).await;
    let m = next_json(&mut ws).await;
    assert_eq!(
        (m["type"].as_str(), m["seq"].as_u64()),
        (Some("diff"), Some(s + 1)),
        "still connected after a 4096-byte message"
    );
    let _ = ws.send(Message::Text("x".repeat(4097).into())).await;
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "a 4097-byte message did not end the connection"
    );
    d.stop().await;
}

/// Resume also keeps at most 4 MiB of diffs per event: with ~38 KiB diffs the ring holds
/// the longest suffix that fits in 4 MiB (fewer than 1024), and one diff more is a `full`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_resume_ring_keeps_4_mib() {
    let d = daemon().await;
    d.running_event_from(&small_xml()).await;
    let mut keeper = connect_ws(&d.ws_url()).await;
    let s0 = next_json(&mut keeper).await["seq"].as_u64().expect("seq");
    let pid = SMALL_PARTICIPANT.to_owned();
    // Each diff carries an on-course list of 30 riders (~38 KiB): 4 MiB hold ~100 of them.
    let n = 140u64;
    let mut lens = Vec::new();
    for i in 0..n {
        let entries = (0..30u32)
            .map(|k| c123_live::model::OnCourseEntry {
                participant_id: Some(pid.clone()),
                race_id: SMALL_RACE.into(),
                bib: k + 1,
                name: format!("RIDER {k} with a long enough name to weigh something {i}"),
                club: Some("Club".into()),
                position: k + 1,
                gates: vec![Some(0); 20],
                dt_start: None,
                dt_finish: None,
                time_ms: Some(i as i64 * 10),
                pen_s: Some(0),
                total_ms: None,
                rank: None,
                ttb_diff: None,
                ttb_name: None,
            })
            .collect();
        d.running()
            .merge
            .send(Input::OnCourse {
                event_id: EV.into(),
                entries,
                via: Via::Tcp,
            })
            .await
            .expect("oncourse");
        let (len, m) = wscommon::next_text(&mut keeper).await;
        assert_eq!(m["seq"].as_u64(), Some(s0 + i + 1));
        assert_eq!(m["type"], "diff");
        lens.push(len);
    }
    let last = s0 + n;
    // The longest suffix of diffs whose bytes fit in 4 MiB.
    let mut kept = 0usize;
    let mut bytes = 0usize;
    for len in lens.iter().rev() {
        if bytes + len > 4 * MIB {
            break;
        }
        bytes += len;
        kept += 1;
    }
    eprintln!(
        "ring bytes: diffs of {} B, {kept} fit in 4 MiB",
        lens[lens.len() - 1]
    );
    assert!(
        kept < n as usize && kept < 1024,
        "the byte bound must be the one that binds"
    );
    let epoch = d.epoch();
    let base = d.ws_url();
    let since = last - kept as u64;
    let mut r = connect_ws(&format!("{base}?since={since}&epoch={epoch}")).await;
    for k in 1..=kept as u64 {
        let m = next_json(&mut r).await;
        assert_eq!(
            (m["type"].as_str(), m["seq"].as_u64()),
            (Some("diff"), Some(since + k)),
            "replayed message {k} of {kept}"
        );
    }
    let mut o = connect_ws(&format!("{base}?since={}&epoch={epoch}", since - 1)).await;
    let m = next_json(&mut o).await;
    assert_eq!(
        (m["type"].as_str(), m["seq"].as_u64()),
        (Some("full"), Some(last)),
        "one diff more than 4 MiB hold"
    );
    drop((keeper, r, o));
    d.stop().await;
}

/// Static files (`--static-dir`) are gzipped from 512 bytes up to 8 MiB: 511 and 8 MiB + 1
/// are sent as they are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_gzip_from_512_bytes_to_8_mib() {
    let site = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        site.path().join("index.html"),
        "<!doctype html><title>x</title>",
    )
    .expect("index");
    let text = |len: usize| "abcdefgh".repeat(len / 8 + 1)[..len].to_owned();
    for (name, len) in [
        ("s511.txt", 511),
        ("s512.txt", 512),
        ("b8m.txt", 8 * MIB),
        ("b8m1.txt", 8 * MIB + 1),
    ] {
        std::fs::write(site.path().join(name), text(len)).expect("write");
    }
    let dir = site.path().to_owned();
    let d = daemon_with(move |a| a.static_dir = Some(dir)).await;
    for (name, gzipped) in [
        ("s511.txt", false),
        ("s512.txt", true),
        ("b8m.txt", true),
        ("b8m1.txt", false),
    ] {
        let r = d
            .http
            .get(d.url(&format!("/{name}")))
            .header("accept-encoding", "gzip")
            .send()
            .await
            .expect("GET");
        assert_eq!(r.status().as_u16(), 200, "{name}");
        let enc = r
            .headers()
            .get("content-encoding")
            .map(|v| v.to_str().unwrap_or("").to_owned());
        assert_eq!(enc.as_deref() == Some("gzip"), gzipped, "{name}: {enc:?}");
    }
    d.stop().await;
}

/// An XML export may be 64 MiB (folder and command-line imports; HTTP caps it at 10 MiB):
/// exactly 64 MiB parses, one byte more is refused.
#[test]
fn xml_export_limit_64_mib() {
    let limit = 64 * MIB;
    // The real export, then a comment that brings the document to exactly the limit.
    let mut doc = fixture_xml().into_bytes();
    doc.extend_from_slice(b"<!--");
    doc.resize(limit - 3, b'x');
    doc.extend_from_slice(b"-->");
    assert_eq!(doc.len(), limit);
    let export = c123_live::xml::parse_export(&doc);
    assert!(export.is_ok(), "exactly 64 MiB: {:?}", export.err());
    doc.push(b' ');
    let err = c123_live::xml::parse_export(&doc).expect_err("64 MiB + 1 accepted");
    assert!(err.to_string().contains("over the limit"), "{err}");
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

/// A Canoe123 frame may nest 16 elements deep; the 17th level is refused.
#[test]
fn tcp_frame_nesting_16() {
    use c123_live::c123::frame::{parse_frame, FrameError};
    let nested = |depth: usize| {
        format!(
            "<Canoe123 System=\"Main\">{}{}</Canoe123>",
            "<X>".repeat(depth - 1),
            "</X>".repeat(depth - 1)
        )
    };
    let ok = parse_frame(&nested(16));
    assert!(ok.is_ok(), "16 levels: {ok:?}");
    assert_eq!(
        parse_frame(&nested(17)).err(),
        Some(FrameError::TooDeep { limit: 16 })
    );
}

/// Error messages quote a bad value up to 64 characters, then cut it with `…` (hostile values
/// can be megabytes).
#[test]
fn tcp_frame_error_quotes_64_characters() {
    use c123_live::c123::frame::parse_frame;
    let error_for = |value: &str| {
        let frame = format!(
            "<Canoe123 System=\"Main\"><OnCourse Total=\"{value}\" Position=\"0\" /></Canoe123>"
        );
        parse_frame(&frame).expect_err("bad Total").to_string()
    };
    let v64 = "é".repeat(64);
    let e = error_for(&v64);
    assert!(
        e.contains(&format!("\"{v64}\"")),
        "64 characters quoted whole: {e}"
    );
    let v65 = "é".repeat(65);
    let e = error_for(&v65);
    assert!(
        e.contains(&format!("\"{v64}…\"")),
        "65 characters cut at 64: {e}"
    );
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

/// The merge loop's input queue holds 1024 inputs: while the loop is stuck in a commit
/// (another connection holds the database's write lock), 1024 more inputs are queued at
/// once and the 1025th waits (back-pressure: nothing is dropped); it is queued as soon as the
/// loop moves on. The real loop on a real SQLite file, without the daemon's 1 s ticker,
/// whose ticks would take queue slots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_input_queue_holds_1024() {
    use c123_live::merge::{AdminCommand, MergeSettings, XmlOrigin, XmlTarget};
    use c123_live::model::EventStatus;
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("live.db");
    let store = c123_live::store::Store::open(&db, Synchronous::Off).expect("store");
    let (merge, _join) = c123_live::merge::start(store, MergeSettings::default()).expect("merge");
    let export = c123_live::xml::parse_export(small_xml().as_bytes()).expect("export");
    merge
        .send(Input::Xml {
            target: XmlTarget::ByExport {
                event_id: Some(EV.into()),
            },
            export: Box::new(export),
            origin: XmlOrigin::Cli,
        })
        .await
        .expect("import");
    for to in [EventStatus::Startlist, EventStatus::Running] {
        merge
            .send(Input::Admin(AdminCommand::Transition {
                event_id: EV.into(),
                to,
            }))
            .await
            .expect("transition");
    }
    // Hold the write lock until told to let go (well within the 5 s busy timeout).
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let locker = std::thread::spawn(move || {
        let conn = rusqlite::Connection::open(&db).expect("open");
        conn.execute_batch("BEGIN IMMEDIATE").expect("lock");
        locked_tx.send(()).expect("signal");
        let _ = release_rx.recv_timeout(Duration::from_secs(4));
        conn.execute_batch("ROLLBACK").expect("unlock");
    });
    locked_rx.recv().expect("locked");
    let result = |time_ms: i64| Input::Results {
        event_id: EV.into(),
        updates: vec![ResultUpdate {
            race_id: SMALL_RACE.into(),
            participant_id: SMALL_PARTICIPANT.into(),
            time_ms: Some(Some(time_ms)),
            pen_s: Some(Some(0)),
            total_ms: Some(Some(time_ms)),
            status: Some(None),
            ..ResultUpdate::default()
        }],
        via: Via::Tcp,
    };
    // The loop takes this one and waits for the lock inside its commit.
    merge.submit(result(95_000)).await.expect("submit");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    for i in 0..1024 {
        let queued = tokio::time::timeout(Duration::from_secs(1), merge.submit(Input::Tick)).await;
        assert!(queued.is_ok(), "input {} of 1024 not queued at once", i + 1);
    }
    let filled_in = started.elapsed();
    let over = tokio::time::timeout(Duration::from_millis(800), merge.submit(Input::Tick)).await;
    assert!(
        over.is_err(),
        "a 1025th input was queued while the loop was stuck"
    );
    release_tx.send(()).expect("release");
    let queued = tokio::time::timeout(Duration::from_secs(10), merge.submit(Input::Tick)).await;
    assert!(queued.is_ok(), "not queued after the loop moved on");
    tokio::task::spawn_blocking(move || locker.join().expect("locker"))
        .await
        .expect("join");
    // Everything queued is handled, the stuck commit included.
    merge.send(Input::Tick).await.expect("tick");
    let time = merge
        .snapshot()
        .event(EV)
        .and_then(|e| e.result(SMALL_RACE, SMALL_PARTICIPANT).cloned())
        .and_then(|r| r.time_ms);
    eprintln!("input queue: 1024 queued in {filled_in:?} behind a stuck commit");
    assert_eq!(time, Some(95_000));
}

/// The daemon binary as a child process: its sockets count against its own descriptor limit,
/// so this test can hold 10 000 connections to it (a loopback connection inside one process
/// costs two descriptors, and the hard limit here is 20 000).
struct ChildDaemon(std::process::Child);

impl Drop for ChildDaemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_daemon_process(db: &std::path::Path) -> (ChildDaemon, SocketAddr) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_c123-live"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--master-key",
            MASTER,
            "--db",
        ])
        .arg(db)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn daemon");
    let stderr = child.stderr.take().expect("stderr");
    let child = ChildDaemon(child);
    let mut lines = std::io::BufReader::new(stderr).lines();
    let addr = loop {
        let Some(Ok(line)) = lines.next() else {
            panic!("daemon exited before it was up")
        };
        if line.contains("c123-live is up") {
            let at = line.find("addr=").expect("addr in log") + 5;
            let addr = line[at..].split_whitespace().next().expect("addr");
            break addr.trim_matches('"').parse().expect("socket address");
        }
    };
    // Keep draining the log so the daemon never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}

/// A WebSocket upgrade by hand from `local` (an address of 127/8); returns the socket and the
/// status code of the answer. The socket is kept open and never read again.
async fn raw_upgrade(server: SocketAddr, local: std::net::IpAddr) -> (TcpStream, u16) {
    let sock = tokio::net::TcpSocket::new_v4().expect("socket");
    sock.bind(SocketAddr::new(local, 0)).expect("bind");
    let mut s = sock.connect(server).await.expect("connect");
    let req = format!(
        "GET /api/v1/events/{EV}/ws HTTP/1.1\r\nHost: {server}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut head = [0u8; 12];
    s.read_exact(&mut head).await.expect("status line");
    let code = std::str::from_utf8(&head[9..12])
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (s, code)
}

/// 10 000 WebSocket clients per event, against the daemon binary with its defaults: ten
/// client addresses (127.0.0.2..=11) hold 1000 each (the per-address caps, also defaults),
/// all 10 000 are upgraded, and the 10 001st, from an eleventh address, is refused with 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_per_event_cap_10000() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_child, addr) = spawn_daemon_process(&dir.path().join("live.db"));
    // The event, over the child's HTTP API.
    let http = reqwest::Client::new();
    let send =
        |method: reqwest::Method, path: String, header: (&'static str, String), body: Value| {
            let req = http
                .request(method, format!("http://{addr}{path}"))
                .header(header.0, header.1)
                .json(&body);
            async move {
                let r = req.send().await.expect("request");
                let st = r.status().as_u16();
                (st, r.json::<Value>().await.unwrap_or(Value::Null))
            }
        };
    let (st, b) = send(
        reqwest::Method::POST,
        "/api/v1/admin/events".into(),
        ("X-Master-Key", MASTER.into()),
        json!({"eventId": EV, "mainTitle": "Cap"}),
    )
    .await;
    assert_eq!(st, 201, "{b}");
    let key = b["apiKey"].as_str().expect("apiKey").to_owned();
    let (st, b) = send(
        reqwest::Method::POST,
        "/api/v1/ingest/xml".into(),
        ("X-API-Key", key.clone()),
        json!({ "xml": small_xml() }),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    for to in ["startlist", "running"] {
        let (st, b) = send(
            reqwest::Method::PATCH,
            format!("/api/v1/admin/events/{EV}/status"),
            ("X-API-Key", key.clone()),
            json!({ "status": to }),
        )
        .await;
        assert_eq!(st, 200, "{b}");
    }
    let started = Instant::now();
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(200));
    let mut tasks = Vec::new();
    for a in 2..=11u8 {
        for _ in 0..1000 {
            let gate = gate.clone();
            tasks.push(tokio::spawn(async move {
                let _permit = gate.acquire_owned().await.expect("permit");
                raw_upgrade(addr, std::net::Ipv4Addr::new(127, 0, 0, a).into()).await
            }));
        }
    }
    let mut held = Vec::with_capacity(tasks.len());
    for (i, t) in tasks.into_iter().enumerate() {
        let (sock, code) = t.await.expect("upgrade task");
        assert_eq!(code, 101, "client {} of 10 000", i + 1);
        held.push(sock);
    }
    let connected_in = started.elapsed();
    let (_over, code) = raw_upgrade(addr, std::net::Ipv4Addr::new(127, 0, 0, 12).into()).await;
    eprintln!("per-event cap: 10 000 upgraded in {connected_in:?}, the next one answered {code}");
    assert_eq!(code, 503, "10 001st client of the event");
    drop(held);
}
