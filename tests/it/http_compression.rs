//! JSON bodies are gzipped for clients that ask for it, and decode to the same JSON.

use std::io::Read;

use serde_json::Value;

#[tokio::test]
async fn results_are_gzipped_when_accepted() {
    let s = crate::support::start().await;
    let key = s.create_event("EV").await;
    assert_eq!(s.import_fixture(&key).await.0, 200);
    s.walk_to("EV", &key, "running").await;
    let path = "/api/v1/events/EV/results/K1M_ST_BR2_6";
    let (status, plain) = s.get(path).await;
    assert_eq!(status, 200);

    let resp = s
        .client
        .get(s.url(path))
        .header("Accept-Encoding", "gzip, deflate, br")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-encoding"], "gzip");
    assert_eq!(resp.headers()["vary"], "accept-encoding");
    let gz = resp.bytes().await.unwrap();
    let mut json = String::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_string(&mut json)
        .unwrap();
    let decoded: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(decoded, plain);
    let plain_len = serde_json::to_vec(&plain).unwrap().len();
    println!(
        "results K1M_ST_BR2_6: {plain_len} B JSON, {} B gzipped",
        gz.len()
    );
    assert!(gz.len() * 3 < plain_len, "compresses well");

    // Without Accept-Encoding, or refusing gzip: plain JSON.
    let resp = s
        .client
        .get(s.url(path))
        .header("Accept-Encoding", "gzip;q=0")
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("content-encoding").is_none());
    // Tiny bodies are not worth it.
    let resp = s
        .client
        .get(s.url("/health"))
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("content-encoding").is_none());
}
