//! SQLite persistence. Only the merge loop holds a [`Store`] (the one write connection).
//!
//! The store never decides anything: the merge loop computes the new state of an event in
//! memory, and [`Store::commit`] writes the difference between the old and the new state in
//! one transaction. A row whose values did not change is not written.

mod rows;
mod write;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use crate::model::Event;
use crate::xml::Export;

pub use rows::load_event_content;
pub use write::WriteStats;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database schema version {found} is newer than this program knows ({known}); refusing to touch it")]
    TooNew { found: i64, known: i64 },
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    #[error("the database file {0} is read-only; c123-live needs to write it (check its permissions and the folder's)")]
    ReadOnly(String),
}

impl StoreError {
    /// SQLite reported a full disk or the `--max-db-size` limit (`SQLITE_FULL`).
    pub fn is_full(&self) -> bool {
        matches!(self, StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::DiskFull)
    }
}

/// How hard SQLite pushes each commit to disk. Named `full`, `normal`, `off` in settings
/// ([`FromStr`](std::str::FromStr), case-insensitive); the command line parses it in
/// `config`, so the store knows nothing of clap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// fsync at every commit: an acknowledged input survives power loss.
    #[default]
    Full,
    /// fsync at checkpoints only (WAL): survives a crash of the process, not of the machine.
    Normal,
    /// Never fsync (tests and benchmarks only).
    Off,
}

/// A `synchronous` setting that is not `full`, `normal` or `off`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("synchronous '{0}': expected full, normal or off")]
pub struct UnknownSynchronous(pub String);

impl std::str::FromStr for Synchronous {
    type Err = UnknownSynchronous;

    fn from_str(s: &str) -> Result<Synchronous, UnknownSynchronous> {
        Synchronous::ALL
            .into_iter()
            .find(|v| v.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownSynchronous(s.to_owned()))
    }
}

impl Synchronous {
    /// Every value, in the order the settings list them.
    pub const ALL: [Synchronous; 3] = [Synchronous::Full, Synchronous::Normal, Synchronous::Off];

    /// The setting's name (`full`, `normal`, `off`).
    pub fn name(self) -> &'static str {
        match self {
            Synchronous::Full => "full",
            Synchronous::Normal => "normal",
            Synchronous::Off => "off",
        }
    }

    /// What the value means (the command line's help lists it).
    pub fn description(self) -> &'static str {
        match self {
            Synchronous::Full => "fsync at every commit: an acknowledged input survives power loss",
            Synchronous::Normal => {
                "fsync at checkpoints only (WAL): survives a crash of the process, not of the machine"
            }
            Synchronous::Off => "Never fsync (tests and benchmarks only)",
        }
    }

    fn pragma(self) -> &'static str {
        match self {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
            Synchronous::Off => "OFF",
        }
    }
}

/// Schema migrations, applied in order; `PRAGMA user_version` records the last one applied.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/0001_init.sql"),
    include_str!("../../migrations/0002_key_dates.sql"),
    include_str!("../../migrations/0003_gates_json.sql"),
    include_str!("../../migrations/0004_retired_events_last_exports_results_index.sql"),
];

pub struct Store {
    conn: Connection,
    epoch: String,
}

/// Everything the database holds, as loaded at start-up.
pub struct Loaded {
    pub epoch: String,
    pub events: BTreeMap<String, Arc<Event>>,
    /// Rows that could not be read and were left out (see [`SkippedRows`]).
    pub skipped: SkippedRows,
    /// The last `seq` of each deleted event id (see [`Store::commit`]).
    pub retired_seqs: BTreeMap<String, u64>,
    /// The last export merged into each event, by event id.
    pub last_exports: BTreeMap<String, Arc<Export>>,
}

/// A stored row that could not be read at start-up. It stays in the database untouched; the
/// event loads without it (a later import or update of the same key rewrites it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SkippedRow {
    pub event_id: String,
    /// The table (`results`, `participants`, `classes`, `races`, `courses`, `events`).
    pub table: &'static str,
    /// The row's key, e.g. `K1M_ST_BR2_6 / 12054.K1M_ST` for a result.
    pub key: String,
    pub reason: String,
}

/// What start-up skipped, for `GET /api/v1/admin/status`: every row is counted and logged,
/// the first [`SkippedRows::MAX_LISTED`] are listed (a badly damaged file must not turn the
/// status answer into megabytes).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SkippedRows {
    pub count: u64,
    pub rows: Vec<SkippedRow>,
}

impl SkippedRows {
    pub const MAX_LISTED: usize = 100;

    pub fn push(&mut self, row: SkippedRow) {
        tracing::error!(
            event = %row.event_id,
            table = row.table,
            key = %row.key,
            reason = %row.reason,
            "skipped a stored row that cannot be read; the event loads without it"
        );
        self.count += 1;
        if self.rows.len() < Self::MAX_LISTED {
            self.rows.push(row);
        }
    }
}

/// An export to remember as the last one merged into an event, written with the commit.
pub struct LastExport<'a> {
    /// The event's row id (`EventHeader::id`).
    pub event_row: i64,
    pub export: &'a Export,
}

impl Store {
    /// Opens (creating if needed) and migrates the database.
    ///
    /// A database file without write permission is refused with [`StoreError::ReadOnly`]
    /// (even for root, who could write it anyway): the daemon never runs half-working on a
    /// database it cannot commit to.
    pub fn open(path: &Path, sync: Synchronous) -> Result<Store, StoreError> {
        let shown = || path.display().to_string();
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().readonly() {
                return Err(StoreError::ReadOnly(shown()));
            }
        }
        let conn = Connection::open(path)?;
        if conn.is_readonly(rusqlite::MAIN_DB)? {
            return Err(StoreError::ReadOnly(shown()));
        }
        Store::init(conn, sync).map_err(|e| match e {
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, _))
                if f.code == rusqlite::ErrorCode::ReadOnly
                    || f.code == rusqlite::ErrorCode::CannotOpen =>
            {
                StoreError::ReadOnly(shown())
            }
            e => e,
        })
    }

    /// Caps the database size (`PRAGMA max_page_count`): a commit that would grow the file
    /// past `bytes` fails with `SQLITE_FULL` and changes nothing, exactly as a full disk
    /// does. `None` lifts the cap. A cap below the current size holds the file at its current
    /// size. Returns the effective cap in bytes.
    pub fn set_max_size(&mut self, bytes: Option<u64>) -> Result<u64, StoreError> {
        let page: i64 = self.conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        let pages: i64 = match bytes {
            // SQLite's default (and maximum) page count.
            None => 0xFFFF_FFFE,
            Some(b) => (b / page.max(1) as u64).clamp(1, 0xFFFF_FFFE) as i64,
        };
        let set: i64 =
            self.conn
                .query_row(&format!("PRAGMA max_page_count = {pages}"), [], |r| {
                    r.get(0)
                })?;
        Ok(set as u64 * page as u64)
    }

    /// A private in-memory database (unit tests).
    pub fn open_in_memory() -> Result<Store, StoreError> {
        Store::init(Connection::open_in_memory()?, Synchronous::Off)
    }

    fn init(mut conn: Connection, sync: Synchronous) -> Result<Store, StoreError> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", sync.pragma())?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        migrate(&mut conn)?;
        let epoch = {
            let tx = conn.transaction()?;
            let existing: Option<String> = tx
                .query_row("SELECT value FROM meta WHERE key = 'epoch'", [], |r| {
                    r.get(0)
                })
                .optional()?;
            let epoch = match existing {
                Some(e) => e,
                None => {
                    let e = new_epoch();
                    tx.execute("INSERT INTO meta(key, value) VALUES ('epoch', ?1)", [&e])?;
                    e
                }
            };
            tx.commit()?;
            epoch
        };
        Ok(Store { conn, epoch })
    }

    /// Identifies this database: generated once when the database is created.
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// Gives this database another epoch: a replica's (empty, in-memory) database takes the
    /// origin's, since its `seq`s are the origin's.
    pub fn set_epoch(&mut self, epoch: &str) -> Result<(), StoreError> {
        self.conn
            .execute("UPDATE meta SET value = ?1 WHERE key = 'epoch'", [epoch])?;
        self.epoch = epoch.to_owned();
        Ok(())
    }

    /// Loads every event. A row that cannot be read is skipped and reported in
    /// [`Loaded::skipped`], never fatal; only a failure of SQLite itself is an error.
    pub fn load(&self) -> Result<Loaded, StoreError> {
        let mut skipped = SkippedRows::default();
        let headers = rows::load_headers(&self.conn, &mut skipped)?;
        let mut events = BTreeMap::new();
        let mut by_row = BTreeMap::new();
        for header in headers {
            let event = load_event_content(&self.conn, header, &mut skipped)?;
            by_row.insert(event.header.id, event.header.event_id.clone());
            events.insert(event.header.event_id.clone(), Arc::new(event));
        }
        let mut retired_seqs = BTreeMap::new();
        let mut stmt = self
            .conn
            .prepare("SELECT event_id, last_seq FROM retired_events")?;
        for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
            let (event_id, seq) = row?;
            retired_seqs.insert(event_id, seq.max(0) as u64);
        }
        let mut last_exports = BTreeMap::new();
        let mut stmt = self
            .conn
            .prepare("SELECT event_id, export FROM last_exports")?;
        for row in stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))? {
            let (event_row, json) = row?;
            let Some(event_id) = by_row.get(&event_row) else {
                continue;
            };
            // Only a strategy change reads it; an unreadable one (written by another version)
            // must not stop start-up: the next export replaces it.
            match serde_json::from_str::<Export>(&json) {
                Ok(export) => {
                    last_exports.insert(event_id.clone(), Arc::new(export));
                }
                Err(e) => tracing::warn!(
                    event = %event_id, error = %e,
                    "stored last export unreadable; a strategy change re-merges from the next export"
                ),
            }
        }
        Ok(Loaded {
            epoch: self.epoch.clone(),
            events,
            skipped,
            retired_seqs,
            last_exports,
        })
    }

    /// Writes, in one transaction, the difference between the old and new state of each
    /// event given (`None` = the event does not exist on that side), and `last_export` when
    /// given.
    ///
    /// A deleted event leaves its last `seq` in `retired_events`; creating the id again
    /// removes it (the merge loop numbers the new event after it).
    pub fn commit(
        &mut self,
        changes: &[(Option<&Event>, Option<&Event>)],
        last_export: Option<LastExport<'_>>,
        now: &str,
    ) -> Result<WriteStats, StoreError> {
        let tx = self.conn.transaction()?;
        let mut stats = WriteStats::default();
        for (old, new) in changes {
            write_event(&tx, *old, *new, now, &mut stats)?;
        }
        if let Some(last) = last_export {
            let json = serde_json::to_string(last.export)
                .map_err(|e| StoreError::Corrupt(format!("last export: {e}")))?;
            tx.execute(
                "INSERT OR REPLACE INTO last_exports (event_id, export) VALUES (?1, ?2)",
                params![last.event_row, json],
            )?;
        }
        tx.commit()?;
        Ok(stats)
    }

    /// `PRAGMA wal_checkpoint(TRUNCATE)`: folds the WAL back into the database (shutdown).
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }

    /// `PRAGMA quick_check` answers `ok` (readiness).
    pub fn is_healthy(&self) -> bool {
        self.conn
            .query_row("PRAGMA quick_check", [], |r| r.get::<_, String>(0))
            .map(|s| s == "ok")
            .unwrap_or(false)
    }

    /// Direct access for tests and the `import` report.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(StoreError::TooNew {
            found: version,
            known,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "applied database migration");
    }
    Ok(())
}

fn new_epoch() -> String {
    let mut bytes = [0u8; 8];
    // An epoch only needs to differ between databases; fall back to the clock if the OS RNG
    // is unavailable.
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        bytes = (nanos as u64).to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn write_event(
    tx: &Transaction<'_>,
    old: Option<&Event>,
    new: Option<&Event>,
    now: &str,
    stats: &mut WriteStats,
) -> Result<(), StoreError> {
    match (old, new) {
        (None, None) => Ok(()),
        (Some(old), None) => {
            // Cascades to every table of the event.
            tx.execute("DELETE FROM events WHERE id = ?1", [old.header.id])?;
            // The deletion itself is numbered `seq + 1` (spectators see it).
            tx.execute(
                "INSERT OR REPLACE INTO retired_events (event_id, last_seq) VALUES (?1, ?2)",
                params![old.header.event_id, (old.header.seq + 1) as i64],
            )?;
            stats.rows += 1;
            Ok(())
        }
        (old, Some(new)) => {
            if old.is_none() {
                tx.execute(
                    "DELETE FROM retired_events WHERE event_id = ?1",
                    [&new.header.event_id],
                )?;
            }
            if old.map(|o| &o.header) != Some(&new.header) {
                write::upsert_header(tx, &new.header)?;
                stats.rows += 1;
            }
            write::write_content(tx, old, new, now, stats)
        }
    }
}

/// Reads the stored `seq` of an event (crash-safety checks).
pub fn stored_seq(conn: &Connection, event_id: &str) -> Result<Option<u64>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT seq FROM events WHERE event_id = ?1",
            params![event_id],
            |r| r.get::<_, i64>(0),
        )
        .optional()?
        .map(|s| s as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synchronous_names_parse_case_insensitively_and_round_trip() {
        for v in Synchronous::ALL {
            assert_eq!(v.name().parse::<Synchronous>(), Ok(v));
            assert_eq!(v.name().to_uppercase().parse::<Synchronous>(), Ok(v));
        }
        assert_eq!(
            "fsync".parse::<Synchronous>().map_err(|e| e.to_string()),
            Err("synchronous 'fsync': expected full, normal or off".to_owned())
        );
    }
}
