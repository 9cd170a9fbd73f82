//! The served JSON of every endpoint matches `protocol/openapi.yaml`: required fields
//! present, no undocumented fields, types (incl. nullable) as documented.

use crate::support::openapi::*;
use crate::support::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_matches_the_openapi_description() {
    let mut c = Checker {
        spec: spec(),
        errors: Vec::new(),
        count: 0,
    };
    let s = start().await;
    let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=";
    let (st, created) = s
        .send(
            Method::POST,
            "/api/v1/admin/events",
            &[("X-Master-Key", MASTER)],
            Some(json!({"eventId": "OA", "mainTitle": "T", "startDate": c123_live::time::now_iso()[..10].to_owned(), "imageData": png})),
        )
        .await;
    c.check("/api/v1/admin/events", "post", st, &created);
    let key = created["apiKey"].as_str().unwrap().to_owned();
    let (st, b) = s
        .send(
            Method::POST,
            "/api/v1/admin/events",
            &[("X-Master-Key", MASTER)],
            Some(json!({"eventId": "OA", "mainTitle": "T"})),
        )
        .await;
    c.check("/api/v1/admin/events", "post", st, &b);
    let (st, b) = s
        .send(Method::POST, "/api/v1/admin/events", &[], Some(json!({})))
        .await;
    c.check("/api/v1/admin/events", "post", st, &b);
    let (st, b) = s
        .send(
            Method::GET,
            "/api/v1/admin/events",
            &[("X-Master-Key", MASTER)],
            None,
        )
        .await;
    c.check("/api/v1/admin/events", "get", st, &b);
    let cfg = "/api/v1/admin/events/{eventId}/config";
    let (st, b) = s
        .send(Method::PATCH, "/api/v1/admin/events/OA/config", &[("X-API-Key", &key)], Some(json!({"displayMode": "simple", "showOnCourse": true, "activeRaceId": "K1M_ST_BR1_6"})))
        .await;
    c.check(cfg, "patch", st, &b);
    let (st, b) = s
        .send(
            Method::GET,
            "/api/v1/admin/events/OA/config",
            &[("X-API-Key", &key)],
            None,
        )
        .await;
    c.check(cfg, "get", st, &b);
    let (st, b) = s.import_fixture(&key).await;
    c.check("/api/v1/ingest/xml", "post", st, &b);
    let (st, b) = s
        .post_ingest("/api/v1/ingest/xml", &key, json!({"xml": "<x/>"}))
        .await;
    c.check("/api/v1/ingest/xml", "post", st, &b);
    let status = "/api/v1/admin/events/{eventId}/status";
    let (st, b) = s.transition("OA", &key, "running").await;
    c.check(status, "patch", st, &b);
    for to in ["startlist", "running"] {
        let (st, b) = s.transition("OA", &key, to).await;
        c.check(status, "patch", st, &b);
    }
    let (st, b) = s.transition("OA", &key, "bogus").await;
    c.check(status, "patch", st, &b);
    let (st, b) = s
        .post_ingest("/api/v1/ingest/oncourse", &key, json!({"oncourse": [{"participantId": "30034.K1M_ST", "raceId": "K1M_ST_BR2_6", "bib": 9, "name": "KOPEČEK Michal", "club": "VS Tábor", "position": 1, "gates": [0, 2, null], "dtStart": "2026-08-03T16:14:00.000Z", "dtFinish": null, "time": 5300, "pen": 5400, "total": 10700, "rank": 8, "ttbDiff": "+12.79", "ttbName": "J. KREJČÍ"}]}))
        .await;
    c.check("/api/v1/ingest/oncourse", "post", st, &b);
    let (st, b) = s
        .post_ingest("/api/v1/ingest/results", &key, json!({"results": [{"participantId": "30034.K1M_ST", "raceId": "K1M_ST_BR2_6", "bib": 9, "rnk": 8, "time": 5120, "pen": 5200, "total": 10320, "status": null}]}))
        .await;
    c.check("/api/v1/ingest/results", "post", st, &b);
    let (st, b) = s
        .post_ingest(
            "/api/v1/ingest/results",
            &key,
            json!({"results": [{"bib": "x"}]}),
        )
        .await;
    c.check("/api/v1/ingest/results", "post", st, &b);

    for (template, path) in [
        ("/health", "/health".to_owned()),
        ("/healthz", "/healthz".to_owned()),
        ("/readyz", "/readyz".to_owned()),
        ("/api/v1/events", "/api/v1/events".to_owned()),
        ("/api/v1/events/{eventId}", "/api/v1/events/OA".to_owned()),
        ("/api/v1/events/{eventId}", "/api/v1/events/NOPE".to_owned()),
        (
            "/api/v1/events/{eventId}/results/{raceId}",
            "/api/v1/events/OA/results/K1M_ST_BR2_6".to_owned(),
        ),
        (
            "/api/v1/events/{eventId}/results/{raceId}",
            "/api/v1/events/OA/results/K1M_ST_BR1_6?detailed=true".to_owned(),
        ),
        (
            "/api/v1/events/{eventId}/results/{raceId}",
            "/api/v1/events/OA/results/C1M_ST_BR2_6?detailed=true&catId=M".to_owned(),
        ),
        (
            "/api/v1/events/{eventId}/results/{raceId}",
            "/api/v1/events/OA/results/NOPE".to_owned(),
        ),
        (
            "/api/v1/events/{eventId}/startlist/{raceId}",
            "/api/v1/events/OA/startlist/K1M_ST_BR1_6".to_owned(),
        ),
        (
            "/api/v1/events/{eventId}/oncourse",
            "/api/v1/events/OA/oncourse".to_owned(),
        ),
        (
            "/api/v1/events/{eventId}/categories",
            "/api/v1/events/OA/categories".to_owned(),
        ),
        (
            "/api/v1/events/{eventId}/image",
            "/api/v1/events/NOPE/image".to_owned(),
        ),
        (
            "/api/v1/events/{eventId}/ws",
            "/api/v1/events/OA/ws".to_owned(),
        ),
    ] {
        let (st, b) = s.get(&path).await;
        c.check(template, "get", st, &b);
    }
    let img = s
        .client
        .get(s.url("/api/v1/events/OA/image"))
        .send()
        .await
        .unwrap();
    assert_eq!(img.status(), 200);
    assert!(c.spec["paths"]["/metrics"]["get"].is_object());
    let (st, b) = s
        .send(
            Method::DELETE,
            "/api/v1/admin/events/OA",
            &[("X-Master-Key", MASTER)],
            None,
        )
        .await;
    c.check("/api/v1/admin/events/{eventId}", "delete", st, &b);
    assert!(
        c.errors.is_empty(),
        "{} problems:\n{}",
        c.errors.len(),
        c.errors.join("\n")
    );
    assert!(c.count >= 30, "{}", c.count);
}

#[test]
fn the_checker_catches_mismatches() {
    let spec = spec();
    let schema = json!({"$ref": "#/components/schemas/Gate"});
    let mut errors = Vec::new();
    check(
        &spec,
        &schema,
        &json!({"number": 1, "type": "normal", "penalty": null}),
        "ok",
        &mut errors,
    );
    assert!(errors.is_empty(), "{errors:?}");
    check(
        &spec,
        &schema,
        &json!({"number": "1", "type": "weird", "extra": 1}),
        "bad",
        &mut errors,
    );
    assert_eq!(errors.len(), 4, "{errors:?}");
}
