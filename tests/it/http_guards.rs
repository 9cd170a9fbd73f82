//! Every row of live-mini's ingest-guard table (§4.3) and lifecycle table (§4.1), and the
//! authentication rules, over real HTTP.

use crate::support::*;
use c123_live::http::HttpSettings;
use reqwest::Method;
use serde_json::json;

const STATES: [&str; 5] = ["draft", "startlist", "running", "finished", "official"];

/// An event with the export imported (in draft), moved to `state`.
async fn event_in(s: &Server, id: &str, state: &str) -> String {
    let key = s.create_event(id).await;
    let (st, body) = s.import_fixture(&key).await;
    assert_eq!(st, 200, "{body}");
    s.walk_to(id, &key, state).await;
    key
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_guard_table() {
    let s = start().await;
    // (state, xml, config, oncourse, results) as in the reference §4.3.
    let table = [
        ("draft", true, true, false, false),
        ("startlist", true, false, false, false),
        ("running", true, false, true, true),
        ("finished", true, false, false, true),
        ("official", false, false, false, false),
    ];
    for (i, (state, xml, config, oncourse, results)) in table.into_iter().enumerate() {
        let id = format!("G{i}");
        let key = event_in(&s, &id, state).await;
        let check = |what: &str, allowed: bool, st: u16, body: &serde_json::Value, token: &str| {
            if allowed {
                assert_eq!(st, 200, "{what} in {state}: {body}");
            } else {
                assert_eq!(st, 403, "{what} in {state}: {body}");
                assert_eq!(body["error"], "Forbidden");
                assert_eq!(
                    body["message"],
                    format!("Data type '{token}' not accepted in '{state}' state")
                );
            }
        };
        let (st, body) = s.import_fixture(&key).await;
        check("xml", xml, st, &body, "xml");
        let (st, body) = s
            .send(
                Method::PATCH,
                &format!("/api/v1/admin/events/{id}/config"),
                &[("X-API-Key", &key)],
                Some(json!({"activeRaceId": "K1M_ST_BR1_6"})),
            )
            .await;
        check("config", config, st, &body, "config");
        let (st, body) = s
            .post_ingest(
                "/api/v1/ingest/oncourse",
                &key,
                json!({"oncourse": [{"participantId": "12054.K1M_ST", "raceId": "K1M_ST_BR1_6", "bib": 1, "name": "X", "position": 1, "gates": []}]}),
            )
            .await;
        check("oncourse", oncourse, st, &body, "json_oncourse");
        let (st, body) = s
            .post_ingest(
                "/api/v1/ingest/results",
                &key,
                json!({"results": [{"participantId": "12054.K1M_ST", "raceId": "K1M_ST_BR1_6", "bib": 1, "time": 7699, "pen": 200, "total": 7899, "status": null}]}),
            )
            .await;
        check("results", results, st, &body, "json_results");
        if results {
            assert_eq!(body, json!({"updated": 1, "skipped": 0}));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_data_before_any_export_is_ignored() {
    let s = start().await;
    let key = s.create_event("NOXML").await;
    s.walk_to("NOXML", &key, "running").await;
    let (st, body) = s
        .post_ingest("/api/v1/ingest/oncourse", &key, json!({"oncourse": []}))
        .await;
    assert_eq!((st, body), (200, json!({"active": 0, "ignored": true})));
    let (st, body) = s
        .post_ingest("/api/v1/ingest/results", &key, json!({"results": []}))
        .await;
    assert_eq!((st, body), (200, json!({"updated": 0, "ignored": true})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_table_every_pair() {
    let s = start().await;
    let valid = [
        ("draft", "startlist"),
        ("startlist", "running"),
        ("startlist", "draft"),
        ("running", "finished"),
        ("finished", "official"),
        ("finished", "running"),
    ];
    let mut n = 0;
    for from in STATES {
        for to in STATES {
            n += 1;
            let id = format!("L{n}");
            let key = s.create_event(&id).await;
            s.walk_to(&id, &key, from).await;
            let (st, body) = s.transition(&id, &key, to).await;
            if valid.contains(&(from, to)) {
                assert_eq!(st, 200, "{from}->{to}: {body}");
                assert_eq!(body["previousStatus"], from);
                assert_eq!(body["status"], to);
                assert_eq!(body["eventId"], id.as_str());
            } else {
                assert_eq!(st, 400, "{from}->{to}: {body}");
                assert_eq!(body["error"], "InvalidTransition");
                assert_eq!(body["currentStatus"], from);
                assert_eq!(body["requestedStatus"], to);
                let expected: Vec<&str> = valid
                    .iter()
                    .filter(|(f, _)| *f == from)
                    .map(|(_, t)| *t)
                    .collect();
                let mut got: Vec<String> = body["validTransitions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_owned())
                    .collect();
                got.sort();
                let mut exp: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
                exp.sort();
                assert_eq!(got, exp, "{from}->{to}");
                let msg = body["message"].as_str().unwrap();
                assert!(msg.starts_with(&format!("Cannot transition from '{from}' to '{to}'")));
                if from == "official" {
                    assert!(msg.ends_with("Valid transitions: none"), "{msg}");
                }
            }
        }
    }
    // Unknown status value and unknown event.
    let key = s.create_event("LX").await;
    let (st, body) = s.transition("LX", &key, "paused").await;
    assert_eq!((st, body["error"].as_str()), (400, Some("InvalidRequest")));
    let (st, _) = s.transition("NOPE", &key, "startlist").await;
    assert_eq!(st, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_and_master_keys() {
    let s = start().await;
    let key_a = s.create_event("A").await;
    let key_b = s.create_event("B").await;

    // Missing, wrong, other event's key.
    let (st, body) = s
        .send(
            Method::PATCH,
            "/api/v1/admin/events/A/status",
            &[],
            Some(json!({"status": "startlist"})),
        )
        .await;
    assert_eq!(
        (st, body["message"].as_str()),
        (401, Some("Missing or invalid X-API-Key header"))
    );
    let (st, body) = s.transition("A", &"0".repeat(64), "startlist").await;
    assert_eq!(
        (st, body["message"].as_str()),
        (401, Some("Invalid API key"))
    );
    let (st, body) = s.transition("A", &key_b, "startlist").await;
    assert_eq!(
        (st, body["message"].as_str()),
        (401, Some("API key does not match event"))
    );
    for m in [Method::GET, Method::PATCH] {
        let (st, body) = s
            .send(
                m,
                "/api/v1/admin/events/A/config",
                &[("X-API-Key", &key_b)],
                Some(json!({})),
            )
            .await;
        assert_eq!((st, body["error"].as_str()), (401, Some("Unauthorized")));
    }
    let (st, body) = s
        .send(
            Method::GET,
            "/api/v1/admin/events/A/config",
            &[("X-API-Key", &key_a)],
            None,
        )
        .await;
    assert_eq!((st, body), (200, json!({})));
    let (st, body) = s
        .send(
            Method::PATCH,
            "/api/v1/admin/events/A/config",
            &[("X-API-Key", &key_a)],
            Some(json!({"displayMode": "detailed", "foo": 1})),
        )
        .await;
    assert_eq!(
        st, 400,
        "unknown config keys are rejected, not stripped: {body}"
    );
    let (st, body) = s
        .send(
            Method::PATCH,
            "/api/v1/admin/events/A/config",
            &[("X-API-Key", &key_a)],
            Some(json!({"displayMode": "detailed"})),
        )
        .await;
    assert_eq!((st, body), (200, json!({"displayMode": "detailed"})));
    let (st, body) = s
        .send(
            Method::PATCH,
            "/api/v1/admin/events/A/config",
            &[("X-API-Key", &key_a)],
            Some(json!({"showOnCourse": true})),
        )
        .await;
    assert_eq!(
        (st, body),
        (
            200,
            json!({"displayMode": "detailed", "showOnCourse": true})
        )
    );

    // Ingest without or with a bad key.
    let (st, _) = s
        .send(
            Method::POST,
            "/api/v1/ingest/results",
            &[],
            Some(json!({"results": []})),
        )
        .await;
    assert_eq!(st, 401);

    // Master key: missing, wrong.
    let body = json!({"eventId": "M1", "mainTitle": "T"});
    let (st, b) = s
        .send(
            Method::POST,
            "/api/v1/admin/events",
            &[],
            Some(body.clone()),
        )
        .await;
    assert_eq!(
        (st, b["message"].as_str()),
        (401, Some("Missing or invalid X-Master-Key header"))
    );
    let (st, b) = s
        .send(
            Method::POST,
            "/api/v1/admin/events",
            &[("X-Master-Key", "nope")],
            Some(body.clone()),
        )
        .await;
    assert_eq!(
        (st, b["message"].as_str()),
        (401, Some("Invalid master key"))
    );
    assert_eq!(
        s.send(Method::GET, "/api/v1/admin/events", &[], None)
            .await
            .0,
        401
    );
    assert_eq!(
        s.send(Method::DELETE, "/api/v1/admin/events/A", &[], None)
            .await
            .0,
        401
    );
    assert_eq!(
        s.send(
            Method::DELETE,
            "/api/v1/admin/events/ZZ",
            &[("X-Master-Key", MASTER)],
            None
        )
        .await
        .0,
        404
    );
    // Duplicate event.
    let (st, b) = s
        .send(
            Method::POST,
            "/api/v1/admin/events",
            &[("X-Master-Key", MASTER)],
            Some(json!({"eventId": "A", "mainTitle": "T"})),
        )
        .await;
    assert_eq!((st, b["error"].as_str()), (409, Some("Conflict")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_validity_window_follows_the_admin_dates_only() {
    let s = start().await;
    let create = |id: &str, start: &str, end: &str| json!({"eventId": id, "mainTitle": "T", "startDate": start, "endDate": end});
    let post = |b| {
        s.send(
            Method::POST,
            "/api/v1/admin/events",
            &[("X-Master-Key", MASTER)],
            Some(b),
        )
    };
    let (st, past) = post(create("PAST", "2020-01-01", "2020-01-02")).await;
    assert_eq!(st, 201);
    assert_eq!(past["validity"]["validFrom"], "2019-12-22T00:00:00.000Z");
    assert_eq!(past["validity"]["validUntil"], "2020-01-07T00:00:00.000Z");
    let (st, body) = s
        .transition("PAST", past["apiKey"].as_str().unwrap(), "startlist")
        .await;
    assert_eq!(
        (st, body["message"].as_str()),
        (401, Some("Key expired on 2020-01-07T00:00:00.000Z"))
    );

    let (_, future) = post(create("FUT", "2099-06-20", "2099-06-21")).await;
    let (st, body) = s
        .transition("FUT", future["apiKey"].as_str().unwrap(), "startlist")
        .await;
    assert_eq!(
        (st, body["message"].as_str()),
        (
            401,
            Some("Key not yet valid. Valid from 2099-06-10T00:00:00.000Z")
        )
    );

    // Admin dates around now: the export (dates 2026-03-08, window long over) cannot lock the
    // key out, and public dates follow the export.
    let today = c123_live::time::now_iso()[..10].to_owned();
    let (st, now) = post(create("NOW", &today, &today)).await;
    assert_eq!(st, 201);
    let key = now["apiKey"].as_str().unwrap().to_owned();
    assert_eq!(s.import_fixture(&key).await.0, 200);
    assert_eq!(
        s.import_fixture(&key).await.0,
        200,
        "the key still works after an import"
    );
    assert_eq!(s.transition("NOW", &key, "startlist").await.0, 200);
    let (_, ev) = s.get("/api/v1/events/NOW").await;
    assert_eq!(ev["event"]["startDate"], "2026-03-08");

    // Bad dates are refused, nothing is created.
    let (st, body) = post(create("BAD", "garbage", "2020-01-01")).await;
    assert_eq!((st, body["error"].as_str()), (400, Some("InvalidRequest")));
    assert!(body["message"].as_str().unwrap().starts_with("startDate"));
    let (_, list) = s
        .send(
            Method::GET,
            "/api/v1/admin/events",
            &[("X-Master-Key", MASTER)],
            None,
        )
        .await;
    assert!(list["events"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["eventId"] != "BAD"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_admin_only_in_dev_mode() {
    let no_key = HttpSettings {
        master_keys: vec![],
        dev: false,
        ..HttpSettings::default()
    };
    assert!(no_key.validate().is_err());
    let dir = tempfile::tempdir().unwrap();
    let refused = c123_live::app::App::start(c123_live::settings::Settings {
        db: dir.path().join("x.db"),
        listen: "127.0.0.1:0".parse().unwrap(),
        http: no_key,
        ..Default::default()
    })
    .await;
    let refusal = refused.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        refusal.contains("no master key configured"),
        "the daemon refuses to start with an open admin API outside dev mode: {refusal:?}"
    );

    let s = start_with(HttpSettings {
        master_keys: vec![],
        dev: true,
        ..HttpSettings::default()
    })
    .await;
    let (st, _) = s
        .send(
            Method::POST,
            "/api/v1/admin/events",
            &[],
            Some(json!({"eventId": "D", "mainTitle": "T"})),
        )
        .await;
    assert_eq!(st, 201);
}
