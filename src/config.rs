//! Command line, environment and config file.
//!
//! Every setting is a `--flag`, has an environment variable (`C123_LIVE_…`), and may come
//! from a TOML file given with `--config`; the flag wins over the environment, which wins
//! over the file, which wins over the default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Deserialize;

use crate::model::MergeStrategy;
use crate::settings::Settings;
use crate::store::Synchronous;

#[derive(Debug, Parser)]
#[command(
    name = "c123-live",
    version,
    about = "Live canoe-slalom results from Canoe123"
)]
pub struct Cli {
    /// TOML file with settings (keys as the long flags, e.g. `listen = "0.0.0.0:8080"`).
    #[arg(long, global = true, env = "C123_LIVE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log format.
    #[arg(long, global = true, value_enum, env = "C123_LIVE_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon.
    Serve(Box<ServeArgs>),
    /// Import one XML export into the database and print what was imported.
    Import {
        /// The Canoe123 XML export.
        file: PathBuf,
        #[command(flatten)]
        common: StoreArgs,
        /// The event the export belongs to (default: the export's EventId).
        #[arg(long, env = "C123_LIVE_EVENT")]
        event: Option<String>,
    },
    /// Replay the bundled real event on a temporary database and serve it.
    Demo(DemoArgs),
    /// Play a `.tcp.jsonl` recording as Canoe123 would send it.
    Replay(ReplayArgs),
    /// Serve a read-only replica of an origin's state from NATS (`--nats URL`): the same
    /// flags as `serve`, without inputs.
    Replica(Box<ServeArgs>),
}

#[derive(Debug, Args, Clone)]
pub struct ReplayArgs {
    /// The recording (`.tcp.jsonl`).
    pub recording: PathBuf,
    /// Playback speed: 1 = real time, 10 = ten times faster, 0 = as fast as possible.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Push to a daemon's `--tcp-listen` address.
    #[arg(long, conflicts_with = "listen", required_unless_present = "listen")]
    pub to: Option<SocketAddr>,
    /// Act as Canoe123: listen here and stream to every client that connects.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Start again at the end.
    #[arg(long = "loop")]
    pub looped: bool,
}

#[derive(Debug, Args, Clone, Default)]
pub struct StoreArgs {
    /// SQLite database file [default: $STATE_DIRECTORY/c123-live.db under systemd, else ./c123-live.db].
    #[arg(long, env = "C123_LIVE_DB")]
    pub db: Option<PathBuf>,
    /// How hard each commit is pushed to disk.
    #[arg(long, env = "C123_LIVE_SYNCHRONOUS", value_parser = synchronous_parser())]
    pub synchronous: Option<Synchronous>,
}

#[derive(Debug, Args, Clone, Default)]
pub struct ServeArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Address of the HTTP/WebSocket API [default: 127.0.0.1:8080].
    #[arg(long, env = "C123_LIVE_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// The event that folder and TCP input belong to (default: found or created by the
    /// export's EventId).
    #[arg(long, env = "C123_LIVE_EVENT")]
    pub event: Option<String>,
    /// Folder to watch for Canoe123 XML exports.
    #[arg(long, env = "C123_LIVE_XML_DIR")]
    pub xml_dir: Option<PathBuf>,
    /// Poll the XML folder every N seconds instead of relying on file-system events
    /// (network shares).
    #[arg(long, env = "C123_LIVE_XML_POLL")]
    pub xml_poll: Option<f64>,
    /// How XML and TCP result conflicts are resolved [default: tcp-wins].
    #[arg(long, value_parser = parse_strategy, env = "C123_LIVE_MERGE_STRATEGY")]
    pub merge_strategy: Option<MergeStrategy>,
    /// Admin master key (repeatable). Environment: C123_LIVE_MASTER_KEYS, comma-separated.
    #[arg(
        long = "master-key",
        env = "C123_LIVE_MASTER_KEYS",
        value_delimiter = ','
    )]
    pub master_keys: Vec<String>,
    /// Development mode: the admin API is open when no master key is set.
    #[arg(long, env = "C123_LIVE_DEV")]
    pub dev: bool,
    /// Connect to Canoe123 at HOST[:PORT] (port 27333 by default).
    #[arg(long, env = "C123_LIVE_C123")]
    pub c123: Option<String>,
    /// Accept Canoe123 TCP sources (relays, test rigs) on this address.
    #[arg(long, env = "C123_LIVE_TCP_LISTEN")]
    pub tcp_listen: Option<SocketAddr>,
    /// Also serve the scoreboard routes (and the rest of the API) on this address;
    /// c123-scoreboard's discovery probes port 27123.
    #[arg(long, env = "C123_LIVE_SCOREBOARD_LISTEN")]
    pub scoreboard_listen: Option<SocketAddr>,
    /// With --tcp-listen: accept only these source addresses (repeatable).
    #[arg(long = "tcp-allow", env = "C123_LIVE_TCP_ALLOW", value_delimiter = ',')]
    pub tcp_allow: Vec<std::net::IpAddr>,
    /// With --tcp-listen: open sessions per source address at most [default: 4].
    #[arg(long, env = "C123_LIVE_TCP_MAX_SESSIONS_PER_IP")]
    pub tcp_max_sessions_per_ip: Option<usize>,
    /// With --tcp-listen: open sessions in all at most [default: 16].
    #[arg(long, env = "C123_LIVE_TCP_MAX_SESSIONS")]
    pub tcp_max_sessions: Option<usize>,
    /// Derive the event's lifecycle state from the TCP schedule (forward only).
    #[arg(long, env = "C123_LIVE_AUTO_STATUS")]
    pub auto_status: bool,
    /// Cap the database at this many MB: past it, inputs are refused (503) and nothing is
    /// lost, as on a full disk, while reads go on [default: no cap].
    #[arg(long, env = "C123_LIVE_MAX_DB_SIZE")]
    pub max_db_size: Option<u64>,
    /// Open HTTP connections per client address at most [default: 1000]; 0 = no cap. Keep it
    /// high when spectators share one address (venue Wi-Fi behind NAT).
    #[arg(long, env = "C123_LIVE_MAX_CONNECTIONS_PER_IP")]
    pub max_connections_per_ip: Option<usize>,
    /// WebSocket clients per client address at most [default: 1000]; 0 = no cap.
    #[arg(long, env = "C123_LIVE_MAX_WS_PER_IP")]
    pub max_ws_per_ip: Option<usize>,
    /// A reverse proxy whose X-Forwarded-For is believed (repeatable). From any other peer
    /// the header is ignored.
    #[arg(
        long = "trusted-proxy",
        env = "C123_LIVE_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// WebSocket clients per event at most [default: 10000].
    #[arg(long, env = "C123_LIVE_WS_MAX_PER_EVENT")]
    pub ws_max_per_event: Option<usize>,
    /// WebSocket clients in all at most [default: 20000].
    #[arg(long, env = "C123_LIVE_WS_MAX_TOTAL")]
    pub ws_max_total: Option<usize>,
    /// Seconds between WebSocket pings [default: 15].
    #[arg(long, env = "C123_LIVE_WS_PING_INTERVAL")]
    pub ws_ping_interval: Option<u64>,
    /// Seconds a client has to answer a ping [default: 10].
    #[arg(long, env = "C123_LIVE_WS_PONG_TIMEOUT")]
    pub ws_pong_timeout: Option<u64>,
    /// Seconds between the `official` status message and closing the event's sockets [default: 5].
    #[arg(long, env = "C123_LIVE_WS_CLOSE_GRACE")]
    pub ws_close_grace: Option<u64>,
    /// Serve this folder's front end (e.g. a live-mini client build) instead of the built-in
    /// spectator page; `/api/v1/...` stays the API.
    #[arg(long, env = "C123_LIVE_STATIC_DIR")]
    pub static_dir: Option<PathBuf>,
    #[command(flatten)]
    pub nats: NatsArgs,
}

/// NATS, for read replicas (`protocol/replication.md`).
#[derive(Debug, Args, Clone, Default)]
pub struct NatsArgs {
    /// NATS server(s) with JetStream: `serve` publishes every commit there for read
    /// replicas; `replica` follows it [default: off].
    #[arg(long = "nats", env = "C123_LIVE_NATS")]
    pub url: Option<String>,
    /// NATS credentials file (JWT and NKey seed).
    #[arg(long = "nats-creds", env = "C123_LIVE_NATS_CREDS")]
    pub creds: Option<PathBuf>,
    /// CA certificates (PEM) for the NATS server's TLS certificate.
    #[arg(long = "nats-tls-ca", env = "C123_LIVE_NATS_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for NATS servers that verify clients (with --nats-tls-key).
    #[arg(long = "nats-tls-cert", env = "C123_LIVE_NATS_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// The client certificate's key (PEM).
    #[arg(long = "nats-tls-key", env = "C123_LIVE_NATS_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
}

#[derive(Debug, Args, Clone)]
pub struct DemoArgs {
    /// Address of the HTTP/WebSocket API.
    #[arg(long, default_value = "127.0.0.1:8080", env = "C123_LIVE_LISTEN")]
    pub listen: SocketAddr,
    /// Playback speed of the bundled recording (1 = real time).
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Database file (default: a new temporary one, removed at exit).
    #[arg(long)]
    pub db: Option<PathBuf>,
}

fn parse_strategy(s: &str) -> Result<MergeStrategy, String> {
    s.parse()
}

/// The `--config` file: the same names as the flags, all optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileConfig {
    pub db: Option<PathBuf>,
    pub synchronous: Option<String>,
    pub listen: Option<SocketAddr>,
    pub event: Option<String>,
    pub xml_dir: Option<PathBuf>,
    pub xml_poll: Option<f64>,
    pub merge_strategy: Option<MergeStrategy>,
    pub master_keys: Option<Vec<String>>,
    pub dev: Option<bool>,
    pub log_format: Option<LogFormat>,
    pub c123: Option<String>,
    pub tcp_listen: Option<SocketAddr>,
    pub scoreboard_listen: Option<SocketAddr>,
    pub tcp_allow: Option<Vec<std::net::IpAddr>>,
    pub tcp_max_sessions_per_ip: Option<usize>,
    pub tcp_max_sessions: Option<usize>,
    pub auto_status: Option<bool>,
    pub max_db_size: Option<u64>,
    pub max_connections_per_ip: Option<usize>,
    pub max_ws_per_ip: Option<usize>,
    pub trusted_proxies: Option<Vec<std::net::IpAddr>>,
    pub ws_max_per_event: Option<usize>,
    pub ws_max_total: Option<usize>,
    pub ws_ping_interval: Option<u64>,
    pub ws_pong_timeout: Option<u64>,
    pub ws_close_grace: Option<u64>,
    pub static_dir: Option<PathBuf>,
    pub nats: Option<String>,
    pub nats_creds: Option<PathBuf>,
    pub nats_tls_ca: Option<PathBuf>,
    pub nats_tls_cert: Option<PathBuf>,
    pub nats_tls_key: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    /// A value out of its range, named by its flag (without `--`).
    #[error("--{setting}: {reason}")]
    Invalid {
        setting: &'static str,
        reason: String,
    },
}

impl FileConfig {
    pub fn load(path: Option<&Path>) -> Result<FileConfig, ConfigError> {
        let Some(path) = path else {
            return Ok(FileConfig::default());
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: parse_message(&text, &e),
        })
    }
}

/// Where and what, without the value: toml quotes the offending value and its line, and a
/// wrong `master-keys = "…"` would put the key into the log.
fn parse_message(text: &str, e: &toml::de::Error) -> String {
    let mut what = e.message().to_owned();
    // `invalid type: string "s3cret", expected a sequence`: drop every quoted part.
    while let Some(open) = what.find('"') {
        match what[open + 1..].find('"') {
            Some(len) => what.replace_range(open..open + len + 2, "(value)"),
            None => what.truncate(open),
        }
    }
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}: {what}")
        }
        None => what,
    }
}

pub use crate::settings::default_db_path;

/// `--synchronous`: clap lists and checks the names (case-sensitive, as for every other
/// flag), the store's `FromStr` gives the value; `store` itself knows nothing of clap.
fn synchronous_parser() -> impl clap::builder::TypedValueParser<Value = Synchronous> {
    use clap::builder::TypedValueParser as _;
    let values =
        Synchronous::ALL.map(|v| clap::builder::PossibleValue::new(v.name()).help(v.description()));
    clap::builder::PossibleValuesParser::new(values).try_map(|s| s.parse::<Synchronous>())
}

pub fn resolve_store(
    args: &StoreArgs,
    file: &FileConfig,
) -> Result<(PathBuf, Synchronous), ConfigError> {
    let db = args
        .db
        .clone()
        .or_else(|| file.db.clone())
        .unwrap_or_else(default_db_path);
    let synchronous = match (args.synchronous, &file.synchronous) {
        (Some(s), _) => s,
        (None, Some(s)) => s
            .parse::<Synchronous>()
            .map_err(|e| invalid("synchronous", e.to_string()))?,
        (None, None) => Synchronous::default(),
    };
    Ok((db, synchronous))
}

fn invalid(setting: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting,
        reason: reason.into(),
    }
}

/// A count that must be at least 1.
fn at_least_one(value: Option<usize>, setting: &'static str) -> Result<Option<usize>, ConfigError> {
    match value {
        Some(0) => Err(invalid(setting, "expected at least 1, got 0")),
        other => Ok(other),
    }
}

/// Whole seconds that must be at least 1.
fn whole_seconds(
    value: Option<u64>,
    setting: &'static str,
) -> Result<Option<Duration>, ConfigError> {
    match value {
        Some(0) => Err(invalid(setting, "must be at least 1 second")),
        other => Ok(other.map(Duration::from_secs)),
    }
}

/// A list setting: the flag's (or environment's) values if any, else the file's.
fn list_of<T: Clone>(flag: &[T], file: &Option<Vec<T>>) -> Vec<T> {
    if flag.is_empty() {
        file.clone().unwrap_or_default()
    } else {
        flag.to_vec()
    }
}

/// The settings of `serve`: [`Settings::default()`], overridden by the file, overridden by
/// the environment and the flags (clap merges those two, the flag winning). Each part below
/// resolves one component's settings.
pub fn resolve(args: &ServeArgs, file: &FileConfig) -> Result<Settings, ConfigError> {
    let mut s = Settings::default();
    (s.db, s.synchronous) = resolve_store(&args.store, file)?;
    s.max_db_bytes = match args.max_db_size.or(file.max_db_size) {
        None => None,
        Some(0) => {
            return Err(invalid(
                "max-db-size",
                "expected megabytes, at least 1, got 0",
            ))
        }
        Some(mb) => Some(mb.saturating_mul(1024 * 1024)),
    };
    s.event = args.event.clone().or_else(|| file.event.clone());
    if let Some(id) = s
        .event
        .as_deref()
        .filter(|id| !crate::model::valid_event_id(id))
    {
        let quoted: String = id.chars().take(64).collect();
        return Err(invalid(
            "event",
            format!("{quoted:?}: an event id is 1 to 100 of A-Z a-z 0-9 . _ - (not . or ..)"),
        ));
    }
    if let Some(strategy) = args.merge_strategy.or(file.merge_strategy) {
        s.merge.default_strategy = strategy;
    }
    resolve_inputs(args, file, &mut s)?;
    resolve_http(args, file, &mut s);
    resolve_hub(args, file, &mut s)?;
    replica::resolve_nats(&args.nats, file, &mut s)?;
    Ok(s)
}

/// The XML folder and the Canoe123 source.
fn resolve_inputs(
    args: &ServeArgs,
    file: &FileConfig,
    s: &mut Settings,
) -> Result<(), ConfigError> {
    s.xml_dir = args.xml_dir.clone().or_else(|| file.xml_dir.clone());
    s.xml_poll = match args.xml_poll.or(file.xml_poll) {
        None => None,
        Some(secs) if secs.is_finite() && secs > 0.0 && secs <= 3600.0 => {
            Some(Duration::from_secs_f64(secs))
        }
        Some(secs) => {
            return Err(invalid(
                "xml-poll",
                format!("expected seconds between 0 and 3600, got {secs}"),
            ))
        }
    };
    s.c123 = args.c123.clone().or_else(|| file.c123.clone());
    s.tcp_listen = args.tcp_listen.or(file.tcp_listen);
    s.scoreboard.listen = args.scoreboard_listen.or(file.scoreboard_listen);
    s.tcp.allowed_peers = list_of(&args.tcp_allow, &file.tcp_allow);
    s.tcp.auto_status = args.auto_status || file.auto_status.unwrap_or(s.tcp.auto_status);
    // With --auto-status one Schedule frame can make the event official; on an address
    // others can reach, only named sources may send it.
    if let Some(addr) = s
        .tcp_listen
        .filter(|a| s.tcp.auto_status && !a.ip().is_loopback())
    {
        if s.tcp.allowed_peers.is_empty() {
            return Err(invalid(
                "auto-status",
                format!(
                    "with --tcp-listen {addr} (not loopback) it needs --tcp-allow IP: \
                     otherwise any peer could move the event's lifecycle, up to official"
                ),
            ));
        }
    }
    let per_ip = args
        .tcp_max_sessions_per_ip
        .or(file.tcp_max_sessions_per_ip);
    if let Some(n) = at_least_one(per_ip, "tcp-max-sessions-per-ip")? {
        s.tcp.max_sessions_per_ip = n;
    }
    let all = args.tcp_max_sessions.or(file.tcp_max_sessions);
    if let Some(n) = at_least_one(all, "tcp-max-sessions")? {
        s.tcp.max_sessions = n;
    }
    Ok(())
}

/// The HTTP server: address, keys, per-address caps, proxies, static files.
fn resolve_http(args: &ServeArgs, file: &FileConfig, s: &mut Settings) {
    if let Some(listen) = args.listen.or(file.listen) {
        s.listen = listen;
    }
    s.http.master_keys = list_of(&args.master_keys, &file.master_keys)
        .into_iter()
        .map(|k| k.trim().to_owned())
        .filter(|k| !k.is_empty())
        .collect();
    s.http.dev = args.dev || file.dev.unwrap_or(s.http.dev);
    if let Some(n) = args.max_connections_per_ip.or(file.max_connections_per_ip) {
        s.http.max_connections_per_ip = n;
    }
    if let Some(n) = args.max_ws_per_ip.or(file.max_ws_per_ip) {
        s.http.max_ws_per_ip = n;
    }
    s.http.trusted_proxies = list_of(&args.trusted_proxies, &file.trusted_proxies);
    s.static_dir = args.static_dir.clone().or_else(|| file.static_dir.clone());
}

/// The WebSocket hub: caps and heartbeat.
fn resolve_hub(args: &ServeArgs, file: &FileConfig, s: &mut Settings) -> Result<(), ConfigError> {
    if let Some(n) = args.ws_max_per_event.or(file.ws_max_per_event) {
        s.hub.max_per_event = n;
    }
    if let Some(n) = args.ws_max_total.or(file.ws_max_total) {
        s.hub.max_total = n;
    }
    let ping = args.ws_ping_interval.or(file.ws_ping_interval);
    if let Some(d) = whole_seconds(ping, "ws-ping-interval")? {
        s.hub.ping_interval = d;
    }
    let pong = args.ws_pong_timeout.or(file.ws_pong_timeout);
    if let Some(d) = whole_seconds(pong, "ws-pong-timeout")? {
        s.hub.pong_timeout = d;
    }
    if let Some(d) = args.ws_close_grace.or(file.ws_close_grace) {
        s.hub.close_grace = Duration::from_secs(d);
    }
    Ok(())
}

mod replica;
pub use replica::resolve_replica;

#[cfg(test)]
mod tests;
