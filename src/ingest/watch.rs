//! The XML folder watcher: imports Canoe123 exports written into a folder.
//!
//! Canoe123 rewrites its whole multi-MB export after every finish, and its auto-copy keeps the
//! old modification time, so changes are detected by content hash, never by mtime. A file is
//! imported only when two reads a moment apart are identical and it parses completely: a
//! torn, half-written file is never imported, and the next complete version is. Imports run
//! one at a time; when several versions arrive quickly only the newest is read.

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

    async fn scan(&mut self) -> Scan {
        let files = match list_exports(&self.dir) {
            Ok(files) => files,
            Err(e) => {
                self.fail(None, format!("cannot list {}: {e}", self.dir.display()));
                return Scan::Done;
            }
        };
        let mut result = Scan::Done;
        for file in files {
            if let Scan::Again = self.consider(&file).await {
                result = Scan::Again;
            }
        }
        result
    }

    async fn consider(&mut self, file: &Path) -> Scan {
        let Some(first) = read_bounded(file) else {
            return Scan::Done; // deleted meanwhile, or unreadable: the next change retries
        };
        let hash: [u8; 32] = Sha256::digest(&first).into();
        if self.imported.get(file) == Some(&hash) || self.rejected.get(file) == Some(&hash) {
            return Scan::Done;
        }
        tokio::time::sleep(self.settings.stable_for).await;
        match read_bounded(file) {
            Some(second) if second == first => {}
            _ => return Scan::Again, // still being written
        }
        let parsed = tokio::task::spawn_blocking(move || parse_export(&first)).await;
        let export = match parsed {
            Ok(Ok(export)) => {
                export.note_unknown_statuses("xml folder");
                export
            }
            Ok(Err(e)) => {
                self.rejected.insert(file.to_owned(), hash);
                self.fail(Some(file), format!("not imported: {e}"));
                return Scan::Done;
            }
            Err(e) => {
                self.fail(Some(file), format!("parser task failed: {e}"));
                return Scan::Done;
            }
        };
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
                    st.last_import_at = Some(crate::merge::now_iso());
                }
            }
            Ok(other) => tracing::warn!(?other, "unexpected outcome for an XML import"),
            Err(e) => {
                // Refused (e.g. the event is official) or storage failed: try this version
                // again only if it changes, or after a store error on the next rescan.
                if !matches!(e, crate::merge::MergeError::Store(_)) {
                    self.rejected.insert(file.to_owned(), hash);
                }
                self.fail(Some(file), format!("not imported: {e}"));
            }
        }
        Scan::Done
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
            st.last_error_at = Some(crate::merge::now_iso());
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
