//! `c123-loadgen`: measures the c123-live daemon end to end, as a separate process would see
//! it (the figures in BENCHMARKS.md).
//!
//! It starts `c123-live serve --dev` as a child process on a temporary database (so it knows
//! the PID and reads its `VmRSS`), creates an event from the bundled real export over the
//! REST API, opens N lean WebSocket clients to it from this one process (hand-written
//! handshake and frame reader, a few KiB each), and feeds the daemon through its **real**
//! TCP source (`--tcp-listen`):
//!
//! - default: synthetic OnCourse frames at `--rate` per second. Frame `k` carries the running
//!   time `1000.00 s + k/100 s`, so the diff it causes carries `"time":100000+k` and every
//!   client can match what it receives with the instant frame `k` was written to the socket.
//!   Printed: latency p50/p90/p99/max (write → client read), messages, `seq` gaps, lost
//!   markers, bytes per client, daemon RSS idle/after, idle memory per connection.
//! - `--recording FILE --speed X`: the recording instead (no markers: delivery, gaps and
//!   the spread between the first and the last client receiving each `seq`).
//! - `--soak`: an event day compressed (`--hours`, `--speedup`): the recording looped with
//!   advancing clock times and run times, the export re-imported every simulated minute over
//!   `POST /api/v1/ingest/xml`, clients connecting and disconnecting continuously; prints the
//!   daemon's RSS every simulated hour (`--sample-minutes`).
//! - `--ceiling`: after the run, the same clients read the same bytes from a minimal
//!   raw-socket writer (a child process, no hub): fan-out times of both and their ratio.
//!
//! Everything stays on 127.0.0.0/8; every loop is bounded and the child is killed on exit.

mod args;
mod ceiling;
mod daemon;
mod envelope;
mod error;
mod frames;
mod http;
mod procfs;
mod report;
mod run;
mod soak;
mod ws;

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = args::Args::parse();
    let nofile = procfs::raise_nofile();
    if args.ceiling_serve {
        ceiling::serve(&args)?;
    } else if args.soak {
        soak::soak(args).await?;
    } else {
        run::run(args, nofile).await?;
    }
    Ok(())
}
