//! Queues and rings at their defaults: the resume ring, the client queue, the merge queue.

use super::*;

/// `?since=N` inside the last 1024 diffs is replayed diff by diff; one older is a `full`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_resume_ring_keeps_1024_diffs() {
    let _solo = crate::solo();
    let d = daemon().await;
    d.running_event_from(&small_xml()).await;
    // A spectator keeps the room, and so its ring, alive.
    let mut keeper = connect_ws(&d.ws_url()).await;
    let s0 = next_json(&mut keeper).await["seq"].as_u64().expect("seq");
    let n = 1100u64;
    for i in 0..n {
        d.bump(SMALL_RACE, SMALL_PARTICIPANT, 90_000 + i as i64 * 10)
            .await;
    }
    // The hub has processed every change once the keeper has seen the last one.
    let last = s0 + n;
    loop {
        let m = next_json(&mut keeper).await;
        if m["seq"].as_u64() == Some(last) {
            break;
        }
    }
    assert_eq!(d.seq(), last);
    let epoch = d.epoch();
    let base = d.ws_url();
    // Oldest replayable: exactly 1024 diffs.
    let mut r = connect_ws(&format!("{base}?since={}&epoch={epoch}", last - 1024)).await;
    for k in 1..=1024u64 {
        let m = next_json(&mut r).await;
        assert_eq!(
            (m["type"].as_str(), m["seq"].as_u64()),
            (Some("diff"), Some(last - 1024 + k)),
            "replayed message {k}"
        );
    }
    // One more missed than the ring holds: a full, never a partial replay.
    let mut o = connect_ws(&format!("{base}?since={}&epoch={epoch}", last - 1025)).await;
    let m = next_json(&mut o).await;
    assert_eq!(
        (m["type"].as_str(), m["seq"].as_u64()),
        (Some("full"), Some(last))
    );
    drop((keeper, r, o));
    d.stop().await;
}

/// The per-client queue holds 256 KiB: 256 messages of 1 KiB fit, the 257th overflows (its
/// pending diffs are then replaced by one `full`). The hub's real queue, without sockets.
#[test]
fn ws_client_queue_holds_256_kib() {
    let _solo = crate::solo();
    use c123_live::hub::bench::Queues;
    let q = Queues::new(1);
    let msg: tokio_tungstenite::tungstenite::Utf8Bytes = "x".repeat(1024).into();
    for i in 0..256 {
        assert_eq!(
            q.publish(std::slice::from_ref(&msg)),
            0,
            "message {i} overflowed below 256 KiB"
        );
    }
    assert_eq!(
        q.publish(std::slice::from_ref(&msg)),
        1,
        "257 KiB did not overflow"
    );
    assert_eq!(q.drain(), 256);
}

/// Resume also keeps at most 4 MiB of diffs per event: with ~38 KiB diffs the ring holds
/// the longest suffix that fits in 4 MiB (fewer than 1024), and one diff more is a `full`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_resume_ring_keeps_4_mib() {
    let _solo = crate::solo();
    let d = daemon().await;
    d.running_event_from(&small_xml()).await;
    let mut keeper = connect_ws(&d.ws_url()).await;
    let s0 = next_json(&mut keeper).await["seq"].as_u64().expect("seq");
    let pid = SMALL_PARTICIPANT.to_owned();
    // Each diff carries an on-course list of 30 riders (~38 KiB): 4 MiB hold ~100 of them.
    let n = 140u64;
    let mut lens = Vec::new();
    for i in 0..n {
        let entries = (0..30u32)
            .map(|k| c123_live::model::OnCourseEntry {
                participant_id: Some(pid.clone()),
                race_id: SMALL_RACE.into(),
                bib: k + 1,
                name: format!("RIDER {k} with a long enough name to weigh something {i}"),
                club: Some("Club".into()),
                position: k + 1,
                gates: vec![Some(0); 20],
                dt_start: None,
                dt_finish: None,
                time_ms: Some(i as i64 * 10),
                pen_s: Some(0),
                total_ms: None,
                rank: None,
                ttb_diff: None,
                ttb_name: None,
            })
            .collect();
        d.running()
            .merge
            .send(Input::OnCourse {
                event_id: EV.into(),
                entries,
                via: Via::Tcp,
            })
            .await
            .expect("oncourse");
        let (len, m) = crate::support::ws::next_text(&mut keeper).await;
        assert_eq!(m["seq"].as_u64(), Some(s0 + i + 1));
        assert_eq!(m["type"], "diff");
        lens.push(len);
    }
    let last = s0 + n;
    // The longest suffix of diffs whose bytes fit in 4 MiB.
    let mut kept = 0usize;
    let mut bytes = 0usize;
    for len in lens.iter().rev() {
        if bytes + len > 4 * MIB {
            break;
        }
        bytes += len;
        kept += 1;
    }
    eprintln!(
        "ring bytes: diffs of {} B, {kept} fit in 4 MiB",
        lens[lens.len() - 1]
    );
    assert!(
        kept < n as usize && kept < 1024,
        "the byte bound must be the one that binds"
    );
    let epoch = d.epoch();
    let base = d.ws_url();
    let since = last - kept as u64;
    let mut r = connect_ws(&format!("{base}?since={since}&epoch={epoch}")).await;
    for k in 1..=kept as u64 {
        let m = next_json(&mut r).await;
        assert_eq!(
            (m["type"].as_str(), m["seq"].as_u64()),
            (Some("diff"), Some(since + k)),
            "replayed message {k} of {kept}"
        );
    }
    let mut o = connect_ws(&format!("{base}?since={}&epoch={epoch}", since - 1)).await;
    let m = next_json(&mut o).await;
    assert_eq!(
        (m["type"].as_str(), m["seq"].as_u64()),
        (Some("full"), Some(last)),
        "one diff more than 4 MiB hold"
    );
    drop((keeper, r, o));
    d.stop().await;
}

/// The merge loop's input queue holds 1024 inputs: while the loop is stuck in a commit
/// (another connection holds the database's write lock), 1024 more inputs are queued at
/// once and the 1025th waits (back-pressure: nothing is dropped); it is queued as soon as the
/// loop moves on. The real loop on a real SQLite file, without the daemon's 1 s ticker,
/// whose ticks would take queue slots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_input_queue_holds_1024() {
    let _solo = crate::solo();
    use c123_live::merge::{AdminCommand, MergeSettings, XmlOrigin, XmlTarget};
    use c123_live::model::EventStatus;
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("live.db");
    let store = c123_live::store::Store::open(&db, Synchronous::Off).expect("store");
    let (merge, _join) = c123_live::merge::start(store, MergeSettings::default()).expect("merge");
    let export = c123_live::xml::parse_export(small_xml().as_bytes()).expect("export");
    merge
        .send(Input::Xml {
            target: XmlTarget::ByExport {
                event_id: Some(EV.into()),
            },
            export: Box::new(export),
            origin: XmlOrigin::Cli,
        })
        .await
        .expect("import");
    for to in [EventStatus::Startlist, EventStatus::Running] {
        merge
            .send(Input::Admin(AdminCommand::Transition {
                event_id: EV.into(),
                to,
            }))
            .await
            .expect("transition");
    }
    // Hold the write lock until told to let go (well within the 5 s busy timeout).
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let locker = std::thread::spawn(move || {
        let conn = rusqlite::Connection::open(&db).expect("open");
        conn.execute_batch("BEGIN IMMEDIATE").expect("lock");
        locked_tx.send(()).expect("signal");
        let _ = release_rx.recv_timeout(Duration::from_secs(4));
        conn.execute_batch("ROLLBACK").expect("unlock");
    });
    locked_rx.recv().expect("locked");
    let result = |time_ms: i64| Input::Results {
        event_id: EV.into(),
        updates: vec![ResultUpdate {
            race_id: SMALL_RACE.into(),
            participant_id: SMALL_PARTICIPANT.into(),
            time_ms: Some(Some(time_ms)),
            pen_s: Some(Some(0)),
            total_ms: Some(Some(time_ms)),
            status: Some(None),
            ..ResultUpdate::default()
        }],
        via: Via::Tcp,
    };
    // The loop takes this one and waits for the lock inside its commit.
    merge.submit(result(95_000)).await.expect("submit");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    for i in 0..1024 {
        let queued = tokio::time::timeout(Duration::from_secs(1), merge.submit(Input::Tick)).await;
        assert!(queued.is_ok(), "input {} of 1024 not queued at once", i + 1);
    }
    let filled_in = started.elapsed();
    let over = tokio::time::timeout(Duration::from_millis(800), merge.submit(Input::Tick)).await;
    assert!(
        over.is_err(),
        "a 1025th input was queued while the loop was stuck"
    );
    release_tx.send(()).expect("release");
    let queued = tokio::time::timeout(Duration::from_secs(10), merge.submit(Input::Tick)).await;
    assert!(queued.is_ok(), "not queued after the loop moved on");
    tokio::task::spawn_blocking(move || locker.join().expect("locker"))
        .await
        .expect("join");
    // Everything queued is handled, the stuck commit included.
    merge.send(Input::Tick).await.expect("tick");
    let time = merge
        .snapshot()
        .event(EV)
        .and_then(|e| e.result(SMALL_RACE, SMALL_PARTICIPANT).cloned())
        .and_then(|r| r.time_ms);
    eprintln!("input queue: 1024 queued in {filled_in:?} behind a stuck commit");
    assert_eq!(time, Some(95_000));
}
