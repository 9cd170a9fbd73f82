//! The measurement run: N clients connected and idle, then the daemon fed through its TCP
//! source (synthetic markers or a recording), then the report.

use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use c123_live::c123::recording::Recording;
use c123_live::ingest::replay::{stream_to, ReplaySettings};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::args::Args;
use crate::daemon::Daemon;
use crate::error::{Error, IoContext, Result};
use crate::frames::oncourse_frame;
use crate::procfs::{cpu_secs, load};
use crate::report::{percentile, ClientReport, Shared, Totals};
use crate::ws::client;

/// Seqs the fan-out spread is recorded for.
pub const SPREAD_SEQS: usize = 1_000_000;

/// Runs the load generator and prints its report.
pub async fn run(args: Args, nofile: u64) -> Result<()> {
    let (clients, diffs) = (args.clients, args.diffs);
    if nofile > 0 && clients as u64 + 64 > nofile {
        return Err(Error::Setup(format!(
            "RLIMIT_NOFILE is {nofile}: not enough for {clients} clients"
        )));
    }
    let recording = load_recording(&args)?;
    let (daemon, _key) = Daemon::start(&args, clients + 16).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = daemon.rss_kib();
    println!("daemon pid {} rss_before_kib: {rss_before}", daemon.pid());

    let shared = Arc::new(Shared::new(diffs, SPREAD_SEQS));
    let stop = CancellationToken::new();
    let t = Instant::now();
    let tasks = open_clients(daemon.http, &args, &shared, &stop).await;
    let connected = shared.connected.load(Ordering::Relaxed);
    println!(
        "connected: {connected}/{clients} in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs_f64(args.idle_secs)).await;
    let rss_idle = daemon.rss_kib();
    let per_conn = (rss_idle.saturating_sub(rss_before)) as f64 / connected.max(1) as f64;
    println!("rss_idle_kib: {rss_idle}");
    println!("idle_kib_per_connection: {per_conn:.2}");

    // The driver: the daemon's real TCP source.
    let mut source = TcpStream::connect(daemon.tcp).await.io("TCP source")?;
    source.set_nodelay(true).io("TCP source")?;
    let cpu0 = Cpu::now(&daemon);
    let drive_start = Instant::now();
    let expected_markers = match &recording {
        None => diffs * connected as u64,
        Some(_) => 0,
    };
    drive(&mut source, &args, recording.as_ref(), &shared, &stop).await?;
    let drive_secs = drive_start.elapsed().as_secs_f64();
    wait_delivery(&shared, recording.is_none(), expected_markers).await;
    let rss_after = daemon.rss_kib();
    let busy = drive_start.elapsed().as_secs_f64();
    let cpu1 = Cpu::now(&daemon);
    stop.cancel();
    drop(source);
    let mut totals = Totals::default();
    for t in tasks {
        totals.add(t.await?);
    }
    drop(daemon);
    totals.sort();
    println!("drive_secs: {drive_secs:.2}");
    print_totals(
        &totals,
        &shared,
        recording.is_none().then_some(expected_markers),
    );
    println!(
        "cpu_during_run: {busy:.1} s wall; daemon user {:.1} s sys {:.1} s; loadgen user {:.1} s sys {:.1} s",
        cpu1.daemon.0 - cpu0.daemon.0,
        cpu1.daemon.1 - cpu0.daemon.1,
        cpu1.own.0 - cpu0.own.0,
        cpu1.own.1 - cpu0.own.1
    );
    println!("rss_before_kib: {rss_before}");
    println!("rss_after_kib: {rss_after}");
    println!("load: {}", load());
    if args.ceiling && recording.is_none() {
        ceiling_after(&args, totals, &shared).await?;
    }
    Ok(())
}

/// `--ceiling`: the same clients and bytes against the raw-socket writer, compared with
/// this run (the daemon is stopped by then).
async fn ceiling_after(args: &Args, mut totals: Totals, shared: &Shared) -> Result<()> {
    let hub = crate::ceiling::Summary {
        spread: totals.spread_us(shared),
        latency: std::mem::take(&mut totals.latencies_us),
    };
    drop(totals);
    let template = shared
        .template
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    crate::ceiling::compare(args, hub, template).await
}

/// The `--recording`, if given, and the report's first line.
fn load_recording(args: &Args) -> Result<Option<Recording>> {
    let recording = match &args.recording {
        Some(p) => Some(Recording::parse(
            &std::fs::read_to_string(p).io(format!("reading {}", p.display()))?,
        )?),
        None => None,
    };
    println!(
        "loadgen: {} clients, {} (machine: {} cores, load {})",
        args.clients,
        match &recording {
            Some(r) => format!(
                "recording of {} frames at speed {}",
                r.frames.len(),
                args.speed
            ),
            None => format!(
                "{} synthetic on-course diffs at {}/s",
                args.diffs, args.rate
            ),
        },
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load()
    );
    Ok(recording)
}

/// CPU seconds (user, system) of the daemon and of this process.
struct Cpu {
    daemon: (f64, f64),
    own: (f64, f64),
}

impl Cpu {
    fn now(daemon: &Daemon) -> Cpu {
        Cpu {
            daemon: cpu_secs(&daemon.pid().to_string()),
            own: cpu_secs("self"),
        }
    }
}

/// Source address of client `i`: 127.0.0.1 for the first `per_ip`, then
/// 127.0.0.2, … (each address has its own ephemeral port range towards the daemon).
fn source_of(i: usize, per_ip: usize) -> Option<Ipv4Addr> {
    let k = i / per_ip.max(1);
    (k > 0).then(|| Ipv4Addr::new(127, 0, (k / 250) as u8, (k % 250 + 1) as u8))
}

/// Opens `--clients` clients to `http` (at most `--connect-concurrency` handshakes at a
/// time); returns their tasks once every one is connected or failed.
pub async fn open_clients(
    http: std::net::SocketAddr,
    args: &Args,
    shared: &Arc<Shared>,
    stop: &CancellationToken,
) -> Vec<JoinHandle<ClientReport>> {
    let concurrency = args.connect_concurrency.clamp(1, Semaphore::MAX_PERMITS);
    let gate = Arc::new(Semaphore::new(concurrency));
    let mut tasks = Vec::with_capacity(args.clients);
    for i in 0..args.clients {
        // The semaphore is never closed, so acquiring only waits.
        let Ok(permit) = gate.clone().acquire_owned().await else {
            break;
        };
        tasks.push(tokio::spawn(client(
            http,
            source_of(i, args.per_source_ip),
            shared.clone(),
            stop.clone(),
            Some(permit),
        )));
    }
    // Every permit back: every handshake finished (or failed).
    let _all = gate.acquire_many(concurrency as u32).await;
    tasks
}

/// Writes the synthetic markers at `--rate`, or the recording at `--speed`.
async fn drive(
    source: &mut TcpStream,
    args: &Args,
    recording: Option<&Recording>,
    shared: &Shared,
    stop: &CancellationToken,
) -> Result<()> {
    match recording {
        None => {
            let mut every = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            for k in 1..=args.diffs {
                every.tick().await;
                let frame = oncourse_frame(k);
                shared.mark_written(k);
                source.write_all(frame.as_bytes()).await.io("TCP source")?;
            }
        }
        Some(rec) => {
            let settings = ReplaySettings {
                speed: args.speed,
                looped: false,
            };
            stream_to(source, rec, settings, stop)
                .await
                .io("TCP source")?;
        }
    }
    Ok(())
}

/// Waits for delivery: every marker (synthetic), or 2 s without a new `seq` (recording); at
/// most 60 s.
pub async fn wait_delivery(shared: &Shared, markers: bool, expected_markers: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last_total = u64::MAX;
    let mut quiet_since = Instant::now();
    loop {
        // A skipped list (a `superseded` diff) is a marker that will not come.
        let got = shared.markers_received.load(Ordering::Relaxed)
            + shared.markers_skipped.load(Ordering::Relaxed);
        if markers && got >= expected_markers {
            break;
        }
        if Instant::now() > deadline {
            println!("delivery wait timed out after 60 s");
            break;
        }
        if !markers {
            let total = shared
                .last_rx
                .iter()
                .filter(|a| a.load(Ordering::Relaxed) > 0)
                .count() as u64;
            if total != last_total {
                last_total = total;
                quiet_since = Instant::now();
            } else if quiet_since.elapsed() > Duration::from_secs(2) {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The client lines of the report; the marker lines only for a synthetic run.
fn print_totals(totals: &Totals, shared: &Shared, expected_markers: Option<u64>) {
    println!("clients_connected: {}", totals.connected);
    println!("clients_failed: {}", totals.failed);
    if let Some(e) = &totals.first_failure {
        println!("first_failure: {e}");
    }
    println!("clients_closed_by_server: {}", totals.closed_by_server);
    println!("messages_delivered: {}", totals.messages);
    println!(
        "seq_range: {}..{}",
        totals.min_first_seq.unwrap_or(0),
        totals.max_seq
    );
    totals.print_seq_lines();
    println!("resyncs: {}", totals.resyncs);
    if let Some(expected) = expected_markers {
        let lat = &totals.latencies_us;
        println!("markers_expected: {expected}");
        println!("markers_received: {}", totals.markers);
        println!("markers_superseded: {}", totals.skipped);
        println!(
            "lost: {}",
            expected.saturating_sub(totals.markers + totals.skipped)
        );
        println!(
            "latency_ms: p50 {:.2} p90 {:.2} p99 {:.2} max {:.2} (n={})",
            percentile(lat, 0.5),
            percentile(lat, 0.9),
            percentile(lat, 0.99),
            percentile(lat, 1.0),
            lat.len()
        );
    }
    let spread = totals.spread_us(shared);
    println!(
        "fanout_spread_ms (first to last client, per seq): p50 {:.2} p99 {:.2} max {:.2} (n={})",
        percentile(&spread, 0.5),
        percentile(&spread, 0.99),
        percentile(&spread, 1.0),
        spread.len()
    );
    println!(
        "bytes_per_client: {}",
        totals.bytes / totals.connected.max(1) as u64
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::PER_SOURCE_IP;

    #[test]
    fn source_addresses_past_the_per_address_count() {
        assert_eq!(source_of(0, PER_SOURCE_IP), None);
        assert_eq!(
            source_of(PER_SOURCE_IP, PER_SOURCE_IP),
            Some(Ipv4Addr::new(127, 0, 0, 2))
        );
        assert_eq!(source_of(250 * 7, 7), Some(Ipv4Addr::new(127, 0, 1, 1)));
    }
}
