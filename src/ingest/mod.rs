//! The outside world's inputs: the XML folder watcher, one-shot file imports, and (in
//! `tcp`) the Canoe123 TCP sources. Everything here turns bytes into [`crate::merge::Input`]s
//! and hands them to the merge loop; nothing here writes state.

pub mod live;
pub mod replay;
pub mod tcp;
pub mod watch;

use std::path::Path;

/// What the inputs report to operators (`/api/v1/admin/status`, `/metrics`).
#[derive(Clone, Default)]
pub struct InputStatus {
    pub watcher: Option<watch::SharedWatcherStatus>,
    pub sources: Vec<tcp::SharedSourceStatus>,
}

use crate::merge::{Input, MergeError, MergeHandle, Outcome, XmlOrigin, XmlTarget};
use crate::xml::{parse_export, XmlError, MAX_EXPORT_BYTES};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a usable export: {source}")]
    Parse { path: String, source: XmlError },
    #[error("{path} was not imported: {source}")]
    Merge { path: String, source: MergeError },
}

/// Reads, parses and imports one export file (the `import` command, `demo`).
pub async fn import_file(
    merge: &MergeHandle,
    path: &Path,
    target: XmlTarget,
) -> Result<Outcome, ImportError> {
    let shown = path.display().to_string();
    let len = std::fs::metadata(path)
        .map_err(|source| ImportError::Read {
            path: shown.clone(),
            source,
        })?
        .len();
    if len > MAX_EXPORT_BYTES as u64 {
        return Err(ImportError::Parse {
            path: shown,
            source: XmlError::TooLarge {
                size: len as usize,
                limit: MAX_EXPORT_BYTES,
            },
        });
    }
    let bytes = tokio::fs::read(path)
        .await
        .map_err(|source| ImportError::Read {
            path: shown.clone(),
            source,
        })?;
    import_bytes(merge, bytes, target, XmlOrigin::File(path.to_owned()))
        .await
        .map_err(|e| match e {
            BytesImportError::Parse(source) => ImportError::Parse {
                path: shown.clone(),
                source,
            },
            BytesImportError::Merge(source) => ImportError::Merge {
                path: shown.clone(),
                source,
            },
        })
}

#[derive(Debug, thiserror::Error)]
pub enum BytesImportError {
    #[error(transparent)]
    Parse(XmlError),
    #[error(transparent)]
    Merge(MergeError),
}

/// Parses an export off the async threads and imports it.
pub async fn import_bytes(
    merge: &MergeHandle,
    bytes: Vec<u8>,
    target: XmlTarget,
    origin: XmlOrigin,
) -> Result<Outcome, BytesImportError> {
    let export = tokio::task::spawn_blocking(move || parse_export(&bytes))
        .await
        .map_err(|e| {
            BytesImportError::Merge(MergeError::Invalid(format!("parser task failed: {e}")))
        })?
        .map_err(BytesImportError::Parse)?;
    merge
        .send(Input::Xml {
            target,
            export: Box::new(export),
            origin,
        })
        .await
        .map_err(BytesImportError::Merge)
}
