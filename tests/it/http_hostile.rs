//! Hostile and malformed requests, and the fixes relative to live-mini, each with a test.

use std::time::Duration;

use crate::support::*;
use c123_live::http::HttpSettings;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A small export with a standard (non best-run) race.
fn small_xml(event: &str) -> String {
    let p = |id: &str, bib: u32, fam: &str| {
        format!("<Participants><Id>{id}</Id><ClassId>K1M</ClassId><EventBib>{bib}</EventBib><FamilyName>{fam}</FamilyName><GivenName>G</GivenName><CatId>SEN</CatId></Participants>")
    };
    let r = |id: &str, bib: u32| {
        format!("<Results><RaceId>K1M_QUA_1</RaceId><Id>{id}</Id><Bib>{bib}</Bib><StartOrder>{bib}</StartOrder></Results>")
    };
    format!(
        r#"<?xml version="1.0" standalone="yes"?>
<Canoe123Data xmlns="http://siwidata.com/Canoe123/Data.xsd">
{}{}{}
<Classes><ClassId>K1M</ClassId><Class>K1M</Class><Categories><CatId>SEN</CatId><Category>Senior</Category></Categories></Classes>
<Schedule><RaceId>K1M_QUA_1</RaceId><ClassId>K1M</ClassId><DisId>QUA</DisId><RaceOrder>1</RaceOrder><CourseNr>1</CourseNr></Schedule>
{}{}{}
<CourseData><CourseNr>1</CourseNr><CourseConfig>NNRN</CourseConfig></CourseData>
<Events><EventId>{event}</EventId><MainTitle>Small</MainTitle></Events>
</Canoe123Data>"#,
        p("1.K1M", 1, "ALPHA"),
        p("2.K1M", 2, "BETA"),
        p("3.K1M", 3, "GAMMA"),
        r("1.K1M", 1),
        r("2.K1M", 2),
        r("3.K1M", 3)
    )
}

async fn running_small(s: &Server, id: &str) -> String {
    let key = s.create_event(id).await;
    let (st, body) = s
        .post_ingest("/api/v1/ingest/xml", &key, json!({"xml": small_xml(id)}))
        .await;
    assert_eq!(st, 200, "{body}");
    s.walk_to(id, &key, "running").await;
    key
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_stays_null_unfinished_never_ranked_unranked_after_ranked() {
    let s = start().await;
    let key = running_small(&s, "N").await;
    let (st, body) = s
        .post_ingest(
            "/api/v1/ingest/results",
            &key,
            json!({"results": [
                {"raceId": "K1M_QUA_1", "participantId": "1.K1M", "bib": 1, "time": null, "pen": null, "total": null, "rnk": null, "status": null},
                {"raceId": "K1M_QUA_1", "participantId": "2.K1M", "bib": 2, "time": 9000, "pen": 200, "total": 9200, "rnk": 1, "status": null,
                 "gates": [{"gate": 1, "pen": 0}, {"gate": 3, "pen": 2}]},
                {"raceId": "K1M_QUA_1", "participantId": "3.K1M", "bib": 3, "time": null, "total": null, "status": "DNF"}
            ]}),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    let (_, res) = s.get("/api/v1/events/N/results/K1M_QUA_1?detailed=1").await;
    let rows = res["results"].as_array().unwrap();
    let bibs: Vec<u64> = rows.iter().map(|r| r["bib"].as_u64().unwrap()).collect();
    assert_eq!(bibs, vec![2, 1, 3], "ranked first, unranked after");
    assert_eq!(rows[0]["rnk"], 1);
    assert_eq!(rows[0]["totalBehind"], "0.00");
    assert_eq!(rows[0]["total"], 9200);
    assert_eq!(
        rows[0]["gates"][2],
        json!({"number": 3, "type": "reverse", "penalty": 2})
    );
    assert_eq!(rows[0]["gates"][1]["penalty"], Value::Null);
    // Null stays null: not 0, never rank 1.
    assert_eq!(rows[1]["time"], Value::Null);
    assert_eq!(rows[1]["total"], Value::Null);
    assert_eq!(rows[1]["rnk"], Value::Null);
    assert_eq!(rows[2]["status"], "DNF");
    assert_eq!(rows[2]["rnk"], Value::Null);
    // Category filter.
    let (_, res) = s.get("/api/v1/events/N/results/K1M_QUA_1?catId=SEN").await;
    assert_eq!(res["results"][0]["catRnk"], 1);
    let (_, res) = s.get("/api/v1/events/N/results/K1M_QUA_1?catId=JUN").await;
    assert_eq!(res["results"], json!([]));
    // Unknown race.
    let (st, body) = s.get("/api/v1/events/N/results/NOPE").await;
    assert_eq!(
        (st, body["message"].as_str()),
        (404, Some("Race not found"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oncourse_is_per_event() {
    let s = start().await;
    let ka = running_small(&s, "EA").await;
    let kb = running_small(&s, "EB").await;
    let entry = |name: &str| {
        json!({"oncourse": [{"participantId": "1.K1M", "raceId": "K1M_QUA_1", "bib": 1, "name": name,
            "position": 1, "gates": [0, 2], "dtStart": null, "dtFinish": null, "time": 4500, "pen": 200, "total": 4700}]})
    };
    assert_eq!(
        s.post_ingest("/api/v1/ingest/oncourse", &ka, entry("FROM A"))
            .await
            .0,
        200
    );
    assert_eq!(
        s.post_ingest("/api/v1/ingest/oncourse", &kb, entry("FROM B"))
            .await
            .0,
        200
    );
    let (_, a) = s.get("/api/v1/events/EA/oncourse").await;
    let (_, b) = s.get("/api/v1/events/EB/oncourse").await;
    assert_eq!(a["oncourse"].as_array().unwrap().len(), 1);
    assert_eq!(a["oncourse"][0]["name"], "FROM A");
    assert_eq!(b["oncourse"][0]["name"], "FROM B");
    assert_eq!(
        a["oncourse"][0]["dtStart"],
        Value::Null,
        "null stays null (not \"\")"
    );
    assert_eq!(
        a["oncourse"][0]["gates"][1],
        json!({"number": 2, "type": "normal", "penalty": 2})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_entries_are_rejected_naming_the_field_and_nothing_is_stored() {
    let s = start().await;
    let key = running_small(&s, "M").await;
    let (_, before) = s.get("/api/v1/events/M/results/K1M_QUA_1").await;
    let good = json!({"raceId": "K1M_QUA_1", "participantId": "1.K1M", "bib": 1, "time": 9000, "pen": 0, "total": 9000});
    let cases: Vec<(Value, &str)> = vec![
        (json!({"results": [good.clone(), good.clone(), good.clone(),
            {"raceId": "K1M_QUA_1", "participantId": "2.K1M", "bib": 2, "time": "fast"}]}),
         "results[3].time: invalid type: string \"fast\", expected non-negative integer"),
        (json!({"results": [good.clone(), {"raceId": "K1M_QUA_1", "participantId": "2.K1M", "bib": 2, "time": 1.5}]}),
         "results[1].time: invalid type: floating point `1.5`, expected non-negative integer"),
        (json!({"results": [{"raceId": "K1M_QUA_1", "bib": 2}]}), "results[0]: missing field `participantId`"),
        (json!({"results": [good.clone(), {"raceId": "K1M_QUA_1", "participantId": "2.K1M", "bib": -2}]}),
         "results[1].bib: invalid value: integer `-2`, expected non-negative integer"),
        (json!({"results": [{"raceId": "K1M_QUA_1", "participantId": "2.K1M", "bib": 2, "pen": 250}]}),
         "results[0].pen: 250 is not whole seconds (penalties are centiseconds, multiples of 100)"),
        (json!({"results": [good.clone(), {"raceId": "K1M_QUA_1", "participantId": "2.K1M", "bib": 2, "status": 3}]}),
         "results[1].status: invalid type: integer `3`, expected a string"),
        (json!({"results": [{"raceId": "K1M_QUA_1", "participantId": "2.K1M", "bib": 2, "status": "X".repeat(33)}]}),
         "results[0].status: 33 bytes, at most 32 are accepted"),
        (json!({"results": "nope"}), "results: invalid type: string \"nope\", expected a sequence"),
        (json!({}), "missing field `results`"),
        (json!([1, 2]), "Body is not valid JSON for this endpoint: a JSON object is expected"),
    ];
    for (body, msg) in cases {
        let (st, resp) = s.post_ingest("/api/v1/ingest/results", &key, body).await;
        assert_eq!(st, 400, "{resp}");
        assert_eq!(resp["error"], "InvalidRequest");
        assert_eq!(resp["message"], msg);
    }
    let (st, resp) = s
        .post_ingest(
            "/api/v1/ingest/oncourse",
            &key,
            json!({"oncourse": [{"participantId": "1.K1M", "raceId": "K1M_QUA_1", "bib": 1, "gates": [0, "x"]}]}),
        )
        .await;
    assert_eq!(st, 400);
    assert_eq!(
        resp["message"],
        "oncourse[0].gates[1]: invalid type: string \"x\", expected non-negative integer"
    );
    let (_, after) = s.get("/api/v1/events/M/results/K1M_QUA_1").await;
    assert_eq!(before, after, "nothing was stored");
    let (_, oc) = s.get("/api/v1/events/M/oncourse").await;
    assert_eq!(oc["oncourse"], json!([]));

    // Invalid JSON, empty body, invalid XML.
    let r = s
        .client
        .post(s.url("/api/v1/ingest/results"))
        .header("X-API-Key", &key)
        .header("content-type", "application/json")
        .body("{\"results\": [")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let b: Value = r.json().await.unwrap();
    assert!(
        b["message"]
            .as_str()
            .unwrap()
            .starts_with("Body is not valid JSON"),
        "{b}"
    );
    let (st, b) = s
        .post_ingest("/api/v1/ingest/xml", &key, json!({"xml": ""}))
        .await;
    assert_eq!(
        (st, b["message"].as_str()),
        (400, Some("Missing required field: xml"))
    );
    let (st, b) = s
        .post_ingest("/api/v1/ingest/xml", &key, json!({"xml": "not xml at all"}))
        .await;
    assert_eq!(
        (st, b["error"].as_str()),
        (400, Some("InvalidRequest")),
        "{b}"
    );
    let (st, b) = s
        .post_ingest(
            "/api/v1/ingest/xml",
            &key,
            json!({"xml": "<event><EventInfo></EventInfo></event>"}),
        )
        .await;
    assert_eq!(st, 400);
    assert!(
        b["message"].as_str().unwrap().contains("Canoe123Data"),
        "{b}"
    );
    // Raw XML body works too.
    let r = s
        .client
        .post(s.url("/api/v1/ingest/xml"))
        .header("X-API-Key", &key)
        .header("content-type", "application/xml")
        .body(small_xml("M"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_and_huge_arrays() {
    let s = start_with(HttpSettings {
        master_keys: vec![MASTER.into()],
        body_limit: 64 * 1024,
        body_limit_xml: 256 * 1024,
        ..HttpSettings::default()
    })
    .await;
    let key = running_small(&s, "L").await;
    // Declared length over the limit.
    let big = format!("{{\"results\": [{}]}}", vec!["1"; 40_000].join(","));
    let r = s
        .client
        .post(s.url("/api/v1/ingest/results"))
        .header("X-API-Key", &key)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["error"], "PayloadTooLarge");
    // Chunked body (no Content-Length) over the limit: enforced while reading.
    let mut sock = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let head = format!(
        "POST /api/v1/ingest/oncourse HTTP/1.1\r\nhost: x\r\nx-api-key: {key}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![b' '; 8192];
    let mut resp = Vec::new();
    for _ in 0..20 {
        let frame = [
            format!("{:x}\r\n", chunk.len()).into_bytes(),
            chunk.clone(),
            b"\r\n".to_vec(),
        ]
        .concat();
        if sock.write_all(&frame).await.is_err() {
            break;
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), sock.read_to_end(&mut resp)).await;
    let text = String::from_utf8_lossy(&resp);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("PayloadTooLarge"));
    // XML over its own limit.
    let (st, _) = s
        .post_ingest(
            "/api/v1/ingest/xml",
            &key,
            json!({"xml": "x".repeat(300 * 1024)}),
        )
        .await;
    assert_eq!(st, 413);
    // Too many items and too many gates within the byte limit.
    let s2 = start().await;
    let key2 = running_small(&s2, "L2").await;
    let item = json!({"raceId": "K1M_QUA_1", "participantId": "9.K1M", "bib": 9});
    let (st, b) = s2
        .post_ingest(
            "/api/v1/ingest/results",
            &key2,
            json!({"results": vec![item; 10_001]}),
        )
        .await;
    assert_eq!(st, 400, "{b}");
    assert!(b["message"].as_str().unwrap().contains("at most 10000"));
    let (st, b) = s2
        .post_ingest(
            "/api/v1/ingest/oncourse",
            &key2,
            json!({"oncourse": [{"participantId": "1.K1M", "raceId": "K1M_QUA_1", "bib": 1, "gates": vec![0; 5000]}]}),
        )
        .await;
    assert_eq!(st, 400, "{b}");
    let message = b["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("oncourse[0].gates") && message.contains("64"),
        "the refusal names the field and the 64-slot bound: {message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_head_and_no_500_for_bad_input() {
    let s = start().await;
    let key = running_small(&s, "U").await;
    for path in [
        "/nope",
        "/api/v1/nope",
        "/api/v1/events/U/nope",
        "/api/v1/events/",
        "/api/v1/events/U/results",
    ] {
        let (st, b) = s.get(path).await;
        assert_eq!(st, 404, "{path}");
        assert_eq!(b["error"], "NotFound", "{path}");
        assert!(b["message"].is_string());
    }
    let (st, b) = s.send(Method::PUT, "/api/v1/events", &[], None).await;
    assert_eq!((st, b["error"].as_str()), (404, Some("NotFound")));
    // The WebSocket route: a plain GET (no upgrade) is a JSON 400, not a 500
    // (protocol/websocket.md, "Refusals"); an unknown event is a 404.
    let (st, b) = s.get("/api/v1/events/U/ws").await;
    assert_eq!((st, b["error"].as_str()), (400, Some("InvalidRequest")));
    let (st, b) = s.get("/api/v1/events/NOPE/ws").await;
    assert_eq!((st, b["error"].as_str()), (404, Some("EventNotFound")));
    // Draft events are not public.
    s.create_event("DRAFT").await;
    for p in [
        "",
        "/oncourse",
        "/categories",
        "/image",
        "/results/K1M_QUA_1",
        "/startlist/K1M_QUA_1",
    ] {
        assert_eq!(
            s.get(&format!("/api/v1/events/DRAFT{p}")).await.0,
            404,
            "{p}"
        );
    }

    // HEAD for GETs: same status and length, no body.
    let get = s
        .client
        .get(s.url("/api/v1/events/U"))
        .send()
        .await
        .unwrap();
    let len = get.bytes().await.unwrap().len();
    let head = s
        .client
        .head(s.url("/api/v1/events/U"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(
        head.headers()["content-length"].to_str().unwrap(),
        len.to_string()
    );
    assert!(head.bytes().await.unwrap().is_empty());

    // Garbage everywhere: never a 5xx.
    let bodies = [
        "",
        "null",
        "[]",
        "{}",
        "\"x\"",
        "{\"results\":null}",
        "{\"oncourse\":[null]}",
        "{\"status\":1}",
        "{\"xml\":5}",
        "{\"eventId\":\"a b\",\"mainTitle\":\"t\"}",
        "{\"eventId\":\"x\",\"mainTitle\":\"\"}",
        "{\"eventId\":\"x\",\"mainTitle\":\"t\",\"imageData\":\"!!!\"}",
        "\u{0}\u{1}",
        "{\"a\":",
    ];
    let routes = [
        (Method::POST, "/api/v1/admin/events"),
        (Method::PATCH, "/api/v1/admin/events/U/status"),
        (Method::PATCH, "/api/v1/admin/events/U/config"),
        (Method::POST, "/api/v1/ingest/xml"),
        (Method::POST, "/api/v1/ingest/oncourse"),
        (Method::POST, "/api/v1/ingest/results"),
    ];
    for (m, path) in routes {
        for b in bodies {
            let r = s
                .client
                .request(m.clone(), s.url(path))
                .header("X-API-Key", &key)
                .header("X-Master-Key", MASTER)
                .header("content-type", "application/json")
                .body(b.to_owned())
                .send()
                .await
                .unwrap();
            let st = r.status().as_u16();
            assert!(st < 500, "{m} {path} {b:?} -> {st}");
            let v: Value = r.json().await.unwrap_or(Value::Null);
            assert!(
                v.get("error").is_some() || st < 300,
                "{m} {path} {b:?} -> {v}"
            );
        }
    }
    for q in ["?detailed=%ZZ", "?catId=%FF%FE", "?&&==&", "?detailed"] {
        let (st, _) = s
            .get(&format!("/api/v1/events/U/results/K1M_QUA_1{q}"))
            .await;
        assert!(st < 500, "{q}");
    }
    assert!(s.get("/api/v1/events/%FF").await.0 < 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_image_is_validated_and_served() {
    let s = start().await;
    // A 1x1 PNG.
    let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=";
    let post = |id: &str, img: String| {
        s.send(
            Method::POST,
            "/api/v1/admin/events",
            &[("X-Master-Key", MASTER)],
            Some(json!({"eventId": id, "mainTitle": "T", "imageData": img})),
        )
    };
    let (st, b) = post("IMG", format!("data:image/png;base64,{png}")).await;
    assert_eq!(st, 201, "{b}");
    let key = b["apiKey"].as_str().unwrap().to_owned();
    // Not public in draft.
    assert_eq!(s.get("/api/v1/events/IMG/image").await.0, 404);
    s.walk_to("IMG", &key, "startlist").await;
    let r = s
        .client
        .get(s.url("/api/v1/events/IMG/image"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/png");
    assert_eq!(r.headers()["cache-control"], "public, max-age=86400");
    assert!(r.bytes().await.unwrap().starts_with(b"\x89PNG"));
    let (_, list) = s.get("/api/v1/events").await;
    assert_eq!(list["events"][0]["imageUrl"], "/api/v1/events/IMG/image");
    // Raw base64 works; text that is not an image does not.
    assert_eq!(post("IMG2", png.to_owned()).await.0, 201);
    let (st, b) = post("IMG3", "aGVsbG8gd29ybGQ=".to_owned()).await;
    assert_eq!((st, b["error"].as_str()), (400, Some("InvalidRequest")));
    let (st, _) = post("IMG4", "data:image/png;base64,***".to_owned()).await;
    assert_eq!(st, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slowloris_connections_do_not_block_the_server() {
    let s = start_with(HttpSettings {
        master_keys: vec![MASTER.into()],
        header_read_timeout: Duration::from_secs(1),
        // All 2000 come from 127.0.0.1; the per-address cap has its own test.
        max_connections_per_ip: 0,
        ..HttpSettings::default()
    })
    .await;
    let mut idle = Vec::new();
    for i in 0..2000 {
        let mut c = tokio::net::TcpStream::connect(s.addr).await.unwrap();
        if i % 2 == 0 {
            // Half a request head, never finished.
            c.write_all(b"GET /api/v1/events HTTP/1.1\r\nhost: x\r\nx-slow: ")
                .await
                .unwrap();
        }
        idle.push(c);
    }
    let t = std::time::Instant::now();
    let (st, _) = s.get("/health").await;
    assert_eq!(st, 200);
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "served while 2000 connections idle"
    );
    // The idle connections are closed by the header-read timeout.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut closed = 0;
    for c in idle.iter_mut() {
        let mut buf = [0u8; 512];
        match tokio::time::timeout(Duration::from_millis(200), c.read(&mut buf)).await {
            Ok(Ok(_)) | Ok(Err(_)) => closed += 1, // EOF, a 408 response, or reset
            Err(_) => {}
        }
    }
    assert_eq!(closed, 2000, "every idle connection was closed");
    assert_eq!(s.get("/health").await.0, 200);
}
