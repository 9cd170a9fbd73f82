//! End to end over real HTTP: create, import the real export, run, live data, every public
//! endpoint with real values, finish, official.

use crate::support::*;
use reqwest::Method;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_lifecycle_with_the_real_export() {
    let s = start().await;
    let key = s.create_event("JARNI.2024").await;
    assert_eq!(key.len(), 64);

    // Draft: not public.
    assert_eq!(s.get("/api/v1/events/JARNI.2024").await.0, 404);
    assert_eq!(s.get("/api/v1/events").await.1["events"], json!([]));

    // Import the real export through the ingest API.
    let (st, body) = s.import_fixture(&key).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["imported"]["participants"], 366);
    assert_eq!(body["imported"]["classes"], 15);
    assert_eq!(body["imported"]["races"], 44);
    assert_eq!(body["imported"]["results"], 1422);
    assert_eq!(body["imported"]["courses"], 4);

    // The export's dates (2026-03-08, i.e. a window that ended 2026-03-13) must not lock the
    // key out: the window follows the admin's dates (none were given here).
    s.walk_to("JARNI.2024", &key, "startlist").await;
    let (st, body) = s.transition("JARNI.2024", &key, "running").await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["previousStatus"], "startlist");
    assert_eq!(body["status"], "running");
    assert!(body["statusChangedAt"].as_str().unwrap().ends_with('Z'));

    // Live data exactly as c123-server sends it (canoe123-formats §3.2).
    let (st, body) = s
        .post_ingest(
            "/api/v1/ingest/oncourse",
            &key,
            json!({"oncourse": [{
                "participantId": "30034.K1M_ST", "raceId": "K1M_ST_BR2_6", "bib": 9,
                "name": "KOPEČEK Michal", "club": "VS Tábor", "position": 1,
                "gates": [0,0,0,2,0,0,2,0,50,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null],
                "dtStart": "2026-08-03T16:14:00.000Z", "dtFinish": null,
                "time": 5300, "pen": 5400, "total": 10700,
                "rank": 8, "ttbDiff": "+12.79", "ttbName": "J. KREJČÍ"
            }]}),
        )
        .await;
    assert_eq!((st, body.clone()), (200, json!({"active": 1})));
    let (st, body) = s
        .post_ingest(
            "/api/v1/ingest/results",
            &key,
            json!({"results": [
                { "participantId": "12054.K1M_ST", "raceId": "K1M_ST_BR1_6", "bib": 1,
                  "rnk": 1, "time": 7699, "pen": 200, "total": 7899, "status": null,
                  "catId": null, "catRnk": null, "totalBehind": null, "catTotalBehind": null },
                { "participantId": "30034.K1M_ST", "raceId": "K1M_ST_BR2_6", "bib": 9,
                  "rnk": 8, "time": 5120, "pen": 5200, "total": 10320, "status": null,
                  "catId": null, "catRnk": null, "totalBehind": null, "catTotalBehind": null }
            ]}),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["updated"], 2);

    // Public list and detail.
    let (st, list) = s.get("/api/v1/events").await;
    assert_eq!(st, 200);
    let ev = &list["events"][0];
    assert_eq!(ev["eventId"], "JARNI.2024");
    assert_eq!(
        ev["mainTitle"], "Event JARNI.2024",
        "the admin's title wins over the export's"
    );
    assert_eq!(ev["status"], "running");
    assert_eq!(ev["startDate"], "2026-03-08");
    assert_eq!(ev["imageUrl"], Value::Null);

    let (st, detail) = s.get("/api/v1/events/JARNI.2024").await;
    assert_eq!(st, 200);
    assert_eq!(detail["event"]["location"], "Areál Lídy Polesné");
    assert_eq!(detail["classes"].as_array().unwrap().len(), 15);
    assert_eq!(detail["races"].as_array().unwrap().len(), 44);
    let br1 = detail["races"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["raceId"] == "K1M_ST_BR1_6")
        .unwrap();
    assert_eq!(br1["raceType"], "best-run-1");
    assert_eq!(br1["classId"], "K1M_ST");
    assert!(!detail["categories"].as_array().unwrap().is_empty());

    // Results, best-run combined, detailed: bib 1's first run from the export.
    let (st, res) = s
        .get("/api/v1/events/JARNI.2024/results/K1M_ST_BR1_6?detailed=true")
        .await;
    assert_eq!(st, 200);
    assert_eq!(res["race"]["raceId"], "K1M_ST_BR1_6");
    let b1 = row_of_bib(&res, 1);
    assert!(!b1["name"].as_str().unwrap().is_empty());
    assert_eq!(
        (
            b1["prevTime"].clone(),
            b1["prevPen"].clone(),
            b1["prevTotal"].clone()
        ),
        (json!(7699), json!(200), json!(7899))
    );
    // Primary = second run (79.99 s + 6 s), the first run is the better one.
    assert_eq!(
        (b1["time"].clone(), b1["pen"].clone(), b1["total"].clone()),
        (json!(7999), json!(600), json!(8599))
    );
    assert_eq!(b1["betterRunNr"], 1);
    assert_eq!(b1["totalTotal"], 7899);
    assert_eq!(b1["rnk"], 1);
    assert_eq!(b1["totalBehind"], "0.00");
    assert_eq!(b1["prevStatus"], Value::Null);
    assert_eq!(b1["currStatus"], Value::Null);
    let prev_gates = b1["prevGates"].as_array().unwrap();
    assert_eq!(prev_gates.len(), 24);
    for g in &prev_gates[..23] {
        assert_eq!(g["penalty"], 0, "{g}");
    }
    assert_eq!(prev_gates[23]["number"], 24);
    assert_eq!(prev_gates[23]["penalty"], 2);
    assert_eq!(prev_gates[0]["type"], "normal");
    assert_eq!(prev_gates[2]["type"], "reverse", "course 1 is NNR...");
    assert_eq!(b1["courseGateCount"], 24);
    assert_eq!(b1["dtStart"], "10:07:40.820");
    assert_eq!(b1["prevDtStart"], "08:30:10.780");

    // Bib 9's second run as TCP sent it (tcp-wins over the export's 90.35 s).
    let (_, res2) = s
        .get("/api/v1/events/JARNI.2024/results/K1M_ST_BR2_6")
        .await;
    let b9 = row_of_bib(&res2, 9);
    assert_eq!(
        (b9["time"].clone(), b9["pen"].clone(), b9["total"].clone()),
        (json!(5120), json!(5200), json!(10320))
    );
    assert_eq!(b9["prevTotal"], 9178);
    assert_eq!(b9["betterRunNr"], 1);
    assert_eq!(b9["totalTotal"], 9178);
    assert!(
        b9.get("gates").is_none(),
        "no detail fields without detailed=true"
    );
    // Same rows whichever run is asked for.
    assert_eq!(res2["results"], {
        let (_, plain1) = s
            .get("/api/v1/events/JARNI.2024/results/K1M_ST_BR1_6")
            .await;
        plain1["results"].clone()
    });

    // Start list.
    let (st, sl) = s
        .get("/api/v1/events/JARNI.2024/startlist/K1M_ST_BR1_6")
        .await;
    assert_eq!(st, 200);
    let first = &sl["startlist"][0];
    assert_eq!(first["startOrder"], 1);
    assert_eq!(sl["race"]["raceId"], "K1M_ST_BR1_6");

    // On course.
    let (st, oc) = s.get("/api/v1/events/JARNI.2024/oncourse").await;
    assert_eq!(st, 200);
    let r = &oc["oncourse"][0];
    assert_eq!(r["bib"], 9);
    assert_eq!(r["raceId"], "K1M_ST_BR2_6");
    assert_eq!(r["name"], "KOPEČEK Michal");
    assert_eq!(
        (r["time"].clone(), r["pen"].clone(), r["total"].clone()),
        (json!(5300), json!(5400), json!(10700))
    );
    assert_eq!(r["completed"], false);
    assert_eq!(r["dtFinish"], Value::Null);
    let gates = r["gates"].as_array().unwrap();
    assert_eq!(gates.len(), 24);
    assert_eq!(gates[3]["penalty"], 2);
    assert_eq!(gates[8]["penalty"], 50);
    assert_eq!(gates[9]["penalty"], Value::Null);
    assert_eq!(r["ttbDiff"], "+12.79");
    assert!(r.get("participantId").is_none());

    // Categories.
    let (st, cats) = s.get("/api/v1/events/JARNI.2024/categories").await;
    assert_eq!(st, 200);
    assert!(!cats["categories"][0]["classIds"]
        .as_array()
        .unwrap()
        .is_empty());

    // No image.
    let (st, img) = s.get("/api/v1/events/JARNI.2024/image").await;
    assert_eq!((st, img["error"].as_str()), (404, Some("NotFound")));

    // Finish, official.
    assert_eq!(s.transition("JARNI.2024", &key, "finished").await.0, 200);
    let (st, body) = s.transition("JARNI.2024", &key, "official").await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["previousStatus"], "finished");
    // Official: still public, frozen.
    let (st, ev) = s.get("/api/v1/events/JARNI.2024").await;
    assert_eq!(
        (st, ev["event"]["status"].as_str()),
        (200, Some("official"))
    );
    let (st, body) = s.import_fixture(&key).await;
    assert_eq!(st, 403, "{body}");
    assert_eq!(
        body["message"],
        "Data type 'xml' not accepted in 'official' state"
    );

    // Health, readiness, metrics.
    assert_eq!(s.get("/health").await, (200, json!({"status": "ok"})));
    assert_eq!(s.get("/healthz").await.0, 200);
    assert_eq!(s.get("/readyz").await.0, 200);
    let m = s
        .client
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(m.contains("http_requests_total{"), "{m}");
    assert!(
        m.contains("route=\"/api/v1/events/{eventId}/results/{raceId}\""),
        "{m}"
    );
    assert!(
        m.contains("ingest_inputs_total{kind=\"results\",outcome=\"applied\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("ingest_inputs_total{kind=\"xml\",outcome=\"forbidden\"} 1"),
        "{m}"
    );
    assert!(m.contains("merge_commit_seconds_total"), "{m}");
    assert!(m.contains("snapshot_age_seconds"), "{m}");

    // Admin list and delete.
    let (st, list) = s
        .send(
            Method::GET,
            "/api/v1/admin/events",
            &[("X-Master-Key", MASTER)],
            None,
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(list["events"][0]["apiKey"], key.as_str());
    assert_eq!(list["events"][0]["hasXmlData"], true);
    let (st, body) = s
        .send(
            Method::DELETE,
            "/api/v1/admin/events/JARNI.2024",
            &[("X-Master-Key", MASTER)],
            None,
        )
        .await;
    assert_eq!(
        (st, body),
        (200, json!({"deleted": true, "eventId": "JARNI.2024"}))
    );
    assert_eq!(s.get("/api/v1/events/JARNI.2024").await.0, 404);

    s.shutdown.cancel();
    s.task.await.unwrap().unwrap();
}
