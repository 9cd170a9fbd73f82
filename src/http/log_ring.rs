//! The last warnings of the log, for the operator console (`GET /api/v1/admin/log`).
//!
//! A small `tracing_subscriber` layer that keeps the newest [`CAPACITY`] events at WARN or
//! above in memory. `main` installs it next to the formatter; the console reads it behind the
//! master key. It holds at most `CAPACITY` entries of at most [`MAX_MESSAGE`] bytes each, so
//! a flood of warnings costs a bounded amount of memory (older ones are dropped and counted).

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock};

use serde::Serialize;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

/// Warnings kept.
pub const CAPACITY: usize = 50;
/// Bytes of one entry's text kept (message and fields); the rest is cut at a char boundary.
pub const MAX_MESSAGE: usize = 1024;

/// One warning as the console shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Warning {
    /// UTC, ISO 8601 with milliseconds.
    pub at: String,
    /// `WARN` or `ERROR`.
    pub level: &'static str,
    /// The module that logged it.
    pub target: String,
    /// The message followed by its fields (`key=value`).
    pub message: String,
}

#[derive(Debug, Default)]
struct Inner {
    entries: VecDeque<Warning>,
    /// Warnings seen since start, those dropped at the bound included.
    total: u64,
}

/// A bounded ring of warnings; clones share it.
#[derive(Debug, Clone, Default)]
pub struct WarnRing(Arc<Mutex<Inner>>);

impl WarnRing {
    /// The ring the daemon's log feeds (`main` installs [`WarnRing::layer`] of this one).
    pub fn global() -> &'static WarnRing {
        static RING: OnceLock<WarnRing> = OnceLock::new();
        RING.get_or_init(WarnRing::default)
    }

    /// A layer that records WARN and ERROR events into this ring.
    pub fn layer(&self) -> WarnLayer {
        WarnLayer(self.clone())
    }

    /// The kept warnings, oldest first, and the number seen since start.
    pub fn recent(&self) -> (Vec<Warning>, u64) {
        match self.0.lock() {
            Ok(g) => (g.entries.iter().cloned().collect(), g.total),
            Err(_) => (Vec::new(), 0),
        }
    }

    fn push(&self, w: Warning) {
        if let Ok(mut g) = self.0.lock() {
            if g.entries.len() == CAPACITY {
                g.entries.pop_front();
            }
            g.entries.push_back(w);
            g.total += 1;
        }
    }
}

/// The `tracing` side of a [`WarnRing`].
pub struct WarnLayer(WarnRing);

impl<S: Subscriber> Layer<S> for WarnLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        // Levels order by verbosity: ERROR < WARN < INFO.
        if *meta.level() > Level::WARN {
            return;
        }
        let mut text = Text::default();
        event.record(&mut text);
        self.0.push(Warning {
            at: crate::time::now_iso(),
            level: if *meta.level() == Level::ERROR {
                "ERROR"
            } else {
                "WARN"
            },
            target: meta.target().to_owned(),
            message: text.0,
        });
    }
}

/// The message first, then `key=value` for each other field, within [`MAX_MESSAGE`].
#[derive(Default)]
struct Text(String);

impl Text {
    fn add(&mut self, field: &Field, value: &dyn std::fmt::Debug, plain: Option<&str>) {
        if self.0.len() >= MAX_MESSAGE {
            return;
        }
        let mut piece = String::new();
        let _ = match (field.name(), plain) {
            ("message", Some(s)) => write!(piece, "{s}"),
            ("message", None) => write!(piece, "{value:?}"),
            (name, Some(s)) => write!(piece, " {name}={s}"),
            (name, None) => write!(piece, " {name}={value:?}"),
        };
        if field.name() == "message" {
            piece.push_str(&std::mem::take(&mut self.0));
            self.0 = piece;
        } else {
            self.0.push_str(&piece);
        }
        if self.0.len() > MAX_MESSAGE {
            let mut cut = MAX_MESSAGE;
            while !self.0.is_char_boundary(cut) {
                cut -= 1;
            }
            self.0.truncate(cut);
        }
    }
}

impl Visit for Text {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.add(field, &value, Some(value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.add(field, value, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn keeps_the_newest_warnings_at_its_bound() {
        let ring = WarnRing::default();
        let sub = tracing_subscriber::registry().with(ring.layer());
        tracing::subscriber::with_default(sub, || {
            tracing::info!("not kept");
            for i in 0..(CAPACITY + 7) {
                tracing::warn!(n = i, file = "a.xml", "warning {i}");
            }
            tracing::error!("boom");
        });
        let (kept, total) = ring.recent();
        assert_eq!(total, CAPACITY as u64 + 8);
        assert_eq!(kept.len(), CAPACITY);
        // The oldest dropped: CAPACITY+7 warnings and one error, 50 kept → first kept is #8.
        assert_eq!(kept[0].message, "warning 8 n=8 file=a.xml");
        assert_eq!(kept[0].level, "WARN");
        let last = kept.last().unwrap();
        assert_eq!((last.level, last.message.as_str()), ("ERROR", "boom"));
        assert!(last.target.contains("log_ring"), "{}", last.target);
    }

    #[test]
    fn cuts_long_text_at_a_char_boundary() {
        let ring = WarnRing::default();
        let sub = tracing_subscriber::registry().with(ring.layer());
        let long = "ž".repeat(MAX_MESSAGE);
        tracing::subscriber::with_default(sub, || tracing::warn!(detail = %long, "x"));
        let (kept, _) = ring.recent();
        assert!(kept[0].message.len() <= MAX_MESSAGE);
        assert!(kept[0].message.len() > MAX_MESSAGE - 4);
        assert!(kept[0].message.starts_with("x detail=ž"));
    }
}
