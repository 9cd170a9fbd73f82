//! The daemon's settings as one plain value: what `app::App::start` needs to run.
//!
//! `Settings::default()` is the daemon with nothing configured (the README's settings table).
//! It holds no default of its own where a component has one: the HTTP, hub, merge and TCP
//! parts are those components' own settings types, so each default value lives in exactly
//! one place. `config` builds a `Settings` from the command line, the environment and the
//! `--config` file; tests build one directly and change the fields they need.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::http::HttpSettings;
use crate::hub::HubConfig;
use crate::ingest::tcp::TcpSettings;
use crate::merge::MergeSettings;
use crate::replicate::ReplicationSettings;
use crate::scoreboard::ScoreboardSettings;
use crate::store::Synchronous;

/// The API's address when none is configured: loopback only, so that a daemon started
/// without thought is not reachable from the venue network.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)), 8080);

/// Everything `serve` runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The SQLite database file (its folder is created if missing).
    pub db: PathBuf,
    pub synchronous: Synchronous,
    /// Database size cap in bytes (`--max-db-size` is in MB); `None`: no cap.
    pub max_db_bytes: Option<u64>,
    /// The HTTP/WebSocket API; port 0 picks a free port (`RunningApp::local_addr`).
    pub listen: SocketAddr,
    /// Serve this folder instead of the built-in page (checked before anything starts).
    pub static_dir: Option<PathBuf>,
    /// The event the XML folder and the TCP sources feed; `None`: the export's EventId.
    pub event: Option<String>,
    /// The folder of Canoe123 exports to watch.
    pub xml_dir: Option<PathBuf>,
    /// Rescan the folder at this interval (network shares).
    pub xml_poll: Option<Duration>,
    /// Connect to Canoe123 at HOST[:PORT].
    pub c123: Option<String>,
    /// Accept Canoe123 TCP sources on this address.
    pub tcp_listen: Option<SocketAddr>,
    /// The TCP sources' settings. Its `event_id` is not read: the sources feed `event`.
    pub tcp: TcpSettings,
    pub merge: MergeSettings,
    pub http: HttpSettings,
    pub hub: HubConfig,
    /// c123-scoreboard's service (its `listen` is the optional second listener).
    pub scoreboard: ScoreboardSettings,
    /// Read replicas over NATS (`--nats`; `replica`).
    pub replication: ReplicationSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            db: default_db_path(),
            synchronous: Synchronous::default(),
            max_db_bytes: None,
            listen: DEFAULT_LISTEN,
            static_dir: None,
            event: None,
            xml_dir: None,
            xml_poll: None,
            c123: None,
            tcp_listen: None,
            tcp: TcpSettings::default(),
            merge: MergeSettings::default(),
            http: HttpSettings::default(),
            hub: HubConfig::default(),
            scoreboard: ScoreboardSettings::default(),
            replication: ReplicationSettings::default(),
        }
    }
}

/// `$STATE_DIRECTORY/c123-live.db` under systemd (`StateDirectory=`), else `./c123-live.db`.
pub fn default_db_path() -> PathBuf {
    match std::env::var_os("STATE_DIRECTORY") {
        // systemd may pass several colon-separated directories; the first is ours.
        Some(dirs) if !dirs.is_empty() => {
            let first = dirs
                .to_string_lossy()
                .split(':')
                .next()
                .unwrap_or(".")
                .to_owned();
            PathBuf::from(first).join("c123-live.db")
        }
        _ => PathBuf::from("c123-live.db"),
    }
}
