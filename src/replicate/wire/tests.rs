use super::*;
use crate::model::ResultRow;

fn header(seq: u64) -> EventHeader {
    EventHeader {
        id: 7,
        event_id: "ev.1".into(),
        xml_event_id: Some("X".into()),
        meta: EventMeta {
            main_title: "Title".into(),
            ..EventMeta::default()
        },
        status: EventStatus::Running,
        status_changed_at: None,
        api_key: "secret".into(),
        config: EventConfig::default(),
        image: Some(EventImage {
            content_type: "image/png".into(),
            bytes: Arc::new(vec![1, 2, 3]),
        }),
        has_xml_data: true,
        key_dates: KeyDates::default(),
        seq,
        created_at: "2024-04-06 08:00:00".into(),
    }
}

fn row(race: &str, pid: &str, time_ms: i64) -> ResultRow {
    ResultRow {
        race_id: race.into(),
        participant_id: pid.into(),
        time_ms: Some(time_ms),
        ..ResultRow::default()
    }
}

fn event() -> Event {
    let mut e = Event::new(header(3));
    for race in ["A", "B"] {
        let mut rows = RaceResults::new();
        rows.insert("p1".into(), row(race, "p1", 90_000));
        e.results.insert(race.into(), Arc::new(rows));
    }
    e
}

fn without_key(mut e: Event) -> Event {
    e.header.api_key = String::new();
    e
}

#[test]
fn a_delta_carries_only_the_changed_race_and_rebuilds_the_new_version() {
    let old = event();
    let mut new = old.clone();
    new.header.seq = 4;
    let mut rows = (*new.results["B"]).clone();
    rows.insert("p2".into(), row("B", "p2", 95_000));
    new.results.insert("B".into(), Arc::new(rows));
    let change = EventChange {
        event_id: "ev.1".into(),
        seq: 4,
        results: vec![("B".into(), "p2".into())],
        ..EventChange::default()
    };
    let record = Record::of("E", &change, Some(&old), Some(&new));
    let bytes = record.encode().expect("encode");
    let text = String::from_utf8(bytes.clone()).expect("utf-8");
    assert!(!text.contains("secret"), "the API key stays on the origin");
    let back = Record::decode(&bytes).expect("decode");
    assert_eq!(back, record);
    let Body::Delta {
        full,
        header,
        parts,
    } = back.body
    else {
        panic!("a delta");
    };
    assert!(!full);
    assert_eq!(parts.results.keys().collect::<Vec<_>>(), ["B"]);
    assert!(parts.classes.is_none() && parts.image.is_none() && parts.oncourse.is_none());
    let replica_old = without_key(old.clone());
    let rebuilt = apply_delta(Some(&replica_old), 4, false, *header, parts).expect("applies");
    assert_eq!(rebuilt, without_key(new));
    // Race A is still the replica's own allocation.
    assert!(Arc::ptr_eq(
        &rebuilt.results["A"],
        &replica_old.results["A"]
    ));
}

#[test]
fn a_delta_on_the_wrong_version_is_a_gap() {
    let old = event();
    let mut new = old.clone();
    new.header.seq = 5;
    new.oncourse = Arc::new(Vec::new());
    let change = EventChange {
        event_id: "ev.1".into(),
        seq: 5,
        oncourse: true,
        ..EventChange::default()
    };
    let Body::Delta {
        full,
        header,
        parts,
    } = Record::of("E", &change, Some(&old), Some(&new)).body
    else {
        panic!("a delta");
    };
    assert_eq!(
        apply_delta(Some(&old), 5, full, *header, parts),
        Err(Gap {
            seq: 5,
            have: Some(3)
        })
    );
}

#[test]
fn a_new_event_record_and_a_snapshot_stand_alone() {
    let new = event();
    let change = EventChange {
        event_id: "ev.1".into(),
        seq: 3,
        created: true,
        structure: true,
        ..EventChange::default()
    };
    let Body::Delta {
        full,
        header,
        parts,
    } = Record::of("E", &change, None, Some(&new)).body
    else {
        panic!("a delta");
    };
    assert!(full);
    let rebuilt = apply_delta(None, 3, full, *header, parts).expect("applies");
    assert_eq!(rebuilt, without_key(new.clone()));
    let snap = SnapshotValue {
        v: FORMAT,
        epoch: "E".into(),
        stream_seq: 12,
        event: WireEvent::of(&new),
    };
    let back = SnapshotValue::decode(&snap.encode().expect("encode")).expect("decode");
    assert_eq!(back.stream_seq, 12);
    assert_eq!(back.event.into_event(), without_key(new));
}

#[test]
fn event_ids_map_to_subject_tokens_and_back() {
    assert_eq!(subject("c123.records", "a.b-c_d"), "c123.records.a=b-c_d");
    assert_eq!(event_key(".x"), "event.=x");
    assert_eq!(event_of_key("event.=x").as_deref(), Some(".x"));
    assert_eq!(event_of_key("origin"), None);
}
