//! Class-level guard for the store (issue 11): any event the merge loop commits reads back
//! identical after a restart, and start-up never skips or fails on a row the daemon wrote.
//!
//! Inputs go through the real paths: exports as the export parser can produce them (unique
//! keys, values within the parser's bounds, every field at its extremes, unicode, long text,
//! gates at the bounds), result updates through the JSON ingest's own body parser, config
//! and lifecycle through admin commands. Each case is a real SQLite file: the loop commits,
//! stops (closing the database), and the database is reopened and loaded exactly as the
//! daemon does at start-up.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::json;

use c123_live::http::routes::parse_results_body;
use c123_live::merge::{self, AdminCommand, Input, MergeSettings, Via, XmlOrigin, XmlTarget};
use c123_live::model::{
    Category, Class, Course, EventConfig, EventMeta, EventStatus, Gates, MergeStrategy,
    Participant, Race, ResultRow, MAX_RANK, MAX_RUN_PENALTY_S, MAX_TIME_MS,
};
use c123_live::store::{Store, Synchronous};
use c123_live::xml::{Export, ExportEvent};

/// Text as an export or a client can send it: empty, ASCII, any unicode, and long.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-zA-Z0-9 _.-]{1,12}",
        "\\PC{1,40}",
        Just("Žluťoučký kůň 🛶 — \u{202e}RTL\u{202c} \"q\" 'a' <b> & ; \\ \t x".to_owned()),
        "\\PC{1000,2000}",
    ]
}

fn opt_text() -> impl Strategy<Value = Option<String>> {
    prop::option::of(text())
}

/// A whole number in `0..=max`, with both ends likely.
fn bounded(max: i64) -> impl Strategy<Value = i64> {
    prop_oneof![Just(0), Just(max), Just(max - 1), 0..=max]
}

fn opt_i32() -> impl Strategy<Value = Option<i32>> {
    prop::option::of(prop_oneof![
        Just(i32::MIN),
        Just(i32::MAX),
        Just(0),
        any::<i32>()
    ])
}

fn gates() -> impl Strategy<Value = Gates> {
    let slot = prop::option::of(prop_oneof![
        Just(0u16),
        Just(2),
        Just(50),
        Just(300),
        Just(Gates::MAX_PENALTY_S),
        0..=Gates::MAX_PENALTY_S,
    ]);
    prop_oneof![
        Just(Vec::new()),
        prop::collection::vec(slot.clone(), 0..=8),
        prop::collection::vec(slot, Gates::MAX_SLOTS..=Gates::MAX_SLOTS),
    ]
    .prop_map(Gates)
}

fn meta() -> impl Strategy<Value = EventMeta> {
    (
        text(),
        opt_text(),
        opt_text(),
        opt_text(),
        prop::option::of(Just("2024-04-06".to_owned())),
        prop::option::of(Just("2024-04-07".to_owned())),
        opt_text(),
    )
        .prop_map(
            |(main_title, sub_title, location, facility, start_date, end_date, discipline)| {
                EventMeta {
                    main_title,
                    sub_title,
                    location,
                    facility,
                    start_date,
                    end_date,
                    discipline,
                }
            },
        )
}

fn participant(id: String) -> impl Strategy<Value = Participant> {
    (
        (
            opt_text(),
            prop::option::of(any::<u32>()),
            opt_text(),
            text(),
        ),
        (opt_text(), opt_text(), opt_text(), opt_text()),
        (opt_text(), opt_text(), opt_text(), opt_text()),
        (
            opt_i32(),
            any::<bool>(),
            prop::collection::vec(text(), 0..=3),
        ),
    )
        .prop_map(move |(a, b, c, d)| Participant {
            id: id.clone(),
            class_id: a.0,
            event_bib: a.1,
            icf_id: a.2,
            family_name: a.3,
            given_name: b.0,
            icf_id2: b.1,
            family_name2: b.2,
            given_name2: b.3,
            club: c.0,
            noc: c.1,
            cat_id: c.2,
            ranking: c.3,
            year: d.0,
            is_team: d.1,
            members: d.2,
        })
}

fn class(id: String) -> impl Strategy<Value = Class> {
    let category =
        (text(), text(), opt_i32(), opt_i32()).prop_map(|(cat_id, name, f, l)| Category {
            cat_id,
            name,
            first_year: f,
            last_year: l,
        });
    (text(), opt_text(), prop::collection::vec(category, 0..=3)).prop_map(
        move |(name, long_title, categories)| Class {
            class_id: id.clone(),
            name,
            long_title,
            categories,
        },
    )
}

fn race(id: String) -> impl Strategy<Value = Race> {
    (
        opt_text(),
        prop::option::of(prop_oneof![
            Just("BR1".to_owned()),
            Just("BR2".to_owned()),
            text()
        ]),
        opt_i32(),
        opt_text(),
        opt_text(),
        opt_i32(),
        opt_i32(),
        opt_text(),
    )
        .prop_map(
            move |(class_id, dis_id, order, st, si, course, status, title)| Race {
                race_id: id.clone(),
                class_id,
                dis_id,
                race_order: order,
                start_time: st,
                start_interval: si,
                course_nr: course,
                race_status: status,
                title,
            },
        )
}

fn result(race_id: String, participant_id: String) -> impl Strategy<Value = ResultRow> {
    let time = || prop::option::of(bounded(MAX_TIME_MS));
    let pen = || prop::option::of(bounded(MAX_RUN_PENALTY_S));
    let rank = || prop::option::of(bounded(MAX_RANK).prop_map(|r| r as i32));
    let status = || {
        prop::option::of(prop_oneof![
            Just("DNS".to_owned()),
            Just("DNF".to_owned()),
            Just("DSQ".to_owned()),
            Just("*".to_owned()),
            text(),
        ])
    };
    (
        (
            prop::option::of(any::<u32>()),
            opt_i32(),
            opt_text(),
            status(),
        ),
        (opt_text(), opt_text(), time(), pen(), time(), gates()),
        (rank(), rank(), rank(), rank(), opt_text(), opt_text()),
        (status(), time(), pen(), time(), rank(), time(), rank()),
        (opt_i32(), opt_i32(), opt_i32(), opt_text()),
    )
        .prop_map(move |(a, b, c, d, e)| ResultRow {
            race_id: race_id.clone(),
            participant_id: participant_id.clone(),
            bib: a.0,
            start_order: a.1,
            start_time: a.2,
            status: a.3,
            dt_start: b.0,
            dt_finish: b.1,
            time_ms: b.2,
            pen_s: b.3,
            total_ms: b.4,
            gates: b.5,
            rnk: c.0,
            rnk_order: c.1,
            cat_rnk: c.2,
            cat_rnk_order: c.3,
            total_behind: c.4,
            cat_total_behind: c.5,
            prev_status: d.0,
            prev_time_ms: d.1,
            prev_pen_s: d.2,
            prev_total_ms: d.3,
            prev_rnk: d.4,
            total_total_ms: d.5,
            total_rnk: d.6,
            better_run_nr: e.0,
            heat_nr: e.1,
            round_nr: e.2,
            qualified: e.3,
            tcp_fields: Default::default(),
        })
}

/// Keys as the export has them: unique per table, some unicode, some long.
fn keys(max: usize) -> impl Strategy<Value = Vec<String>> {
    prop::collection::btree_set(
        prop_oneof![
            "[A-Z0-9_.]{1,16}",
            "\\PC{1,20}",
            Just("K1M_ST_BR1_6".to_owned()),
            Just("K1M_ST_BR2_6".to_owned()),
        ],
        1..=max,
    )
    .prop_map(|s| s.into_iter().collect())
}

fn export() -> impl Strategy<Value = Export> {
    (
        keys(5),
        keys(3),
        keys(3),
        prop::collection::btree_set(any::<i32>(), 0..=2),
    )
        .prop_flat_map(|(pids, cids, rids, courses)| {
            let participants: Vec<_> = pids.iter().cloned().map(participant).collect();
            let classes: Vec<_> = cids.iter().cloned().map(class).collect();
            let races: Vec<_> = rids.iter().cloned().map(race).collect();
            let pairs: Vec<(String, String)> = rids
                .iter()
                .flat_map(|r| pids.iter().map(move |p| (r.clone(), p.clone())))
                .collect();
            let results =
                prop::sample::subsequence(pairs.clone(), 0..=pairs.len()).prop_flat_map(|pairs| {
                    pairs
                        .into_iter()
                        .map(|(r, p)| result(r, p))
                        .collect::<Vec<_>>()
                });
            let courses: Vec<_> = courses
                .into_iter()
                .map(|nr| {
                    text().prop_map(move |config| Course {
                        course_nr: nr,
                        config,
                    })
                })
                .collect();
            (meta(), participants, classes, races, results, courses)
        })
        .prop_map(
            |(meta, participants, classes, races, results, courses)| Export {
                event: ExportEvent {
                    event_id: "CZE2.2024040600".into(),
                    meta,
                },
                participants,
                classes,
                races,
                results,
                courses,
            },
        )
}

/// A JSON ingest body for results of the export's rows (the real body parser decodes it).
fn results_body(export: &Export) -> impl Strategy<Value = serde_json::Value> {
    let rows: Vec<(String, String)> = export
        .results
        .iter()
        .map(|r| (r.race_id.clone(), r.participant_id.clone()))
        .collect();
    let n = rows.len();
    let item = |(race, pid): (String, String)| {
        let cs = || prop::option::of(bounded(MAX_TIME_MS / 10));
        let pen = || prop::option::of(bounded(MAX_RUN_PENALTY_S).prop_map(|s| s * 100));
        let gate = (
            1..=Gates::MAX_SLOTS as u32,
            prop::option::of(0..=Gates::MAX_PENALTY_S),
        )
            .prop_map(|(g, p)| json!({"gate": g, "pen": p}));
        (
            any::<u32>(),
            cs(),
            pen(),
            cs(),
            prop::option::of(prop::collection::vec(gate, 0..=Gates::MAX_SLOTS)),
            prop::option::of(prop_oneof![Just("DNF"), Just("DSQ"), Just("")]),
            prop::option::of(Just("10:00:00.000")),
        )
            .prop_map(move |(bib, time, pen, total, gates, status, dt)| {
                let mut o = json!({"raceId": race, "participantId": pid, "bib": bib,
                    "time": time, "pen": pen, "total": total});
                let m = o.as_object_mut().unwrap();
                if let Some(g) = gates {
                    m.insert("gates".into(), json!(g));
                }
                if let Some(s) = status {
                    m.insert("status".into(), json!(s));
                }
                if let Some(d) = dt {
                    m.insert("dtStart".into(), json!(d));
                }
                o
            })
    };
    prop::sample::subsequence(rows, 0..=n)
        .prop_flat_map(move |rows| rows.into_iter().map(item).collect::<Vec<_>>())
        .prop_map(|items| json!({ "results": items }))
}

fn config() -> impl Strategy<Value = EventConfig> {
    (
        opt_text(),
        opt_text(),
        prop::option::of(any::<bool>()),
        prop::option::of(prop_oneof![
            Just(MergeStrategy::TcpWins),
            Just(MergeStrategy::XmlWins)
        ]),
    )
        .prop_map(|(a, d, s, m)| EventConfig {
            active_race_id: a,
            display_mode: d,
            show_on_course: s,
            merge_strategy: m,
        })
}

#[derive(Debug, Clone)]
struct Case {
    create: Option<EventMeta>,
    config: EventConfig,
    first: Export,
    updates: serde_json::Value,
    second: Option<Export>,
    to: Vec<EventStatus>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::option::of(meta()),
        config(),
        export(),
        prop::option::of(export()),
        prop::sample::select(vec![
            vec![],
            vec![EventStatus::Startlist],
            vec![EventStatus::Startlist, EventStatus::Running],
            vec![
                EventStatus::Startlist,
                EventStatus::Running,
                EventStatus::Finished,
                EventStatus::Official,
            ],
        ]),
    )
        .prop_flat_map(|(create, config, first, second, to)| {
            let body = results_body(&first);
            (Just((create, config, first, second, to)), body)
        })
        .prop_map(|((create, config, first, second, to), updates)| Case {
            create,
            config,
            first,
            updates,
            second,
            to,
        })
}

/// Runs one case against a fresh database file and returns what the loop committed and
/// what a restart loads.
fn run(
    case: Case,
) -> (
    BTreeMap<String, c123_live::model::Event>,
    c123_live::store::Loaded,
) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("live.db");
    let committed = rt.block_on(async {
        let store = Store::open(&db, Synchronous::Off).unwrap();
        let (merge, join) = merge::start(store, MergeSettings::default()).unwrap();
        if let Some(meta) = case.create {
            merge
                .send(Input::Admin(AdminCommand::CreateEvent {
                    event_id: "ev".into(),
                    meta,
                    image: None,
                    api_key: "ab".repeat(32),
                }))
                .await
                .unwrap();
        }
        let import = |export: Export| Input::Xml {
            target: XmlTarget::ByExport {
                event_id: Some("ev".into()),
            },
            export: Box::new(export),
            origin: XmlOrigin::Cli,
        };
        merge.send(import(case.first)).await.unwrap();
        // Refusals are fine (e.g. a config value the loop does not accept): what matters is
        // that whatever was committed reads back.
        let _ = merge
            .send(Input::Admin(AdminCommand::SetConfig {
                event_id: "ev".into(),
                patch: case.config,
            }))
            .await;
        let body = serde_json::to_vec(&case.updates).unwrap();
        let updates = parse_results_body(&body).expect("generated bodies are valid");
        merge
            .send(Input::Results {
                event_id: "ev".into(),
                updates,
                via: Via::Tcp,
            })
            .await
            .unwrap();
        if let Some(second) = case.second {
            merge.send(import(second)).await.unwrap();
        }
        for to in case.to {
            let _ = merge
                .send(Input::Admin(AdminCommand::Transition {
                    event_id: "ev".into(),
                    to,
                }))
                .await;
        }
        let snap = merge.snapshot();
        merge.shutdown().await;
        join.await.unwrap();
        snap.events
            .iter()
            .map(|(k, e)| {
                let mut e = (**e).clone();
                // The on-course list is live state, never stored.
                e.oncourse = Default::default();
                (k.clone(), e)
            })
            .collect::<BTreeMap<_, _>>()
    });
    let store = Store::open(&db, Synchronous::Off).expect("the database reopens");
    let loaded = store
        .load()
        .expect("start-up never fails on a row the daemon wrote");
    (committed, loaded)
}

fn check(case: Case) -> Result<(), TestCaseError> {
    let (committed, loaded) = run(case);
    prop_assert_eq!(loaded.skipped.count, 0, "skipped {:?}", loaded.skipped.rows);
    prop_assert_eq!(
        committed.keys().collect::<Vec<_>>(),
        loaded.events.keys().collect::<Vec<_>>()
    );
    for (id, event) in &committed {
        let back = &*loaded.events[id];
        prop_assert_eq!(&event.header, &back.header);
        prop_assert_eq!(&event.classes, &back.classes);
        prop_assert_eq!(&event.participants, &back.participants);
        prop_assert_eq!(&event.races, &back.races);
        prop_assert_eq!(&event.courses, &back.courses);
        prop_assert_eq!(&event.results, &back.results);
    }
    Ok(())
}

#[test]
fn every_committed_event_reads_back_identical_after_a_restart() {
    // The nested strategies need more stack than a test thread has in a debug build.
    std::thread::Builder::new()
        .stack_size(256 * 1024 * 1024)
        .spawn(|| {
            let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
                cases: 48,
                ..ProptestConfig::default()
            });
            if let Err(e) = runner.run(&case(), check) {
                panic!("{e}");
            }
        })
        .unwrap()
        .join()
        .unwrap();
}
