//! Public GETs from cached bytes (issue 14): the same bytes and strong ETag until the event's
//! next commit, `If-None-Match` gives a 304 without a body, gzip is made once and has its
//! own ETag, a commit gives a new body and ETag, and after a restart the old process's ETag
//! is not trusted. Through the real daemon and a real HTTP client.

use std::io::Read;

use c123_live::store::Synchronous;
use reqwest::Method;
use serde_json::json;

use crate::support::{settings, start_on, Server};

const RESULTS: &str = "/api/v1/events/EV/results/K1M_ST_BR2_6";

async fn running(s: &Server) -> String {
    let key = s.create_event("EV").await;
    assert_eq!(s.import_fixture(&key).await.0, 200);
    s.walk_to("EV", &key, "running").await;
    key
}

struct Reply {
    status: u16,
    etag: String,
    encoding: Option<String>,
    body: Vec<u8>,
}

async fn fetch(s: &Server, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut rb = s.client.get(s.url(path));
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    let r = rb.send().await.expect("request");
    let h = r.headers().clone();
    let text = |name: &str| h.get(name).map(|v| v.to_str().unwrap().to_owned());
    Reply {
        status: r.status().as_u16(),
        etag: text("etag").unwrap_or_default(),
        encoding: text("content-encoding"),
        body: r.bytes().await.expect("body").to_vec(),
    }
}

async fn cache_count(s: &Server, outcome: &str) -> f64 {
    let text = s
        .client
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let prefix = format!("http_response_cache_total{{outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("gzip");
    out
}

#[tokio::test]
async fn the_same_bytes_and_etag_until_the_next_commit_and_304_for_a_known_etag() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("live.db");
    let s = start_on(db.clone(), Synchronous::Full, settings()).await;
    let key = running(&s).await;

    let misses = cache_count(&s, "miss").await;
    let first = fetch(&s, RESULTS, &[]).await;
    assert_eq!(first.status, 200);
    assert!(
        first.etag.starts_with('"') && first.etag.ends_with('"'),
        "strong: {}",
        first.etag
    );
    let hits = cache_count(&s, "hit").await;
    let second = fetch(&s, RESULTS, &[]).await;
    assert_eq!((second.status, &second.etag), (200, &first.etag));
    assert_eq!(second.body, first.body, "the same bytes");
    assert_eq!(
        cache_count(&s, "hit").await - hits,
        1.0,
        "served from the cache"
    );
    assert_eq!(cache_count(&s, "miss").await - misses, 1.0, "computed once");

    // A known ETag: 304, no body, the same ETag.
    let not_modified = fetch(&s, RESULTS, &[("If-None-Match", &first.etag)]).await;
    assert_eq!(not_modified.status, 304);
    assert!(not_modified.body.is_empty());
    assert_eq!(not_modified.etag, first.etag);
    // A list with it, and the weak form, match too; another ETag does not.
    let listed = format!("\"other\", W/{}", first.etag);
    assert_eq!(
        fetch(&s, RESULTS, &[("If-None-Match", &listed)])
            .await
            .status,
        304
    );
    assert_eq!(
        fetch(&s, RESULTS, &[("If-None-Match", "\"other\"")])
            .await
            .status,
        200
    );

    // Another query is another body with another ETag; padding that does not change the
    // body shares the entry.
    let detailed = fetch(&s, &format!("{RESULTS}?detailed=true"), &[]).await;
    assert_eq!(detailed.status, 200);
    assert_ne!(detailed.etag, first.etag);
    assert_ne!(detailed.body, first.body);
    let padded = fetch(
        &s,
        &format!("{RESULTS}?detailed=true&pad={}", "x".repeat(4000)),
        &[],
    )
    .await;
    assert_eq!(
        padded.etag, detailed.etag,
        "unknown parameters do not make entries"
    );

    // gzip: made once, its own ETag, decodes to the same bytes; its ETag also gives a 304.
    let gz = fetch(&s, RESULTS, &[("Accept-Encoding", "gzip")]).await;
    assert_eq!(gz.encoding.as_deref(), Some("gzip"));
    assert_eq!(
        gz.etag,
        format!("{}-gz\"", first.etag.trim_end_matches('"'))
    );
    assert_eq!(gunzip(&gz.body), first.body);
    let gz_again = fetch(&s, RESULTS, &[("Accept-Encoding", "gzip")]).await;
    assert_eq!(gz_again.body, gz.body, "the same gzip bytes");
    let gz_304 = fetch(
        &s,
        RESULTS,
        &[("Accept-Encoding", "gzip"), ("If-None-Match", &gz.etag)],
    )
    .await;
    assert_eq!(gz_304.status, 304);

    // A commit that changes the race: a new body and ETag; the old ETag is a 200 now.
    let seq = s.merge.snapshot().event("EV").unwrap().header.seq;
    let (st, body) = s
        .send(
            Method::POST,
            "/api/v1/ingest/results",
            &[("X-API-Key", &key)],
            Some(json!({"results": [{"raceId": "K1M_ST_BR2_6", "participantId": "30034.K1M_ST", "bib": 9, "time": 4999, "pen": 0, "total": 4999, "status": null}]})),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    assert!(s.merge.snapshot().event("EV").unwrap().header.seq > seq);
    let after = fetch(&s, RESULTS, &[("If-None-Match", &first.etag)]).await;
    assert_eq!(after.status, 200, "the old ETag no longer matches");
    assert_ne!(after.etag, first.etag);
    assert_ne!(after.body, first.body);
    assert!(
        String::from_utf8_lossy(&after.body).contains("4999"),
        "the new value is in the new body"
    );

    // A restart on the same database: the same state has the same ETag and bytes.
    s.stop().await;
    let s = start_on(db, Synchronous::Full, settings()).await;
    let restarted = fetch(&s, RESULTS, &[]).await;
    assert_eq!(restarted.etag, after.etag);
    assert_eq!(restarted.body, after.body);
    assert_eq!(
        fetch(&s, RESULTS, &[("If-None-Match", &after.etag)])
            .await
            .status,
        304
    );
}

#[tokio::test]
async fn every_public_get_is_cached_and_a_draft_event_is_still_hidden() {
    let s = crate::support::start().await;
    let key = s.create_event("EV").await;
    assert_eq!(s.import_fixture(&key).await.0, 200);
    for path in ["/api/v1/events", "/api/v1/events/EV", RESULTS] {
        let r = fetch(&s, path, &[]).await;
        if path == "/api/v1/events" {
            assert_eq!(r.status, 200);
            assert_eq!(
                String::from_utf8_lossy(&r.body),
                r#"{"events":[]}"#,
                "draft is hidden"
            );
        } else {
            assert_eq!(r.status, 404, "{path}: a draft event is not public");
        }
    }
    s.walk_to("EV", &key, "running").await;
    for path in [
        "/api/v1/events",
        "/api/v1/events/EV",
        RESULTS,
        "/api/v1/events/EV/startlist/K1M_ST_BR2_6",
        "/api/v1/events/EV/oncourse",
        "/api/v1/events/EV/categories",
    ] {
        let first = fetch(&s, path, &[]).await;
        assert_eq!(first.status, 200, "{path}");
        assert!(!first.etag.is_empty(), "{path} has an ETag");
        let again = fetch(&s, path, &[("If-None-Match", &first.etag)]).await;
        assert_eq!(again.status, 304, "{path}");
    }
    // The list's version moves when an event's does.
    let list = fetch(&s, "/api/v1/events", &[]).await;
    s.transition("EV", &key, "finished").await;
    let moved = fetch(&s, "/api/v1/events", &[("If-None-Match", &list.etag)]).await;
    assert_eq!(moved.status, 200);
    assert!(String::from_utf8_lossy(&moved.body).contains("finished"));
    // An unknown race is still a 404 with the error body, and nothing is cached for it.
    let unknown = fetch(&s, "/api/v1/events/EV/results/NOPE", &[]).await;
    assert_eq!(unknown.status, 404);
    assert!(unknown.etag.is_empty());
}
