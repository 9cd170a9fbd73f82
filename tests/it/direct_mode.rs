//! Direct mode as at a venue without an admin: `serve --xml-dir DIR --c123 HOST
//! --auto-status`. The event is created from the export, its lifecycle follows the TCP
//! schedule, results arrive, and the operator status shows the source and the watcher.

use std::path::Path;
use std::time::Duration;

use crate::support::wait::eventually;
use c123_live::app::App;
use c123_live::c123::recording::Recording;
use c123_live::config::{FileConfig, ServeArgs};
use c123_live::ingest::replay::{self, ReplaySettings};
use c123_live::model::EventStatus;
use c123_live::shutdown::Shutdown;
use serde_json::Value;

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

async fn get(addr: &std::net::SocketAddr, path: &str, key: Option<&str>) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut req = client.get(format!("http://{addr}{path}"));
    if let Some(k) = key {
        req = req.header("X-Master-Key", k);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xml_folder_and_canoe123_without_an_admin() {
    let dir = tempfile::tempdir().unwrap();
    let exports = dir.path().join("exports");
    std::fs::create_dir(&exports).unwrap();
    std::fs::copy(fixture("jarni-2024.xml"), exports.join("jarni.xml")).unwrap();

    // A fake Canoe123 playing the real recording fast.
    let shutdown = Shutdown::new();
    let fake = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fake_addr = fake.local_addr().unwrap();
    let recording =
        Recording::parse(&std::fs::read_to_string(fixture("jarni-2024.tcp.jsonl")).unwrap())
            .unwrap();

    let args = ServeArgs {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        xml_dir: Some(exports.clone()),
        c123: Some(fake_addr.to_string()),
        auto_status: true,
        master_keys: vec!["operator-key".into()],
        ..ServeArgs::default()
    };
    let mut settings = c123_live::config::resolve(&args, &FileConfig::default()).unwrap();
    settings.db = dir.path().join("live.db");
    let running = App::start(settings).await.unwrap();
    let addr = running.local_addr;

    // The watcher creates the event from the export before the recording starts.
    eventually(
        &running.merge,
        "the event created from the export",
        Duration::from_secs(30),
        |s| s.event("CZE2.2024040600").is_some(),
    )
    .await;
    assert_eq!(
        running
            .merge
            .snapshot()
            .event("CZE2.2024040600")
            .unwrap()
            .header
            .status,
        EventStatus::Draft
    );
    tokio::spawn(replay::serve(
        fake,
        recording,
        ReplaySettings {
            speed: 0.0,
            looped: false,
        },
        shutdown.clone(),
    ));

    // The TCP schedule has races in progress: the event moves forward to running, and the
    // recorded finishes land.
    eventually(
        &running.merge,
        "running, and bib 9's second run at 51.20 s",
        Duration::from_secs(60),
        |s| {
            s.event("CZE2.2024040600").is_some_and(|ev| {
                ev.header.status == EventStatus::Running
                    && ev
                        .result("K1M_ST_BR2_6", "30034.K1M_ST")
                        .and_then(|r| r.time_ms)
                        == Some(51_200)
            })
        },
    )
    .await;

    // Spectators see it without anyone having used the admin API.
    let (status, body) = get(&addr, "/api/v1/events", None).await;
    assert_eq!(status, 200);
    assert_eq!(body["events"][0]["eventId"], "CZE2.2024040600");
    assert_eq!(body["events"][0]["status"], "running");

    // The operator sees the source and the watcher.
    let (status, _) = get(&addr, "/api/v1/admin/status", None).await;
    assert_eq!(status, 401);
    let (status, st) = get(&addr, "/api/v1/admin/status", Some("operator-key")).await;
    assert_eq!(status, 200, "{st}");
    let src = &st["tcpSources"][0];
    assert_eq!(src["mode"], "connect");
    assert_eq!(src["state"], "connected");
    assert_eq!(src["address"], fake_addr.to_string());
    assert!(src["framesByType"]["OnCourse"].as_u64().unwrap() > 0);
    assert_eq!(src["parseErrors"], 0);
    assert!(src["lastFrameAgeMs"].as_u64().is_some());
    assert_eq!(st["xmlWatcher"]["imports"], 1);
    assert!(st["xmlWatcher"]["lastImportFile"]
        .as_str()
        .unwrap()
        .ends_with("jarni.xml"));
    assert_eq!(st["xmlWatcher"]["lastError"], Value::Null);
    // As documented in protocol/openapi.yaml.
    let mut openapi = crate::support::openapi::Checker::new();
    openapi.check("/api/v1/admin/status", "get", 200, &st);
    assert!(openapi.errors.is_empty(), "{:#?}", openapi.errors);

    // And the same figures are in /metrics.
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("c123_source_connected{source=\"connect:"),
        "{text}"
    );
    assert!(text.contains("c123_source_frames_total{"), "{text}");
    assert!(text.contains("xml_watcher_imports_total 1"), "{text}");

    running.stop().await;
    shutdown.cancel();
}
