//! Read replicas over a real NATS JetStream (`nats-server -js` on a loopback port): the
//! origin plays the real recording through its TCP source, and its replicas serve the same
//! WebSocket messages, the same REST bytes and the same model at every `seq`; through a NATS
//! outage, a replica's restart, a replica that starts late (from the snapshot) and the
//! origin's restart.

use std::collections::BTreeMap;
use std::time::Duration;

use c123_live::model::Event;
use serde_json::Value;

use crate::support::nats::NatsServer;
use crate::support::replicas::{
    assert_no_gap_no_duplicate, assert_same_messages, caught_up, commits, folded, origin,
    origin_with, play, prepare, recording_done, replica, same_state, versions, Reader, CATCH_UP,
    EV, FRAMES,
};
use crate::support::wait::poll_until;
use crate::support::MASTER;

// Long: one scenario (start, replay, compare messages, models, bytes, refusals, numbers),
// asserted step by step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_serve_the_origins_messages_bytes_and_state_at_every_seq() {
    let Some(nats) = NatsServer::start("replication::two_replicas").await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let origin = origin(&nats.url(), &dir.path().join("live.db")).await;
    prepare(&origin).await;
    let replicas = [replica(&nats.url()).await, replica(&nats.url()).await];
    for r in &replicas {
        caught_up(&origin, r, CATCH_UP).await;
        assert_eq!(r.epoch(), origin.epoch(), "the origin's epoch");
        let (st, _, body) = r.raw("/readyz").await;
        assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(u64::MAX);
    let collectors: Vec<_> = std::iter::once(&origin)
        .chain(&replicas)
        .map(|d| versions(d, stop_rx.clone()))
        .collect();
    let mut readers = vec![Reader::start(&origin).await];
    for r in &replicas {
        readers.push(Reader::start(r).await);
    }
    let start = origin.seq();
    let mut firsts = Vec::new();
    for r in &readers {
        firsts.push(r.first().await);
    }
    assert_eq!(firsts[0][0]["type"], "full");
    assert_eq!(firsts[0][0]["seq"].as_u64(), Some(start));
    assert!(
        firsts.iter().all(|f| *f == firsts[0]),
        "the same first full everywhere"
    );

    play(&origin, 20.0).await.expect("join").expect("played");
    recording_done(&origin, FRAMES, CATCH_UP).await;
    let last = origin.seq();
    assert!(
        last > start + 400,
        "the recording committed {} changes",
        last - start
    );
    for r in &replicas {
        caught_up(&origin, r, CATCH_UP).await;
    }
    let mut messages = Vec::new();
    for r in readers {
        messages.push(r.until(last).await);
    }
    // Where a hub folded changes (it was behind: `superseded`) the frames depend on timing;
    // everywhere else they are the origin's, frame for frame.
    for (i, m) in messages.iter().enumerate().skip(1) {
        let compared = assert_same_messages(&messages[0], m, &format!("replica {i}"));
        eprintln!(
            "replica {i}: {compared} of {} changes compared frame by frame ({} folded on the origin, {} on the replica)",
            m.len(),
            folded(&messages[0]).len(),
            folded(m).len()
        );
        assert!(
            compared * 3 >= m.len() * 2,
            "most changes compared: {compared}/{}",
            m.len()
        );
    }

    // The same model at every seq, the same bytes at the end.
    stop_tx.send(last).expect("last");
    let mut all: Vec<BTreeMap<u64, Event>> = Vec::new();
    for c in collectors {
        let list = c.await.expect("collector");
        assert!(
            list.windows(2).all(|w| w[0].0 < w[1].0),
            "each seq once, in order"
        );
        all.push(list.into_iter().collect());
    }
    assert_eq!(all[0].keys().next_back(), Some(&last));
    for (i, versions) in all.iter().enumerate().skip(1) {
        assert_eq!(
            versions.keys().collect::<Vec<_>>(),
            all[0].keys().collect::<Vec<_>>(),
            "replica {i}: every seq"
        );
        for (seq, e) in versions {
            assert!(all[0][seq] == *e, "replica {i}: the event at seq {seq}");
        }
    }
    for path in origin.public_paths() {
        let want = origin.raw(&path).await;
        assert_eq!(want.0, 200, "{path}");
        for r in &replicas {
            assert_eq!(r.raw(&path).await, want, "{path}");
        }
    }

    // Read-only, and the numbers say what happened.
    let r = &replicas[0];
    for (method, path) in [
        (reqwest::Method::POST, "/api/v1/admin/events".to_owned()),
        (reqwest::Method::POST, "/api/v1/ingest/results".to_owned()),
        (reqwest::Method::GET, "/api/v1/admin/status".to_owned()),
        (
            reqwest::Method::PATCH,
            format!("/api/v1/admin/events/{EV}/status"),
        ),
    ] {
        let resp = r
            .client
            .request(method, format!("{}{path}", r.base))
            .header("X-Master-Key", MASTER)
            .json(&serde_json::json!({"status": "official"}))
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status().as_u16(), 403, "{path}");
        let body: Value = resp.json().await.expect("json");
        assert_eq!(body["error"], "ReadOnlyReplica", "{path}: {body}");
        assert!(body["message"]
            .as_str()
            .is_some_and(|m| m.contains("read-only replica")));
    }
    let metrics = String::from_utf8(origin.raw("/metrics").await.2.to_vec()).expect("utf-8");
    let published = origin.status().report().records;
    assert!(
        published > last - start,
        "records acknowledged: {published}"
    );
    assert!(
        metrics.contains(&format!("replication_records_total {published}")),
        "{metrics}"
    );
    assert!(metrics.contains("replication_connected 1"), "{metrics}");
    let (st, _, body) = origin.raw("/readyz").await;
    let body: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(
        (st, &body["replication"]["role"]),
        (200, &Value::from("origin"))
    );
    for r in replicas {
        r.stop().await;
    }
    origin.stop().await;
}

// Long: one scenario (outage during the replay, convergence, a replica's restart).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_converge_through_a_nats_outage_and_a_replica_restart() {
    let Some(mut nats) = NatsServer::start("replication::outage").await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let origin = origin(&nats.url(), &dir.path().join("live.db")).await;
    prepare(&origin).await;
    let r = replica(&nats.url()).await;
    let r2 = replica(&nats.url()).await;
    caught_up(&origin, &r, CATCH_UP).await;
    caught_up(&origin, &r2, CATCH_UP).await;
    let reader = Reader::start(&r).await;
    let first = reader.first().await;
    assert_eq!(first[0]["type"], "full");
    let start = first[0]["seq"].as_u64().expect("seq");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(u64::MAX);
    let collector = versions(&r, stop_rx.clone());
    let collector2 = versions(&r2, stop_rx);

    let playing = play(&origin, 10.0);
    tokio::time::sleep(Duration::from_secs(3)).await;
    nats.kill();
    let at_kill = origin.seq();
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(
        origin.seq() > at_kill + 20,
        "the origin kept committing without NATS"
    );
    let (st, _, _) = origin.raw("/readyz").await;
    assert_eq!(st, 200, "the origin stays ready without NATS");
    let (st, _, body) = r.raw("/readyz").await;
    let body: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(st, 200, "the replica serves its last state: {body}");
    assert_eq!(body["replication"]["stale"], true, "{body}");
    assert!(
        r.seq() < origin.seq(),
        "the replica is behind while NATS is down"
    );
    nats.restart().await;

    playing.await.expect("join").expect("played");
    recording_done(&origin, FRAMES, CATCH_UP).await;
    let last = origin.seq();
    caught_up(&origin, &r, CATCH_UP).await;
    assert!(same_state(&origin, &r, CATCH_UP).await, "the same state");
    // The replica installed every version once, in order: the origin's queue held what NATS
    // missed and published it afterwards, nothing had to be resynchronised.
    caught_up(&origin, &r2, CATCH_UP).await;
    assert!(same_state(&origin, &r2, CATCH_UP).await, "the same state");
    stop_tx.send(last).expect("last");
    for c in [collector, collector2] {
        let installed = c.await.expect("collector");
        assert_eq!(
            installed.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(),
            (start + 1..=last).collect::<Vec<_>>(),
            "every version, no gap, no duplicate"
        );
    }
    assert_eq!(origin.status().report().resyncs, 0);
    // Its WebSocket client saw no gap and no duplicate either.
    let changes = reader.until(last).await;
    let seqs = assert_no_gap_no_duplicate(&changes);
    eprintln!(
        "outage: {} changes to the replica's client, {} of them full",
        seqs.len(),
        changes.iter().filter(|c| c[0]["type"] == "full").count()
    );

    // A replica killed and started again catches up (from the snapshot and the records).
    r.stop().await;
    commits(&origin, 50).await;
    let again = replica(&nats.url()).await;
    caught_up(&origin, &again, CATCH_UP).await;
    assert!(
        same_state(&origin, &again, CATCH_UP).await,
        "the same state after a restart"
    );
    again.stop().await;
    r2.stop().await;
    origin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_replica_starts_from_the_snapshot_and_replicas_follow_an_origin_restart() {
    let Some(nats) = NatsServer::start("replication::late").await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("live.db");
    let origin1 = origin(&nats.url(), &db).await;
    prepare(&origin1).await;
    let early = replica(&nats.url()).await;
    caught_up(&origin1, &early, CATCH_UP).await;
    let before = early.status().report();
    commits(&origin1, 1_000).await;
    caught_up(&origin1, &early, CATCH_UP).await;
    // The counter follows the install by a moment.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = early.status().report();
    assert!(
        after.records - before.records >= 1_000
            && after.snapshots_loaded == before.snapshots_loaded,
        "the early one applied every record, and no snapshot: {before:?} {after:?}"
    );

    let late = replica(&nats.url()).await;
    caught_up(&origin1, &late, CATCH_UP).await;
    let report = late.status().report();
    assert!(
        report.snapshots_loaded >= 1,
        "started from the snapshot: {report:?}"
    );
    assert!(
        report.records < 150,
        "and only the records after it: {report:?}"
    );
    assert!(
        same_state(&origin1, &late, CATCH_UP).await,
        "the same state"
    );

    // The origin restarts on its database: same epoch, the replicas go on without a full.
    let epoch = origin1.epoch();
    let reader = Reader::start(&late).await;
    let first = reader.first().await;
    let seq = first[0]["seq"].as_u64().expect("seq");
    origin1.stop().await;
    let origin2 = origin(&nats.url(), &db).await;
    assert_eq!(origin2.epoch(), epoch);
    commits(&origin2, 20).await;
    for r in [&early, &late] {
        caught_up(&origin2, r, CATCH_UP).await;
        assert!(
            same_state(&origin2, &r, CATCH_UP).await,
            "the same state after the restart"
        );
    }
    let all = reader.until(seq + 20).await;
    let changes = &all[1..];
    let seqs: Vec<u64> = changes
        .iter()
        .map(|c| c[0]["seq"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(seqs, (seq + 1..=seq + 20).collect::<Vec<_>>());
    assert!(
        changes.iter().all(|c| c[0]["type"] == "diff"),
        "no full: {changes:?}"
    );
    early.stop().await;
    late.stop().await;
    origin2.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_overflow_and_oversized_records_reach_the_replicas_as_snapshots() {
    let Some(mut nats) = NatsServer::start("replication::limits").await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    // A queue of 20 records, and records over 2 000 bytes sent as snapshots.
    let origin = origin_with(&nats.url(), &dir.path().join("live.db"), |s| {
        s.replication.queue_records = 20;
        s.replication.max_record_bytes = 2_000;
    })
    .await;
    prepare(&origin).await;
    let r = replica(&nats.url()).await;
    caught_up(&origin, &r, CATCH_UP).await;
    assert!(same_state(&origin, &r, CATCH_UP).await, "the same state");
    // The import's record (the whole event) was too large: a snapshot and a marker instead.
    assert!(
        origin.status().report().oversized >= 1,
        "{:?}",
        origin.status().report()
    );

    let reader = Reader::start(&r).await;
    let first = reader.first().await;
    let seq = first[0]["seq"].as_u64().expect("seq");
    let loaded = r.status().report().snapshots_loaded;
    nats.kill();
    let before = origin.seq();
    commits(&origin, 100).await;
    assert_eq!(origin.seq(), before + 100, "100 commits while NATS is down");
    nats.restart().await;
    caught_up(&origin, &r, CATCH_UP).await;
    assert!(
        same_state(&origin, &r, CATCH_UP).await,
        "the same state after the overflow"
    );
    let o = origin.status().report();
    assert!(o.resyncs >= 1, "the queue overflowed: {o:?}");
    // The follower counts a snapshot once the loop has installed it: a moment after readers
    // see it.
    let status = r.status().clone();
    poll_until("the gap filled from the snapshot", CATCH_UP, move || {
        status.report().snapshots_loaded > loaded
    })
    .await;
    // The client got a full of the state after the gap, never a partial replay.
    let last = origin.seq();
    let changes = reader.until(last).await;
    assert_no_gap_no_duplicate(&changes);
    let after_first = &changes[1..];
    assert!(
        after_first.iter().any(|c| c[0]["type"] == "full"),
        "a full after the gap: {:?}",
        after_first
            .iter()
            .map(|c| (&c[0]["type"], &c[0]["seq"]))
            .collect::<Vec<_>>()
    );
    assert!(after_first.iter().all(|c| c[0]["seq"].as_u64() > Some(seq)));
    r.stop().await;
    origin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_stops_following_when_the_origins_database_is_replaced() {
    let Some(nats) = NatsServer::start("replication::epoch").await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let first = origin(&nats.url(), &dir.path().join("a.db")).await;
    prepare(&first).await;
    let r = replica(&nats.url()).await;
    caught_up(&first, &r, CATCH_UP).await;
    let old_epoch = first.epoch();
    first.stop().await;
    // Another database (a new epoch) publishing to the same stream.
    let second = origin(&nats.url(), &dir.path().join("b.db")).await;
    assert_ne!(second.epoch(), old_epoch);
    prepare(&second).await;
    let status = r.status().clone();
    poll_until("the replica stopped", CATCH_UP, move || {
        status.report().stopped.is_some()
    })
    .await;
    let (st, _, body) = r.raw("/readyz").await;
    let body: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(st, 503, "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("restart this replica")),
        "{body}"
    );
    // It still serves its last state; a new replica follows the new database (once the new
    // origin's resync, queued before its import's record, is in NATS).
    assert_eq!(r.epoch(), old_epoch);
    let published = second.status().clone();
    poll_until("the new origin published", CATCH_UP, move || {
        published.report().records >= 1
    })
    .await;
    let fresh = replica(&nats.url()).await;
    caught_up(&second, &fresh, CATCH_UP).await;
    assert_eq!(fresh.epoch(), second.epoch());
    assert!(
        same_state(&second, &fresh, CATCH_UP).await,
        "the new database's state"
    );
    fresh.stop().await;
    r.stop().await;
    second.stop().await;
}
