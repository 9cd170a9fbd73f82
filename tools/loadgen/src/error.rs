//! The tool's error type: every module returns it; only `main` turns it into `anyhow`.

use c123_live::c123::recording::RecordingError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A socket or file operation, with what was being done.
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    /// The daemon answered a request with an unexpected status.
    #[error("{what}: HTTP {status} {body}")]
    Status {
        what: String,
        status: u16,
        body: String,
    },
    /// The daemon answered with a body that is not the expected JSON.
    #[error("{what}: {source}")]
    Json {
        what: String,
        source: serde_json::Error,
    },
    /// The child daemon did not come up.
    #[error("daemon: {0}")]
    Daemon(String),
    #[error("recording: {0}")]
    Recording(#[from] RecordingError),
    /// A setting the run cannot work with (e.g. too few file descriptors).
    #[error("{0}")]
    Setup(String),
    #[error("a task of the run failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

pub type Result<T> = std::result::Result<T, Error>;

/// `.io("what")` on an `io::Result`: keeps the operation in the message.
pub trait IoContext<T> {
    fn io(self, what: impl Into<String>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn io(self, what: impl Into<String>) -> Result<T> {
        self.map_err(|source| Error::Io {
            what: what.into(),
            source,
        })
    }
}
