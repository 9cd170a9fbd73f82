//! The real 2.4 MB export: parse, and parse + merge + commit through the merge loop into a
//! real SQLite file; and an export that drops N participants (removal must grow linearly).
//! Prints numbers; asserts nothing about time.
//! Run: `cargo bench --bench import`.

use std::time::{Duration, Instant};

use c123_live::merge::{self, Input, MergeSettings, XmlOrigin, XmlTarget};
use c123_live::store::{Store, Synchronous};
use c123_live::xml::{parse_export, Export};

fn stats(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let n = samples.len();
    println!(
        "{label:<56} median {:>7.2} ms   min {:>7.2} ms   max {:>7.2} ms   (n={n})",
        ms(samples[n / 2]),
        ms(samples[0]),
        ms(samples[n - 1])
    );
}

fn main() {
    let xml = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/jarni-2024.xml"
    ))
    .expect("fixture");
    println!("export: {} bytes", xml.len());

    let parse: Vec<Duration> = (0..20)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(parse_export(&xml).expect("parses"));
            t.elapsed()
        })
        .collect();
    stats("parse", parse);

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let _in_runtime = rt.enter();
    for sync in [Synchronous::Full, Synchronous::Normal] {
        let mut first = Vec::new();
        let mut same = Vec::new();
        let mut one_change = Vec::new();
        for round in 0..10 {
            let dir = tempfile::tempdir().expect("tempdir");
            let store = Store::open(&dir.path().join("bench.db"), sync).expect("store");
            let (handle, _join) = merge::start(store, MergeSettings::default()).expect("loop");
            let import = |bytes: Vec<u8>| {
                let handle = handle.clone();
                async move {
                    let t = Instant::now();
                    let export = tokio::task::spawn_blocking(move || parse_export(&bytes))
                        .await
                        .expect("join")
                        .expect("parses");
                    handle
                        .send(Input::Xml {
                            target: XmlTarget::ByExport {
                                event_id: Some("bench".into()),
                            },
                            export: Box::new(export),
                            origin: XmlOrigin::Cli,
                        })
                        .await
                        .expect("imports");
                    t.elapsed()
                }
            };
            rt.block_on(async {
                first.push(import(xml.clone()).await);
                same.push(import(xml.clone()).await);
                let changed = String::from_utf8_lossy(&xml).replacen(
                    "<Time>76990</Time>",
                    &format!("<Time>{}</Time>", 76_000 + round),
                    1,
                );
                one_change.push(import(changed.into_bytes()).await);
                handle.shutdown().await;
            });
        }
        let s = format!("{sync:?}").to_lowercase();
        stats(
            &format!("parse + merge + commit, empty db (sync={s})"),
            first,
        );
        stats(
            &format!("parse + merge, identical re-import (sync={s})"),
            same,
        );
        stats(
            &format!("parse + merge + commit, one result changed (sync={s})"),
            one_change,
        );
    }
    removal(&rt, &xml);
}

/// The fixture's export with `n` more participants, each with one result.
fn with_extra(base: &Export, n: usize) -> Export {
    let mut export = base.clone();
    let row = export.results[0].clone();
    let template = export
        .participants
        .iter()
        .find(|p| p.id == row.participant_id)
        .cloned()
        .expect("participant of the first result");
    for i in 0..n {
        let mut p = template.clone();
        p.id = format!("X{i}.{}", template.id);
        let mut r = row.clone();
        r.participant_id = p.id.clone();
        export.participants.push(p);
        export.results.push(r);
    }
    export
}

/// Import the fixture plus N participants, then the fixture alone: the second commit removes
/// N participants and their results (issue 11 #12: 8 000 took 6.2 s when each removal
/// scanned the event's results).
fn removal(rt: &tokio::runtime::Runtime, xml: &[u8]) {
    let base = parse_export(xml).expect("parses");
    for n in [1_000, 2_000, 4_000, 8_000, 10_000] {
        let mut samples = Vec::new();
        for _ in 0..3 {
            let dir = tempfile::tempdir().expect("tempdir");
            let store =
                Store::open(&dir.path().join("bench.db"), Synchronous::Normal).expect("store");
            let (handle, _join) = merge::start(store, MergeSettings::default()).expect("loop");
            let send = |export: Export| {
                let handle = handle.clone();
                async move {
                    let t = Instant::now();
                    handle
                        .send(Input::Xml {
                            target: XmlTarget::ByExport {
                                event_id: Some("bench".into()),
                            },
                            export: Box::new(export),
                            origin: XmlOrigin::Cli,
                        })
                        .await
                        .expect("imports");
                    t.elapsed()
                }
            };
            rt.block_on(async {
                send(with_extra(&base, n)).await;
                samples.push(send(base.clone()).await);
                handle.shutdown().await;
            });
        }
        stats(
            &format!("merge + commit, export drops {n} participants"),
            samples,
        );
    }
}
