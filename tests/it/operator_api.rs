//! What the operator console reads and does, over real HTTP against the daemon as
//! `App::start` runs it (real SQLite file, the XML folder watcher on the real export, a TCP
//! listen source, a real WebSocket client): `GET /api/v1/admin/status` and
//! `GET /api/v1/admin/log` match `protocol/openapi.yaml` and carry the console's figures;
//! the master key authorises an event's status and config changes (and a wrong one is a 401,
//! never a fall-back to the API key); an export refused for an official event is counted
//! with its reason; `/operator` is served by the binary, also beside `--static-dir`.

use std::time::{Duration, Instant};

use crate::support::openapi::Checker;
use c123_live::app::{App, RunningApp, DEMO_EVENT, DEMO_XML};
use c123_live::settings::Settings;
use c123_live::store::Synchronous;
use reqwest::Method;
use serde_json::{json, Value};

const MASTER: &str = "operator-api-master-key-0123";

struct Daemon {
    running: RunningApp,
    base: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
    xml_dir: std::path::PathBuf,
}

async fn start(static_dir: Option<std::path::PathBuf>) -> Daemon {
    let dir = tempfile::tempdir().expect("tempdir");
    let xml_dir = dir.path().join("xml");
    std::fs::create_dir_all(&xml_dir).unwrap();
    std::fs::write(xml_dir.join("jarni-2024.xml"), DEMO_XML).unwrap();
    let mut settings = Settings {
        db: dir.path().join("live.db"),
        synchronous: Synchronous::Normal,
        listen: "127.0.0.1:0".parse().unwrap(),
        event: Some(DEMO_EVENT.into()),
        xml_dir: Some(xml_dir.clone()),
        tcp_listen: Some("127.0.0.1:0".parse().unwrap()),
        static_dir,
        ..Settings::default()
    };
    settings.http.master_keys = vec![MASTER.into()];
    let running = App::start(settings).await.expect("daemon starts");
    Daemon {
        base: format!("http://{}", running.local_addr),
        running,
        http: reqwest::Client::new(),
        _dir: dir,
        xml_dir,
    }
}

impl Daemon {
    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn status(&self) -> Value {
        let (st, b) = self
            .send(
                Method::GET,
                "/api/v1/admin/status",
                &[("X-Master-Key", MASTER)],
                None,
            )
            .await;
        assert_eq!(st, 200, "{b}");
        b
    }

    /// Polls the admin status until `ok` accepts it.
    async fn status_until(&self, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let s = self.status().await;
            if ok(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {s}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn install_warn_ring() {
    crate::support::logs::logs();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_status_and_log_serve_the_console() {
    // Long on purpose: one daemon walked through the console's story in order (import,
    // lifecycle, strategy, a spectator, official, a refused export); each step needs the last.
    install_warn_ring();
    let d = start(None).await;
    let mut c = Checker::new();
    let s = d
        .status_until("the folder's export imported", |s| {
            s["events"].as_array().is_some_and(|e| !e.is_empty())
        })
        .await;
    c.check("/api/v1/admin/status", "get", 200, &s);
    println!("status: {s}");
    let w = &s["xmlWatcher"];
    assert!(w["lastImportFile"]
        .as_str()
        .unwrap()
        .ends_with("jarni-2024.xml"));
    assert!(w["lastRowsChanged"].as_u64().unwrap() > 1000, "{w}");
    assert_eq!(w["refusals"], 0);
    assert!(s["storage"]["dbBytes"].as_u64().unwrap() > 0);
    assert!(s["commits"].as_u64().unwrap() >= 1);
    let e = &s["events"][0];
    assert_eq!(
        (e["status"].as_str(), &e["nextStatuses"]),
        (Some("draft"), &json!(["startlist"]))
    );
    assert_eq!(
        (
            e["mergeStrategy"].as_str(),
            e["mergeStrategyOverridden"].as_bool()
        ),
        (Some("tcp-wins"), Some(false))
    );
    assert_eq!(s["tcpSources"][0]["mode"], "listen");

    // The master key moves the lifecycle (the event's key of a 2024 export has expired).
    let path = format!("/api/v1/admin/events/{DEMO_EVENT}/status");
    let master = [("X-Master-Key", MASTER)];
    for to in ["startlist", "running"] {
        let (st, b) = d
            .send(Method::PATCH, &path, &master, Some(json!({"status": to})))
            .await;
        assert_eq!(st, 200, "{to}: {b}");
        c.check("/api/v1/admin/events/{eventId}/status", "patch", st, &b);
    }
    let (st, b) = d
        .send(
            Method::PATCH,
            &path,
            &master,
            Some(json!({"status": "official"})),
        )
        .await;
    assert_eq!(
        (st, b["error"].as_str()),
        (400, Some("InvalidTransition")),
        "{b}"
    );
    // A wrong master key is refused even with the event's own key beside it.
    let api_key = d
        .running
        .merge
        .snapshot()
        .event(DEMO_EVENT)
        .unwrap()
        .header
        .api_key
        .clone();
    let (st, b) = d
        .send(
            Method::PATCH,
            &path,
            &[("X-Master-Key", "wrong"), ("X-API-Key", &api_key)],
            Some(json!({"status": "finished"})),
        )
        .await;
    assert_eq!(st, 401, "{b}");
    let (st, _) = d
        .send(
            Method::PATCH,
            &path,
            &[],
            Some(json!({"status": "finished"})),
        )
        .await;
    assert_eq!(st, 401);
    let (st, b) = d
        .send(
            Method::PATCH,
            "/api/v1/admin/events/nope/status",
            &master,
            Some(json!({"status": "finished"})),
        )
        .await;
    assert_eq!(st, 404, "{b}");
    let (st, b) = d
        .send(
            Method::PATCH,
            &format!("/api/v1/admin/events/{DEMO_EVENT}/config"),
            &master,
            Some(json!({"mergeStrategy": "xml-wins"})),
        )
        .await;
    assert_eq!(st, 200, "{b}");

    // One spectator on the event; the strategy override shows.
    let (_ws, _) = tokio_tungstenite::connect_async(format!(
        "ws://{}/api/v1/events/{DEMO_EVENT}/ws",
        d.running.local_addr
    ))
    .await
    .expect("ws");
    let s = d
        .status_until("one client", |s| s["events"][0]["wsClients"] == 1)
        .await;
    assert_eq!(s["wsClients"], 1);
    assert_eq!(
        (
            s["events"][0]["mergeStrategy"].as_str(),
            s["events"][0]["mergeStrategyOverridden"].as_bool()
        ),
        (Some("xml-wins"), Some(true))
    );

    // Official: a new version of the export is refused, counted, and its reason kept and logged.
    for to in ["finished", "official"] {
        let (st, b) = d
            .send(Method::PATCH, &path, &master, Some(json!({"status": to})))
            .await;
        assert_eq!(st, 200, "{to}: {b}");
    }
    let s = d.status().await;
    assert_eq!(s["events"][0]["nextStatuses"], json!([]));
    let mut changed = DEMO_XML.to_vec();
    changed.extend_from_slice(b"\n<!-- a later save -->\n");
    std::fs::write(d.xml_dir.join("jarni-2024.xml"), changed).unwrap();
    let s = d
        .status_until("the refusal", |s| s["xmlWatcher"]["refusals"] == 1)
        .await;
    c.check("/api/v1/admin/status", "get", 200, &s);
    let reason = s["xmlWatcher"]["lastError"].as_str().unwrap();
    println!("refusal: {reason}");
    assert!(
        reason.contains("jarni-2024.xml") && reason.to_lowercase().contains("official"),
        "{reason}"
    );

    let (st, log) = d
        .send(Method::GET, "/api/v1/admin/log", &master, None)
        .await;
    assert_eq!(st, 200);
    c.check("/api/v1/admin/log", "get", st, &log);
    let warnings = log["warnings"].as_array().unwrap();
    assert!(warnings.len() <= c123_live::http::log_ring::CAPACITY);
    assert!(
        warnings
            .iter()
            .any(|w| w["message"].as_str().unwrap().contains("not imported")),
        "{log}"
    );
    let (st, b) = d.send(Method::GET, "/api/v1/admin/log", &[], None).await;
    assert_eq!(st, 401);
    c.check("/api/v1/admin/log", "get", st, &b);
    assert!(c.errors.is_empty(), "{}", c.errors.join("\n"));
    d.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_is_the_binarys_own_also_beside_a_static_dir() {
    let site = tempfile::tempdir().unwrap();
    std::fs::write(
        site.path().join("index.html"),
        "<!doctype html><p>venue site</p>",
    )
    .unwrap();
    for static_dir in [None, Some(site.path().to_owned())] {
        let d = start(static_dir.clone()).await;
        let get = |path: &str| {
            d.http
                .get(format!("{}{path}", d.base))
                .header("Accept", "text/html")
                .send()
        };
        let r = get("/operator").await.unwrap();
        assert_eq!(r.status(), 200);
        let csp = r
            .headers()
            .get("content-security-policy")
            .map(|v| v.to_str().unwrap().to_owned());
        assert!(
            csp.is_some_and(|c| c.contains("default-src 'self'")),
            "CSP on the console"
        );
        assert!(r.text().await.unwrap().contains("c123-live operator"));
        let js = get("/operator.js").await.unwrap();
        assert_eq!(js.status(), 200);
        assert!(js.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript"));
        let index = get("/").await.unwrap().text().await.unwrap();
        assert_eq!(
            index.contains("venue site"),
            static_dir.is_some(),
            "the spectator side is the folder's"
        );
        d.running.stop().await;
    }
}
