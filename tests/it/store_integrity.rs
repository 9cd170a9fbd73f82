//! Store integrity (issue 11, finding 1): a gate value no timing system can mean is refused at
//! every input, what is stored reads back identical, and one bad row in the database never
//! stops start-up (it is logged, skipped and reported in `GET /api/v1/admin/status`).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use c123_live::c123::frame::parse_frame;
use c123_live::ingest::tcp::{self, TcpSettings};
use c123_live::merge::{self, MergeSettings, XmlOrigin, XmlTarget};
use c123_live::shutdown::Shutdown;
use c123_live::store::{Store, Synchronous};
use serde_json::json;

const BR2: &str = "K1M_ST_BR2_6";
const BIB1: &str = "12054.K1M_ST";

/// Opens the server's database a second time (WAL allows it) and loads it exactly as the
/// daemon does at start-up.
fn reload(db: &Path) -> Result<c123_live::store::Loaded, String> {
    let store = Store::open(db, Synchronous::Off).map_err(|e| e.to_string())?;
    store.load().map_err(|e| e.to_string())
}

async fn running_event(s: &crate::support::Server) -> String {
    let key = s.create_event("ev").await;
    let (st, body) = s.import_fixture(&key).await;
    assert_eq!(st, 200, "{body}");
    s.walk_to("ev", &key, "running").await;
    key
}

#[tokio::test]
async fn results_gate_penalty_over_999_is_refused_naming_the_field() {
    let s = crate::support::start().await;
    let key = running_event(&s).await;
    let seq = s.merge.snapshot().event("ev").unwrap().header.seq;
    let (st, body) = s
        .post_ingest(
            "/api/v1/ingest/results",
            &key,
            json!({"results": [{"raceId": BR2, "participantId": BIB1, "bib": 1,
                "gates": [{"gate": 1, "pen": 1000}, {"gate": 2, "pen": 20}]}]}),
        )
        .await;
    assert_eq!(st, 400, "{body}");
    assert_eq!(body["error"], "InvalidRequest");
    let msg = body["message"].as_str().unwrap();
    assert!(msg.contains("results[0].gates[0].pen"), "{msg}");
    assert_eq!(s.merge.snapshot().event("ev").unwrap().header.seq, seq);
    // 999, the largest value the export's 3-character slot holds, is accepted and reads back.
    let (st, body) = s
        .post_ingest(
            "/api/v1/ingest/results",
            &key,
            json!({"results": [{"raceId": BR2, "participantId": BIB1, "bib": 1,
                "gates": [{"gate": 1, "pen": 999}, {"gate": 3, "pen": 50}]}]}),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    let loaded = reload(&s.db_path()).expect("the database loads after the ingest");
    let row = loaded.events["ev"].result(BR2, BIB1).unwrap().clone();
    assert_eq!(row.gates.0, vec![Some(999), None, Some(50)]);
}

#[tokio::test]
async fn oncourse_gate_penalty_over_999_is_refused_naming_the_field() {
    let s = crate::support::start().await;
    let key = running_event(&s).await;
    let (st, body) = s
        .post_ingest(
            "/api/v1/ingest/oncourse",
            &key,
            json!({"oncourse": [{"participantId": BIB1, "raceId": BR2, "bib": 1,
                "gates": [0, 1000, 2]}]}),
        )
        .await;
    assert_eq!(st, 400, "{body}");
    let msg = body["message"].as_str().unwrap();
    assert!(msg.contains("oncourse[0].gates[1]"), "{msg}");
    // More slots than any course has: refused too.
    let (st, body) = s
        .post_ingest(
            "/api/v1/ingest/oncourse",
            &key,
            json!({"oncourse": [{"participantId": BIB1, "raceId": BR2, "bib": 1,
                "gates": vec![0; 65]}]}),
        )
        .await;
    assert_eq!(st, 400, "{body}");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("oncourse[0].gates"));
}

#[tokio::test]
async fn json_times_penalties_and_ranks_out_of_range_are_refused_naming_the_field() {
    let s = crate::support::start().await;
    let key = running_event(&s).await;
    let seq = s.merge.snapshot().event("ev").unwrap().header.seq;
    let row = |extra: serde_json::Value| {
        let mut r = json!({"raceId": BR2, "participantId": BIB1, "bib": 1});
        r.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json!({ "results": [r] })
    };
    // 24 h = 8 640 000 cs is the bound (model::MAX_TIME_MS); one more is refused.
    let cases = [
        (
            row(json!({"time": 8_640_001})),
            "results[0].time: 8640001 is over 8640000",
        ),
        (
            row(json!({"total": 4_294_967_295u32})),
            "results[0].total: 4294967295 is over",
        ),
        (
            row(json!({"pen": 8_640_100})),
            "results[0].pen: 8640100 is over 8640000",
        ),
        (
            row(json!({"rnk": 100_000})),
            "results[0].rnk: 100000 is over 99999",
        ),
        (
            row(json!({"time": -1})),
            "results[0].time: invalid value: integer `-1`, expected non-negative integer",
        ),
    ];
    for (body, want) in cases {
        let (st, resp) = s.post_ingest("/api/v1/ingest/results", &key, body).await;
        assert_eq!(st, 400, "{resp}");
        let msg = resp["message"].as_str().unwrap();
        assert!(msg.starts_with(want), "{msg} (wanted {want})");
    }
    assert_eq!(s.merge.snapshot().event("ev").unwrap().header.seq, seq);
    let (st, resp) = s
        .post_ingest(
            "/api/v1/ingest/results",
            &key,
            row(json!({"time": 8_640_000, "total": 8_640_000})),
        )
        .await;
    assert_eq!(st, 200, "{resp}");
    let (st, resp) = s
        .post_ingest(
            "/api/v1/ingest/oncourse",
            &key,
            json!({"oncourse": [{"participantId": BIB1, "raceId": BR2, "bib": 1, "time": 9_000_000}]}),
        )
        .await;
    assert_eq!(st, 400, "{resp}");
    assert!(
        resp["message"]
            .as_str()
            .unwrap()
            .starts_with("oncourse[0].time"),
        "{resp}"
    );
}

fn oncourse_frame(gates: &str) -> String {
    format!(
        r#"<Canoe123 System="Main"><OnCourse Total="1" Position="1"><Participant StartOrder="1" Bib="1" Id="{BIB1}" Name="KREJČÍ Jakub" Club="TJ DUKLA Praha" Nat="" Race="K1m - střední trať - 2. jízda" RaceId="{BR2}" Warning="" /><Result Type="C" Gates="{gates}" Completed="N" dtStart="16:14:00.000" dtFinish="" /><Result Type="T" Pen="4" Time="53" Total="57" Rank="8" /></OnCourse></Canoe123>"#
    )
}

#[test]
fn frame_gate_penalty_over_999_is_a_parse_error() {
    for gates in ["0,1000,20", "0,1000,2", "0,65535,2"] {
        let err = parse_frame(&oncourse_frame(gates)).expect_err(gates);
        assert!(err.to_string().contains("Gates"), "{gates}: {err}");
    }
    assert!(parse_frame(&oncourse_frame("0,999,50,,")).is_ok());
    // The fixed-width form (TCP Results, export): 3 characters cannot hold more than 999, but a
    // row of more slots than any course has is refused.
    // The stated bound (model::Gates::MAX_SLOTS).
    let slots = 64;
    assert!(c123_live::c123::frame::parse_fixed_width_gates(&"  0".repeat(slots)).is_ok());
    assert!(c123_live::c123::frame::parse_fixed_width_gates(&"  0".repeat(slots + 1)).is_err());
    assert!(c123_live::c123::frame::parse_comma_gates(&vec!["0"; slots].join(",")).is_ok());
    assert!(c123_live::c123::frame::parse_comma_gates(&vec!["0"; slots + 1].join(",")).is_err());
}

#[tokio::test]
async fn tcp_oncourse_frame_with_gate_1000_is_counted_and_ignored() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("live.db");
    let store = Store::open(&db, Synchronous::Off).unwrap();
    let (merge, _join) = merge::start(store, MergeSettings::default()).unwrap();
    c123_live::ingest::import_bytes(
        &merge,
        crate::support::fixture_xml().into_bytes(),
        XmlTarget::ByExport {
            event_id: Some("ev".into()),
        },
        XmlOrigin::Cli,
    )
    .await
    .unwrap();
    let shutdown = Shutdown::new();
    let (status, addr, _task) = tcp::spawn_listen(
        "127.0.0.1:0".parse().unwrap(),
        TcpSettings::new(Some("ev".into())),
        merge.clone(),
        shutdown.clone(),
    )
    .await
    .unwrap();
    let seq = merge.snapshot().event("ev").unwrap().header.seq;
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("{}|", oncourse_frame("0,1000,20")).as_bytes())
        .await
        .unwrap();
    // A good frame after it: once it is seen, the bad one was handled before it.
    s.write_all(b"<Canoe123 System=\"Main\"><TimeOfDay>10:00:00</TimeOfDay></Canoe123>|")
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let st = status.lock().unwrap().clone();
        if st.frames_by_type.contains_key("TimeOfDay") {
            assert_eq!(
                st.parse_errors, 1,
                "the frame with gate 1000 is a parse error"
            );
            break;
        }
        assert!(Instant::now() < deadline, "frames not processed: {st:?}");
        drop(st);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ev = merge.snapshot().event("ev").unwrap().clone();
    assert_eq!(ev.header.seq, seq, "nothing changed");
    reload(&db).expect("the database still loads");
    shutdown.cancel();
}

// ---------------------------------------------------------------------------------------------
// One bad row never stops start-up

const BIN: &str = env!("CARGO_BIN_EXE_c123-live");

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `serve` on the database; `Err` with the log when it exits instead of coming up.
fn serve(db: &Path) -> Result<(Daemon, String, String), String> {
    let mut child = Command::new(BIN)
        .args(["serve", "--dev", "--listen", "127.0.0.1:0", "--db"])
        .arg(db)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let child = Daemon(child);
    let mut lines = BufReader::new(stderr).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut log = String::new();
    let addr = loop {
        assert!(Instant::now() < deadline, "daemon did not come up:\n{log}");
        let Some(Ok(line)) = lines.next() else {
            return Err(log);
        };
        log.push_str(&line);
        log.push('\n');
        if line.contains("c123-live is up") {
            let at = line.find("addr=").expect("addr in log") + 5;
            break line[at..].split_whitespace().next().unwrap().to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Ok((child, addr, log))
}

fn get(addr: &str, path: &str) -> serde_json::Value {
    let out = get_text(addr, path);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// The body of `GET path`, as text.
fn get_text(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned()
}

#[test]
fn a_corrupt_row_is_skipped_logged_and_reported_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("live.db");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/jarni-2024.xml");
    let out = Command::new(BIN)
        .arg("import")
        .arg(&fixture)
        .arg("--db")
        .arg(&db)
        .args(["--event", "jarni"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Corrupt two rows by hand, as a disk error, an old release or a hand edit could.
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        let has_json_column: bool = conn
            .prepare("SELECT 1 FROM pragma_table_info('results') WHERE name = 'gates_json'")
            .unwrap()
            .exists([])
            .unwrap();
        // The form the old writer produced for gates [1000, 20]: unreadable as 3-char slots.
        let n = if has_json_column {
            conn.execute(
                "UPDATE results SET gates = '1000 20', gates_json = NULL
                 WHERE race_id = ?1 AND participant_id = ?2",
                [BR2, BIB1],
            )
        } else {
            conn.execute(
                "UPDATE results SET gates = '1000 20' WHERE race_id = ?1 AND participant_id = ?2",
                [BR2, BIB1],
            )
        }
        .unwrap();
        assert_eq!(n, 1);
        let n = conn
            .execute(
                "UPDATE participants SET members = 'not json' WHERE participant_id = '30034.K1M_ST'",
                [],
            )
            .unwrap();
        assert_eq!(n, 1);
    }

    let (_daemon, addr, log) = serve(&db).expect("the daemon starts despite two bad rows");
    assert_eq!(
        log.matches("skipped a stored row").count(),
        2,
        "each skipped row is logged:\n{log}"
    );
    let status = get(&addr, "/api/v1/admin/status");
    let skipped = &status["skippedRows"];
    assert_eq!(skipped["count"], 2, "{status}");
    let list = skipped["rows"].as_array().expect("rows listed");
    let text = serde_json::to_string(list).unwrap();
    assert!(text.contains("results") && text.contains(BIB1), "{text}");
    assert!(
        text.contains("participants") && text.contains("30034.K1M_ST"),
        "{text}"
    );
    assert!(text.contains("jarni"), "{text}");
    let metrics = get_text(&addr, "/metrics");
    assert!(
        metrics.lines().any(|l| l == "store_skipped_rows 2"),
        "the count is in /metrics"
    );
    // Everything else is served.
    let events = get(&addr, "/api/v1/admin/events");
    assert!(
        serde_json::to_string(&events)
            .unwrap()
            .contains("\"hasXmlData\":true"),
        "{events}"
    );
}

#[test]
fn a_version_2_database_migrates_and_keeps_its_fixed_width_gates() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("live.db");
    {
        // The schema as the previous release left it (user_version 2), with one result whose
        // gates are in the old fixed-width column.
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(include_str!("../../migrations/0001_init.sql"))
            .unwrap();
        conn.execute_batch(include_str!("../../migrations/0002_key_dates.sql"))
            .unwrap();
        conn.pragma_update(None, "user_version", 2).unwrap();
        conn.execute_batch(
            "INSERT INTO events (id, event_id, main_title, api_key, created_at)
                VALUES (1, 'old', 'Old event', 'k', '2026-01-01 00:00:00');
             INSERT INTO races (event_id, race_id) VALUES (1, 'R1');
             INSERT INTO participants (event_id, participant_id, family_name) VALUES (1, 'P1', 'A');
             INSERT INTO results (event_id, race_id, participant_id, gates, source, updated_at)
                VALUES (1, 'R1', 'P1', '  0  2 50  0  0300      ', 'xml', 'x');",
        )
        .unwrap();
    }
    let store = Store::open(&db, Synchronous::Off).expect("migrates");
    let version: i64 = store
        .connection()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    let newest = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "sql"))
        })
        .count() as i64;
    assert_eq!(
        version, newest,
        "every migration up to the newest was applied"
    );
    let loaded = store.load().unwrap();
    assert_eq!(loaded.skipped.count, 0);
    let row = loaded.events["old"].result("R1", "P1").unwrap();
    assert_eq!(
        row.gates.0,
        vec![Some(0), Some(2), Some(50), Some(0), Some(0), Some(300)]
    );
}
