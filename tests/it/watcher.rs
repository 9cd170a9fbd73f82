//! The XML folder watcher on a real temporary folder, in both event and polling mode.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use c123_live::ingest::watch::{self, SharedWatcherStatus, WatchSettings};
use c123_live::merge::{self, MergeHandle, MergeSettings};
use c123_live::shutdown::Shutdown;
use c123_live::store::{Store, Synchronous};

use crate::support::wait::poll_until;

fn fixture() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/jarni-2024.xml"))
        .expect("fixture")
}

struct Rig {
    _dir: tempfile::TempDir,
    folder: PathBuf,
    merge: MergeHandle,
    status: SharedWatcherStatus,
    shutdown: Shutdown,
}

fn rig(polling: bool) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("exports");
    std::fs::create_dir(&folder).unwrap();
    let store = Store::open(&dir.path().join("live.db"), Synchronous::Off).unwrap();
    let (merge, _join) = merge::start(store, MergeSettings::default()).unwrap();
    let mut settings = WatchSettings::new(folder.clone());
    settings.event = Some("ev".into());
    if polling {
        settings.poll = Some(Duration::from_millis(100));
    }
    let shutdown = Shutdown::new();
    let (status, _task) = watch::spawn(settings, merge.clone(), shutdown.clone()).unwrap();
    Rig {
        _dir: dir,
        folder,
        merge,
        status,
        shutdown,
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Rig {
    fn imports(&self) -> u64 {
        self.status.lock().unwrap().imports
    }

    fn last_error(&self) -> Option<String> {
        self.status.lock().unwrap().last_error.clone()
    }

    fn seq(&self) -> Option<u64> {
        self.merge.snapshot().event("ev").map(|e| e.header.seq)
    }

    /// Waits (bounded) until `cond` holds. Polls: the watcher's import count is a status
    /// under a mutex, not a published change.
    async fn until(&self, what: &str, cond: impl Fn(&Rig) -> bool) {
        poll_until(what, Duration::from_secs(20), || cond(self)).await;
    }

    /// Gives the watcher time to act on anything pending (no assertion on speed).
    async fn quiet(&self) {
        tokio::time::sleep(Duration::from_millis(1200)).await;
    }
}

fn bib1_time(xml_time: u32, xml: &str) -> String {
    xml.replacen("<Time>76990</Time>", &format!("<Time>{xml_time}</Time>"), 1)
}

async fn chunked_write_is_imported_once_complete(polling: bool) {
    let rig = rig(polling);
    let xml = fixture();
    let path = rig.folder.join("event.xml");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunks = 10;
    let size = xml.len().div_ceil(chunks);
    for chunk in xml.as_bytes().chunks(size) {
        f.write_all(chunk).unwrap();
        f.flush().unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await; // 10 chunks over 2 s
    }
    drop(f);
    rig.until("import", |r| r.imports() == 1).await;
    rig.quiet().await;
    assert_eq!(rig.imports(), 1, "imported exactly once");
    let ev = rig.merge.snapshot().event("ev").cloned().expect("event");
    assert_eq!(
        ev.participants.len(),
        366,
        "the complete file, not a torn one"
    );
    assert_eq!(ev.header.seq, 1, "one commit: no partial import before it");
}

#[tokio::test]
async fn chunked_write_is_imported_once_complete_events() {
    chunked_write_is_imported_once_complete(false).await;
}

#[tokio::test]
async fn chunked_write_is_imported_once_complete_polling() {
    chunked_write_is_imported_once_complete(true).await;
}

async fn rapid_replacements_end_with_the_last_version(polling: bool) {
    let rig = rig(polling);
    let xml = fixture();
    let path = rig.folder.join("event.xml");
    for i in 0..5u32 {
        // Write-then-rename, as a copy tool does; 5 versions within 200 ms.
        let tmp = rig.folder.join(format!(".tmp{i}"));
        std::fs::write(&tmp, bib1_time(70_000 + i, &xml)).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    rig.until("last version imported", |r| {
        r.merge.snapshot().event("ev").and_then(|e| {
            e.result("K1M_ST_BR1_6", "12054.K1M_ST")
                .and_then(|r| r.time_ms)
        }) == Some(70_004)
    })
    .await;
    rig.quiet().await;
    let t = rig.merge.snapshot().event("ev").and_then(|e| {
        e.result("K1M_ST_BR1_6", "12054.K1M_ST")
            .and_then(|r| r.time_ms)
    });
    assert_eq!(t, Some(70_004), "stays at the last version");
    assert!(rig.imports() <= 5);
}

#[tokio::test]
async fn rapid_replacements_end_with_the_last_version_events() {
    rapid_replacements_end_with_the_last_version(false).await;
}

#[tokio::test]
async fn rapid_replacements_end_with_the_last_version_polling() {
    rapid_replacements_end_with_the_last_version(true).await;
}

async fn bad_files_change_nothing_and_are_reported(polling: bool) {
    let rig = rig(polling);
    let xml = fixture();
    std::fs::write(rig.folder.join("event.xml"), &xml).unwrap();
    rig.until("import", |r| r.imports() == 1).await;
    let seq = rig.seq();

    // Not an .xml file: ignored entirely.
    std::fs::write(rig.folder.join("notes.txt"), "not an export").unwrap();
    // An .xml file that is not XML, and a broken one.
    std::fs::write(rig.folder.join("garbage.xml"), b"\x00\x01 not xml at all").unwrap();
    std::fs::write(rig.folder.join("event.xml"), &xml[..xml.len() / 3]).unwrap();
    rig.until("errors reported", |r| {
        r.last_error()
            .is_some_and(|e| e.contains("event.xml") || e.contains("garbage.xml"))
    })
    .await;
    rig.quiet().await;
    assert_eq!(rig.seq(), seq, "state unchanged");
    assert_eq!(rig.imports(), 1);
    let err = rig.last_error().unwrap();
    assert!(err.contains("not imported"), "{err}");

    // A file deleted: nothing happens. Then the complete export again: state still equal.
    std::fs::remove_file(rig.folder.join("garbage.xml")).unwrap();
    std::fs::write(rig.folder.join("event.xml"), bib1_time(76_000, &xml)).unwrap();
    rig.until("next complete version imported", |r| r.imports() == 2)
        .await;
    assert_eq!(rig.seq(), seq.map(|s| s + 1));
}

#[tokio::test]
async fn bad_files_change_nothing_and_are_reported_events() {
    bad_files_change_nothing_and_are_reported(false).await;
}

#[tokio::test]
async fn bad_files_change_nothing_and_are_reported_polling() {
    bad_files_change_nothing_and_are_reported(true).await;
}

#[cfg(unix)]
#[tokio::test]
async fn links_out_of_the_folder_are_ignored() {
    let rig = rig(true);
    let outside = rig.folder.parent().unwrap().join("outside.xml");
    std::fs::write(&outside, fixture()).unwrap();
    std::os::unix::fs::symlink(&outside, rig.folder.join("link.xml")).unwrap();
    rig.quiet().await;
    assert_eq!(rig.imports(), 0);
    assert!(rig.merge.snapshot().event("ev").is_none());
}

/// The file is rewritten in place (truncate + write, not rename) while the watcher reads it,
/// many times: every state the loop commits is one whole version, and the last one wins.
#[tokio::test]
async fn a_file_replaced_in_place_during_reading_never_imports_a_mix() {
    let rig = rig(true);
    let xml = fixture();
    let path = rig.folder.join("event.xml");
    let mut published = rig.merge.subscribe();
    let versions: Vec<u32> = (0..15).map(|i| 71_000 + i).collect();
    let writer = {
        let (path, xml, versions) = (path.clone(), xml.clone(), versions.clone());
        tokio::task::spawn_blocking(move || {
            for v in versions {
                let text = bib1_time(v, &xml);
                // Slow in-place rewrite: a reader can see the old head and the new tail.
                let mut f = std::fs::File::create(&path).unwrap();
                for chunk in text.as_bytes().chunks(256 * 1024) {
                    f.write_all(chunk).unwrap();
                    f.flush().unwrap();
                    std::thread::sleep(Duration::from_millis(15));
                }
            }
        })
    };
    writer.await.unwrap();
    let last = i64::from(*versions.last().unwrap());
    rig.until("last version imported", |r| {
        r.merge.snapshot().event("ev").and_then(|e| {
            e.result("K1M_ST_BR1_6", "12054.K1M_ST")
                .and_then(|r| r.time_ms)
        }) == Some(last)
    })
    .await;
    // Every committed state was a complete export (all participants) of one version.
    while let Ok(p) = published.try_recv() {
        let e = p.snapshot.event("ev").unwrap();
        assert_eq!(e.participants.len(), 366, "a torn file was imported");
        let t = e
            .result("K1M_ST_BR1_6", "12054.K1M_ST")
            .and_then(|r| r.time_ms)
            .unwrap();
        assert!(versions.contains(&(t as u32)), "time {t} is no version's");
    }
}

/// Deleting the imported file changes nothing (the event stays as last imported); the
/// watcher carries on with the next file written.
#[tokio::test]
async fn a_deleted_file_changes_nothing_and_watching_goes_on() {
    let rig = rig(false);
    let xml = fixture();
    let path = rig.folder.join("event.xml");
    std::fs::write(&path, &xml).unwrap();
    rig.until("import", |r| r.imports() == 1).await;
    let seq = rig.seq();
    std::fs::remove_file(&path).unwrap();
    rig.quiet().await;
    assert_eq!(rig.seq(), seq, "deletion is not a change of the event");
    assert_eq!(
        rig.merge.snapshot().event("ev").unwrap().participants.len(),
        366
    );
    // Deleted between the change event and the read: the same.
    std::fs::write(&path, bib1_time(72_000, &xml)).unwrap();
    std::fs::remove_file(&path).unwrap();
    rig.quiet().await;
    assert_eq!(rig.seq(), seq);
    std::fs::write(rig.folder.join("event2.xml"), bib1_time(73_000, &xml)).unwrap();
    rig.until("next file imported", |r| r.imports() == 2).await;
    assert_eq!(rig.seq(), seq.map(|s| s + 1));
}

/// A watcher with its own merge loop on `db`, watching `folder` (event mode, event `ev`).
async fn watch_folder(db: &Path, folder: &Path) -> (MergeHandle, SharedWatcherStatus, Shutdown) {
    let store = Store::open(db, Synchronous::Off).unwrap();
    let (merge, _join) = merge::start(store, MergeSettings::default()).unwrap();
    let mut settings = WatchSettings::new(folder.to_owned());
    settings.event = Some("ev".into());
    let shutdown = Shutdown::new();
    let (status, _task) = watch::spawn(settings, merge.clone(), shutdown.clone()).unwrap();
    (merge, status, shutdown)
}

fn bib1_ms(merge: &MergeHandle) -> Option<i64> {
    merge.snapshot().event("ev").and_then(|e| {
        e.result("K1M_ST_BR1_6", "12054.K1M_ST")
            .and_then(|r| r.time_ms)
    })
}

fn set_mtime(path: &Path, at: std::time::SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(at)
        .unwrap();
}

/// The scan at start-up has imported what it will (nothing pending for a while).
async fn settled(status: &SharedWatcherStatus, at_least: u64) {
    poll_until("the import", Duration::from_secs(20), || {
        status.lock().unwrap().imports >= at_least
    })
    .await;
    // Nothing else pending: an absence, so only a wait can show it.
    tokio::time::sleep(Duration::from_millis(1200)).await;
}

/// Issue 11 #8: an older export whose name sorts later (`b-old.xml` after `a-new.xml`) must
/// not win, neither at the first start nor at any restart: each start imports the newest.
#[tokio::test]
async fn every_start_imports_the_newest_export_not_the_last_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("exports");
    std::fs::create_dir(&folder).unwrap();
    let db = dir.path().join("live.db");
    let xml = fixture();
    let now = std::time::SystemTime::now();
    std::fs::write(folder.join("a-new.xml"), bib1_time(76_000, &xml)).unwrap();
    std::fs::write(folder.join("b-old.xml"), &xml).unwrap();
    set_mtime(&folder.join("a-new.xml"), now);
    set_mtime(&folder.join("b-old.xml"), now - Duration::from_secs(3600));
    for start in 0..2 {
        let (merge, status, shutdown) = watch_folder(&db, &folder).await;
        if start == 0 {
            settled(&status, 1).await;
        } else {
            // A restart: the folder is scanned again; whatever it imports, it is the newest.
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
        assert_eq!(
            bib1_ms(&merge),
            Some(76_000),
            "start {start}: the newer export's value"
        );
        shutdown.cancel();
        merge.shutdown().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Equal modification times (Canoe123's copy keeps the original's): the export further on
/// (more results with a time) wins over the one whose name sorts later.
#[tokio::test]
async fn equal_mtimes_pick_the_export_further_on() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("exports");
    std::fs::create_dir(&folder).unwrap();
    let xml = fixture();
    let older = xml.replacen("<Time>76990</Time>", "", 1);
    assert_ne!(older, xml);
    std::fs::write(folder.join("a-new.xml"), &xml).unwrap();
    std::fs::write(folder.join("b-old.xml"), &older).unwrap();
    let at = std::time::SystemTime::now() - Duration::from_secs(60);
    set_mtime(&folder.join("a-new.xml"), at);
    set_mtime(&folder.join("b-old.xml"), at);
    let (merge, status, shutdown) = watch_folder(&dir.path().join("live.db"), &folder).await;
    settled(&status, 1).await;
    assert_eq!(bib1_ms(&merge), Some(76_990));
    assert_eq!(
        status.lock().unwrap().imports,
        1,
        "only the newest was imported"
    );
    shutdown.cancel();
}
