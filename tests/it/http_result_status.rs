//! Issue 12 item 2: a result status the timing system invents is taken, not a 400 for the
//! whole batch. Through the real HTTP API, with a real SQLite file and a restart: kept as
//! sent, unranked, counted in /metrics; wrong types and absurd values stay a 400 naming the
//! field; the XML export follows the same rule.

use std::path::Path;

use c123_live::store::Synchronous;
use serde_json::{json, Value};

use crate::support::{settings, start_on, Server, MASTER};

/// The daemon through `App::start` on a database file the test keeps across restarts.
struct Daemon {
    base: String,
    client: reqwest::Client,
    server: Server,
}

impl Daemon {
    async fn start(db: &Path) -> Daemon {
        let server = start_on(db.to_path_buf(), Synchronous::Full, settings()).await;
        Daemon {
            base: server.base.clone(),
            client: server.client.clone(),
            server,
        }
    }

    async fn stop(self) {
        self.server.stop().await;
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        key: Option<(&str, &str)>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut rb = self.client.request(method, format!("{}{path}", self.base));
        if let Some((h, v)) = key {
            rb = rb.header(h, v);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.expect("request");
        let st = r.status().as_u16();
        (st, r.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> Value {
        let (st, body) = self.call(reqwest::Method::GET, path, None, None).await;
        assert_eq!(st, 200, "GET {path}: {body}");
        body
    }

    async fn unknown_status_total(&self) -> f64 {
        let text = self
            .client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        // NaN when absent: the difference checks below then fail.
        text.lines()
            .find_map(|l| l.strip_prefix("results_unknown_status_total "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(f64::NAN)
    }

    /// Creates `id`, imports `xml` and walks it to running; returns the API key.
    async fn running_event(&self, id: &str, xml: String) -> String {
        let (st, b) = self
            .call(
                reqwest::Method::POST,
                "/api/v1/admin/events",
                Some(("X-Master-Key", MASTER)),
                Some(json!({"eventId": id, "mainTitle": "T"})),
            )
            .await;
        assert_eq!(st, 201, "{b}");
        let key = b["apiKey"].as_str().unwrap().to_owned();
        let auth = Some(("X-API-Key", key.as_str()));
        let (st, b) = self
            .call(
                reqwest::Method::POST,
                "/api/v1/ingest/xml",
                auth,
                Some(json!({"xml": xml})),
            )
            .await;
        assert_eq!(st, 200, "{b}");
        for to in ["startlist", "running"] {
            let path = format!("/api/v1/admin/events/{id}/status");
            let (st, b) = self
                .call(
                    reqwest::Method::PATCH,
                    &path,
                    auth,
                    Some(json!({"status": to})),
                )
                .await;
            assert_eq!(st, 200, "{b}");
        }
        key
    }
}

/// A standard race K1M_QUA_1 with bibs 1-4; `status_of(bib)` gives an XML `Status`.
fn small_xml(event: &str, status_of: impl Fn(u32) -> &'static str) -> String {
    let mut body = String::new();
    for bib in 1..=4 {
        body.push_str(&format!("<Participants><Id>{bib}.K1M</Id><ClassId>K1M</ClassId><EventBib>{bib}</EventBib><FamilyName>F{bib}</FamilyName><GivenName>G</GivenName><CatId>SEN</CatId></Participants>"));
    }
    // Canoe123 ranks the clean runs itself (the export's ranks are kept).
    let mut rank = 0;
    for bib in 1..=4 {
        let status = status_of(bib);
        let total = 9000 + bib * 100;
        let rnk = if status.is_empty() {
            rank += 1;
            format!("<Rnk>{rank}</Rnk>")
        } else {
            String::new()
        };
        body.push_str(&format!("<Results><RaceId>K1M_QUA_1</RaceId><Id>{bib}.K1M</Id><Bib>{bib}</Bib><StartOrder>{bib}</StartOrder><Status>{status}</Status><Time>{total}</Time><Pen>0</Pen><Total>{total}</Total>{rnk}</Results>"));
    }
    format!(
        r#"<?xml version="1.0" standalone="yes"?>
<Canoe123Data xmlns="http://siwidata.com/Canoe123/Data.xsd">
{body}
<Classes><ClassId>K1M</ClassId><Class>K1M</Class><Categories><CatId>SEN</CatId><Category>Senior</Category></Categories></Classes>
<Schedule><RaceId>K1M_QUA_1</RaceId><ClassId>K1M</ClassId><DisId>QUA</DisId><RaceOrder>1</RaceOrder><CourseNr>1</CourseNr></Schedule>
<CourseData><CourseNr>1</CourseNr><CourseConfig>NNRN</CourseConfig></CourseData>
<Events><EventId>{event}</EventId><MainTitle>Small</MainTitle></Events>
</Canoe123Data>"#
    )
}

fn row(results: &Value, bib: u64) -> &Value {
    results["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["bib"] == bib)
        .expect("bib present")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_status_is_kept_unranked_counted_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("live.db");
    let d = Daemon::start(&db).await;
    let key = d.running_event("ST", small_xml("ST", |_| "")).await;
    let auth = Some(("X-API-Key", key.as_str()));
    let counted_before = d.unknown_status_total().await;

    // One batch: a clean run, a faster run with a code c123-live does not know, a known
    // code in lower case, a code with a space and a non-ASCII letter.
    let batch = json!({"results": [
        {"raceId": "K1M_QUA_1", "participantId": "1.K1M", "bib": 1, "time": 9500, "pen": 0, "total": 9500, "status": null},
        {"raceId": "K1M_QUA_1", "participantId": "2.K1M", "bib": 2, "time": 8000, "pen": 0, "total": 8000, "status": "OVT"},
        {"raceId": "K1M_QUA_1", "participantId": "3.K1M", "bib": 3, "time": 8100, "pen": 0, "total": 8100, "status": "dnf"},
        {"raceId": "K1M_QUA_1", "participantId": "4.K1M", "bib": 4, "time": 8200, "pen": 0, "total": 8200, "status": "Zdrž 2"}
    ]});
    let (st, b) = d
        .call(
            reqwest::Method::POST,
            "/api/v1/ingest/results",
            auth,
            Some(batch),
        )
        .await;
    assert_eq!(st, 200, "the whole batch is applied: {b}");
    assert_eq!(b["updated"], 4, "{b}");

    let path = "/api/v1/events/ST/results/K1M_QUA_1";
    let res = d.get(path).await;
    assert_eq!(
        row(&res, 1)["rnk"],
        1,
        "the only clean finished run ranks first"
    );
    assert_eq!(row(&res, 1)["totalBehind"], "0.00");
    for (bib, status) in [(2, "OVT"), (3, "DNF"), (4, "Zdrž 2")] {
        let r = row(&res, bib);
        assert_eq!(r["status"], status, "bib {bib} kept as sent");
        assert_eq!(r["rnk"], Value::Null, "bib {bib} is unranked");
        assert_eq!(r["totalBehind"], Value::Null, "bib {bib}");
    }
    assert_eq!(
        d.unknown_status_total().await - counted_before,
        2.0,
        "OVT and 'Zdrž 2' are counted, DNF is known"
    );

    // Wrong types, negative times and absurd values stay a 400 naming the field, and
    // change nothing.
    for (bad, field) in [
        (json!({"status": 7}), "results[0].status"),
        (json!({"status": ["DNF"]}), "results[0].status"),
        (json!({"status": "X".repeat(33)}), "results[0].status"),
        (json!({"status": "DN\u{0}F"}), "results[0].status"),
        (json!({"time": -5}), "results[0].time"),
    ] {
        let mut item = json!({"raceId": "K1M_QUA_1", "participantId": "1.K1M", "bib": 1});
        for (k, v) in bad.as_object().unwrap() {
            item[k] = v.clone();
        }
        let (st, b) = d
            .call(
                reqwest::Method::POST,
                "/api/v1/ingest/results",
                auth,
                Some(json!({"results": [item]})),
            )
            .await;
        assert_eq!(st, 400, "{bad}: {b}");
        assert_eq!(b["error"], "InvalidRequest");
        assert!(
            b["message"].as_str().unwrap().starts_with(field),
            "{bad}: {b}"
        );
    }
    assert_eq!(d.get(path).await, res, "refused bodies changed nothing");
    let detailed = d.get(&format!("{path}?detailed=1")).await;

    // Restart on the same database file: read back identical.
    d.stop().await;
    let d = Daemon::start(&db).await;
    assert_eq!(d.get(path).await, res, "identical after a restart");
    assert_eq!(d.get(&format!("{path}?detailed=1")).await, detailed);
    let again = d.get(path).await;
    assert_eq!(row(&again, 4)["status"], "Zdrž 2");

    // The XML export follows the same rule: an unknown code is kept and unranks the row,
    // a known one is matched in any case, and it is counted.
    let counted_before = d.unknown_status_total().await;
    d.running_event(
        "XS",
        small_xml("XS", |bib| match bib {
            1 => "OVT",
            2 => "dsq",
            _ => "",
        }),
    )
    .await;
    let res = d.get("/api/v1/events/XS/results/K1M_QUA_1").await;
    assert_eq!(row(&res, 1)["status"], "OVT");
    assert_eq!(row(&res, 1)["rnk"], Value::Null);
    assert_eq!(row(&res, 2)["status"], "DSQ");
    assert_eq!(row(&res, 3)["rnk"], 1);
    assert_eq!(row(&res, 4)["rnk"], 2);
    assert_eq!(d.unknown_status_total().await - counted_before, 1.0);
    d.stop().await;
}
