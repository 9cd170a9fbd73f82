//! `--ceiling`: what this kernel allows. After the run against the daemon, the same number of
//! clients (the same lean client, from the same source addresses) read the same bytes (the
//! marker diff one client received from the hub, its `seq` and marker renumbered, framed the
//! same way) from a minimal raw-socket writer: a child process (`--ceiling-serve`, like the
//! daemon, so neither shares a file table or a scheduler slot with the clients) that answers
//! the upgrade with a fixed 101 and then writes each message to every socket in a plain loop
//! of blocking `write`s, one loop per thread, nothing else. The hub's fan-out time (first to
//! last client per diff) is then printed as a ratio to the ceiling's.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

use crate::args::Args;
use crate::error::{Error, IoContext, Result};
use crate::frames::MARKER_BASE;
use crate::procfs::{cpu_secs, load};
use crate::report::{percentile, Shared, Totals};
use crate::run::{open_clients, wait_delivery, SPREAD_SEQS};

/// A message from the parent to the writer is at most this long (a `full` is ~16 KB).
const MAX_MESSAGE: usize = 16 << 20;

/// The accept key of the sample `Sec-WebSocket-Key` every load generator client sends
/// (RFC 6455 1.3).
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// What the hub run measured, to compare with.
pub struct Summary {
    /// Sorted, µs: marker write to client read, every client and marker.
    pub latency: Vec<u32>,
    /// Sorted, µs: first to last client receiving each `seq`.
    pub spread: Vec<u32>,
}

/// The writer child, killed when dropped.
struct Writer(Child);

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn threads(args: &Args) -> usize {
    match args.ceiling_threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

/// Websocket text frame (unmasked, final) of `payload`, as the hub frames a message.
fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(payload.len() + 10);
    f.push(0x81);
    match payload.len() {
        n @ 0..=125 => f.push(n as u8),
        n @ 126..=0xffff => {
            f.push(126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(payload);
    f
}

/// Marker `k`'s message: the hub's marker diff with `seq` = `k` and the marker's time.
fn message(template: &Value, k: u64) -> Vec<u8> {
    let mut m = template.clone();
    m["seq"] = Value::from(k);
    if let Some(list) = m["data"]["oncourse"].as_array_mut() {
        for rider in list.iter_mut().filter(|r| r.get("time").is_some()) {
            rider["time"] = Value::from(MARKER_BASE + k);
        }
    }
    frame(m.to_string().as_bytes())
}

/// The parent: runs the ceiling and prints it next to the hub's figures.
pub async fn compare(args: &Args, hub: Summary, template: Option<Vec<u8>>) -> Result<()> {
    let template: Value = template
        .and_then(|t| serde_json::from_slice(&t).ok())
        .unwrap_or_else(|| {
            serde_json::json!({"type":"diff","seq":0,"epoch":"ceiling",
                               "data":{"oncourse":[{"bib":1,"time":MARKER_BASE}]}})
        });
    let t = threads(args);
    let exe = std::env::current_exe().io("locating this executable")?;
    let mut child = Command::new(exe)
        .args(["--ceiling-serve", "--clients", &args.clients.to_string()])
        .args(["--ceiling-threads", &t.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .io("starting the ceiling writer")?;
    let stdout = child.stdout.take();
    let writer = Writer(child);
    let (clients_at, control_at) =
        tokio::task::spawn_blocking(move || read_addrs(stdout)).await??;
    let bytes = message(&template, 1).len();
    println!(
        "ceiling: {} clients, raw-socket writer (pid {}, {t} threads, blocking writes), {bytes} B per message (load {})",
        args.clients,
        writer.0.id(),
        load()
    );

    let shared = Arc::new(Shared::new(args.diffs, SPREAD_SEQS));
    let stop = CancellationToken::new();
    let tasks = open_clients(clients_at, args, &shared, &stop).await;
    println!(
        "ceiling_clients_connected: {}",
        shared.connected.load(Ordering::Relaxed)
    );
    let mut control = tokio::net::TcpStream::connect(control_at)
        .await
        .io("ceiling control")?;
    control.set_nodelay(true).io("ceiling control")?;
    let connected = shared.connected.load(Ordering::Relaxed);
    control
        .write_all(&(connected as u32).to_be_bytes())
        .await
        .io("ceiling control")?;
    let pid = writer.0.id().to_string();
    let (cpu0, own0) = (cpu_secs(&pid), cpu_secs("self"));
    let connected = connected as u64;
    let mut every = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for k in 1..=args.diffs {
        every.tick().await;
        let msg = message(&template, k);
        shared.mark_written(k);
        control
            .write_all(&(msg.len() as u32).to_be_bytes())
            .await
            .io("ceiling control")?;
        control.write_all(&msg).await.io("ceiling control")?;
    }
    wait_delivery(&shared, true, args.diffs * connected).await;
    let (cpu1, own1) = (cpu_secs(&pid), cpu_secs("self"));
    stop.cancel();
    drop(control);
    let mut totals = Totals::default();
    for task in tasks {
        totals.add(task.await?);
    }
    drop(writer);
    totals.sort();
    report(&totals, &shared, &hub);
    println!(
        "ceiling_cpu: writer user {:.1} s sys {:.1} s; loadgen user {:.1} s sys {:.1} s",
        cpu1.0 - cpu0.0,
        cpu1.1 - cpu0.1,
        own1.0 - own0.0,
        own1.1 - own0.1
    );
    Ok(())
}

fn report(totals: &Totals, shared: &Shared, hub: &Summary) {
    let lat = &totals.latencies_us;
    let spread = totals.spread_us(shared);
    let p = |v: &[u32], q: f64| percentile(v, q);
    println!(
        "ceiling_markers_received: {} (gaps {})",
        totals.markers, totals.gaps
    );
    println!(
        "ceiling_latency_ms: p50 {:.2} p90 {:.2} p99 {:.2} max {:.2} (n={})",
        p(lat, 0.5),
        p(lat, 0.9),
        p(lat, 0.99),
        p(lat, 1.0),
        lat.len()
    );
    println!(
        "hub_fanout_ms (first to last client, per diff): p50 {:.2} p99 {:.2} max {:.2} (n={})",
        p(&hub.spread, 0.5),
        p(&hub.spread, 0.99),
        p(&hub.spread, 1.0),
        hub.spread.len()
    );
    println!(
        "ceiling_fanout_ms (first to last client, per diff): p50 {:.2} p99 {:.2} max {:.2} (n={})",
        p(&spread, 0.5),
        p(&spread, 0.99),
        p(&spread, 1.0),
        spread.len()
    );
    println!(
        "fanout_ratio (hub / ceiling): p50 {:.2} p99 {:.2}",
        p(&hub.spread, 0.5) / p(&spread, 0.5),
        p(&hub.spread, 0.99) / p(&spread, 0.99)
    );
    println!(
        "latency_ratio (hub / ceiling, write to client read): p50 {:.2} p99 {:.2}",
        p(&hub.latency, 0.5) / p(lat, 0.5),
        p(&hub.latency, 0.99) / p(lat, 0.99)
    );
}

/// The child's first line: `ceiling_listen CLIENTS CONTROL`.
fn read_addrs(stdout: Option<std::process::ChildStdout>) -> Result<(SocketAddr, SocketAddr)> {
    let out = stdout.ok_or_else(|| Error::Setup("ceiling writer: no stdout".into()))?;
    let mut line = String::new();
    BufReader::new(out)
        .read_line(&mut line)
        .io("reading the ceiling writer's addresses")?;
    let mut words = line.split_whitespace().skip(1);
    let mut addr = || -> Result<SocketAddr> {
        words
            .next()
            .and_then(|w| w.parse().ok())
            .ok_or_else(|| Error::Setup(format!("ceiling writer said {line:?}")))
    };
    Ok((addr()?, addr()?))
}

/// The child (`--ceiling-serve`): accepts up to `--clients` WebSocket clients (fixed 101, then
/// a small `full` so they start their `seq` accounting), then writes every message the parent
/// sends on the control connection to every client socket, `--ceiling-threads` threads each
/// looping over its share of the sockets with blocking writes. Ends when the parent closes
/// the control connection.
pub fn serve(args: &Args) -> Result<()> {
    let clients = TcpListener::bind("127.0.0.1:0").io("ceiling: bind")?;
    let control = TcpListener::bind("127.0.0.1:0").io("ceiling: bind")?;
    println!(
        "ceiling_listen {} {}",
        clients.local_addr().io("ceiling: address")?,
        control.local_addr().io("ceiling: address")?
    );
    std::io::stdout().flush().io("ceiling: stdout")?;
    let socks: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
    let max = args.clients;
    {
        let socks = Arc::clone(&socks);
        std::thread::spawn(move || accept_clients(&clients, &socks, max));
    }
    let (mut parent, _) = control.accept().io("ceiling: control")?;
    // The parent first says how many clients finished their handshake: a client may read its
    // 101 before the acceptor has added its socket, so wait for them (bounded).
    let mut n = [0u8; 4];
    parent.read_exact(&mut n).io("ceiling: control")?;
    let expected = u32::from_be_bytes(n) as usize;
    let deadline = Instant::now() + Duration::from_secs(10);
    let lock = || socks.lock().unwrap_or_else(|e| e.into_inner());
    while lock().len() < expected && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let socks = std::mem::take(&mut *lock());
    let t = threads(args).clamp(1, socks.len().max(1));
    let per = socks.len().div_ceil(t).max(1);
    let mut senders = Vec::new();
    let mut writers = Vec::new();
    let mut socks = socks.into_iter();
    for _ in 0..t {
        let mut mine: Vec<Option<TcpStream>> = socks.by_ref().take(per).map(Some).collect();
        let (tx, rx) = mpsc::channel::<Arc<Vec<u8>>>();
        senders.push(tx);
        writers.push(std::thread::spawn(move || {
            for msg in rx {
                for slot in mine.iter_mut() {
                    // A client that went away is left out from then on.
                    if slot.as_mut().is_some_and(|s| s.write_all(&msg).is_err()) {
                        *slot = None;
                    }
                }
            }
        }));
    }
    let mut len = [0u8; 4];
    while parent.read_exact(&mut len).is_ok() {
        let n = u32::from_be_bytes(len) as usize;
        if n > MAX_MESSAGE {
            return Err(Error::Setup(format!("ceiling: message of {n} bytes")));
        }
        let mut msg = vec![0u8; n];
        parent.read_exact(&mut msg).io("ceiling: control")?;
        let msg = Arc::new(msg);
        for tx in &senders {
            let _ = tx.send(Arc::clone(&msg));
        }
    }
    drop(senders);
    for w in writers {
        let _ = w.join();
    }
    Ok(())
}

/// Accepts and upgrades clients (one at a time: a handshake is two small writes) until `max`.
fn accept_clients(listener: &TcpListener, socks: &Mutex<Vec<TcpStream>>, max: usize) {
    let full = frame(br#"{"type":"full","seq":0,"epoch":"ceiling","data":{}}"#);
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: {ACCEPT}\r\n\r\n"
    );
    for _ in 0..max {
        let Ok((mut s, _)) = listener.accept() else {
            continue;
        };
        let _ = s.set_nodelay(true);
        let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
        let _ = s.set_write_timeout(Some(Duration::from_secs(10)));
        if read_head(&mut s).is_none() {
            continue;
        }
        if s.write_all(response.as_bytes()).is_err() || s.write_all(&full).is_err() {
            continue;
        }
        socks.lock().unwrap_or_else(|e| e.into_inner()).push(s);
    }
}

/// Reads a request head (up to 8 KiB) until its blank line.
fn read_head(s: &mut TcpStream) -> Option<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut head = Vec::new();
    let mut b = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > 8192 || Instant::now() > deadline {
            return None;
        }
        match s.read(&mut b) {
            Ok(0) | Err(_) => return None,
            Ok(n) => head.extend_from_slice(&b[..n]),
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_messages_are_the_hub_diff_renumbered_and_framed_alike() {
        let template: Value = serde_json::from_str(
            r#"{"type":"diff","seq":41,"epoch":"e","data":{"oncourse":[{"bib":1,"time":100040,"pen":4}]}}"#,
        )
        .expect("json");
        let f = message(&template, 7);
        assert_eq!(f[0], 0x81);
        let text: Value = serde_json::from_slice(&f[2..]).expect("payload");
        assert_eq!(text["seq"], 7);
        assert_eq!(text["data"]["oncourse"][0]["time"], MARKER_BASE + 7);
        assert_eq!(text["data"]["oncourse"][0]["pen"], 4);
        assert_eq!(frame(&[b'x'; 200]).len(), 204);
        assert_eq!(frame(&[b'x'; 70_000]).len(), 70_010);
    }
}
