//! The one log subscriber of a test binary (a process has one global subscriber): the
//! daemon's warning ring, fed as `main` feeds it, and a capture that is off except while a
//! test asks for it ([`Logs::capture`]), so that one test can read every log line at every
//! level without the others paying for TRACE formatting all the time.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{reload, Layer as _};

/// A `MakeWriter` into a shared buffer.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

pub struct Logs {
    captured: Captured,
    set_level: Box<dyn Fn(LevelFilter) + Send + Sync>,
    /// One capture at a time.
    capturing: tokio::sync::Mutex<()>,
}

/// Installs the subscriber on first use; every later call returns the same one.
pub fn logs() -> &'static Logs {
    static LOGS: OnceLock<Logs> = OnceLock::new();
    LOGS.get_or_init(|| {
        let captured = Captured::default();
        let (level, handle) = reload::Layer::new(LevelFilter::OFF);
        let capture = tracing_subscriber::fmt::layer()
            .with_writer(captured.clone())
            .with_ansi(false)
            .with_filter(level);
        tracing_subscriber::registry()
            .with(c123_live::http::log_ring::WarnRing::global().layer())
            .with(capture)
            .try_init()
            .expect("only support::logs sets this binary's subscriber");
        Logs {
            captured,
            set_level: Box::new(move |l| {
                let _ = handle.modify(|f| *f = l);
            }),
            capturing: tokio::sync::Mutex::new(()),
        }
    })
}

/// Capturing at TRACE until dropped; then [`Capture::text`] is what was logged meanwhile
/// (by every test running then, which only widens what a check sees).
pub struct Capture {
    _one: tokio::sync::MutexGuard<'static, ()>,
}

impl Logs {
    pub async fn capture(&'static self) -> Capture {
        let one = self.capturing.lock().await;
        self.captured
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        (self.set_level)(LevelFilter::TRACE);
        Capture { _one: one }
    }
}

impl Capture {
    pub fn text(&self) -> String {
        let logs = logs();
        let bytes = logs.captured.0.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let logs = logs();
        (logs.set_level)(LevelFilter::OFF);
        logs.captured
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}
