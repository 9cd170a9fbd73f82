//! Arbitrary bodies to every write route of the real server: never a 5xx, and a request that
//! is not accepted (non-2xx) changes nothing (no event, no `seq`, no stored row).

use std::sync::OnceLock;

use crate::support::*;
use proptest::prelude::*;
use reqwest::Method;
use serde_json::Value;

struct Rig {
    rt: tokio::runtime::Runtime,
    server: Server,
    key: String,
}

fn rig() -> &'static Rig {
    static RIG: OnceLock<Rig> = OnceLock::new();
    RIG.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (server, key) = rt.block_on(async {
            let s = start().await;
            let key = s.create_event("ev").await;
            assert_eq!(s.import_fixture(&key).await.0, 200);
            s.walk_to("ev", &key, "running").await;
            (s, key)
        });
        Rig { rt, server, key }
    })
}

/// Everything that identifies the committed state.
fn state(s: &Server) -> Vec<(String, u64)> {
    s.merge
        .snapshot()
        .events
        .values()
        .map(|e| (e.header.event_id.clone(), e.header.seq))
        .collect()
}

const KEYS: &[&str] = &[
    "results",
    "oncourse",
    "raceId",
    "participantId",
    "bib",
    "time",
    "pen",
    "total",
    "rnk",
    "status",
    "gates",
    "gate",
    "dtStart",
    "dtFinish",
    "xml",
    "eventId",
    "mainTitle",
    "startDate",
    "endDate",
    "imageData",
    "displayMode",
    "activeRaceId",
    "showOnCourse",
    "mergeStrategy",
    "maxDbSizeMb",
    "position",
    "name",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (0u32..20_000).prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,12}".prop_map(Value::String),
        prop::sample::select(vec![
            "K1M_ST_BR1_6",
            "12054.K1M_ST",
            "running",
            "official",
            "DNF",
            "xml-wins",
            "detailed",
            "2024-04-20",
            "<Canoe123Data/>",
            "",
        ])
        .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|kv| {
                Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        // A real top-level object with arbitrary members: the interesting cases.
        prop::collection::vec((prop::sample::select(KEYS), json_value()), 0..4).prop_map(|kv| {
            let o: serde_json::Map<String, Value> =
                kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            serde_json::to_vec(&Value::Object(o)).unwrap()
        }),
    ]
}

/// (method, path, uses the master key)
const ROUTES: &[(&str, &str, bool)] = &[
    ("POST", "/api/v1/ingest/results", false),
    ("POST", "/api/v1/ingest/oncourse", false),
    ("POST", "/api/v1/ingest/xml", false),
    ("PATCH", "/api/v1/admin/events/ev/status", false),
    ("PATCH", "/api/v1/admin/events/ev/config", false),
    ("POST", "/api/v1/admin/events", true),
    ("PUT", "/api/v1/admin/storage", false),
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 384, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bodies_never_5xx_and_refused_ones_change_nothing(
        route in 0..ROUTES.len(),
        body in body(),
        xml_content_type in any::<bool>(),
    ) {
        let r = rig();
        let (method, path, master) = ROUTES[route];
        let before = state(&r.server);
        let (status, reply) = r.rt.block_on(async {
            let mut rb = r.server.client.request(Method::from_bytes(method.as_bytes()).unwrap(), r.server.url(path));
            rb = if master { rb.header("X-Master-Key", MASTER) } else { rb.header("X-API-Key", &r.key) };
            let ct = if xml_content_type && path.ends_with("/xml") { "application/xml" } else { "application/json" };
            let resp = rb.header("content-type", ct).body(body.clone()).send().await.unwrap();
            let st = resp.status().as_u16();
            (st, resp.text().await.unwrap_or_default())
        });
        prop_assert!(status < 500, "{method} {path}: {status} {reply}");
        if !(200..300).contains(&status) {
            prop_assert_eq!(state(&r.server), before, "{} {}: {} {}", method, path, status, reply);
            let v: Value = serde_json::from_str(&reply).unwrap_or(Value::Null);
            prop_assert!(v["error"].is_string() && v["message"].is_string(), "{}", reply);
        }
    }
}
