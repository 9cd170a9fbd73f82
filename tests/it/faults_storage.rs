//! Storage faults: a full disk (simulated with `--max-db-size`, i.e. SQLite's
//! `max_page_count` on the store's connection) and a read-only database file.

use crate::support::*;
use c123_live::store::{Store, StoreError, Synchronous};
use reqwest::Method;
use serde_json::{json, Value};

fn integrity_ok(path: &std::path::Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    let r: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(r, "ok");
}

/// A 200 KB PNG-looking image, so each event created grows the database.
fn big_image() -> String {
    use base64::Engine as _;
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    // Not compressible to nothing: a simple LCG.
    let mut x: u32 = 12345;
    png.extend((0..200_000).map(|_| {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        (x >> 16) as u8
    }));
    base64::engine::general_purpose::STANDARD.encode(png)
}

async fn storage(s: &Server, mb: Value) -> (u16, Value) {
    s.send(
        Method::PUT,
        "/api/v1/admin/storage",
        &[("X-Master-Key", MASTER)],
        Some(json!({ "maxDbSizeMb": mb })),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_database_refuses_writes_keeps_reads_and_recovers() {
    let s = start().await;
    let key = s.create_event("ev").await;
    assert_eq!(s.import_fixture(&key).await.0, 200);
    s.walk_to("ev", &key, "running").await;
    let empty_key = s.create_event("empty").await;
    let (_, before) = s.get("/api/v1/events/ev/results/K1M_ST_BR1_6").await;
    assert!(
        before["results"].as_array().is_some_and(|r| !r.is_empty()),
        "{before}"
    );
    let seq_ev = s.merge.snapshot().event("ev").unwrap().header.seq;
    let seq_empty = s.merge.snapshot().event("empty").unwrap().header.seq;
    assert_eq!(s.get("/readyz").await.0, 200);

    // Cap below the current size: the file may not grow any more.
    let (st, body) = storage(&s, json!(1)).await;
    assert_eq!(st, 200, "{body}");

    // Fill whatever free pages are left, until the store refuses.
    let image = big_image();
    let mut refused = None;
    for i in 0..200 {
        let (st, body) = s
            .send(
                Method::POST,
                "/api/v1/admin/events",
                &[("X-Master-Key", MASTER)],
                Some(json!({"eventId": format!("filler-{i}"), "mainTitle": "x",
                            "imageData": format!("data:image/png;base64,{image}")})),
            )
            .await;
        if st != 201 {
            assert_eq!(st, 503, "{body}");
            assert_eq!(body["error"], "Unavailable", "{body}");
            assert!(body["message"].as_str().unwrap().contains("full"), "{body}");
            refused = Some(format!("filler-{i}"));
            break;
        }
    }
    let refused = refused.expect("the capped database refused a write");
    assert!(
        s.merge.snapshot().event(&refused).is_none(),
        "refused create left nothing"
    );

    // Not ready, but reads are served.
    let (st, body) = s.get("/readyz").await;
    assert_eq!(st, 503, "{body}");
    let (st, now) = s.get("/api/v1/events/ev/results/K1M_ST_BR1_6").await;
    assert_eq!(st, 200);
    assert_eq!(now, before);
    assert_eq!(s.get("/api/v1/events").await.0, 200);

    // A whole export into the empty event: refused, nothing half-applied.
    let (st, body) = s.import_fixture(&empty_key).await;
    assert_eq!(st, 503, "{body}");
    let snap = s.merge.snapshot();
    let e = snap.event("empty").unwrap();
    assert!(!e.header.has_xml_data);
    assert_eq!(e.header.seq, seq_empty);
    assert!(e.races.is_empty() && e.participants.is_empty());
    assert_eq!(snap.event("ev").unwrap().header.seq, seq_ev);

    // Space returns (the operator raises the cap): inputs apply again, readiness follows
    // the next successful commit.
    let (st, body) = storage(&s, Value::Null).await;
    assert_eq!(st, 200, "{body}");
    let (st, body) = s.import_fixture(&empty_key).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(s.get("/readyz").await.0, 200);
    let snap = s.merge.snapshot();
    let e = snap.event("empty").unwrap();
    assert!(e.header.has_xml_data);
    assert_eq!(e.races.len(), snap.event("ev").unwrap().races.len());

    // What the database holds agrees with what was acknowledged.
    let path = s.db_path();
    integrity_ok(&path);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let n: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM events WHERE event_id = ?1",
            [&refused],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_body_is_validated_and_needs_the_master_key() {
    let s = start().await;
    for body in [
        json!({}),
        json!({"maxDbSizeMb": 0}),
        json!({"maxDbSizeMb": "1"}),
        json!({"maxDbSizeMb": 1, "x": 1}),
    ] {
        let (st, b) = s
            .send(
                Method::PUT,
                "/api/v1/admin/storage",
                &[("X-Master-Key", MASTER)],
                Some(body),
            )
            .await;
        assert_eq!(st, 400, "{b}");
    }
    let (st, _) = s
        .send(
            Method::PUT,
            "/api/v1/admin/storage",
            &[],
            Some(json!({"maxDbSizeMb": 5})),
        )
        .await;
    assert_eq!(st, 401);
}

#[test]
fn store_cap_reports_full_and_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cap.db");
    let mut store = Store::open(&path, Synchronous::Full).unwrap();
    let cap = store.set_max_size(Some(1)).unwrap();
    assert!(cap > 0, "held at the current size");
    let err = store
        .connection()
        .execute_batch(
            "CREATE TABLE filler(x BLOB); INSERT INTO filler VALUES (zeroblob(1000000));",
        )
        .unwrap_err();
    let err = StoreError::from(err);
    assert!(err.is_full(), "{err}");
}

#[cfg(unix)]
#[test]
fn read_only_database_file_is_refused_at_start_with_a_clear_error() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ro.db");
    drop(Store::open(&path, Synchronous::Full).unwrap());
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
    let err = Store::open(&path, Synchronous::Full)
        .err()
        .expect("refused");
    assert!(matches!(err, StoreError::ReadOnly(_)), "{err}");
    assert!(err.to_string().contains("read-only"), "{err}");

    // The daemon binary exits non-zero with that message, before listening.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_c123-live"))
        .args(["serve", "--dev", "--listen", "127.0.0.1:0", "--db"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("read-only"), "{stderr}");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
}
