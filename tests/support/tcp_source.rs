//! A Canoe123 source on a real socket in front of a real merge loop, for the fault tests:
//! the fixture event `ev` on a SQLite file, a listen-mode source on 127.0.0.1 port 0.

use std::path::Path;

use c123_live::ingest::tcp::{self, SharedSourceStatus, TcpSettings};
use c123_live::merge::{self, MergeHandle, MergeSettings, Snapshot, XmlOrigin, XmlTarget};
use c123_live::shutdown::Shutdown;
use c123_live::store::{Store, Synchronous};

use super::frames;

pub async fn daemon() -> (tempfile::TempDir, MergeHandle) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("live.db"), Synchronous::Off).unwrap();
    let (merge, _join) = merge::start(store, MergeSettings::default()).unwrap();
    let xml = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/jarni-2024.xml"))
        .unwrap();
    c123_live::ingest::import_bytes(
        &merge,
        xml,
        XmlTarget::ByExport {
            event_id: Some("ev".into()),
        },
        XmlOrigin::Cli,
    )
    .await
    .unwrap();
    (dir, merge)
}

pub async fn listen(
    merge: &MergeHandle,
    shutdown: &Shutdown,
    f: impl FnOnce(&mut TcpSettings),
) -> (SharedSourceStatus, std::net::SocketAddr) {
    let mut settings = TcpSettings::new(Some("ev".into()));
    f(&mut settings);
    let (status, addr, _task) = tcp::spawn_listen(
        "127.0.0.1:0".parse().unwrap(),
        settings,
        merge.clone(),
        shutdown.clone(),
    )
    .await
    .unwrap();
    (status, addr)
}

/// Bib 9 on course with a running time of `cs` hundredths.
pub fn oncourse_frame(cs: u64) -> String {
    let t = format!("{}.{:02}", cs / 100, cs % 100);
    frames::ONCOURSE_RUNNING
        .replace("Time=\"13   \"", &format!("Time=\"{t}\""))
        .replace("Total=\"65   \"", &format!("Total=\"{t}\""))
}

pub fn bib9_time(merge: &MergeHandle) -> Option<i64> {
    bib9_in(&merge.snapshot())
}

pub fn bib9_in(snapshot: &Snapshot) -> Option<i64> {
    snapshot
        .event("ev")
        .unwrap()
        .oncourse
        .iter()
        .find(|e| e.bib == 9)
        .and_then(|e| e.time_ms)
}

pub fn seq(merge: &MergeHandle) -> u64 {
    merge.snapshot().event("ev").unwrap().header.seq
}

pub fn last_error(status: &SharedSourceStatus) -> String {
    status
        .lock()
        .unwrap()
        .last_error
        .clone()
        .unwrap_or_default()
}
