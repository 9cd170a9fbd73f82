//! The front end through the real router: the page at `/`, the API keeps `/api/...`, raw
//! traversal attempts over a real socket.

use crate::support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn raw(addr: std::net::SocketAddr, path: &str, accept: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req =
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nAccept: {accept}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test]
async fn page_api_and_traversal_through_the_router() {
    let s = start().await;
    let r = s
        .client
        .get(s.url("/"))
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
    assert!(r.text().await.unwrap().contains("app.js"));
    let r = s.client.get(s.url("/app.js")).send().await.unwrap();
    assert_eq!(
        r.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    // Unknown API paths stay JSON 404, even for a browser.
    for p in ["/api/unknown", "/api", "/api/v1/nope", "/api/v2/events"] {
        let r = s
            .client
            .get(s.url(p))
            .header("Accept", "text/html")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{p}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json"),
            "{p}"
        );
    }
    // Non-GET on a page path: JSON 404.
    let r = s.client.post(s.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    // HEAD gives the headers and no body.
    let r = s.client.head(s.url("/style.css")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    for p in [
        "/../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/..%2f..%2fetc/passwd",
    ] {
        let resp = raw(s.addr, p, "*/*").await;
        assert!(resp.starts_with("HTTP/1.1 404"), "{p}: {resp}");
        assert!(!resp.contains("root:"), "{p}");
    }
    s.shutdown.cancel();
}
