//! The soak: an event day compressed. The recording is looped with advancing clock and run
//! times, the export re-imported every simulated minute, clients churn; the daemon's RSS is
//! printed every `--sample-minutes` simulated minutes.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use c123_live::c123::recording::Recording;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::args::Args;
use crate::daemon::Daemon;
use crate::error::{Error, IoContext, Result};
use crate::frames::soak_frame;
use crate::procfs::load;
use crate::report::{Shared, Totals};
use crate::ws::client;

/// Simulated time → wall-clock instant.
#[derive(Clone, Copy)]
struct Clock {
    start: Instant,
    speedup: f64,
}

impl Clock {
    fn wall_of(&self, sim_ms: u64) -> tokio::time::Instant {
        (self.start + Duration::from_secs_f64(sim_ms as f64 / 1000.0 / self.speedup)).into()
    }
}

/// What the day's driver reports.
struct Day {
    sim_ms: u64,
    laps: u64,
    frames: u64,
    /// (simulated ms, RSS KiB) at every sample.
    samples: Vec<(u64, u64)>,
}

/// The soak, with its report.
pub async fn soak(args: Args) -> Result<()> {
    let rec = match &args.recording {
        Some(p) => {
            Recording::parse(&std::fs::read_to_string(p).io(format!("reading {}", p.display()))?)?
        }
        None => Recording::parse(c123_live::app::DEMO_RECORDING)?,
    };
    if rec.frames.is_empty() {
        return Err(Error::Setup("the recording has no frames".into()));
    }
    let lap_ms = rec.frames.last().map_or(1000, |f| f.ts_ms) + 1000;
    let total_sim_ms = (args.hours * 3_600_000.0) as u64;
    let speedup = args.speedup.max(0.001);
    println!(
        "soak: {} simulated hours at {speedup}x ({:.0} s wall), recording of {} frames looped every {} s, \
         export re-imported every simulated minute, {} clients churning (machine: {} cores, load {})",
        args.hours,
        total_sim_ms as f64 / speedup / 1000.0,
        rec.frames.len(),
        lap_ms / 1000,
        args.soak_clients,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load()
    );
    let (daemon, key) = Daemon::start(&args, args.soak_clients + 64).await?;
    let daemon = Arc::new(daemon);
    let stop = CancellationToken::new();
    let shared = Arc::new(Shared::new(0, 0));
    let clock = Clock {
        start: Instant::now(),
        speedup,
    };
    let xml = xml_task(daemon.clone(), key, stop.clone(), clock, total_sim_ms);
    let churn = churn_task(
        daemon.clone(),
        stop.clone(),
        shared.clone(),
        args.soak_clients,
    );

    let sample_ms = ((args.sample_minutes * 60_000.0) as u64).max(1);
    let day = drive_day(
        &daemon,
        &rec,
        lap_ms,
        total_sim_ms,
        sample_ms,
        clock,
        &shared,
    )
    .await;
    let wall = clock.start.elapsed().as_secs_f64();
    stop.cancel();
    let (imports, import_failures, worst) = xml.await?;
    let (opened, totals) = churn.await?;
    let day = day?;
    let rss_end = daemon.rss_kib();
    print_report(
        &day,
        wall,
        (imports, import_failures, worst),
        opened,
        &totals,
        rss_end,
    );
    println!("load: {}", load());
    Ok(())
}

/// The soak's closing lines.
fn print_report(
    day: &Day,
    wall: f64,
    (imports, import_failures, worst): (u64, u64, Duration),
    opened: u64,
    totals: &Totals,
    rss_end: u64,
) {
    println!("simulated_ms: {}", day.sim_ms);
    println!("wall_s: {wall:.1}");
    println!("laps: {}", day.laps);
    println!("frames: {}", day.frames);
    println!(
        "xml_imports: {imports} (failed {import_failures}, slowest {:.0} ms)",
        worst.as_secs_f64() * 1000.0
    );
    println!("clients_opened: {opened} (failed {})", totals.failed);
    println!("messages_delivered: {}", totals.messages);
    totals.print_seq_lines();
    println!("rss_end_kib: {rss_end}");
    if let (Some(first), Some(last)) = (day.samples.first(), day.samples.last()) {
        let ratio = last.1 as f64 / first.1.max(1) as f64;
        let within = if (ratio - 1.0).abs() <= 0.10 {
            "within 10 %"
        } else {
            "NOT within 10 %"
        };
        println!(
            "rss_first_sample_kib: {} rss_last_sample_kib: {} ratio: {ratio:.3} ({within})",
            first.1, last.1
        );
    }
}

/// Every simulated minute, the export with one result time changed. Returns (imports,
/// failures, slowest import).
fn xml_task(
    daemon: Arc<Daemon>,
    key: String,
    stop: CancellationToken,
    clock: Clock,
    total_sim_ms: u64,
) -> JoinHandle<(u64, u64, Duration)> {
    tokio::spawn(async move {
        let xml = String::from_utf8_lossy(c123_live::app::DEMO_XML).into_owned();
        let (mut ok, mut failed, mut worst) = (0u64, 0u64, Duration::ZERO);
        let mut minute = 1u64;
        while minute * 60_000 < total_sim_ms {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep_until(clock.wall_of(minute * 60_000)) => {}
            }
            let changed = xml.replacen(
                "<Time>76990</Time>",
                &format!("<Time>{}</Time>", 76_000 + minute % 900),
                1,
            );
            let t = Instant::now();
            match daemon.import_xml(&key, changed.as_bytes()).await {
                Ok(()) => ok += 1,
                Err(e) => {
                    failed += 1;
                    if failed == 1 {
                        eprintln!("soak: XML import failed: {e}");
                    }
                }
            }
            worst = worst.max(t.elapsed());
            minute += 1;
        }
        (ok, failed, worst)
    })
}

/// `n` clients connected at any time, each living 1-10 s. Returns (opened, totals).
fn churn_task(
    daemon: Arc<Daemon>,
    stop: CancellationToken,
    shared: Arc<Shared>,
    n: usize,
) -> JoinHandle<(u64, Totals)> {
    tokio::spawn(async move {
        let mut set = JoinSet::new();
        // xorshift64: reproducible lifetimes without a dependency.
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut opened = 0u64;
        let mut totals = Totals::default();
        while !stop.is_cancelled() {
            while set.len() < n && !stop.is_cancelled() {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let life = Duration::from_millis(1000 + rng % 9000);
                let own = stop.child_token();
                let (http, shared) = (daemon.http, shared.clone());
                set.spawn(async move {
                    let timer = own.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(life).await;
                        timer.cancel();
                    });
                    client(http, None, shared, own, None).await
                });
                opened += 1;
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                r = set.join_next() => if let Some(Ok(r)) = r { totals.add(r) },
            }
        }
        while let Some(r) = set.join_next().await {
            if let Ok(r) = r {
                totals.add(r);
            }
        }
        (opened, totals)
    })
}

/// Plays the recording lap after lap until `total_sim_ms`, printing a sample row every
/// `sample_ms` simulated.
async fn drive_day(
    daemon: &Daemon,
    rec: &Recording,
    lap_ms: u64,
    total_sim_ms: u64,
    sample_ms: u64,
    clock: Clock,
    shared: &Shared,
) -> Result<Day> {
    let mut source = TcpStream::connect(daemon.tcp).await.io("TCP source")?;
    source.set_nodelay(true).io("TCP source")?;
    let mut next_sample = sample_ms;
    let mut day = Day {
        sim_ms: 0,
        laps: 0,
        frames: 0,
        samples: Vec::new(),
    };
    println!("sim_minutes  wall_s  rss_kib  clients  frames  load");
    'day: loop {
        for f in &rec.frames {
            day.sim_ms = day.laps * lap_ms + f.ts_ms;
            while day.sim_ms >= next_sample {
                let rss = daemon.rss_kib();
                day.samples.push((next_sample, rss));
                println!(
                    "{:>11.0}  {:>6.1}  {rss:>7}  {:>7}  {:>6}  {}",
                    next_sample as f64 / 60_000.0,
                    clock.start.elapsed().as_secs_f64(),
                    shared.connected.load(Ordering::Relaxed),
                    day.frames,
                    load()
                );
                next_sample += sample_ms;
            }
            if day.sim_ms >= total_sim_ms {
                break 'day;
            }
            tokio::time::sleep_until(clock.wall_of(day.sim_ms)).await;
            let data = soak_frame(&f.data, day.laps, lap_ms);
            source.write_all(data.as_bytes()).await.io("TCP source")?;
            source.write_all(b"|").await.io("TCP source")?;
            day.frames += 1;
        }
        day.laps += 1;
    }
    Ok(day)
}
