//! The command line.

use std::path::PathBuf;

/// Client connections per source address (the ephemeral port range has ~28 000 ports).
pub const PER_SOURCE_IP: usize = 25_000;

/// Load generator and soak test for c123-live: starts the daemon as a child process, opens
/// WebSocket clients to one event and feeds the daemon through its TCP source (see
/// BENCHMARKS.md).
#[derive(Debug, clap::Parser, Clone)]
#[command(name = "c123-loadgen", version)]
pub struct Args {
    /// WebSocket clients on the event.
    #[arg(long, default_value_t = 1000)]
    pub clients: usize,
    /// Synthetic on-course frames to send (each causes one diff).
    #[arg(long, default_value_t = 100)]
    pub diffs: u64,
    /// Synthetic frames per second.
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
    /// Push this `.tcp.jsonl` recording instead of synthetic frames.
    #[arg(long)]
    pub recording: Option<PathBuf>,
    /// Playback speed of `--recording` (or of the soak's loop: see `--speedup`).
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Concurrent WebSocket handshakes while connecting.
    #[arg(long, default_value_t = 256)]
    pub connect_concurrency: usize,
    /// Seconds to wait with every client connected and idle before reading the daemon's RSS.
    #[arg(long, default_value_t = 3.0)]
    pub idle_secs: f64,
    /// The daemon's `--synchronous` (durability of each commit).
    #[arg(long, default_value = "full")]
    pub synchronous: String,
    /// The daemon binary [default: `c123-live` next to this executable, e.g. target/release/].
    #[arg(long)]
    pub daemon: Option<PathBuf>,
    /// Client connections per source address: past this, clients bind 127.0.0.2, 127.0.0.3, …
    /// (one address has ~28 000 ephemeral ports towards the daemon).
    #[arg(long, default_value_t = PER_SOURCE_IP)]
    pub per_source_ip: usize,
    /// Soak mode: an event day compressed (see `--hours`, `--speedup`).
    #[arg(long)]
    pub soak: bool,
    /// Soak: simulated hours.
    #[arg(long, default_value_t = 8.0)]
    pub hours: f64,
    /// Soak: simulated seconds per wall-clock second.
    #[arg(long, default_value_t = 60.0)]
    pub speedup: f64,
    /// Soak: print the daemon's RSS every this many simulated minutes.
    #[arg(long, default_value_t = 60.0)]
    pub sample_minutes: f64,
    /// Soak: clients connected at any time (each lives 1-10 s, then a new one connects).
    #[arg(long, default_value_t = 200)]
    pub soak_clients: usize,
    /// After the run, the same clients and the same bytes again, written by a minimal
    /// raw-socket writer instead of the daemon (a child process: `--ceiling-serve`): the
    /// hub's fan-out time as a ratio to what this kernel allows.
    #[arg(long)]
    pub ceiling: bool,
    /// Writer threads of the ceiling [default: the number of cores, as the daemon's runtime].
    #[arg(long, default_value_t = 0)]
    pub ceiling_threads: usize,
    /// Internal: be the ceiling's raw-socket writer (started by `--ceiling`).
    #[arg(long, hide = true)]
    pub ceiling_serve: bool,
}
