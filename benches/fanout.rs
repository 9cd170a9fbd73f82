//! Diff composition + serialization, and fan-out of one message to 10 000 in-process client
//! queues (the hub's real `ClientQueue`s, via `hub::bench`). Prints numbers; asserts nothing
//! about time. Run: `cargo bench --bench fanout`.
//!
//! The socket side (10 000 write tasks, syscalls, the kernel) is measured end to end by
//! `c123-loadgen` (tools/loadgen, BENCHMARKS.md).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use c123_live::hub::bench::Queues;
use c123_live::hub::compose::{self, Plan};
use c123_live::hub::PublicWire;
use c123_live::merge::{
    self, AdminCommand, Input, MergeSettings, Published, ResultUpdate, Via, XmlOrigin, XmlTarget,
};
use c123_live::model::{EventStatus, OnCourseEntry};
use c123_live::store::{Store, Synchronous};

const EV: &str = "bench";

fn stats(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let n = samples.len();
    println!(
        "{label:<58} median {:>9.1} µs   p99 {:>9.1} µs   max {:>9.1} µs   (n={n})",
        us(samples[n / 2]),
        us(samples[(n * 99 / 100).min(n - 1)]),
        us(samples[n - 1])
    );
}

fn main() {
    let xml = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/jarni-2024.xml"
    ))
    .expect("fixture");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let _in = rt.enter();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("bench.db"), Synchronous::Off).expect("store");
    let (handle, _join) = merge::start(store, MergeSettings::default()).expect("loop");
    // Two real committed changes of the real event: one result, one on-course list.
    let (result_change, oncourse_change) = rt.block_on(async {
        let export = c123_live::xml::parse_export(&xml).expect("parses");
        handle
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
            handle
                .send(Input::Admin(AdminCommand::Transition {
                    event_id: EV.into(),
                    to,
                }))
                .await
                .expect("transition");
        }
        let mut rx = handle.subscribe();
        let snap = handle.snapshot();
        let ev = snap.event(EV).expect("event");
        let row = ev.race_results("C1M_ST_BR1_6").next().expect("row").clone();
        handle
            .send(Input::Results {
                event_id: EV.into(),
                updates: vec![ResultUpdate {
                    race_id: row.race_id.clone(),
                    participant_id: row.participant_id.clone(),
                    time_ms: Some(Some(95_000)),
                    pen_s: Some(Some(2)),
                    total_ms: Some(Some(97_000)),
                    status: Some(None),
                    ..ResultUpdate::default()
                }],
                via: Via::Tcp,
            })
            .await
            .expect("result");
        let entries = (0..3)
            .map(|i| OnCourseEntry {
                participant_id: None,
                race_id: "C1M_ST_BR1_6".into(),
                bib: i + 1,
                name: format!("RIDER {i}"),
                club: Some("Club".into()),
                position: i + 1,
                gates: vec![Some(0); 24],
                dt_start: None,
                dt_finish: None,
                time_ms: Some(45_000),
                pen_s: Some(2),
                total_ms: None,
                rank: None,
                ttb_diff: None,
                ttb_name: None,
            })
            .collect();
        handle
            .send(Input::OnCourse {
                event_id: EV.into(),
                entries,
                via: Via::Tcp,
            })
            .await
            .expect("oncourse");
        let a: Arc<Published> = rx.recv().await.expect("published");
        let b: Arc<Published> = rx.recv().await.expect("published");
        ((snap.clone(), a.clone()), (a, b))
    });
    let epoch = handle.snapshot().epoch.clone();
    let wire = PublicWire;

    let mut messages = Vec::new();
    for (label, (before, after)) in [
        (
            "result diff",
            (result_change.0.clone(), result_change.1.clone()),
        ),
        (
            "on-course diff (3 riders)",
            (
                oncourse_change.0.snapshot.clone(),
                oncourse_change.1.clone(),
            ),
        ),
    ] {
        let old = before.event(EV).expect("old").clone();
        let new = after.snapshot.event(EV).expect("new").clone();
        let change = after
            .changes
            .events
            .iter()
            .find(|c| c.event_id == EV)
            .expect("change")
            .clone();
        let build = || {
            let Plan::Diff(data) = compose::plan(&wire, Some(&old), Some(&new), &change) else {
                panic!("not a diff");
            };
            compose::diff_frames(change.seq, &epoch, data)
        };
        let msg = build();
        let samples: Vec<Duration> = (0..2000)
            .map(|_| {
                let t = Instant::now();
                black_box(build());
                t.elapsed()
            })
            .collect();
        stats(
            &format!(
                "compose + serialize {label} ({} frame(s), {} B)",
                msg.len(),
                msg.iter().map(|m| m.len()).sum::<usize>()
            ),
            samples,
        );
        messages.push((label, msg));
    }
    let full = compose::full_message(
        &wire,
        &result_change.1.snapshot.event(EV).expect("ev").clone(),
        &epoch,
    );
    let samples: Vec<Duration> = (0..200)
        .map(|_| {
            let t = Instant::now();
            black_box(compose::full_message(
                &wire,
                &result_change.1.snapshot.event(EV).expect("ev").clone(),
                &epoch,
            ));
            t.elapsed()
        })
        .collect();
    stats(
        &format!("compose + serialize full ({} B)", full.len()),
        samples,
    );

    for n in [1_000usize, 10_000] {
        let queues = Queues::new(n);
        for (label, msg) in &messages {
            let mut push = Vec::new();
            let mut drain = Vec::new();
            for _ in 0..200 {
                let t = Instant::now();
                assert_eq!(queues.publish(msg), 0);
                push.push(t.elapsed());
                let t = Instant::now();
                assert_eq!(queues.drain(), n * msg.len());
                drain.push(t.elapsed());
            }
            stats(&format!("queue {label} to {n} clients"), push);
            stats(&format!("  then take it from {n} queues"), drain);
        }
    }
}
