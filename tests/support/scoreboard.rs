//! The scoreboard tests' harness: the daemon with its scoreboard listener, the recording
//! played into its TCP port, a WebSocket reader, and a model of c123-scoreboard's client.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use c123_live::app::{App, RunningApp};
use c123_live::c123::recording::Recording;
use c123_live::scoreboard::ScoreboardSettings;
use c123_live::settings::Settings;
use c123_live::store::Synchronous;
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;

use super::{fixture_xml, MASTER};

pub const EV: &str = "jarni-2024";
pub const BR2: &str = "K1M_ST_BR2_6";

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub struct Daemon {
    pub app: Option<RunningApp>,
    pub api: String,
    pub board: String,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
}

/// The daemon with `--event` (and a TCP port), or else with an XML folder (`xml/` in its
/// temp dir): the direct mode where sources feed the event of the folder's export.
pub async fn start(event: Option<&str>, scoreboard: ScoreboardSettings) -> Daemon {
    let dir = tempfile::tempdir().expect("tempdir");
    let xml_dir = dir.path().join("xml");
    std::fs::create_dir(&xml_dir).expect("xml dir");
    let app = App::start(Settings {
        xml_dir: event.is_none().then_some(xml_dir),
        db: dir.path().join("live.db"),
        synchronous: Synchronous::Off,
        listen: "127.0.0.1:0".parse().expect("addr"),
        // A source needs an event to feed (`--event`, or the `--xml-dir` export's).
        tcp_listen: event.map(|_| "127.0.0.1:0".parse().expect("addr")),
        event: event.map(str::to_owned),
        http: super::settings(),
        scoreboard: ScoreboardSettings {
            listen: Some("127.0.0.1:0".parse().expect("addr")),
            ..scoreboard
        },
        ..Settings::default()
    })
    .await
    .expect("daemon starts");
    Daemon {
        api: format!("http://{}", app.local_addr),
        board: format!("{}", app.scoreboard_addr.expect("second listener")),
        app: Some(app),
        http: reqwest::Client::new(),
        dir,
    }
}

impl Daemon {
    pub async fn get(&self, base: &str, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{base}{path}"))
            .send()
            .await
            .expect("GET");
        let st = r.status().as_u16();
        (st, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn api(&self, path: &str) -> Value {
        let (st, v) = self.get(&self.api, path).await;
        assert_eq!(st, 200, "{path}: {v}");
        v
    }

    pub async fn board(&self, path: &str) -> (u16, Value) {
        self.get(&format!("http://{}", self.board), path).await
    }

    pub async fn send(&self, method: reqwest::Method, path: &str, key: (&str, &str), body: Value) {
        let r = self
            .http
            .request(method, format!("{}{path}", self.api))
            .header(key.0, key.1)
            .json(&body)
            .send()
            .await
            .expect("request");
        let st = r.status().as_u16();
        assert!(
            (200..300).contains(&st),
            "{path}: {st} {:?}",
            r.text().await
        );
    }

    /// Once the folder has created `event_id`, moves it to `startlist` with the master key:
    /// scoreboards serve public events only.
    pub async fn publish(&self, event_id: &str) {
        let merge = &self.app.as_ref().expect("running").merge;
        super::wait::eventually(
            merge,
            "the event from the folder",
            Duration::from_secs(15),
            |s| s.event(event_id).is_some(),
        )
        .await;
        let path = format!("/api/v1/admin/events/{event_id}/status");
        self.send(
            reqwest::Method::PATCH,
            &path,
            ("X-Master-Key", MASTER),
            json!({"status": "startlist"}),
        )
        .await;
    }

    /// The fixture event, imported and running.
    pub async fn running_event(&self) {
        let r = self
            .http
            .post(format!("{}/api/v1/admin/events", self.api))
            .header("X-Master-Key", MASTER)
            .json(&json!({"eventId": EV, "mainTitle": "Jarní slalom"}))
            .send()
            .await
            .expect("create");
        assert_eq!(r.status().as_u16(), 201);
        let body: Value = r.json().await.expect("json");
        let key = body["apiKey"].as_str().expect("apiKey").to_owned();
        let ingest = reqwest::Method::POST;
        self.send(
            ingest,
            "/api/v1/ingest/xml",
            ("X-API-Key", &key),
            json!({"xml": fixture_xml()}),
        )
        .await;
        for s in ["startlist", "running"] {
            let path = format!("/api/v1/admin/events/{EV}/status");
            self.send(
                reqwest::Method::PATCH,
                &path,
                ("X-API-Key", &key),
                json!({"status": s}),
            )
            .await;
        }
    }

    pub async fn connect(&self) -> Ws {
        let url = format!("ws://{}/ws?clientId=finish-tv", self.board);
        tokio_tungstenite::connect_async(url).await.expect("ws").0
    }

    pub async fn stop(mut self) {
        if let Some(app) = self.app.take() {
            app.stop().await;
        }
    }
}

/// The next JSON message within `wait`; `None` on silence.
pub async fn next(ws: &mut Ws, wait: Duration) -> Option<Value> {
    loop {
        match tokio::time::timeout(wait, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return Some(serde_json::from_str(&t).expect("json")),
            Ok(Some(Ok(_))) => continue,
            _ => return None,
        }
    }
}

/// The real recording into the daemon's TCP port at `speed`; returns when all is written.
pub async fn play(addr: std::net::SocketAddr, speed: f64) -> tokio::net::TcpStream {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/jarni-2024.tcp.jsonl"
    ))
    .expect("recording");
    let recording = Recording::parse(&text).expect("parses");
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let start = tokio::time::Instant::now();
    for f in &recording.frames {
        let at = start + Duration::from_secs_f64(f.ts_ms as f64 / 1000.0 / speed);
        tokio::time::sleep_until(at).await;
        s.write_all(f.data.as_bytes()).await.expect("write");
        s.write_all(b"|").await.expect("write");
    }
    s
}

/// A scoreboard as c123-scoreboard's `C123ServerProvider` and its context read the messages:
/// only riders with a `dtStart`; a list replaces the old one when `total` says it is whole;
/// the current competitor is the one longest on course; `Results` of another race than the
/// active one (the current competitor's, else the last one) are ignored; a rider whose
/// `dtFinish` appears is highlighted when the next accepted `Results` contains them.
#[derive(Default, Debug)]
pub struct BoardModel {
    pub on_course: Vec<Value>,
    pub current: Option<Value>,
    pub active_race: Option<String>,
    pub last_race: Option<String>,
    pub race: Option<String>,
    pub rows: Vec<Value>,
    pub pending: Option<String>,
    pub highlighted: Vec<String>,
}

impl BoardModel {
    pub fn apply(&mut self, m: &Value) {
        let d = &m["data"];
        match m["type"].as_str() {
            Some("OnCourse") => {
                let started: Vec<Value> = d["competitors"]
                    .as_array()
                    .expect("competitors")
                    .iter()
                    .filter(|c| c["dtStart"].as_str().is_some_and(|s| !s.is_empty()))
                    .cloned()
                    .collect();
                let partial = d["total"].as_u64().expect("total") as usize > started.len();
                assert!(!partial, "every OnCourse is a whole list: {d}");
                let current = started
                    .iter()
                    .min_by_key(|c| c["dtStart"].as_str().unwrap_or_default().to_owned())
                    .cloned();
                if let (Some(prev), Some(cur)) = (&self.current, &current) {
                    if prev["bib"] == cur["bib"]
                        && prev["dtFinish"].is_null()
                        && !cur["dtFinish"].is_null()
                    {
                        self.pending = cur["bib"].as_str().map(str::to_owned);
                    }
                }
                // The context also sees a finish on a rider who is not the current one.
                for c in &started {
                    let before = self.on_course.iter().find(|p| p["bib"] == c["bib"]);
                    if before.is_some_and(|p| p["dtFinish"].is_null()) && !c["dtFinish"].is_null() {
                        self.pending = c["bib"].as_str().map(str::to_owned);
                    }
                }
                self.active_race = current
                    .as_ref()
                    .and_then(|c| c["raceId"].as_str())
                    .map(str::to_owned);
                if self.active_race.is_some() {
                    self.last_race.clone_from(&self.active_race);
                }
                self.current = current;
                self.on_course = started;
            }
            Some("Results") => {
                let race = d["raceId"].as_str().expect("raceId").to_owned();
                let target = self.active_race.clone().or(self.last_race.clone());
                if target.is_some_and(|t| t != race) {
                    return;
                }
                self.rows = d["rows"].as_array().expect("rows").clone();
                if let Some(bib) = self.pending.take() {
                    if self.rows.iter().any(|r| r["bib"] == bib.as_str()) {
                        self.highlighted.push(bib);
                    }
                }
                self.race = Some(race);
            }
            _ => {}
        }
    }
}

/// `bib → row` of the phones' results for a race.
pub async fn phone_rows(d: &Daemon, race: &str) -> BTreeMap<String, Value> {
    let v = d.api(&format!("/api/v1/events/{EV}/results/{race}")).await;
    v["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| (r["bib"].to_string(), r.clone()))
        .collect()
}

pub fn secs(cs: &Value) -> Value {
    match cs.as_i64() {
        Some(cs) => json!(format!("{}.{:02}", cs / 100, cs % 100)),
        None => json!(""),
    }
}

/// The merged REST rows equal the phones' best-run rows, field by field (ms = cs × 10,
/// penalty seconds = cs / 100). Returns how many rows had a second run.
pub async fn assert_merged_equals_phones(d: &Daemon) -> usize {
    let (st, merged) = d
        .board(&format!("/api/xml/races/{BR2}/results?merged=true"))
        .await;
    assert_eq!(st, 200, "{merged}");
    assert_eq!(merged["merged"], true);
    assert_eq!(merged["classId"], "K1M_ST");
    let phones = phone_rows(d, BR2).await;
    let rows = merged["results"].as_array().expect("results");
    assert_eq!(rows.len(), phones.len());
    let ms = |v: &Value| v.as_i64().map(|cs| json!(cs * 10)).unwrap_or(Value::Null);
    let pen = |v: &Value| v.as_i64().map(|cs| json!(cs / 100)).unwrap_or(Value::Null);
    let or_null = |v: &Value| if v.is_null() { Value::Null } else { v.clone() };
    let mut second_runs = 0;
    for r in rows {
        let bib = r["bib"].as_str().expect("bib");
        let p = &phones[bib];
        assert_eq!(
            or_null(&r["bestTotal"]),
            ms(&p["totalTotal"]),
            "bib {bib} bestTotal"
        );
        assert_eq!(or_null(&r["bestRank"]), p["rnk"], "bib {bib} bestRank");
        assert_eq!(
            or_null(&r["run1"]["total"]),
            ms(&p["prevTotal"]),
            "bib {bib} run1"
        );
        assert_eq!(
            or_null(&r["run1"]["pen"]),
            pen(&p["prevPen"]),
            "bib {bib} run1 pen"
        );
        if r["run2"].as_object().is_some_and(|o| !o.is_empty()) {
            second_runs += 1;
            assert_eq!(
                or_null(&r["run2"]["time"]),
                ms(&p["time"]),
                "bib {bib} run2 time"
            );
            assert_eq!(
                or_null(&r["run2"]["pen"]),
                pen(&p["pen"]),
                "bib {bib} run2 pen"
            );
            assert_eq!(
                or_null(&r["run2"]["total"]),
                ms(&p["total"]),
                "bib {bib} run2 total"
            );
        }
    }
    second_runs
}

/// Waits for a message of `kind` (other kinds are skipped); `None` after `wait`.
pub async fn next_of(ws: &mut Ws, kind: &str, wait: Duration) -> Option<Value> {
    let until = Instant::now() + wait;
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        match next(ws, left).await {
            Some(m) if m["type"] == kind => return Some(m),
            Some(_) => {}
            None => return None,
        }
    }
    None
}
