//! The XML folder watcher: imports Canoe123 exports written into a folder.
//!
//! Canoe123 rewrites its whole multi-MB export after every finish, and its auto-copy keeps the
//! old modification time, so changes are detected by content hash, never by mtime. A file is
//! imported only when two reads a moment apart are identical and it parses completely: a
//! torn, half-written file is never imported, and the next complete version is. Imports run
//! one at a time; when several versions arrive quickly only the newest is read. When one scan
//! finds several changed exports of one event (always at start-up: the folder holds old and
//! new exports side by side) only the newest is imported, by modification time and then by
//! content (see `Newness`), never by file name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::merge::{Input, MergeHandle, Outcome, XmlOrigin, XmlTarget};
use crate::shutdown::Shutdown;
use crate::xml::{parse_export, MAX_EXPORT_BYTES};

#[derive(Debug, Clone)]
pub struct WatchSettings {
    pub dir: PathBuf,
    /// The event all exports of the folder belong to; `None`: by the export's `EventId`.
    pub event: Option<String>,
    /// Rescan the folder at this interval (network shares deliver no change events).
    /// Without it the folder is still rescanned every `safety_rescan`.
    pub poll: Option<Duration>,
    /// Quiet time after the last change event before the folder is read.
    pub settle: Duration,
    /// Time between the two reads that must agree.
    pub stable_for: Duration,
    pub safety_rescan: Duration,
}

impl WatchSettings {
    pub fn new(dir: PathBuf) -> WatchSettings {
        WatchSettings {
            dir,
            event: None,
            poll: None,
            settle: Duration::from_millis(250),
            stable_for: Duration::from_millis(150),
            safety_rescan: Duration::from_secs(30),
        }
    }
}

/// What an operator sees of the watcher (`/api/v1/admin/status`).
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WatcherStatus {
    pub folder: String,
    pub mode: &'static str,
    pub imports: u64,
    pub last_import_file: Option<String>,
    pub last_import_at: Option<String>,
    /// Rows the last import changed (0: an identical export).
    pub last_rows_changed: Option<u64>,
    /// Exports the merge loop refused for good (e.g. the event is official); the reason is
    /// in `last_error`.
    pub refusals: u64,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
}

pub type SharedWatcherStatus = Arc<Mutex<WatcherStatus>>;

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("cannot watch {dir}: {source}")]
    Watch { dir: PathBuf, source: notify::Error },
    #[error("{dir} is not a readable folder: {source}")]
    Folder {
        dir: PathBuf,
        source: std::io::Error,
    },
}

/// Starts watching; the returned task ends when `shutdown` fires.
pub fn spawn(
    settings: WatchSettings,
    merge: MergeHandle,
    shutdown: Shutdown,
) -> Result<(SharedWatcherStatus, tokio::task::JoinHandle<()>), WatchError> {
    let dir = std::fs::canonicalize(&settings.dir).map_err(|source| WatchError::Folder {
        dir: settings.dir.clone(),
        source,
    })?;
    let (tx, rx) = mpsc::channel::<()>(1);
    let watcher = if settings.poll.is_none() {
        let tx = tx.clone();
        let mut w = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            if res.is_ok() {
                // A full channel already means "look again"; dropping the extra is right.
                let _ = tx.try_send(());
            }
        })
        .map_err(|source| WatchError::Watch {
            dir: dir.clone(),
            source,
        })?;
        w.watch(&dir, RecursiveMode::NonRecursive)
            .map_err(|source| WatchError::Watch {
                dir: dir.clone(),
                source,
            })?;
        Some(w)
    } else {
        None
    };
    let status = Arc::new(Mutex::new(WatcherStatus {
        folder: dir.display().to_string(),
        mode: if watcher.is_some() {
            "events"
        } else {
            "polling"
        },
        ..WatcherStatus::default()
    }));
    let task = FolderTask {
        dir,
        settings,
        merge,
        status: Arc::clone(&status),
        imported: BTreeMap::new(),
        rejected: BTreeMap::new(),
    };
    let join = tokio::spawn(async move {
        // Keep the OS watcher (and, in polling mode, the channel) alive while the task runs.
        let _watcher = watcher;
        let _keep_open = tx;
        task.run(rx, shutdown).await;
    });
    Ok((status, join))
}

struct FolderTask {
    dir: PathBuf,
    settings: WatchSettings,
    merge: MergeHandle,
    status: SharedWatcherStatus,
    /// Hash of the last version imported, per file.
    imported: BTreeMap<PathBuf, [u8; 32]>,
    /// Hash of the last version that failed, per file (to log each bad version once).
    rejected: BTreeMap<PathBuf, [u8; 32]>,
}

enum Scan {
    /// Nothing left to do until the next change.
    Done,
    /// A file was still changing; look again soon.
    Again,
}

enum Read {
    Candidate(Box<Candidate>),
    /// Unchanged, unreadable or not an export.
    Nothing,
    /// Still being written.
    Again,
}

/// A file and the hash of the version seen.
type SeenFile = (PathBuf, [u8; 32]);

/// A changed, stable, parsed export file.
struct Candidate {
    file: PathBuf,
    hash: [u8; 32],
    export: crate::xml::Export,
    newness: Newness,
}

/// Which of two exports of one event is newer: the later modification time; on equal times
/// (Canoe123's auto-copy keeps the original's) the one further on, i.e. with more result rows
/// that carry a time or a status (a later export of the same event only adds to those); then
/// the file name, so the choice never depends on the order the folder lists files in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Newness {
    modified: Option<std::time::SystemTime>,
    results_done: usize,
    name: PathBuf,
}

impl Newness {
    fn of(
        modified: Option<std::time::SystemTime>,
        export: &crate::xml::Export,
        file: &Path,
    ) -> Self {
        Newness {
            modified,
            results_done: export
                .results
                .iter()
                .filter(|r| r.time_ms.is_some() || r.status.is_some())
                .count(),
            name: file.to_owned(),
        }
    }
}

impl FolderTask {
    async fn run(mut self, mut changes: mpsc::Receiver<()>, shutdown: Shutdown) {
        let rescan = self.settings.poll.unwrap_or(self.settings.safety_rescan);
        let mut ticker = tokio::time::interval(rescan);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tracing::info!(folder = %self.dir.display(), every = ?rescan, "watching XML folder");
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticker.tick() => {}
                got = changes.recv() => {
                    if got.is_none() { return; }
                    // Let a burst of writes finish: wait until no event for `settle`.
                    loop {
                        tokio::select! {
                            _ = shutdown.cancelled() => return,
                            more = tokio::time::timeout(self.settings.settle, changes.recv()) => {
                                match more {
                                    Ok(Some(())) => continue,
                                    Ok(None) => return,
                                    Err(_) => break,
                                }
                            }
                        }
                    }
                }
            }
            while let Scan::Again = self.scan().await {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(self.settings.settle) => {}
                }
            }
        }
    }

    /// Reads every changed, stable export of the folder and imports, per event, only the
    /// newest one (see [`Newness`]): at start-up the folder holds old and new exports side by
    /// side, and importing them one by one in name order would let an older one win. The
    /// exports it supersedes are recorded as seen and not imported unless they change again.
    async fn scan(&mut self) -> Scan {
        let files = match list_exports(&self.dir) {
            Ok(files) => files,
            Err(e) => {
                self.fail(None, format!("cannot list {}: {e}", self.dir.display()));
                return Scan::Done;
            }
        };
        let mut result = Scan::Done;
        // Per target (the `--event`, else the export's EventId): the newest candidate and the
        // files it superseded. One parsed export per target is kept.
        let mut newest: BTreeMap<String, (Box<Candidate>, Vec<SeenFile>)> = BTreeMap::new();
        for file in files {
            let candidate = match self.read_candidate(&file).await {
                Read::Candidate(c) => c,
                Read::Again => {
                    result = Scan::Again;
                    continue;
                }
                Read::Nothing => continue,
            };
            let target = self
                .settings
                .event
                .clone()
                .unwrap_or_else(|| candidate.export.event.event_id.clone());
            match newest.get_mut(&target) {
                None => {
                    newest.insert(target, (candidate, Vec::new()));
                }
                Some((best, superseded)) => {
                    if candidate.newness > best.newness {
                        let old = std::mem::replace(best, candidate);
                        tracing::info!(file = %old.file.display(), newer = %best.file.display(), "older export not imported");
                        superseded.push((old.file, old.hash));
                    } else {
                        tracing::info!(file = %candidate.file.display(), newer = %best.file.display(), "older export not imported");
                        superseded.push((candidate.file, candidate.hash));
                    }
                }
            }
        }
        for (candidate, superseded) in newest.into_values() {
            // Once the newest is imported or refused for good, the older ones are never
            // wanted: an older export must not step in for a refused newer one.
            if self.import(candidate).await {
                self.imported.extend(superseded);
            }
        }
        result
    }

    /// The file's export if it changed since it was last seen, is stable and parses.
    async fn read_candidate(&mut self, file: &Path) -> Read {
        let Some(first) = read_bounded(file) else {
            return Read::Nothing; // deleted meanwhile, or unreadable: the next change retries
        };
        let hash: [u8; 32] = Sha256::digest(&first).into();
        if self.imported.get(file) == Some(&hash) || self.rejected.get(file) == Some(&hash) {
            return Read::Nothing;
        }
        tokio::time::sleep(self.settings.stable_for).await;
        match read_bounded(file) {
            Some(second) if second == first => {}
            _ => return Read::Again, // still being written
        }
        let modified = std::fs::metadata(file).and_then(|m| m.modified()).ok();
        let parsed = tokio::task::spawn_blocking(move || parse_export(&first)).await;
        let export = match parsed {
            Ok(Ok(export)) => {
                export.note_unknown_statuses("xml folder");
                export
            }
            Ok(Err(e)) => {
                self.rejected.insert(file.to_owned(), hash);
                self.fail(Some(file), format!("not imported: {e}"));
                return Read::Nothing;
            }
            Err(e) => {
                self.fail(Some(file), format!("parser task failed: {e}"));
                return Read::Nothing;
            }
        };
        Read::Candidate(Box::new(Candidate {
            newness: Newness::of(modified, &export, file),
            file: file.to_owned(),
            hash,
            export,
        }))
    }

    /// Sends one export to the merge loop; `true` when it was imported or refused for good
    /// (`false`: storage failed, the next rescan tries again).
    async fn import(&mut self, candidate: Box<Candidate>) -> bool {
        let Candidate {
            file, hash, export, ..
        } = *candidate;
        let file = file.as_path();
        let input = Input::Xml {
            target: XmlTarget::ByExport {
                event_id: self.settings.event.clone(),
            },
            export: Box::new(export),
            origin: XmlOrigin::File(file.to_owned()),
        };
        match self.merge.send(input).await {
            Ok(Outcome::XmlImported {
                event_id,
                rows_changed,
                ..
            }) => {
                self.imported.insert(file.to_owned(), hash);
                self.rejected.remove(file);
                tracing::info!(file = %file.display(), event = %event_id, rows_changed, "imported XML export");
                if let Ok(mut st) = self.status.lock() {
                    st.imports += 1;
                    st.last_import_file = Some(file.display().to_string());
                    st.last_import_at = Some(crate::time::now_iso());
                    st.last_rows_changed = Some(rows_changed as u64);
                }
                true
            }
            Ok(other) => {
                tracing::warn!(?other, "unexpected outcome for an XML import");
                false
            }
            Err(e) => {
                // Refused (e.g. the event is official) or storage failed: try this version
                // again only if it changes, or after a store error on the next rescan.
                let for_good = !matches!(e, crate::merge::MergeError::Store(_));
                if for_good {
                    self.rejected.insert(file.to_owned(), hash);
                    if let Ok(mut st) = self.status.lock() {
                        st.refusals += 1;
                    }
                }
                self.fail(Some(file), format!("not imported: {e}"));
                for_good
            }
        }
    }

    fn fail(&self, file: Option<&Path>, message: String) {
        match file {
            Some(f) => tracing::warn!(file = %f.display(), "{message}"),
            None => tracing::warn!("{message}"),
        }
        if let Ok(mut st) = self.status.lock() {
            st.last_error = Some(match file {
                Some(f) => format!("{}: {message}", f.display()),
                None => message,
            });
            st.last_error_at = Some(crate::time::now_iso());
        }
    }
}

/// `*.xml` regular files directly in `dir` that resolve inside it (a link pointing out of the
/// folder is ignored).
fn list_exports(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let Ok(entry) = entry else { continue };
        let path = entry.path();
        let is_xml = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("xml"));
        if !is_xml {
            continue;
        }
        let Ok(real) = std::fs::canonicalize(&path) else {
            continue;
        };
        if real.parent() != Some(dir) || !real.is_file() {
            continue;
        }
        files.push(path);
    }
    files.sort();
    Ok(files)
}

/// The file's bytes, or `None` if it cannot be read or is larger than any export can be.
fn read_bounded(path: &Path) -> Option<Vec<u8>> {
    let meta = std::fs::metadata(path).ok()?;
    if meta.len() > MAX_EXPORT_BYTES as u64 {
        tracing::warn!(file = %path.display(), size = meta.len(), "file too large for an export; ignored");
        return None;
    }
    std::fs::read(path).ok()
}
