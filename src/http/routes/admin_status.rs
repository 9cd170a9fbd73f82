//! What the operator console reads: `GET /api/v1/admin/status` (the loop, the events, the
//! inputs, storage, WebSocket clients) and `GET /api/v1/admin/log` (the last warnings). Both
//! need the master key. Rates (frames/s, commits/s) are not computed here: the counters are
//! monotonic and the console derives rates from two polls, which needs no state on the server.

use std::path::Path;
use std::sync::atomic::Ordering;

use axum::extract::State;
use serde::Serialize;

use super::body::{ok, Res};
use super::extract::MasterKey;
use crate::http::log_ring::{WarnRing, Warning};
use crate::http::AppState;
use crate::ingest::tcp::SourceStatus;
use crate::ingest::watch::WatcherStatus;
use crate::model::{EventStatus, MergeStrategy};
use crate::store::SkippedRows;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AdminStatus<'a> {
    merge_loop_running: bool,
    last_commit_failed: bool,
    snapshot_age_ms: u64,
    epoch: &'a str,
    /// Transactions committed since start (a counter; the console charts its rate).
    commits: u64,
    /// WebSocket clients connected now, all events.
    ws_clients: u64,
    events: Vec<EventLine<'a>>,
    tcp_sources: Vec<SourceStatus>,
    xml_watcher: Option<WatcherStatus>,
    storage: Storage,
    // Stored rows start-up could not read and left out (count, first 100 listed).
    skipped_rows: &'a SkippedRows,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EventLine<'a> {
    event_id: &'a str,
    main_title: &'a str,
    status: EventStatus,
    /// The lifecycle's allowed next states from `status`, for the console's buttons.
    next_statuses: &'static [EventStatus],
    seq: u64,
    has_xml_data: bool,
    on_course: usize,
    /// The strategy in force for this event (its override or the daemon's default)…
    merge_strategy: MergeStrategy,
    /// …and whether that is the event's own override.
    merge_strategy_overridden: bool,
    ws_clients: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Storage {
    /// The database file, without its WAL; `None` when it cannot be read (or is in memory).
    db_bytes: Option<u64>,
    wal_bytes: Option<u64>,
    last_commit_failed: bool,
    /// Commits that failed in the store since start.
    store_errors: u64,
}

fn file_len(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.len())
}

fn storage(state: &AppState) -> Storage {
    let db = state.db_path.as_deref();
    let wal = db.map(|p| {
        let mut s = p.as_os_str().to_owned();
        s.push("-wal");
        std::path::PathBuf::from(s)
    });
    Storage {
        db_bytes: db.and_then(file_len),
        wal_bytes: wal.as_deref().and_then(file_len),
        last_commit_failed: state.merge.last_commit_failed(),
        store_errors: state.merge.stats().store_errors.load(Ordering::Relaxed),
    }
}

/// `GET /api/v1/admin/status`.
pub async fn status(State(state): State<AppState>, _: MasterKey) -> Res {
    let sources: Vec<SourceStatus> = state
        .inputs
        .sources
        .iter()
        .filter_map(|s| s.lock().ok().map(|s| s.report()))
        .collect();
    let watcher = state
        .inputs
        .watcher
        .as_ref()
        .and_then(|w| w.lock().ok().map(|w| w.clone()));
    let clients = state
        .hub
        .as_ref()
        .map(|h| h.clients_per_event())
        .unwrap_or_default();
    let clients_of = |id: &str| {
        clients
            .iter()
            .find(|(e, _)| e == id)
            .map_or(0, |(_, n)| *n as u64)
    };
    let snap = state.merge.snapshot();
    let mut events: Vec<_> = snap.events.values().collect();
    events.sort_by_key(|e| e.header.id);
    let events = events
        .into_iter()
        .map(|e| {
            let h = &e.header;
            EventLine {
                event_id: &h.event_id,
                main_title: &h.meta.main_title,
                status: h.status,
                next_statuses: h.status.valid_transitions(),
                seq: h.seq,
                has_xml_data: h.has_xml_data,
                on_course: e.oncourse.len(),
                merge_strategy: e.merge_strategy(state.default_strategy),
                merge_strategy_overridden: h.config.merge_strategy.is_some(),
                ws_clients: clients_of(&h.event_id),
            }
        })
        .collect();
    ok(&AdminStatus {
        merge_loop_running: state.merge.is_running(),
        last_commit_failed: state.merge.last_commit_failed(),
        snapshot_age_ms: snap.committed_at.elapsed().as_millis() as u64,
        epoch: &snap.epoch,
        commits: state.merge.stats().commits.load(Ordering::Relaxed),
        ws_clients: state.hub.as_ref().map_or(0, |h| h.connected() as u64),
        events,
        tcp_sources: sources,
        xml_watcher: watcher,
        storage: storage(&state),
        skipped_rows: state.merge.skipped_rows(),
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Log {
    /// The newest warnings (at most [`crate::http::log_ring::CAPACITY`]), oldest first.
    warnings: Vec<Warning>,
    /// Warnings logged since start, those no longer kept included.
    total: u64,
}

/// `GET /api/v1/admin/log`: the last warnings of the daemon's log.
pub async fn log(_: MasterKey) -> Res {
    let (warnings, total) = WarnRing::global().recent();
    ok(&Log { warnings, total })
}
