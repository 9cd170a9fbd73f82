//! Security: per-address connection caps, X-Forwarded-For only from trusted proxies, the
//! request-head size limit, and secrets that never reach the logs.

use std::net::IpAddr;

use std::time::Duration;

use crate::support::*;
use c123_live::http::{client_ip, HttpSettings, MAX_HEAD_BYTES};
use reqwest::Method;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn forwarded_for_is_believed_only_from_trusted_proxies() {
    let proxy = ip("10.0.0.1");
    let trusted = [proxy];
    let xff = |v: &'static str| vec![v.as_bytes()];
    // Not a proxy: the header is ignored, whatever it says.
    assert_eq!(
        client_ip(ip("192.0.2.7"), xff("1.2.3.4"), &trusted),
        ip("192.0.2.7")
    );
    assert_eq!(
        client_ip(ip("192.0.2.7"), xff("1.2.3.4"), &[]),
        ip("192.0.2.7")
    );
    // From the proxy: the right-most hop the proxy saw.
    assert_eq!(client_ip(proxy, xff("1.2.3.4"), &trusted), ip("1.2.3.4"));
    // A client-written left part proves nothing.
    assert_eq!(
        client_ip(proxy, xff("6.6.6.6, 1.2.3.4"), &trusted),
        ip("1.2.3.4")
    );
    // Several trusted hops are skipped.
    let two = [proxy, ip("10.0.0.2")];
    assert_eq!(
        client_ip(proxy, xff("1.2.3.4, 10.0.0.2"), &two),
        ip("1.2.3.4")
    );
    // Several header lines form one list.
    assert_eq!(
        client_ip(
            proxy,
            vec!["6.6.6.6".as_bytes(), "1.2.3.4".as_bytes()],
            &trusted
        ),
        ip("1.2.3.4")
    );
    // Garbage or nothing: the proxy itself.
    assert_eq!(client_ip(proxy, xff("not-an-ip"), &trusted), proxy);
    assert_eq!(client_ip(proxy, Vec::<&[u8]>::new(), &trusted), proxy);
    assert_eq!(client_ip(proxy, vec![&b"\xff\xfe"[..]], &trusted), proxy);
    // IPv4-mapped IPv6 is the IPv4 address.
    assert_eq!(
        client_ip(ip("::ffff:10.0.0.1"), xff("::ffff:1.2.3.4"), &trusted),
        ip("1.2.3.4")
    );
}

async fn response_of(mut c: tokio::net::TcpStream) -> String {
    let _ = c
        .write_all(b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut buf)).await;
    String::from_utf8_lossy(&buf).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_take_every_connection() {
    let s = start_with(HttpSettings {
        master_keys: vec![MASTER.into()],
        max_connections_per_ip: 5,
        ..HttpSettings::default()
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(tokio::net::TcpStream::connect(s.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let sixth = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let r = response_of(sixth).await;
    assert!(r.starts_with("HTTP/1.1 503"), "{r}");
    assert!(r.contains("ConnectionLimitReached"), "{r}");
    // X-Forwarded-For from an untrusted peer changes nothing: still the same address.
    let mut c = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let _ = c
        .write_all(b"GET /health HTTP/1.1\r\nhost: x\r\nx-forwarded-for: 198.51.100.1\r\nconnection: close\r\n\r\n")
        .await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut buf)).await;
    assert!(String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 503"));
    // One closes: a new one is served.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = response_of(tokio::net::TcpStream::connect(s.addr).await.unwrap()).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let metrics = s.client.get(s.url("/metrics")).send().await;
    // The metrics request itself may be refused while 4 are held + the client's own; only
    // check the counter when it got through.
    if let Ok(m) = metrics {
        if m.status() == 200 {
            let text = m.text().await.unwrap();
            assert!(text.contains("http_connections_refused_total 2"), "{text}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxy_is_not_capped_per_address() {
    let s = start_with(HttpSettings {
        master_keys: vec![MASTER.into()],
        max_connections_per_ip: 2,
        trusted_proxies: vec![ip("127.0.0.1")],
        ..HttpSettings::default()
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..6 {
        held.push(tokio::net::TcpStream::connect(s.addr).await.unwrap());
    }
    let r = response_of(tokio::net::TcpStream::connect(s.addr).await.unwrap()).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_request_heads_are_refused() {
    let s = start().await;
    let mut c = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    // Twice the limit; the exact boundary is `http_edges::request_heads_are_capped_at_exactly_64_kib`.
    let big = "a".repeat(2 * MAX_HEAD_BYTES);
    let req = format!("GET /health HTTP/1.1\r\nhost: x\r\nx-big: {big}\r\n\r\n");
    let _ = c.write_all(req.as_bytes()).await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut buf)).await;
    let r = String::from_utf8_lossy(&buf);
    assert!(r.is_empty() || r.starts_with("HTTP/1.1 431"), "{r}");
    assert_eq!(s.get("/health").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_never_reach_the_logs() {
    let capture = crate::support::logs::logs().capture().await;

    let s = start().await;
    let key = s.create_event("ev").await;
    assert_eq!(s.import_fixture(&key).await.0, 200);
    s.walk_to("ev", &key, "running").await;
    let (st, body) = s
        .post_ingest(
            "/api/v1/ingest/results",
            &key,
            json!({"results": [{"raceId": "K1M_ST_BR1_6", "participantId": "12054.K1M_ST", "bib": 1, "time": 9000}]}),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    let (st, _) = s
        .post_ingest("/api/v1/ingest/oncourse", &key, json!({"oncourse": []}))
        .await;
    assert_eq!(st, 200);
    // Wrong keys are secrets too (a typo of the real one).
    let wrong_api = format!("{}x", &key[..63]);
    let wrong_master = "not-the-master-key-but-close";
    let (st, _) = s
        .post_ingest("/api/v1/ingest/results", &wrong_api, json!({"results": []}))
        .await;
    assert_eq!(st, 401);
    let (st, _) = s
        .send(
            Method::GET,
            "/api/v1/admin/events",
            &[("X-Master-Key", wrong_master)],
            None,
        )
        .await;
    assert_eq!(st, 401);
    let (st, _) = s
        .send(
            Method::GET,
            "/api/v1/admin/events",
            &[("X-Master-Key", MASTER)],
            None,
        )
        .await;
    assert_eq!(st, 200);
    // A refused duplicate create logs at debug level.
    let (st, _) = s
        .send(
            Method::POST,
            "/api/v1/admin/events",
            &[("X-Master-Key", MASTER)],
            Some(json!({"eventId": "ev", "mainTitle": "again"})),
        )
        .await;
    assert_eq!(st, 409);
    s.shutdown.cancel();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let text = capture.text();
    assert!(
        text.contains("request"),
        "debug request logs were captured: {text}"
    );
    assert!(
        text.contains("input refused"),
        "debug merge logs were captured"
    );
    for secret in [key.as_str(), MASTER, wrong_api.as_str(), wrong_master] {
        assert!(!text.contains(secret), "a key appears in the logs");
    }
}
