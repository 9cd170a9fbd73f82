//! HTTP edges of issue 11 ("minor"): the request-head limit at its exact default, HEAD and
//! gzip, `Accept-Encoding` quality values, dot-segment event ids, and the whole-body read
//! deadline against a real slow client, all at the default settings.

use std::time::{Duration, Instant};

use crate::support::*;
use c123_live::http::{HttpSettings, DEFAULT_BODY_READ_TIMEOUT, MAX_HEAD_BYTES};
use reqwest::Method;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A `GET /health` head of exactly `len` bytes (padded by one header).
fn head_of_len(len: usize) -> String {
    let fixed = "GET /health HTTP/1.1\r\nhost: x\r\nx-pad: \r\n\r\n".len();
    let pad = "a".repeat(len - fixed);
    let req = format!("GET /health HTTP/1.1\r\nhost: x\r\nx-pad: {pad}\r\n\r\n");
    assert_eq!(req.len(), len);
    req
}

async fn raw_exchange(s: &Server, bytes: &[u8]) -> String {
    let mut c = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let _ = c.write_all(bytes).await;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    // Read the answer (or the close); a 200 keeps the connection open, so stop at the body.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(500), c.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => {
                buf.extend_from_slice(&chunk[..n]);
                if String::from_utf8_lossy(&buf).contains("\r\n\r\n") {
                    break;
                }
            }
            Err(_) => {
                if !buf.is_empty() {
                    break;
                }
            }
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_heads_are_capped_at_exactly_64_kib() {
    assert_eq!(MAX_HEAD_BYTES, 64 * 1024);
    let s = start().await;
    let r = raw_exchange(&s, head_of_len(MAX_HEAD_BYTES).as_bytes()).await;
    assert!(
        r.starts_with("HTTP/1.1 200"),
        "a head of exactly 64 KiB: {r:.80}"
    );
    for len in [MAX_HEAD_BYTES + 1, MAX_HEAD_BYTES + 4096, 100_000] {
        let r = raw_exchange(&s, head_of_len(len).as_bytes()).await;
        assert!(
            r.is_empty() || r.starts_with("HTTP/1.1 431"),
            "a head of {len} bytes must be refused: {r:.80}"
        );
    }
    assert_eq!(s.get("/health").await.0, 200);
}

async fn running_event(s: &Server, id: &str) -> String {
    let key = s.create_event(id).await;
    assert_eq!(s.import_fixture(&key).await.0, 200);
    s.walk_to(id, &key, "running").await;
    key
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_with_gzip_announces_the_gzipped_length() {
    let s = start().await;
    running_event(&s, "EV").await;
    for path in ["/api/v1/events/EV/results/K1M_ST_BR2_6", "/"] {
        let get = s
            .client
            .get(s.url(path))
            .header("Accept-Encoding", "gzip")
            .send()
            .await
            .unwrap();
        assert_eq!(get.headers()["content-encoding"], "gzip", "{path}");
        let get_len = get.bytes().await.unwrap().len();
        let head = s
            .client
            .head(s.url(path))
            .header("Accept-Encoding", "gzip")
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), 200);
        assert_eq!(
            head.headers().get("content-encoding").map(|v| v.as_bytes()),
            Some(&b"gzip"[..]),
            "HEAD {path} has GET's headers"
        );
        let head_len: usize = head.headers()["content-length"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(head_len, get_len, "HEAD {path}: the length GET sends");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_encoding_quality_values_follow_rfc_9110() {
    let s = start().await;
    running_event(&s, "EV").await;
    let gzipped = |ae: &'static str| {
        let req = s
            .client
            .get(s.url("/api/v1/events/EV/results/K1M_ST_BR2_6"))
            .header("Accept-Encoding", ae);
        async move {
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.headers().get("content-encoding").is_some()
        }
    };
    for ae in [
        "gzip;q=0",
        "GZIP;Q=0",
        "gzip; q=0.000",
        "*;q=0",
        "identity",
        "gzip;q=0, *",
        "deflate, br",
        "",
    ] {
        assert!(
            !gzipped(ae).await,
            "Accept-Encoding: {ae:?} must not get gzip"
        );
    }
    for ae in [
        "gzip",
        "GZIP",
        "gzip;Q=0.5",
        "*",
        "identity, *;q=0.1",
        "*;q=0, gzip",
        "x-gzip",
    ] {
        assert!(gzipped(ae).await, "Accept-Encoding: {ae:?} accepts gzip");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_segment_event_ids_are_refused() {
    let s = start().await;
    for id in [".", "..", " .. "] {
        let (st, body) = s
            .send(
                Method::POST,
                "/api/v1/admin/events",
                &[("X-Master-Key", MASTER)],
                Some(json!({"eventId": id, "mainTitle": "T"})),
            )
            .await;
        assert_eq!(st, 400, "eventId {id:?}: {body}");
        assert_eq!(body["error"], "InvalidRequest");
        assert!(
            body["message"].as_str().unwrap().contains("eventId"),
            "{body}"
        );
    }
    let (_, list) = s
        .send(
            Method::GET,
            "/api/v1/admin/events",
            &[("X-Master-Key", MASTER)],
            None,
        )
        .await;
    assert_eq!(list["events"].as_array().unwrap().len(), 0, "{list}");
    // Dots inside an id are ordinary characters (not a dot-segment): still accepted.
    for id in ["...", "a.b", ".x", "x.", "Z_9-."] {
        s.create_event(id).await;
        assert_eq!(s.get(&format!("/api/v1/events/{id}")).await.0, 404, "{id}");
    }
}

/// A client that sends its body one byte every 4 s is answered `408` and closed once the
/// default whole-body deadline has passed, instead of holding the connection for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_body_is_cut_at_the_default_deadline() {
    assert_eq!(
        HttpSettings::default().body_read_timeout,
        DEFAULT_BODY_READ_TIMEOUT
    );
    assert_eq!(DEFAULT_BODY_READ_TIMEOUT, Duration::from_secs(30));
    let s = start().await;
    let key = running_event(&s, "SLOW").await;
    let mut c = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let head = format!(
        "POST /api/v1/ingest/results HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nx-api-key: {key}\r\ncontent-length: 1000\r\n\r\n"
    );
    c.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let (mut rd, mut wr) = c.into_split();
    let trickle = tokio::spawn(async move {
        loop {
            if wr.write_all(b" ").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(4)).await;
        }
    });
    let mut buf = Vec::new();
    let read = tokio::time::timeout(
        DEFAULT_BODY_READ_TIMEOUT + Duration::from_secs(15),
        rd.read_to_end(&mut buf),
    )
    .await;
    let elapsed = started.elapsed();
    trickle.abort();
    assert!(
        read.is_ok(),
        "the connection was still open after {elapsed:?}"
    );
    let r = String::from_utf8_lossy(&buf);
    println!("slow body answered after {elapsed:?}: {:.60}", r);
    assert!(r.starts_with("HTTP/1.1 408"), "{r}");
    assert!(r.contains("\"error\":\"RequestTimeout\""), "{r}");
    assert!(
        elapsed >= DEFAULT_BODY_READ_TIMEOUT - Duration::from_millis(500)
            && elapsed < DEFAULT_BODY_READ_TIMEOUT + Duration::from_secs(3),
        "cut at {elapsed:?}"
    );
    // Nothing was applied and the server still serves.
    assert_eq!(s.get("/health").await.0, 200);
}

/// Documented difference from live-mini: the body is validated before the state guard, so an
/// invalid body is a 400 naming the field even in a state that refuses the data type (where
/// live-mini answers 403 for a body its schema lets through); a valid one is the 403.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_validation_comes_before_the_state_guard() {
    let s = start().await;
    let key = s.create_event("SG").await;
    assert_eq!(s.import_fixture(&key).await.0, 200);
    s.walk_to("SG", &key, "startlist").await;
    let row = |pen: u32| json!({"results": [{"participantId": "12054.K1M_ST", "raceId": "K1M_ST_BR1_6", "bib": 1, "time": 7699, "pen": pen, "total": 7899}]});
    let (st, body) = s
        .post_ingest("/api/v1/ingest/results", &key, row(250))
        .await;
    assert_eq!(
        (st, body["error"].as_str()),
        (400, Some("InvalidRequest")),
        "{body}"
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("results[0].pen"),
        "{body}"
    );
    let (st, body) = s
        .post_ingest("/api/v1/ingest/results", &key, row(200))
        .await;
    assert_eq!(
        (st, body["error"].as_str()),
        (403, Some("Forbidden")),
        "{body}"
    );
}
