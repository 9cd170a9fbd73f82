//! Crash safety: the real daemon binary on a real database, fed over HTTP, killed with
//! SIGKILL at random moments and restarted, many times. After every kill the database must
//! pass `PRAGMA integrity_check`, hold every input that was acknowledged (2xx), hold no
//! half-applied XML import, keep its epoch, and never move an event's `seq` backwards; a
//! WebSocket client reconnecting to the restarted daemon gets one `full` of that state.
//!
//! `cargo test --test it crash_safety::` runs a short round (a few kills); the long run is
//! `scripts/crash-harness.sh` (the ignored test below with `CRASH_ROUNDS`, `CRASH_SEED`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};

const EV: &str = "crash";
const EV_XML: &str = "crashxml";
const RACE: &str = "K1M_ST_BR1_6";

/// xorshift64*: a seeded RNG without dependencies, so a failing seed replays exactly.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn fixture() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/jarni-2024.xml"
    ))
    .expect("fixture")
}

/// The fixture with every `<Time>` one millisecond longer: the same rows, different values,
/// so a half-applied import would show as a mix of both versions.
fn variant(xml: &str) -> String {
    let mut out = String::with_capacity(xml.len());
    let mut rest = xml;
    while let Some(i) = rest.find("<Time>") {
        out.push_str(&rest[..i + 6]);
        rest = &rest[i + 6..];
        let end = rest.find('<').unwrap_or(0);
        match rest[..end].parse::<u64>() {
            Ok(v) => out.push_str(&(v + 1).to_string()),
            Err(_) => out.push_str(&rest[..end]),
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Daemon {
    child: Child,
    base: String,
}

async fn start_daemon(db: &Path, client: &reqwest::Client) -> Daemon {
    for _attempt in 0..5 {
        let port = free_port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_c123-live"))
            .args(["serve", "--dev", "--synchronous", "full", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--db")
            .arg(db)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("daemon binary");
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break; // port taken meanwhile, or a start-up failure: try again
            }
            if let Ok(r) = client.get(format!("{base}/readyz")).send().await {
                if r.status().is_success() {
                    return Daemon { child, base };
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("the daemon did not become ready on {}", db.display());
}

/// A failing round must not leave a daemon running behind the test.
impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Daemon {
    fn kill9(mut self) {
        // `Child::kill` is SIGKILL on Unix: no shutdown code runs.
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reaped");
    }
}

async fn post(
    client: &reqwest::Client,
    url: String,
    key: Option<&str>,
    body: Value,
) -> Option<(u16, Value)> {
    let mut rb = client.post(url).json(&body);
    if let Some(k) = key {
        rb = rb.header("X-API-Key", k);
    }
    let r = rb.send().await.ok()?;
    let st = r.status().as_u16();
    let v = r.json::<Value>().await.ok()?;
    Some((st, v))
}

/// What was acknowledged, and what may have been in flight when the daemon died.
#[derive(Default)]
struct Ledger {
    /// (participant) → last acknowledged `time_ms` and the last one sent.
    results: BTreeMap<String, (Option<i64>, Option<i64>)>,
    /// XML variant: last acknowledged and last sent (0 = fixture, 1 = variant).
    xml: (Option<usize>, Option<usize>),
    acked_results: u64,
    acked_xml: u64,
}

fn db_event_id(conn: &rusqlite::Connection, event: &str) -> i64 {
    conn.query_row("SELECT id FROM events WHERE event_id = ?1", [event], |r| {
        r.get(0)
    })
    .expect("event row")
}

/// (rows, sum of time_ms) of an event's results: one number per import version.
fn signature(conn: &rusqlite::Connection, event: &str) -> (i64, i64) {
    let id = db_event_id(conn, event);
    conn.query_row(
        "SELECT COUNT(*), COALESCE(SUM(time_ms), 0) FROM results WHERE event_id = ?1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap()
}

fn stored_time(conn: &rusqlite::Connection, pid: &str) -> Option<i64> {
    let id = db_event_id(conn, EV);
    conn.query_row(
        "SELECT time_ms FROM results WHERE event_id = ?1 AND race_id = ?2 AND participant_id = ?3",
        rusqlite::params![id, RACE, pid],
        |r| r.get(0),
    )
    .unwrap()
}

fn epoch(conn: &rusqlite::Connection) -> String {
    conn.query_row("SELECT value FROM meta WHERE key = 'epoch'", [], |r| {
        r.get(0)
    })
    .unwrap()
}

fn seq(conn: &rusqlite::Connection, event: &str) -> u64 {
    c123_live::store::stored_seq(conn, event)
        .unwrap()
        .expect("event present")
}

pub struct Report {
    pub rounds: usize,
    pub acked_results: u64,
    pub acked_xml: u64,
    pub kills_mid_xml: usize,
}

/// Runs `rounds` kill -9 cycles; panics on the first violated guarantee.
async fn run(rounds: usize, seed: u64) -> Report {
    let dir = tempfile::tempdir().unwrap();
    let db: PathBuf = dir.path().join("crash.db");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let mut rng = Rng(seed | 1);
    let xml = [fixture(), variant(&fixture())];

    // Set-up (not killed): two events, the export into both, one running for live results.
    let d = start_daemon(&db, &client).await;
    let mut keys = BTreeMap::new();
    for ev in [EV, EV_XML] {
        let (st, body) = post(
            &client,
            format!("{}/api/v1/admin/events", d.base),
            None,
            json!({"eventId": ev, "mainTitle": ev}),
        )
        .await
        .unwrap();
        assert_eq!(st, 201, "{body}");
        keys.insert(ev, body["apiKey"].as_str().unwrap().to_owned());
    }
    let mut sigs = Vec::new();
    for (i, x) in xml.iter().enumerate() {
        let (st, body) = post(
            &client,
            format!("{}/api/v1/ingest/xml", d.base),
            Some(&keys[EV_XML]),
            json!({"xml": x}),
        )
        .await
        .unwrap();
        assert_eq!(st, 200, "{body}");
        let conn = rusqlite::Connection::open(&db).unwrap();
        sigs.push(signature(&conn, EV_XML));
        assert!(i == 0 || sigs[0] != sigs[1], "variants differ");
    }
    let (st, body) = post(
        &client,
        format!("{}/api/v1/ingest/xml", d.base),
        Some(&keys[EV]),
        json!({"xml": xml[0]}),
    )
    .await
    .unwrap();
    assert_eq!(st, 200, "{body}");
    for to in ["startlist", "running"] {
        let r = client
            .patch(format!("{}/api/v1/admin/events/{EV}/status", d.base))
            .header("X-API-Key", &keys[EV])
            .json(&json!({"status": to}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }
    // The riders whose times the workload rewrites.
    let riders: Vec<(String, u32)> = {
        let conn = rusqlite::Connection::open(&db).unwrap();
        let id = db_event_id(&conn, EV);
        let mut stmt = conn
            .prepare("SELECT participant_id, bib FROM results WHERE event_id = ?1 AND race_id = ?2 AND bib IS NOT NULL ORDER BY participant_id LIMIT 6")
            .unwrap();
        stmt.query_map(rusqlite::params![id, RACE], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert!(riders.len() >= 3, "fixture has riders in {RACE}");
    let initial: BTreeMap<String, (Option<i64>, Option<i64>)> = {
        let conn = rusqlite::Connection::open(&db).unwrap();
        riders
            .iter()
            .map(|(pid, _)| {
                let t = stored_time(&conn, pid);
                (pid.clone(), (t, t))
            })
            .collect()
    };
    d.kill9();

    let (first_epoch, mut last_seq) = {
        let conn = rusqlite::Connection::open(&db).unwrap();
        (epoch(&conn), [seq(&conn, EV), seq(&conn, EV_XML)])
    };
    let ledger = Arc::new(Mutex::new(Ledger {
        xml: (Some(1), Some(1)),
        results: initial,
        ..Ledger::default()
    }));
    let mut counter: u32 = 1000;
    let mut kills_mid_xml = 0;

    for round in 0..rounds {
        let d = start_daemon(&db, &client).await;
        // The restarted daemon serves what the database holds.
        let status: Value = client
            .get(format!("{}/api/v1/admin/status", d.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            status["epoch"],
            first_epoch.as_str(),
            "round {round}: epoch kept"
        );
        for (i, ev) in [EV, EV_XML].iter().enumerate() {
            let s = status["events"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["eventId"] == *ev)
                .unwrap()["seq"]
                .as_u64()
                .unwrap();
            assert_eq!(s, last_seq[i], "round {round}: {ev} seq as stored");
        }

        // A spectator reconnecting after the crash, resuming from the seq before the last
        // change: the new process has no resume ring, so it must get one `full` of the
        // committed state (never a partial replay), with the database's epoch.
        for query in [
            String::new(),
            format!(
                "?since={}&epoch={first_epoch}",
                last_seq[0].saturating_sub(1)
            ),
        ] {
            let url = format!(
                "{}/api/v1/events/{EV}/ws{query}",
                d.base.replace("http://", "ws://")
            );
            let (mut ws, _) = tokio_tungstenite::connect_async(url)
                .await
                .expect("ws upgrade");
            let first = tokio::time::timeout(Duration::from_secs(10), ws.next())
                .await
                .expect("a first message")
                .expect("open")
                .expect("frame");
            let msg: Value = serde_json::from_str(first.to_text().unwrap()).unwrap();
            assert_eq!(
                msg["type"], "full",
                "round {round}: {query}: reconnect gets a full"
            );
            assert_eq!(
                msg["seq"].as_u64(),
                Some(last_seq[0]),
                "round {round}: full at the stored seq"
            );
            assert_eq!(
                msg["epoch"],
                first_epoch.as_str(),
                "round {round}: same epoch"
            );
            let _ = ws.close(None).await;
        }

        let acked_before = {
            let l = ledger.lock().unwrap();
            (l.acked_results, l.acked_xml)
        };
        // Live results: one request at a time, each a new time for one rider.
        let results_task = {
            let (client, base, key, ledger, riders) = (
                client.clone(),
                d.base.clone(),
                keys[EV].clone(),
                Arc::clone(&ledger),
                riders.clone(),
            );
            let start = counter;
            tokio::spawn(async move {
                let mut v = start;
                loop {
                    v += 1;
                    let (pid, bib) = &riders[v as usize % riders.len()];
                    ledger.lock().unwrap().results.get_mut(pid).unwrap().1 =
                        Some(i64::from(v) * 10);
                    let body = json!({"results": [{"raceId": RACE, "participantId": pid, "bib": bib, "time": v, "total": v}]});
                    match post(
                        &client,
                        format!("{base}/api/v1/ingest/results"),
                        Some(&key),
                        body,
                    )
                    .await
                    {
                        Some((200, b)) => {
                            assert_eq!(b["updated"], 1, "{b}");
                            let mut l = ledger.lock().unwrap();
                            l.results.get_mut(pid).unwrap().0 = Some(i64::from(v) * 10);
                            l.acked_results += 1;
                        }
                        Some((st, b)) => panic!("results refused: {st} {b}"),
                        None => return v,
                    }
                }
            })
        };
        // Whole exports, alternating between the two versions.
        let xml_task = {
            let (client, base, key, ledger, xml) = (
                client.clone(),
                d.base.clone(),
                keys[EV_XML].clone(),
                Arc::clone(&ledger),
                xml.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let next = 1 - ledger.lock().unwrap().xml.1.unwrap_or(1);
                    ledger.lock().unwrap().xml.1 = Some(next);
                    match post(
                        &client,
                        format!("{base}/api/v1/ingest/xml"),
                        Some(&key),
                        json!({"xml": xml[next]}),
                    )
                    .await
                    {
                        Some((200, _)) => {
                            let mut l = ledger.lock().unwrap();
                            l.xml.0 = Some(next);
                            l.acked_xml += 1;
                        }
                        Some((st, b)) => panic!("xml refused: {st} {b}"),
                        None => return,
                    }
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(50 + rng.below(1500))).await;
        d.kill9();
        counter = results_task.await.expect("results task");
        xml_task.await.expect("xml task");

        // The checks, on the database as the crash left it.
        let conn = rusqlite::Connection::open(&db).unwrap();
        let ok: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok", "round {round}: integrity");
        let fk: i64 = conn
            .query_row("SELECT COUNT(*) FROM pragma_foreign_key_check", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(fk, 0, "round {round}: foreign keys");
        assert_eq!(epoch(&conn), first_epoch, "round {round}: epoch");
        let l = ledger.lock().unwrap();
        for (pid, (acked, sent)) in &l.results {
            let stored = stored_time(&conn, pid);
            let ok = stored == *acked || stored == *sent;
            assert!(
                ok,
                "round {round}: {pid} stored {stored:?}, acknowledged {acked:?}, in flight {sent:?}"
            );
        }
        let sig = signature(&conn, EV_XML);
        let allowed: Vec<(i64, i64)> = [l.xml.0, l.xml.1]
            .iter()
            .flatten()
            .map(|i| sigs[*i])
            .collect();
        assert!(
            allowed.contains(&sig),
            "round {round}: export half-applied or lost: {sig:?} not in {allowed:?}"
        );
        if l.xml.0 != l.xml.1 {
            kills_mid_xml += 1;
        }
        let now = [seq(&conn, EV), seq(&conn, EV_XML)];
        for i in 0..2 {
            assert!(now[i] >= last_seq[i], "round {round}: seq went backwards");
        }
        if l.acked_results > acked_before.0 {
            assert!(
                now[0] > last_seq[0],
                "round {round}: acknowledged change without seq"
            );
        }
        if l.acked_xml > acked_before.1 {
            assert!(
                now[1] > last_seq[1],
                "round {round}: acknowledged import without seq"
            );
        }
        last_seq = now;
        // What was in flight is settled now: the database says which it was.
        drop(l);
        let mut l = ledger.lock().unwrap();
        let xml_now = if sig == sigs[0] { 0 } else { 1 };
        l.xml = (Some(xml_now), Some(xml_now));
        for (pid, entry) in l.results.iter_mut() {
            let stored = stored_time(&conn, pid);
            *entry = (stored, stored);
        }
    }
    let l = ledger.lock().unwrap();
    Report {
        rounds,
        acked_results: l.acked_results,
        acked_xml: l.acked_xml,
        kills_mid_xml,
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CI: a few kill -9 cycles on every `cargo test`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_acknowledged_input_short() {
    let r = run(4, env_or("CRASH_SEED", 0xC123)).await;
    // Under load a debug build may not finish a 2.4 MB import before a kill: the imports
    // interrupted mid-transaction are the interesting case and are checked either way.
    assert!(r.acked_results > 0, "the workload ran");
    assert!(r.acked_xml + r.kills_mid_xml as u64 > 0, "imports ran");
}

/// The long run: `scripts/crash-harness.sh` (CRASH_ROUNDS, default 200; CRASH_SEED).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: run with scripts/crash-harness.sh"]
async fn kill_9_loses_no_acknowledged_input_long() {
    let rounds = env_or("CRASH_ROUNDS", 200);
    let seed = env_or("CRASH_SEED", 0x5EED);
    let started = Instant::now();
    let r = run(rounds, seed).await;
    println!(
        "crash harness: {} kill -9 rounds (seed {seed:#x}) in {:.0} s: {} acknowledged result updates, {} acknowledged XML imports, {} kills with an import in flight; every check passed",
        r.rounds,
        started.elapsed().as_secs_f64(),
        r.acked_results,
        r.acked_xml,
        r.kills_mid_xml
    );
}
