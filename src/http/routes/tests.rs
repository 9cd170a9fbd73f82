//! In-process router tests (`oneshot`, no socket): the routing table, fallbacks, HEAD, the
//! extractors' refusals, compression and the metrics labels. The black-box behaviour over
//! real sockets is tested in `tests/http_*.rs`.

use axum::body::Body;
use axum::Router;
use hyper::{Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt as _;

use super::router;
use crate::http::{AppState, HttpSettings};
use crate::merge::{self, MergeSettings};
use crate::store::{Store, Synchronous};

const MASTER: &str = "unit-master-key";

struct App {
    router: Router,
    state: AppState,
    _dir: tempfile::TempDir,
}

fn app() -> App {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("live.db"), Synchronous::Off).expect("store");
    let (merge, _join) = merge::start(store, MergeSettings::default()).expect("merge loop");
    let settings = HttpSettings {
        master_keys: vec![MASTER.to_owned()],
        body_limit: 1000,
        ..HttpSettings::default()
    };
    let state = AppState::new(merge, settings);
    App {
        router: router(state.clone()),
        state,
        _dir: dir,
    }
}

struct Reply {
    status: StatusCode,
    headers: hyper::HeaderMap,
    body: bytes::Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

impl App {
    async fn send(&self, req: Request<Body>) -> Reply {
        let resp = self.router.clone().oneshot(req).await.expect("infallible");
        let (parts, body) = resp.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX).await.expect("body");
        Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    async fn call(&self, method: &str, uri: &str, headers: &[(&str, &str)], body: &str) -> Reply {
        let mut b = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        if !body.is_empty() {
            // What a client sends; the server decides by it whether a body is coming.
            b = b.header("content-length", body.len());
        }
        self.send(b.body(Body::from(body.to_owned())).expect("request"))
            .await
    }

    async fn create_event(&self, id: &str) -> String {
        let r = self
            .call(
                "POST",
                "/api/v1/admin/events",
                &[("x-master-key", MASTER)],
                &format!(r#"{{"eventId":"{id}","mainTitle":"T"}}"#),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json());
        r.json()["apiKey"].as_str().expect("key").to_owned()
    }
}

#[tokio::test]
async fn wrong_methods_and_unknown_api_paths_are_json_404s() {
    let a = app();
    for (method, path) in [
        ("PUT", "/api/v1/events"),
        ("POST", "/health"),
        ("DELETE", "/metrics"),
        ("GET", "/api/v1/ingest/xml"),
        ("POST", "/api/v1/events/E"),
        ("GET", "/api/v1/nope"),
        ("GET", "/api"),
        ("POST", "/nope"),
    ] {
        let r = a.call(method, path, &[], "").await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{method} {path}");
        // Not a 405 in disguise: no `Allow` either.
        assert!(r.headers.get("allow").is_none(), "{method} {path}");
        assert_eq!(
            r.json(),
            serde_json::json!({"error": "NotFound", "message": format!("Route {method} {path} not found")}),
            "{method} {path}"
        );
    }
}

#[tokio::test]
async fn other_gets_are_the_front_ends() {
    let a = app();
    let r = a
        .call("GET", "/some/client/route", &[("accept", "text/html")], "")
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.headers["content-type"]
        .to_str()
        .is_ok_and(|t| t.starts_with("text/html")));
    // A script request for a missing file never gets HTML.
    let r = a.call("GET", "/missing.js", &[], "").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json()["error"], "NotFound");
}

#[tokio::test]
async fn head_answers_with_gets_headers_and_no_body() {
    let a = app();
    for path in ["/health", "/", "/api/v1/events", "/api/v1/events/NONE"] {
        let get = a
            .call("GET", path, &[("accept-encoding", "gzip")], "")
            .await;
        let head = a
            .call("HEAD", path, &[("accept-encoding", "gzip")], "")
            .await;
        assert_eq!(head.status, get.status, "{path}");
        assert!(head.body.is_empty(), "{path}");
        assert_eq!(
            head.headers["content-length"],
            get.body.len().to_string().as_str(),
            "{path}"
        );
        assert_eq!(
            head.headers.get("content-encoding"),
            get.headers.get("content-encoding"),
            "{path}"
        );
    }
    // A WebSocket is opened with GET only.
    let r = a.call("HEAD", "/api/v1/events/E/ws", &[], "").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn every_master_key_route_refuses_without_the_key() {
    let a = app();
    for (method, path) in [
        ("GET", "/api/v1/admin/events"),
        ("POST", "/api/v1/admin/events"),
        ("GET", "/api/v1/admin/status"),
        ("PUT", "/api/v1/admin/storage"),
        ("DELETE", "/api/v1/admin/events/E"),
    ] {
        for key in [None, Some("wrong")] {
            let headers: Vec<(&str, &str)> = key.map(|k| ("x-master-key", k)).into_iter().collect();
            let r = a.call(method, path, &headers, "{}").await;
            assert_eq!(
                r.status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} {key:?}"
            );
            assert_eq!(r.json()["error"], "Unauthorized");
            // Refused before the body was read: the connection is not reused.
            assert_eq!(r.headers["connection"], "close");
        }
    }
}

#[tokio::test]
async fn strict_json_keeps_its_messages_and_limits() {
    let a = app();
    let key = a.create_event("E").await;
    let h = [("x-api-key", key.as_str())];
    let cases = [
        ("", "Request body is empty; a JSON object is expected"),
        (
            "[1]",
            "Body is not valid JSON for this endpoint: a JSON object is expected",
        ),
        (
            r#"{"results":[{"raceId":"R","participantId":"P","bib":-2}]}"#,
            "results[0].bib: invalid value: integer `-2`, expected non-negative integer",
        ),
    ];
    for (body, message) in cases {
        let r = a.call("POST", "/api/v1/ingest/results", &h, body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(r.json()["message"], message, "{body}");
    }
    let big = format!(r#"{{"results":[],"pad":"{}"}}"#, "x".repeat(2000));
    let r = a.call("POST", "/api/v1/ingest/results", &h, &big).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.json()["error"], "PayloadTooLarge");
    // The key comes first: no key, no body read.
    let r = a.call("POST", "/api/v1/ingest/results", &[], &big).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn event_key_for_names_the_event_of_the_url() {
    let a = app();
    let key = a.create_event("A").await;
    a.create_event("B").await;
    let h = [("x-api-key", key.as_str())];
    let r = a.call("GET", "/api/v1/admin/events/B/config", &h, "").await;
    assert_eq!(
        (r.status, r.json()["message"].as_str()),
        (
            StatusCode::UNAUTHORIZED,
            Some("API key does not match event")
        )
    );
    let r = a.call("GET", "/api/v1/admin/events/A/config", &h, "").await;
    assert_eq!(r.status, StatusCode::OK);
    let r = a
        .call("GET", "/api/v1/admin/events/NONE/config", &h, "")
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = a
        .call("GET", "/api/v1/admin/events/%FF/config", &h, "")
        .await;
    assert_eq!(
        (r.status, r.json()["message"].as_str()),
        (
            StatusCode::BAD_REQUEST,
            Some("Path is not valid percent-encoded UTF-8")
        )
    );
}

#[tokio::test]
async fn api_json_is_gzipped_from_512_bytes_as_the_client_allows() {
    let a = app();
    for i in 0..8 {
        a.create_event(&format!("EVENT-{i}")).await;
    }
    let h = [("x-master-key", MASTER)];
    let plain = a.call("GET", "/api/v1/admin/events", &h, "").await;
    assert!(plain.body.len() >= 512);
    for (ae, gzip) in [
        ("gzip", true),
        ("*", true),
        ("x-gzip", true),
        ("gzip;q=0", false),
        ("br", false),
        // Identity excluded: still a plain 200, never tower-http's 406.
        ("*;q=0", false),
    ] {
        let h = [("x-master-key", MASTER), ("accept-encoding", ae)];
        let r = a.call("GET", "/api/v1/admin/events", &h, "").await;
        assert_eq!(r.status, StatusCode::OK, "{ae}");
        assert_eq!(r.headers.contains_key("content-encoding"), gzip, "{ae}");
    }
    // Small bodies stay plain.
    let r = a
        .call("GET", "/health", &[("accept-encoding", "gzip")], "")
        .await;
    assert!(!r.headers.contains_key("content-encoding"));
}

#[tokio::test]
async fn metrics_labels_are_the_matched_templates() {
    let a = app();
    a.call("GET", "/api/v1/events/X", &[], "").await;
    a.call("HEAD", "/api/v1/events/X/results/R", &[], "").await;
    a.call("GET", "/index.html", &[], "").await;
    a.call("PUT", "/api/v1/events", &[], "").await;
    a.call("POST", "/api/v1/ingest/oncourse", &[], "{}").await;
    let text = a.state.metrics.render();
    for line in [
        r#"route="/api/v1/events/{eventId}",method="GET",status="404""#,
        r#"route="/api/v1/events/{eventId}/results/{raceId}",method="HEAD",status="404""#,
        r#"route="static",method="GET",status="200""#,
        r#"route="unmatched",method="PUT",status="404""#,
        r#"kind="oncourse",outcome="rejected""#,
    ] {
        assert!(text.contains(line), "{line} in\n{text}");
    }
}

#[tokio::test]
async fn without_a_hub_the_websocket_route_is_a_404() {
    let a = app();
    let r = a.call("GET", "/api/v1/events/E/ws", &[], "").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json()["message"], "WebSocket endpoint not available");
}
