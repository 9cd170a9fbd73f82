//! Shared harness for the WebSocket tests: the daemon as `serve` wires it
//! (`app::App::start`: merge loop on a real SQLite file, hub, HTTP server) on 127.0.0.1 port 0.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use c123_live::app::App;
use c123_live::http::HttpSettings;
use c123_live::hub::{Hub, HubConfig, PublicWire};
use c123_live::merge::{AdminCommand, Input, MergeHandle, ResultUpdate, Via, XmlOrigin, XmlTarget};
use c123_live::model::{EventStatus, OnCourseEntry};
use c123_live::settings::Settings;
use c123_live::shutdown::Shutdown;
use c123_live::store::Synchronous;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub struct Harness {
    /// Holds the database's folder for the harness's life.
    _dir: tempfile::TempDir,
    pub merge: MergeHandle,
    pub hub: Hub,
    pub addr: SocketAddr,
    pub shutdown: Shutdown,
    /// Ends once `shutdown` fired and the daemon, hub included, stopped in order.
    pub hub_task: tokio::task::JoinHandle<()>,
}

pub const EV: &str = "EV";

pub fn fixture() -> Vec<u8> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/jarni-2024.xml");
    std::fs::read(path).expect("fixture")
}

pub async fn start(cfg: HubConfig) -> Harness {
    start_with(
        cfg,
        HttpSettings {
            master_keys: vec!["test-master-key-0123456789".into()],
            ..HttpSettings::default()
        },
    )
    .await
}

pub async fn start_with(cfg: HubConfig, settings: HttpSettings) -> Harness {
    start_with_wire(cfg, settings, Arc::new(PublicWire)).await
}

/// [`start_with`] with another wire builder (e.g. a deliberately slow one).
pub async fn start_with_wire(
    cfg: HubConfig,
    settings: HttpSettings,
    wire: Arc<dyn c123_live::hub::WireBuilder>,
) -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let running = App::start_with_wire(
        Settings {
            db: dir.path().join("live.db"),
            synchronous: Synchronous::Off,
            listen: "127.0.0.1:0".parse().expect("addr"),
            http: settings,
            hub: cfg,
            ..Settings::default()
        },
        wire,
    )
    .await
    .expect("daemon starts");
    let (merge, hub, addr) = (
        running.merge.clone(),
        running.hub.clone(),
        running.local_addr,
    );
    let shutdown = running.shutdown().clone();
    let stopped = shutdown.clone();
    let hub_task = tokio::spawn(async move {
        stopped.cancelled().await;
        running.stop().await;
    });
    Harness {
        _dir: dir,
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

    /// `GET` on the real REST API.
    pub async fn rest(&self, path: &str) -> Value {
        reqwest::get(format!("http://{}{path}", self.addr))
            .await
            .expect("GET")
            .json()
            .await
            .expect("json")
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

/// The frames of the next change: one frame, or all `parts` of a multi-frame diff (same
/// `seq`, `part` 1..=`parts`, in order).
pub async fn next_change(ws: &mut Ws) -> Vec<Value> {
    let mut frames: Vec<Value> = Vec::new();
    loop {
        let m = next_json(ws).await;
        let parts = m["parts"].as_u64().unwrap_or(1);
        let part = m["part"].as_u64().unwrap_or(1);
        assert_eq!(part as usize, frames.len() + 1, "parts in order: {m}");
        if let Some(first) = frames.first() {
            assert_eq!(first["seq"], m["seq"], "all parts share the seq");
        }
        frames.push(m);
        if part == parts {
            return frames;
        }
    }
}

/// The first frame of the next change (the whole message when it has one frame).
pub async fn next_msg(ws: &mut Ws) -> Value {
    next_change(ws)
        .await
        .into_iter()
        .next()
        .unwrap_or(Value::Null)
}
