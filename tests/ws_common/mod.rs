//! Shared harness for the WebSocket tests: a real merge loop on a real SQLite file, the hub,
//! and a minimal hyper server that routes `GET /api/v1/events/{id}/ws` to the hub.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use c123_live::hub::{Hub, HubConfig, WireBuilder};
use c123_live::merge::{
    self, AdminCommand, Input, MergeHandle, MergeSettings, ResultUpdate, Via, XmlOrigin, XmlTarget,
};
use c123_live::model::{Event, EventStatus, OnCourseEntry, Race};
use c123_live::shutdown::Shutdown;
use c123_live::store::{Store, Synchronous};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Wire stand-in for the tests until `http::wire` is merged: the same shapes (names,
/// centiseconds), reduced to what the hub needs.
pub struct TestWire;

fn cs(ms: Option<i64>) -> Value {
    ms.map_or(Value::Null, |v| json!(v / 10))
}

impl WireBuilder for TestWire {
    fn event_detail(&self, e: &Event) -> Value {
        json!({
            "event": {"eventId": e.header.event_id, "mainTitle": e.header.meta.main_title,
                      "status": e.header.status.as_str()},
            "classes": e.classes.values().map(|c| json!({"classId": c.class_id, "name": c.name,
                "categories": c.categories.iter().map(|k| json!({"catId": k.cat_id, "name": k.name})).collect::<Vec<_>>()}))
                .collect::<Vec<_>>(),
            "races": e.races.values().map(|r| json!({"raceId": r.race_id, "classId": r.class_id,
                "raceType": r.race_type(), "raceOrder": r.race_order, "startTime": r.start_time,
                "raceStatus": r.race_status})).collect::<Vec<_>>(),
            "categories": [],
        })
    }

    fn race_results(&self, e: &Event, race_id: &str) -> Option<Vec<Value>> {
        let race = e.races.get(race_id)?;
        let ids: Vec<String> = match Race::best_run_partner(race_id) {
            Some((a, b)) if race.race_type().starts_with("best-run") => vec![a, b],
            _ => vec![race_id.to_owned()],
        };
        let mut by_pid: BTreeMap<&str, Vec<&c123_live::model::ResultRow>> = BTreeMap::new();
        for id in &ids {
            for r in e.race_results(id) {
                by_pid.entry(r.participant_id.as_str()).or_default().push(r);
            }
        }
        let mut rows: Vec<(Option<i64>, Value)> = by_pid
            .into_iter()
            .map(|(pid, runs)| {
                let cur = runs[runs.len() - 1];
                let prev = (runs.len() > 1).then(|| runs[0]);
                let best = runs.iter().filter(|r| r.is_rankable()).filter_map(|r| r.total_ms).min();
                let name = e.participants.get(pid).map(|p| p.display_name()).unwrap_or_default();
                (best, json!({"bib": cur.bib, "name": name, "time": cs(cur.time_ms),
                    "pen": cur.pen_s.map(|p| p * 100), "total": cs(cur.total_ms), "status": cur.status,
                    "prevTime": prev.and_then(|p| p.time_ms).map(|v| v / 10),
                    "totalTotal": cs(best)}))
            })
            .collect();
        rows.sort_by_key(|(best, _)| best.unwrap_or(i64::MAX));
        Some(
            rows.into_iter()
                .enumerate()
                .map(|(i, (best, mut v))| {
                    v["rnk"] = if best.is_some() {
                        json!(i + 1)
                    } else {
                        Value::Null
                    };
                    v
                })
                .collect(),
        )
    }

    fn oncourse(&self, e: &Event) -> Value {
        Value::Array(
            e.oncourse
                .iter()
                .map(|o| json!({"raceId": o.race_id, "bib": o.bib, "name": o.name, "position": o.position,
                    "time": cs(o.time_ms)}))
                .collect(),
        )
    }
}

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub merge: MergeHandle,
    pub hub: Hub,
    pub addr: SocketAddr,
    pub shutdown: Shutdown,
    pub hub_task: tokio::task::JoinHandle<()>,
}

pub const EV: &str = "EV";

pub fn fixture() -> Vec<u8> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/jarni-2024.xml");
    std::fs::read(path).expect("fixture")
}

pub async fn start(cfg: HubConfig) -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("live.db"), Synchronous::Off).expect("store");
    let (merge, _join) = merge::start(store, MergeSettings::default()).expect("merge");
    let shutdown = Shutdown::new();
    let (hub, hub_task) = Hub::start(cfg, Arc::new(TestWire), &merge, shutdown.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server_hub = hub.clone();
    let server_shutdown = shutdown.clone();
    tokio::spawn(async move {
        loop {
            let (sock, _) = tokio::select! {
                r = listener.accept() => match r { Ok(s) => s, Err(_) => continue },
                _ = server_shutdown.cancelled() => return,
            };
            let hub = server_hub.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let hub = hub.clone();
                        async move {
                            let path = req.uri().path().to_owned();
                            let id = path
                                .strip_prefix("/api/v1/events/")
                                .and_then(|p| p.strip_suffix("/ws"))
                                .map(str::to_owned);
                            let resp = match id {
                                Some(id) => hub.upgrade(req, &id),
                                None => {
                                    let mut r = hyper::Response::new(http_body_util::Full::new(
                                        bytes::Bytes::new(),
                                    ));
                                    *r.status_mut() = hyper::StatusCode::NOT_FOUND;
                                    r
                                }
                            };
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(sock), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    Harness {
        dir,
        merge,
        hub,
        addr,
        shutdown,
        hub_task,
    }
}

impl Harness {
    /// Creates `EV` from the real fixture and opens it to spectators (`running`).
    pub async fn running_event(&self) {
        let export = c123_live::xml::parse_export(&fixture()).expect("parse");
        self.merge
            .send(Input::Xml {
                target: XmlTarget::ByExport {
                    event_id: Some(EV.into()),
                },
                export: Box::new(export),
                origin: XmlOrigin::Cli,
            })
            .await
            .expect("import");
        self.transition(EventStatus::Startlist).await;
        self.transition(EventStatus::Running).await;
    }

    pub async fn transition(&self, to: EventStatus) {
        self.merge
            .send(Input::Admin(AdminCommand::Transition {
                event_id: EV.into(),
                to,
            }))
            .await
            .expect("transition");
    }

    /// A first-run result of one rider with a new time (a single-result update).
    pub async fn update_result(&self, race_id: &str, participant_id: &str, time_ms: i64) {
        self.merge
            .send(Input::Results {
                event_id: EV.into(),
                updates: vec![ResultUpdate {
                    race_id: race_id.into(),
                    participant_id: participant_id.into(),
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

    pub async fn oncourse(&self, n: usize, tag: u32) {
        let entries = (0..n)
            .map(|i| OnCourseEntry {
                participant_id: None,
                race_id: "C1M_ST_BR1_6".into(),
                bib: i as u32 + 1,
                name: format!("RIDER {i} with a long enough name to weigh something {tag}"),
                club: Some("Club".into()),
                position: i as u32 + 1,
                gates: vec![Some(0); 20],
                dt_start: None,
                dt_finish: None,
                time_ms: Some(tag as i64 * 10),
                pen_s: Some(0),
                total_ms: None,
                rank: None,
                ttb_diff: None,
                ttb_name: None,
            })
            .collect();
        self.merge
            .send(Input::OnCourse {
                event_id: EV.into(),
                entries,
                via: Via::Tcp,
            })
            .await
            .expect("oncourse");
    }

    /// Some `(race_id, participant_id)` of the event.
    pub fn some_row(&self, race_id: &str) -> (String, String) {
        let snap = self.merge.snapshot();
        let ev = snap.event(EV).expect("event");
        let row = ev.race_results(race_id).next().expect("row");
        (row.race_id.clone(), row.participant_id.clone())
    }

    pub fn url(&self, query: &str) -> String {
        format!("ws://{}/api/v1/events/{EV}/ws{query}", self.addr)
    }

    pub async fn connect(&self, query: &str) -> Ws {
        let (ws, _) = tokio_tungstenite::connect_async(self.url(query))
            .await
            .expect("connect");
        ws
    }

    pub fn epoch(&self) -> String {
        self.merge.snapshot().epoch.clone()
    }

    pub fn seq(&self) -> u64 {
        self.merge.snapshot().event(EV).map_or(0, |e| e.header.seq)
    }
}

/// Next text message as JSON (skips control frames), with an upper bound on the wait.
pub async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .expect("timed out waiting for a message")
            .expect("stream ended")
            .expect("ws error");
        match msg {
            Message::Text(t) => return serde_json::from_str(t.as_str()).expect("json"),
            Message::Close(c) => panic!("unexpected close {c:?}"),
            _ => {}
        }
    }
}

/// Next text message, raw length and JSON.
pub async fn next_text(ws: &mut Ws) -> (usize, Value) {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .expect("timed out waiting for a message")
            .expect("stream ended")
            .expect("ws error");
        if let Message::Text(t) = msg {
            return (t.len(), serde_json::from_str(t.as_str()).expect("json"));
        }
    }
}

/// Reads until the server's close frame; returns its code and reason.
pub async fn expect_close(ws: &mut Ws, within: Duration) -> (u16, String) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("no close in time");
        match msg {
            Some(Ok(Message::Close(Some(frame)))) => {
                let _ = ws.close(None).await;
                return (u16::from(frame.code), frame.reason.to_string());
            }
            Some(Ok(Message::Close(None))) => return (1005, String::new()),
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("error before close: {e}"),
            None => panic!("stream ended without a close frame"),
        }
    }
}

pub async fn send_ignored(ws: &mut Ws) {
    let _ = ws.send(Message::Text("hello".into())).await;
}

/// The HTTP status of a refused upgrade.
pub async fn refused_status(url: &str) -> Option<u16> {
    match tokio_tungstenite::connect_async(url).await {
        Ok(_) => None,
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Some(resp.status().as_u16()),
        Err(e) => panic!("unexpected error {e}"),
    }
}
