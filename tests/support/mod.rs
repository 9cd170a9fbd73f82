//! A real server for HTTP tests: the daemon as `serve` wires it (`app::App::start`) on a
//! SQLite file in a temp dir and 127.0.0.1 port 0, and a real HTTP client.

pub mod browser;
pub mod frames;
pub mod logs;
pub mod nats;
pub mod openapi;
pub mod replicas;
pub mod scoreboard;
pub mod tcp_source;
pub mod wait;
pub mod ws;

use std::time::Duration;

use c123_live::app::App;
use c123_live::http::HttpSettings;
use c123_live::merge::MergeHandle;
use c123_live::settings::Settings;
use c123_live::shutdown::Shutdown;
use c123_live::store::Synchronous;
use serde_json::{json, Value};

pub const MASTER: &str = "test-master-key-0123456789";

pub fn fixture_xml() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/jarni-2024.xml"
    ))
    .expect("fixture present")
}

pub struct Server {
    pub base: String,
    pub addr: std::net::SocketAddr,
    pub client: reqwest::Client,
    pub shutdown: Shutdown,
    pub merge: MergeHandle,
    /// Ends once `shutdown` fired and the daemon stopped in order.
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
    db: std::path::PathBuf,
    /// The temporary folder the database is in, when this harness made it.
    _dir: Option<tempfile::TempDir>,
}

pub fn settings() -> HttpSettings {
    HttpSettings {
        master_keys: vec![MASTER.to_owned()],
        ..HttpSettings::default()
    }
}

pub async fn start() -> Server {
    start_with(settings()).await
}

pub async fn start_with(http: HttpSettings) -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = start_on(dir.path().join("live.db"), Synchronous::Off, http).await;
    server._dir = Some(dir);
    server
}

/// The daemon on a database file the test owns (to restart on it), with `synchronous`.
pub async fn start_on(
    db: std::path::PathBuf,
    synchronous: Synchronous,
    http: HttpSettings,
) -> Server {
    let running = App::start(Settings {
        db: db.clone(),
        synchronous,
        listen: "127.0.0.1:0".parse().expect("addr"),
        http,
        ..Settings::default()
    })
    .await
    .expect("daemon starts");
    let addr = running.local_addr;
    let merge = running.merge.clone();
    let shutdown = running.shutdown().clone();
    let stopped = shutdown.clone();
    let task = tokio::spawn(async move {
        stopped.cancelled().await;
        running.stop().await;
        Ok(())
    });
    // The server closes a keep-alive connection that stays idle past its header-read
    // timeout (10 s); a pooled connection reused at that very moment fails with
    // IncompleteMessage. Retire pooled connections well before that.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_idle_timeout(Duration::from_secs(3))
        .build()
        .expect("client");
    Server {
        base: format!("http://{addr}"),
        addr,
        client,
        shutdown,
        merge,
        task,
        db,
        _dir: None,
    }
}

impl Server {
    /// The database file of this server.
    pub fn db_path(&self) -> std::path::PathBuf {
        self.db.clone()
    }

    /// Stops the daemon in order (SIGTERM's path) and waits until it has.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .client
            .get(self.url(path))
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        let body = r.json::<Value>().await.unwrap_or(Value::Null);
        (status, body)
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut rb = self.client.request(method, self.url(path));
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.expect("request");
        let status = r.status().as_u16();
        let body = r.json::<Value>().await.unwrap_or(Value::Null);
        (status, body)
    }

    /// Creates an event (no dates) and returns its API key.
    pub async fn create_event(&self, event_id: &str) -> String {
        let (st, body) = self
            .send(
                reqwest::Method::POST,
                "/api/v1/admin/events",
                &[("X-Master-Key", MASTER)],
                Some(json!({"eventId": event_id, "mainTitle": format!("Event {event_id}")})),
            )
            .await;
        assert_eq!(st, 201, "{body}");
        body["apiKey"].as_str().expect("apiKey").to_owned()
    }

    pub async fn import_fixture(&self, key: &str) -> (u16, Value) {
        self.send(
            reqwest::Method::POST,
            "/api/v1/ingest/xml",
            &[("X-API-Key", key)],
            Some(json!({ "xml": fixture_xml() })),
        )
        .await
    }

    pub async fn transition(&self, event_id: &str, key: &str, to: &str) -> (u16, Value) {
        self.send(
            reqwest::Method::PATCH,
            &format!("/api/v1/admin/events/{event_id}/status"),
            &[("X-API-Key", key)],
            Some(json!({ "status": to })),
        )
        .await
    }

    /// Moves an event along the normal lifecycle to `target`.
    pub async fn walk_to(&self, event_id: &str, key: &str, target: &str) {
        let path = ["startlist", "running", "finished", "official"];
        if target == "draft" {
            return;
        }
        for s in path {
            let (st, body) = self.transition(event_id, key, s).await;
            assert_eq!(st, 200, "{body}");
            if s == target {
                return;
            }
        }
    }

    pub async fn post_ingest(&self, path: &str, key: &str, body: Value) -> (u16, Value) {
        self.send(
            reqwest::Method::POST,
            path,
            &[("X-API-Key", key)],
            Some(body),
        )
        .await
    }
}

/// Finds the row of a bib in a results list.
pub fn row_of_bib(results: &Value, bib: u64) -> &Value {
    results["results"]
        .as_array()
        .expect("results array")
        .iter()
        .find(|r| r["bib"].as_u64() == Some(bib))
        .expect("bib present")
}
