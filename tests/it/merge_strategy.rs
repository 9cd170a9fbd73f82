//! XML vs TCP conflicts on real data: bib 9's second run, which the recording finishes in
//! 51.20 s + 52 s while the (older) export still holds 90.35 s + 56 s.

use std::path::Path;

use c123_live::merge::{
    self, AdminCommand, Input, MergeError, MergeHandle, MergeSettings, Outcome, ResultUpdate, Via,
    XmlOrigin, XmlTarget,
};
use c123_live::model::{EventStatus, MergeStrategy, TcpFields};
use c123_live::store::{Store, Synchronous};
use c123_live::xml::parse_export;

const BR2: &str = "K1M_ST_BR2_6";
const BIB9: &str = "30034.K1M_ST";

fn fixture() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/jarni-2024.xml"))
        .unwrap()
}

async fn start(strategy: MergeStrategy) -> (tempfile::TempDir, MergeHandle) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("live.db"), Synchronous::Off).unwrap();
    let settings = MergeSettings {
        default_strategy: strategy,
        ..MergeSettings::default()
    };
    let (handle, _join) = merge::start(store, settings).unwrap();
    (dir, handle)
}

async fn import(h: &MergeHandle, xml: &str) -> Outcome {
    h.send(Input::Xml {
        target: XmlTarget::ByExport {
            event_id: Some("ev".into()),
        },
        export: Box::new(parse_export(xml.as_bytes()).unwrap()),
        origin: XmlOrigin::Cli,
    })
    .await
    .unwrap()
}

fn tcp_finish() -> ResultUpdate {
    ResultUpdate {
        race_id: BR2.into(),
        participant_id: BIB9.into(),
        bib: Some(9),
        time_ms: Some(Some(51_200)),
        pen_s: Some(Some(52)),
        total_ms: Some(Some(103_200)),
        status: Some(None),
        ..ResultUpdate::default()
    }
}

async fn send_tcp(h: &MergeHandle, updates: Vec<ResultUpdate>) -> Result<Outcome, MergeError> {
    h.send(Input::Results {
        event_id: "ev".into(),
        updates,
        via: Via::Tcp,
    })
    .await
}

fn bib9(h: &MergeHandle) -> (Option<i64>, Option<i64>, Option<i64>) {
    let snap = h.snapshot();
    let r = snap.event("ev").unwrap().result(BR2, BIB9).unwrap().clone();
    (r.time_ms, r.pen_s, r.total_ms)
}

#[tokio::test]
async fn fixture_holds_the_older_values() {
    let (_d, h) = start(MergeStrategy::TcpWins).await;
    import(&h, &fixture()).await;
    assert_eq!(bib9(&h), (Some(90_350), Some(56), Some(146_350)));
}

#[tokio::test]
async fn tcp_wins_keeps_tcp_values_until_the_export_agrees() {
    let (_d, h) = start(MergeStrategy::TcpWins).await;
    let xml = fixture();
    import(&h, &xml).await;
    let out = send_tcp(&h, vec![tcp_finish()]).await.unwrap();
    assert_eq!(
        out,
        Outcome::Results {
            updated: 1,
            ignored_unknown: 0,
            ignored_no_xml: false
        }
    );
    assert_eq!(bib9(&h), (Some(51_200), Some(52), Some(103_200)));

    // The older export comes again: the TCP values stay.
    import(&h, &xml).await;
    assert_eq!(bib9(&h), (Some(51_200), Some(52), Some(103_200)));
    let snap = h.snapshot();
    let row = snap.event("ev").unwrap().result(BR2, BIB9).unwrap();
    assert!(row.tcp_fields.has(TcpFields::TIME));
    // Fields TCP never sends still come from the export.
    assert_eq!(
        (row.prev_time_ms, row.prev_pen_s, row.prev_total_ms),
        (Some(87_780), Some(4), Some(91_780))
    );
    assert_eq!(row.prev_rnk, Some(8));
    assert_eq!(row.dt_start.as_deref(), Some("19:22:12.987"));

    // The export catches up: from then on it is authoritative again.
    let caught_up = xml.replacen("<Time>90350</Time>", "<Time>51200</Time>", 1);
    let caught_up = caught_up
        .replacen("<Total>146350</Total>", "<Total>103200</Total>", 1)
        .replacen("<Pen>56</Pen>", "<Pen>52</Pen>", 1);
    import(&h, &caught_up).await;
    let snap = h.snapshot();
    let row = snap.event("ev").unwrap().result(BR2, BIB9).unwrap();
    assert_eq!(
        (row.time_ms, row.pen_s, row.total_ms),
        (Some(51_200), Some(52), Some(103_200))
    );
    assert!(row.tcp_fields.is_empty(), "agreement clears the TCP marks");
    // A later correction in the export now wins.
    let corrected = caught_up.replacen("<Pen>52</Pen>", "<Pen>54</Pen>", 1);
    import(&h, &corrected).await;
    assert_eq!(bib9(&h).1, Some(54));
}

#[tokio::test]
async fn xml_wins_restores_the_export_values() {
    let (_d, h) = start(MergeStrategy::XmlWins).await;
    let xml = fixture();
    import(&h, &xml).await;
    send_tcp(&h, vec![tcp_finish()]).await.unwrap();
    assert_eq!(
        bib9(&h),
        (Some(51_200), Some(52), Some(103_200)),
        "TCP fills in between imports"
    );
    import(&h, &xml).await;
    assert_eq!(bib9(&h), (Some(90_350), Some(56), Some(146_350)));
}

#[tokio::test]
async fn per_event_strategy_overrides_the_default() {
    let (_d, h) = start(MergeStrategy::TcpWins).await;
    let xml = fixture();
    import(&h, &xml).await;
    let patch = c123_live::model::EventConfig {
        merge_strategy: Some(MergeStrategy::XmlWins),
        ..Default::default()
    };
    h.send(Input::Admin(AdminCommand::SetConfig {
        event_id: "ev".into(),
        patch,
    }))
    .await
    .unwrap();
    send_tcp(&h, vec![tcp_finish()]).await.unwrap();
    import(&h, &xml).await;
    assert_eq!(bib9(&h), (Some(90_350), Some(56), Some(146_350)));
}

#[tokio::test]
async fn unknown_athletes_and_races_are_ignored_and_counted() {
    let (_d, h) = start(MergeStrategy::TcpWins).await;
    import(&h, &fixture()).await;
    let before = h.snapshot().event("ev").unwrap().header.seq;
    let mut unknown_race = tcp_finish();
    unknown_race.race_id = "NOPE_BR2_6".into();
    let mut unknown_athlete = tcp_finish();
    unknown_athlete.participant_id = "99999.K1M_ST".into();
    let out = send_tcp(&h, vec![unknown_race, unknown_athlete])
        .await
        .unwrap();
    assert_eq!(
        out,
        Outcome::Results {
            updated: 0,
            ignored_unknown: 2,
            ignored_no_xml: false
        }
    );
    assert_eq!(
        h.snapshot().event("ev").unwrap().header.seq,
        before,
        "nothing changed"
    );
}

#[tokio::test]
async fn a_tcp_finish_reranks_the_race() {
    let (_d, h) = start(MergeStrategy::TcpWins).await;
    import(&h, &fixture()).await;
    let mut changes = h.subscribe();
    send_tcp(&h, vec![tcp_finish()]).await.unwrap();
    let published = changes.recv().await.unwrap();
    let change = &published.changes.events[0];
    assert!(!change.structure);
    assert!(change
        .results
        .contains(&(BR2.to_string(), BIB9.to_string())));
    let snap = h.snapshot();
    let ev = snap.event("ev").unwrap();
    let rows: Vec<_> = ev.race_results(BR2).collect();
    let ranked = rows.iter().filter(|r| r.rnk.is_some()).count();
    assert!(ranked > 0);
    assert!(
        rows.iter().all(|r| r.rnk.is_none() || r.is_rankable()),
        "unfinished never ranked"
    );
    let nine = ev.result(BR2, BIB9).unwrap();
    let better = rows
        .iter()
        .filter(|r| r.is_rankable() && r.total_ms < nine.total_ms)
        .count();
    assert_eq!(nine.rnk, Some(better as i32 + 1));
}

#[tokio::test]
async fn official_events_refuse_live_data_and_exports() {
    let (_d, h) = start(MergeStrategy::TcpWins).await;
    let xml = fixture();
    import(&h, &xml).await;
    for to in [
        EventStatus::Startlist,
        EventStatus::Running,
        EventStatus::Finished,
        EventStatus::Official,
    ] {
        h.send(Input::Admin(AdminCommand::Transition {
            event_id: "ev".into(),
            to,
        }))
        .await
        .unwrap();
    }
    let seq = h.snapshot().event("ev").unwrap().header.seq;
    let err = send_tcp(&h, vec![tcp_finish()]).await.unwrap_err();
    assert!(matches!(err, MergeError::Forbidden { .. }), "{err:?}");
    let err = h
        .send(Input::Xml {
            target: XmlTarget::ByExport {
                event_id: Some("ev".into()),
            },
            export: Box::new(parse_export(xml.as_bytes()).unwrap()),
            origin: XmlOrigin::Cli,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            MergeError::Forbidden {
                data: c123_live::merge::DataKind::Xml,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(h.snapshot().event("ev").unwrap().header.seq, seq);
}
