//! Origins and replicas for the replication tests, started as `serve --nats` and
//! `replica --nats` start them (`app::App::start`), and what the tests compare them by.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use c123_live::app::{App, RunningApp, DEMO_EVENT, DEMO_RECORDING};
use c123_live::c123::recording::Recording;
use c123_live::ingest::replay::{self, ReplaySettings};
use c123_live::merge::{Input, MergeHandle, ResultUpdate, Via};
use c123_live::model::Event;
use c123_live::replicate::{NatsSettings, ReplicationStatus};
use c123_live::settings::Settings;
use c123_live::shutdown::Shutdown;
use c123_live::store::Synchronous;

use serde_json::Value;
use tokio::task::JoinHandle;

use super::wait::{eventually, poll_until};
use super::ws::{next_change, Ws};
use super::MASTER;

pub const EV: &str = DEMO_EVENT;

pub struct Daemon {
    pub running: RunningApp,
    pub base: String,
    pub client: reqwest::Client,
}

fn nats(url: &str) -> NatsSettings {
    NatsSettings {
        url: url.to_owned(),
        ..NatsSettings::default()
    }
}

/// The venue daemon on `db`, publishing to `nats_url`, with a TCP source port for the
/// recording and the event `jarni-2024` (its folder-less direct mode: `--event`).
pub async fn origin(nats_url: &str, db: &Path) -> Daemon {
    origin_with(nats_url, db, |_| {}).await
}

/// [`origin`] with its settings changed by `f` (smaller replication limits).
pub async fn origin_with(nats_url: &str, db: &Path, f: impl FnOnce(&mut Settings)) -> Daemon {
    let mut settings = Settings {
        db: db.to_owned(),
        synchronous: Synchronous::Off,
        listen: "127.0.0.1:0".parse().expect("addr"),
        event: Some(EV.into()),
        tcp_listen: Some("127.0.0.1:0".parse().expect("addr")),
        ..Settings::default()
    };
    settings.http.master_keys = vec![MASTER.into()];
    settings.replication.nats = Some(nats(nats_url));
    f(&mut settings);
    daemon(settings).await
}

/// A read-only replica of whatever origin publishes to `nats_url`.
pub async fn replica(nats_url: &str) -> Daemon {
    let mut settings = Settings {
        listen: "127.0.0.1:0".parse().expect("addr"),
        ..Settings::default()
    };
    settings.replication.nats = Some(nats(nats_url));
    settings.replication.replica = true;
    settings.replication.start_timeout = Duration::from_secs(20);
    daemon(settings).await
}

async fn daemon(settings: Settings) -> Daemon {
    let running = App::start(settings).await.expect("daemon starts");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_idle_timeout(Duration::from_secs(3))
        .build()
        .expect("client");
    Daemon {
        base: format!("http://{}", running.local_addr),
        running,
        client,
    }
}

impl Daemon {
    pub fn merge(&self) -> &MergeHandle {
        &self.running.merge
    }

    pub fn status(&self) -> &ReplicationStatus {
        self.running.replication.as_ref().expect("replication on")
    }

    pub fn addr(&self) -> SocketAddr {
        self.running.local_addr
    }

    pub fn seq(&self) -> u64 {
        self.merge()
            .snapshot()
            .event(EV)
            .map_or(0, |e| e.header.seq)
    }

    pub fn epoch(&self) -> String {
        self.merge().snapshot().epoch.clone()
    }

    /// The event as the public sees it (the API key is the origin's alone).
    pub fn public_event(&self) -> Option<Event> {
        self.merge().snapshot().event(EV).map(|e| {
            let mut e = (**e).clone();
            e.header.api_key = String::new();
            e
        })
    }

    pub async fn stop(self) {
        self.running.stop().await;
    }

    /// Status, ETag and the exact body bytes of a GET.
    pub async fn raw(&self, path: &str) -> (u16, Option<String>, bytes::Bytes) {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        let etag = r
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        (status, etag, r.bytes().await.expect("body"))
    }

    /// The paths of every public GET of the event.
    pub fn public_paths(&self) -> Vec<String> {
        let snapshot = self.merge().snapshot();
        let event = snapshot.event(EV).expect("event");
        let mut paths = vec![
            "/api/v1/events".to_owned(),
            format!("/api/v1/events/{EV}"),
            format!("/api/v1/events/{EV}/oncourse"),
            format!("/api/v1/events/{EV}/categories"),
        ];
        for race in event.races.keys() {
            paths.push(format!("/api/v1/events/{EV}/results/{race}"));
            paths.push(format!("/api/v1/events/{EV}/startlist/{race}"));
        }
        paths
    }
}

/// The bundled export imported into the origin's event and the event made public.
pub async fn prepare(origin: &Daemon) {
    c123_live::app::prepare_demo_event(origin.merge())
        .await
        .expect("event prepared");
}

/// Plays the bundled recording into the origin's TCP source at `speed`.
pub fn play(origin: &Daemon, speed: f64) -> tokio::task::JoinHandle<std::io::Result<()>> {
    let addr = origin.running.tcp_listen_addr.expect("tcp-listen");
    let recording = Recording::parse(DEMO_RECORDING).expect("recording");
    tokio::spawn(async move {
        let settings = ReplaySettings {
            speed,
            looped: false,
        };
        replay::push_to(addr, &recording, settings, &Shutdown::new()).await
    })
}

/// `n` commits on the origin: one result row's time changed each time.
pub async fn commits(origin: &Daemon, n: u64) {
    let snapshot = origin.merge().snapshot();
    let event = snapshot.event(EV).expect("event");
    let (race, rows) = event
        .results
        .iter()
        .find(|(_, r)| !r.is_empty())
        .expect("a race with rows");
    let pid = rows.keys().next().expect("a row").clone();
    let race = race.clone();
    // Consecutive times always differ, so each update is a commit.
    let base = origin.seq();
    for i in 0..n {
        let update = ResultUpdate {
            race_id: race.clone(),
            participant_id: pid.clone(),
            time_ms: Some(Some(60_000 + ((base + i) % 5_000) as i64 * 10)),
            ..ResultUpdate::default()
        };
        origin
            .merge()
            .send(Input::Results {
                event_id: EV.into(),
                updates: vec![update],
                via: Via::Tcp,
            })
            .await
            .expect("committed");
    }
}

/// Waits until the origin's TCP source has taken every frame of the recording.
pub async fn recording_done(origin: &Daemon, frames: u64, limit: Duration) {
    let source = Arc::clone(&origin.running.sources[0]);
    poll_until("every recorded frame taken", limit, move || {
        source.lock().map(|s| s.frames_total).unwrap_or(0) >= frames
    })
    .await;
}

/// Waits until `replica` has the origin's current version of the event.
pub async fn caught_up(origin: &Daemon, replica: &Daemon, limit: Duration) -> Arc<Event> {
    let want = origin.seq();
    let snap = eventually(
        replica.merge(),
        "the replica at the origin's seq",
        limit,
        |s| s.event(EV).is_some_and(|e| e.header.seq >= want),
    )
    .await;
    Arc::clone(snap.event(EV).expect("event"))
}

/// Whether the replica's event equals the origin's at one `seq`. The origin may still commit
/// after its last input (its 1 s tick ends an on-course rider's run), so comparing "now" with
/// "now" races: this reads the origin, waits for the replica to reach that `seq`, and compares
/// only when both name the same `seq`; when the origin moved on meanwhile it tries again.
pub async fn same_state(origin: &Daemon, replica: &Daemon, limit: Duration) -> bool {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let o = origin.public_event();
        let want = o.as_ref().map_or(0, |e| e.header.seq);
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        eventually(
            replica.merge(),
            "the replica at the origin's seq",
            left,
            |s| s.event(EV).is_some_and(|e| e.header.seq >= want),
        )
        .await;
        let r = replica.public_event();
        if r.as_ref().map_or(0, |e| e.header.seq) == want {
            return r == o;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the origin kept committing for {limit:?}"
        );
    }
}

/// Frames in the bundled recording.
pub const FRAMES: u64 = 1051;
pub const CATCH_UP: Duration = Duration::from_secs(30);

pub async fn ws(d: &Daemon) -> Ws {
    let url = format!("ws://{}/api/v1/events/{EV}/ws", d.addr());
    tokio_tungstenite::connect_async(url).await.expect("ws").0
}

/// Reads every change a WebSocket client receives, as it arrives (a client that did not read
/// during the replay would overflow its queue and be resynchronised).
pub struct Reader {
    changes: Arc<Mutex<Vec<Vec<Value>>>>,
    task: JoinHandle<()>,
}

impl Reader {
    pub async fn start(d: &Daemon) -> Reader {
        let mut socket = ws(d).await;
        let changes: Arc<Mutex<Vec<Vec<Value>>>> = Arc::default();
        let sink = Arc::clone(&changes);
        let task = tokio::spawn(async move {
            loop {
                let change = next_change(&mut socket).await;
                sink.lock().expect("lock").push(change);
            }
        });
        Reader { changes, task }
    }

    /// Every change up to and including the one numbered `last`.
    pub async fn until(self, last: u64) -> Vec<Vec<Value>> {
        let changes = Arc::clone(&self.changes);
        poll_until(
            &format!("the WebSocket change {last}"),
            CATCH_UP,
            move || {
                let c = changes.lock().expect("lock");
                c.last()
                    .and_then(|m| m[0]["seq"].as_u64())
                    .is_some_and(|s| s >= last)
            },
        )
        .await;
        self.task.abort();
        let mut out = self.changes.lock().expect("lock").clone();
        // Changes after `last` (the origin may commit on) are not compared.
        out.retain(|c| c[0]["seq"].as_u64().is_some_and(|s| s <= last));
        out
    }

    /// The first change (the `full` of a new connection).
    pub async fn first(&self) -> Vec<Value> {
        let changes = Arc::clone(&self.changes);
        poll_until("the first WebSocket message", CATCH_UP, move || {
            !changes.lock().expect("lock").is_empty()
        })
        .await;
        self.changes.lock().expect("lock")[0].clone()
    }
}

/// The seqs of `changes`; asserts none repeats and each diff follows the change before it (a
/// `full` carries the whole state, so it may follow any seq).
pub fn assert_no_gap_no_duplicate(changes: &[Vec<Value>]) -> Vec<u64> {
    let seqs: Vec<u64> = changes
        .iter()
        .map(|c| c[0]["seq"].as_u64().expect("seq"))
        .collect();
    for (i, c) in changes.iter().enumerate().skip(1) {
        assert!(
            seqs[i] > seqs[i - 1],
            "no duplicate: {:?}",
            &seqs[i - 1..=i]
        );
        if c[0]["type"] != "full" {
            assert_eq!(seqs[i], seqs[i - 1] + 1, "no gap before a {}", c[0]["type"]);
        }
    }
    seqs
}

/// Every version of the event the daemon publishes, in order, until it published the one
/// `until` names (`u64::MAX` until the test knows it).
pub fn versions(
    d: &Daemon,
    until: tokio::sync::watch::Receiver<u64>,
) -> JoinHandle<Vec<(u64, Event)>> {
    let mut rx = d.merge().subscribe();
    let mut until = until;
    tokio::spawn(async move {
        let mut out: Vec<(u64, Event)> = Vec::new();
        loop {
            let last = *until.borrow();
            if out.last().is_some_and(|(seq, _)| *seq >= last) {
                // The origin may commit on after the test read `last` (its TCP source's
                // on-course timeout): only the versions up to it are compared.
                out.retain(|(seq, _)| *seq <= last);
                return out;
            }
            tokio::select! {
                _ = until.changed() => {}
                got = rx.recv() => match got {
                    Ok(p) => {
                        let touched = p.changes.events.iter().any(|c| c.event_id == EV);
                        if let Some(e) = p.snapshot.event(EV).filter(|_| touched) {
                            let mut e = (**e).clone();
                            e.header.api_key = String::new();
                            out.push((e.header.seq, e));
                        }
                    }
                    Err(e) => panic!("version collector: {e}"),
                },
            }
        }
    })
}

/// The diffs of `frames` a hub folded (`superseded`) or that follow a folded one: their
/// content depends on when each hub built them, not on the state.
pub fn folded(changes: &[Vec<Value>]) -> std::collections::BTreeSet<u64> {
    let mut out = std::collections::BTreeSet::new();
    for c in changes {
        if c[0]["superseded"] == Value::Bool(true) {
            let seq = c[0]["seq"].as_u64().unwrap_or(0);
            out.insert(seq);
            out.insert(seq + 1);
        }
    }
    out
}

/// The replica's messages are the origin's: the same seqs, and the same frames wherever
/// neither hub folded changes. Returns how many changes were compared frame by frame.
pub fn assert_same_messages(origin: &[Vec<Value>], replica: &[Vec<Value>], who: &str) -> usize {
    let seqs = |c: &[Vec<Value>]| -> Vec<u64> {
        c.iter()
            .map(|m| m[0]["seq"].as_u64().unwrap_or(0))
            .collect()
    };
    assert_eq!(seqs(origin), seqs(replica), "{who}: the same seqs");
    let skip: std::collections::BTreeSet<u64> =
        folded(origin).union(&folded(replica)).copied().collect();
    let mut compared = 0;
    for (o, r) in origin.iter().zip(replica) {
        let seq = o[0]["seq"].as_u64().unwrap_or(0);
        if !skip.contains(&seq) {
            assert_eq!(o, r, "{who}: the message of seq {seq}");
            compared += 1;
        }
    }
    compared
}
