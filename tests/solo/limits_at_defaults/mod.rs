//! Every existing limit and timer at its DEFAULT value (issue 11, class-level guard), against
//! the real daemon (`app::App::start` with the settings `serve` resolves from no flags):
//! real SQLite file, HTTP and WebSocket on 127.0.0.1 port 0, real clients.
//!
//! Each check asserts both sides of its bound (not closed / not refused before the default,
//! closed / refused at it), so a changed default fails here. The slow timers run concurrently
//! inside one test ([`all_timers_at_their_defaults`], named so that it starts first), so the
//! file takes about as long as the slowest of them (15 s ping + 10 s pong timeout, ~25 s).

mod caps;
mod queues;
mod sizes;
mod timers;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::support::ws::{expect_close, next_json, Ws};
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
