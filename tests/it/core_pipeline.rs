//! The first real path: the real Canoe123 export goes in, a consistent event comes out of
//! SQLite and out of the read snapshot.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use c123_live::merge::{self, Input, MergeHandle, MergeSettings, Outcome, XmlOrigin, XmlTarget};
use c123_live::model::Event;
use c123_live::store::{Store, Synchronous};
use c123_live::xml::{parse_export, XmlError};

fn fixture_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/jarni-2024.xml")
}

fn fixture() -> String {
    std::fs::read_to_string(fixture_path()).expect("fixture")
}

async fn start(db: &Path) -> (MergeHandle, tokio::task::JoinHandle<()>) {
    let store = Store::open(db, Synchronous::Normal).expect("open store");
    merge::start(store, MergeSettings::default()).expect("start merge loop")
}

async fn import(handle: &MergeHandle, xml: &str) -> Result<Outcome, String> {
    let export = parse_export(xml.as_bytes()).map_err(|e| e.to_string())?;
    handle
        .send(Input::Xml {
            target: XmlTarget::ByExport {
                event_id: Some("jarni".into()),
            },
            export: Box::new(export),
            origin: XmlOrigin::Cli,
        })
        .await
        .map_err(|e| e.to_string())
}

fn event(handle: &MergeHandle) -> Arc<Event> {
    handle
        .snapshot()
        .event("jarni")
        .expect("event exists")
        .clone()
}

fn count(db: &Store, table: &str) -> i64 {
    db.connection()
        .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
        .expect("count")
}

/// Results rows of the export whose race and participant the export also defines.
fn expected_result_rows(xml: &str) -> usize {
    let e = parse_export(xml.as_bytes()).expect("parse");
    let races: std::collections::BTreeSet<_> = e.races.iter().map(|r| &r.race_id).collect();
    let people: std::collections::BTreeSet<_> = e.participants.iter().map(|p| &p.id).collect();
    e.results
        .iter()
        .filter(|r| races.contains(&r.race_id) && people.contains(&r.participant_id))
        .count()
}

#[tokio::test]
async fn real_export_imports_with_real_values() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("live.db");
    let (handle, _join) = start(&db).await;
    let xml = fixture();
    let outcome = import(&handle, &xml).await.expect("import");
    let Outcome::XmlImported {
        created_event,
        counts,
        rows_changed,
        ..
    } = outcome
    else {
        panic!("unexpected outcome {outcome:?}");
    };
    assert!(created_event);
    assert_eq!(counts.participants, 366);
    assert_eq!(counts.classes, 15);
    assert_eq!(counts.races, 44);
    assert_eq!(counts.courses, 4);
    assert!(rows_changed > 1000);

    let ev = event(&handle);
    assert_eq!(ev.participants.len(), 366);
    assert_eq!(ev.classes.len(), 15);
    assert_eq!(ev.races.len(), 44);
    assert_eq!(ev.courses.len(), 4);
    let expected_rows = expected_result_rows(&xml);
    assert!(
        expected_rows > 1300,
        "most rows belong to known races: {expected_rows}"
    );
    assert_eq!(ev.result_count(), expected_rows);
    assert_eq!(ev.header.xml_event_id.as_deref(), Some("CZE2.2024040600"));
    assert_eq!(ev.header.meta.main_title, "Jarní slalomy 2024");
    assert_eq!(
        ev.header.meta.location.as_deref(),
        Some("Areál Lídy Polesné")
    );

    // Bib 1's first run: 76.99 s + 2 s = 78.99 s, one touch on gate 24.
    let r = ev
        .result("K1M_ST_BR1_6", "12054.K1M_ST")
        .expect("bib 1 BR1");
    assert_eq!(r.bib, Some(1));
    assert_eq!(r.time_ms, Some(76_990));
    assert_eq!(r.pen_s, Some(2));
    assert_eq!(r.total_ms, Some(78_990));
    assert_eq!(r.status, None);
    assert_eq!(r.rnk, Some(1));
    assert_eq!(r.dt_start.as_deref(), Some("08:30:10.780"));
    let mut gates = vec![Some(0u16); 23];
    gates.push(Some(2));
    assert_eq!(
        r.gates.0, gates,
        "gates 1-23 clean, gate 24 a touch, no phantom gates"
    );
    let course = ev
        .course_of(&ev.races["K1M_ST_BR1_6"])
        .expect("course of K1M_ST_BR1_6");
    assert_eq!(course.gate_count(), 24);

    // Bib 1's second run carries the first run and the best of both.
    let r2 = ev
        .result("K1M_ST_BR2_6", "12054.K1M_ST")
        .expect("bib 1 BR2");
    assert_eq!(
        (r2.time_ms, r2.pen_s, r2.total_ms),
        (Some(79_990), Some(6), Some(85_990))
    );
    assert_eq!(r2.prev_total_ms, Some(78_990));
    assert_eq!(r2.total_total_ms, Some(78_990));
    assert_eq!(r2.better_run_nr, Some(1));

    // DNS rows: status, no time, no rank, no gates.
    let dns = ev
        .result("K1M_ST_BR1_6", "119045.K1M_ST")
        .expect("bib 14 DNS");
    assert_eq!(dns.status.as_deref(), Some("DNS"));
    assert_eq!(dns.time_ms, None);
    assert_eq!(dns.total_ms, None);
    assert_eq!(dns.rnk, None);
    assert!(dns.gates.is_empty());
    let dns_count = ev
        .results
        .values()
        .flat_map(|r| r.values())
        .filter(|r| r.status.as_deref() == Some("DNS"))
        .count();
    assert!(dns_count > 0);
    assert!(ev
        .results
        .values()
        .flat_map(|r| r.values())
        .filter(|r| r.status.as_deref() == Some("DNS"))
        .all(|r| r.time_ms.is_none() && r.total_ms.is_none() && r.rnk.is_none()));
    // Real data: three DNS rows carry a stale time in the export; it is not kept.
    assert!(xml.contains("<Status>DNS</Status>\n    <dtStart>14:50:00.000</dtStart>\n    <dtFinish>14:52:57.920</dtFinish>\n    <Time>177920</Time>"));

    // A three-digit gate value fills its slot: "  2  2  2  0  0300".
    let three_digit = ev
        .results
        .values()
        .flat_map(|r| r.values())
        .find(|r| r.gates.0.contains(&Some(300)))
        .expect("a row with a 300 gate");
    assert_eq!(
        &three_digit.gates.0[..6],
        &[Some(2), Some(2), Some(2), Some(0), Some(0), Some(300)]
    );
    assert_eq!(three_digit.pen_s, Some(306));

    // C2 crews keep both paddlers.
    let crew = &ev.participants["12009.12049.C2M_ST"];
    assert_eq!(crew.family_name, "LÍBEK");
    assert_eq!(crew.given_name.as_deref(), Some("Gabriela"));
    assert_eq!(crew.family_name2.as_deref(), Some("LÍBEK"));
    assert_eq!(crew.given_name2.as_deref(), Some("Čeněk"));
    assert_eq!(crew.display_name(), "LÍBEK Gabriela / LÍBEK Čeněk");
    // Padded rankings are trimmed.
    assert_eq!(
        ev.participants["30034.K1M_ST"].ranking.as_deref(),
        Some("9")
    );

    // The database holds the same as the snapshot.
    handle.shutdown().await;
    let store = Store::open(&db, Synchronous::Normal).unwrap();
    assert_eq!(count(&store, "participants"), 366);
    assert_eq!(count(&store, "classes"), 15);
    assert_eq!(count(&store, "races"), 44);
    assert_eq!(count(&store, "courses"), 4);
    assert_eq!(count(&store, "results") as usize, expected_rows);
}

#[tokio::test]
async fn identical_reimport_changes_nothing_and_modified_copy_changes_exactly_that() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("live.db");
    let (handle, _join) = start(&db).await;
    let xml = fixture();
    import(&handle, &xml).await.expect("first import");
    let before = event(&handle);
    let mut published = handle.subscribe();

    let again = import(&handle, &xml).await.expect("re-import");
    let Outcome::XmlImported { rows_changed, .. } = again else {
        panic!()
    };
    assert_eq!(rows_changed, 0, "no row rewritten");
    let after = event(&handle);
    assert_eq!(
        after.header.seq, before.header.seq,
        "seq unchanged: empty ChangeSet"
    );
    assert!(
        published.try_recv().is_err(),
        "nothing published for an empty ChangeSet"
    );

    // One result changed (bib 1's BR1 time), one participant removed (bib 9 in K1M_ST).
    let modified = xml
        .replacen("<Time>76990</Time>", "<Time>76980</Time>", 1)
        .replacen("<Total>78990</Total>", "<Total>78980</Total>", 1);
    assert_ne!(modified, xml);
    let removed = remove_participant(&modified, "30034.K1M_ST");
    let outcome = import(&handle, &removed).await.expect("modified import");
    let Outcome::XmlImported { rows_changed, .. } = outcome else {
        panic!()
    };
    let now = event(&handle);
    assert_eq!(now.header.seq, before.header.seq + 1);
    let change = published.recv().await.expect("published");
    let ec = &change.changes.events[0];
    assert!(ec.structure, "participant removal is a structure change");
    assert_eq!(
        ec.results,
        vec![("K1M_ST_BR1_6".to_string(), "12054.K1M_ST".to_string())],
        "exactly the edited row changed (its rank did not move)"
    );
    let mut removed_rows = ec.removed_results.clone();
    removed_rows.sort();
    assert_eq!(
        removed_rows,
        vec![
            ("K1M_ST_BR1_6".to_string(), "30034.K1M_ST".to_string()),
            ("K1M_ST_BR1_7".to_string(), "30034.K1M_ST".to_string()),
            ("K1M_ST_BR2_6".to_string(), "30034.K1M_ST".to_string()),
            ("K1M_ST_BR2_7".to_string(), "30034.K1M_ST".to_string()),
        ]
    );
    // Written: the event row (its seq), 1 participant delete, 1 result update; the removed
    // participant's result rows go by cascade.
    assert_eq!(rows_changed, 3);
    assert_eq!(
        now.result("K1M_ST_BR1_6", "12054.K1M_ST").unwrap().time_ms,
        Some(76_980)
    );
    assert!(!now.participants.contains_key("30034.K1M_ST"));
    assert!(now.result("K1M_ST_BR2_6", "30034.K1M_ST").is_none());
    // Untouched races share their allocation with the previous snapshot.
    assert!(Arc::ptr_eq(
        &before.results["C1M_ST_BR1_6"],
        &now.results["C1M_ST_BR1_6"]
    ));

    handle.shutdown().await;
    let store = Store::open(&db, Synchronous::Normal).unwrap();
    let gone: i64 = store
        .connection()
        .query_row(
            "SELECT COUNT(*) FROM results WHERE participant_id = '30034.K1M_ST'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(gone, 0);
}

/// Removes one `<Participants>` row and that participant's `<Results>` rows.
fn remove_participant(xml: &str, id: &str) -> String {
    let mut out = String::with_capacity(xml.len());
    let mut rest = xml;
    let needle = format!("<Id>{id}</Id>");
    while let Some(pos) = rest.find(&needle) {
        // The row element starts at the last "  <" line before the id at depth 1.
        let start = ["  <Participants>", "  <Results>"]
            .iter()
            .filter_map(|open| rest[..pos].rfind(open))
            .max()
            .expect("row start");
        let close = if rest[start..].starts_with("  <Participants>") {
            "</Participants>"
        } else {
            "</Results>"
        };
        let end = pos + rest[pos..].find(close).expect("row end") + close.len();
        out.push_str(&rest[..start]);
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[tokio::test]
async fn restart_serves_the_same_state_and_keeps_the_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("live.db");
    let (handle, join) = start(&db).await;
    import(&handle, &fixture()).await.expect("import");
    let before = handle.snapshot();
    handle.shutdown().await;
    join.await.unwrap();

    let (handle2, _join2) = start(&db).await;
    let after = handle2.snapshot();
    assert_eq!(before.epoch, after.epoch, "epoch survives a restart");
    assert_eq!(before.events.len(), after.events.len());
    let (a, b) = (&before.events["jarni"], &after.events["jarni"]);
    assert_eq!(a.header, b.header);
    assert_eq!(a.classes, b.classes);
    assert_eq!(a.participants, b.participants);
    assert_eq!(a.races, b.races);
    assert_eq!(a.courses, b.courses);
    assert_eq!(a.results, b.results);

    let other = tempfile::tempdir().unwrap();
    let (handle3, _join3) = start(&other.path().join("fresh.db")).await;
    assert_ne!(
        handle3.snapshot().epoch,
        before.epoch,
        "a new database gets a new epoch"
    );
}

/// Bytes of the database and its WAL, to prove a rejected input wrote nothing.
fn db_bytes(db: &Path) -> Vec<Vec<u8>> {
    ["", "-wal"]
        .iter()
        .map(|suffix| {
            let mut p = db.as_os_str().to_owned();
            p.push(suffix);
            std::fs::read(PathBuf::from(p)).unwrap_or_default()
        })
        .collect()
}

#[tokio::test]
async fn bad_exports_are_rejected_with_a_reason_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("live.db");
    let (handle, _join) = start(&db).await;
    let xml = fixture();
    import(&handle, &xml).await.expect("import");
    let state_before = event(&handle);
    let bytes_before = db_bytes(&db);

    let truncated = &xml[..xml.len() / 2];
    let mut garbage = Vec::with_capacity(50 * 1024 * 1024);
    let mut x: u32 = 0x1234_5678;
    while garbage.len() < 50 * 1024 * 1024 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        garbage.extend_from_slice(&x.to_le_bytes());
    }
    type Case<'a> = (&'a str, Vec<u8>, fn(&XmlError) -> bool);
    let cases: Vec<Case> = vec![
        ("truncated", truncated.as_bytes().to_vec(), |e| {
            matches!(e, XmlError::Truncated { .. } | XmlError::Malformed { .. })
        }),
        ("not xml", b"this is not an export, just text".to_vec(), |e| {
            matches!(e, XmlError::Malformed { .. })
        }),
        ("wrong root", b"<?xml version=\"1.0\"?><event><EventInfo/></event>".to_vec(), |e| {
            matches!(e, XmlError::WrongRoot { .. })
        }),
        ("wrong namespace", b"<Canoe123Data xmlns=\"urn:other\"/>".to_vec(), |e| {
            matches!(e, XmlError::WrongNamespace { .. })
        }),
        ("empty schedule", br#"<Canoe123Data xmlns="http://siwidata.com/Canoe123/Data.xsd"><Events><EventId>X</EventId></Events></Canoe123Data>"#.to_vec(), |e| {
            matches!(e, XmlError::Incomplete(_))
        }),
        ("50 MB of garbage", garbage, |e| {
            matches!(e, XmlError::NotUtf8 { .. } | XmlError::Malformed { .. })
        }),
        ("entity bomb", br#"<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><Canoe123Data>&a;</Canoe123Data>"#.to_vec(), |e| {
            matches!(e, XmlError::Malformed { .. })
        }),
        ("bad number", xml.replacen("<Time>76990</Time>", "<Time>76,990</Time>", 1).into_bytes(), |e| {
            matches!(e, XmlError::BadRow { .. })
        }),
    ];
    for (name, bytes, expected) in cases {
        let err = parse_export(&bytes).expect_err(name);
        assert!(expected(&err), "{name}: unexpected error {err:?}");
        let text = err.to_string();
        assert!(
            !text.is_empty() && text.len() < 500,
            "{name}: message '{text}'"
        );
    }
    let bad = xml.replacen("<Time>76990</Time>", "<Time>76,990</Time>", 1);
    let err = parse_export(bad.as_bytes()).unwrap_err().to_string();
    assert!(
        err.contains("Time") && err.contains("76,990"),
        "names the field: {err}"
    );

    assert_eq!(
        db_bytes(&db),
        bytes_before,
        "database byte-for-byte unchanged"
    );
    assert_eq!(*event(&handle), *state_before);
}

/// Direct mode creates the event from the export's `EventId`; an id that could not stand in
/// a URL (a path separator, a dot-segment, too long) is refused naming it, and no event is
/// created. A good id still works on the same loop.
#[tokio::test]
async fn an_export_whose_event_id_cannot_be_an_event_id_is_refused_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (handle, _join) = start(&dir.path().join("live.db")).await;
    let xml = fixture();
    for bad in ["a/b", "..", "a b", &"x".repeat(101)] {
        let with_id = xml.replace(
            "<EventId>CZE2.2024040600</EventId>",
            &format!("<EventId>{bad}</EventId>"),
        );
        assert_ne!(with_id, xml, "the fixture's EventId was replaced");
        let export = parse_export(with_id.as_bytes()).expect("parses");
        let refused = handle
            .send(Input::Xml {
                target: XmlTarget::ByExport { event_id: None },
                export: Box::new(export),
                origin: XmlOrigin::Cli,
            })
            .await
            .expect_err("refused");
        assert!(refused.to_string().contains("EventId"), "{refused}");
        assert!(handle.snapshot().events.is_empty(), "no event for {bad:?}");
    }
    let export = parse_export(xml.as_bytes()).expect("parses");
    handle
        .send(Input::Xml {
            target: XmlTarget::ByExport { event_id: None },
            export: Box::new(export),
            origin: XmlOrigin::Cli,
        })
        .await
        .expect("the real EventId is a good id");
    assert!(handle.snapshot().event("CZE2.2024040600").is_some());
}
