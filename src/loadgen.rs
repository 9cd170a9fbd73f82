//! `c123-live loadgen`: measures the daemon end to end, as a separate process would see it.
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
//!
//! Everything stays on 127.0.0.0/8; every loop is bounded and the child is killed on exit.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::c123::recording::Recording;
use crate::shutdown::Shutdown;

/// The event the load generator creates.
pub const EVENT: &str = "loadgen";
/// Marker `k` is the on-course running time `MARKER_BASE + k` centiseconds.
const MARKER_BASE: u64 = 100_000;
/// Client connections per source address (the ephemeral port range has ~28 000 ports).
const PER_SOURCE_IP: usize = 25_000;

#[derive(Debug, clap::Args, Clone)]
pub struct LoadgenArgs {
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
    /// The daemon binary (default: this executable).
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
}

/// The daemon under test, killed (SIGTERM, then SIGKILL) when dropped.
struct Daemon {
    child: std::process::Child,
    dir: PathBuf,
    http: SocketAddr,
    tcp: SocketAddr,
}

impl Daemon {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn rss_kib(&self) -> u64 {
        rss_kib(self.pid())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's PID.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() > deadline => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `VmRSS` of a process in KiB (0 if unreadable).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU seconds (user, system) a process has used so far (0 if unreadable).
pub fn cpu_secs(pid: &str) -> (f64, f64) {
    let tick = 100.0; // USER_HZ on Linux
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the `(comm)`: state is field 3; utime 14, stime 15.
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some((
                f.get(11)?.parse::<f64>().ok()? / tick,
                f.get(12)?.parse::<f64>().ok()? / tick,
            ))
        })
        .unwrap_or((0.0, 0.0))
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the new soft limit. The
/// daemon, a child, inherits it.
fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain getrlimit/setrlimit on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
    }
    lim.rlim_cur
}

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// One HTTP/1.1 request (`Connection: close`); returns status and body.
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> anyhow::Result<(u16, String)> {
    let mut sock = TcpStream::connect(addr).await?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    sock.write_all(req.as_bytes()).await?;
    sock.write_all(body).await?;
    let mut resp = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), sock.read_to_end(&mut resp))
        .await
        .context("HTTP response timed out")??;
    let text = String::from_utf8_lossy(&resp);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// Starts the daemon, waits for `/healthz`, creates the event from the bundled export and
/// opens it (`running`). Returns the daemon and the event's API key.
async fn start_daemon(args: &LoadgenArgs, max_clients: usize) -> anyhow::Result<(Daemon, String)> {
    let dir = std::env::temp_dir().join(format!("c123-loadgen-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let http_addr: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
    let tcp_addr: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
    let exe = match &args.daemon {
        Some(p) => p.clone(),
        None => std::env::current_exe()?,
    };
    let child = std::process::Command::new(exe)
        .args(["serve", "--dev", "--event", EVENT, "--synchronous"])
        .arg(&args.synchronous)
        .arg("--db")
        .arg(dir.join("loadgen.db"))
        .args(["--listen", &http_addr.to_string()])
        .args(["--tcp-listen", &tcp_addr.to_string()])
        .args(["--ws-max-per-event", &max_clients.to_string()])
        .args(["--ws-max-total", &max_clients.to_string()])
        .env(
            "RUST_LOG",
            std::env::var("LOADGEN_DAEMON_LOG").unwrap_or("warn".into()),
        )
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .context("starting the daemon")?;
    let mut daemon = Daemon {
        child,
        dir,
        http: http_addr,
        tcp: tcp_addr,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok((200, _)) = http(http_addr, "GET", "/healthz", &[], b"").await {
            break;
        }
        if let Ok(Some(status)) = daemon.child.try_wait() {
            bail!("daemon exited at startup: {status}");
        }
        if Instant::now() > deadline {
            bail!("daemon not up after 20 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let json = [("Content-Type", "application/json")];
    let (status, body) = http(
        http_addr,
        "POST",
        "/api/v1/admin/events",
        &json,
        format!(r#"{{"eventId":"{EVENT}","mainTitle":"loadgen"}}"#).as_bytes(),
    )
    .await?;
    if status != 201 {
        bail!("create event: {status} {body}");
    }
    let created: serde_json::Value = serde_json::from_str(&body)?;
    let key = created["apiKey"]
        .as_str()
        .context("no apiKey in the answer")?
        .to_owned();
    import_xml(&daemon, &key, crate::daemon::DEMO_XML).await?;
    for to in ["startlist", "running"] {
        let (status, body) = http(
            http_addr,
            "PATCH",
            &format!("/api/v1/admin/events/{EVENT}/status"),
            &[("Content-Type", "application/json"), ("X-API-Key", &key)],
            format!(r#"{{"status":"{to}"}}"#).as_bytes(),
        )
        .await?;
        if status != 200 {
            bail!("status {to}: {status} {body}");
        }
    }
    daemon.tcp = tcp_addr;
    Ok((daemon, key))
}

async fn import_xml(daemon: &Daemon, key: &str, xml: &[u8]) -> anyhow::Result<()> {
    let (status, body) = http(
        daemon.http,
        "POST",
        "/api/v1/ingest/xml",
        &[("Content-Type", "application/xml"), ("X-API-Key", key)],
        xml,
    )
    .await?;
    if status != 200 {
        bail!("XML import: {status} {body}");
    }
    Ok(())
}

/// What the clients share with the driver.
struct Shared {
    base: Instant,
    /// Nanoseconds since `base` at which marker `k` was written (0: not yet).
    written: Vec<AtomicU64>,
    /// Markers received, over all clients.
    markers_received: AtomicU64,
    connected: AtomicUsize,
    /// Per seq: earliest and latest receipt (ns since base), for the fan-out spread.
    first_rx: Vec<AtomicU64>,
    last_rx: Vec<AtomicU64>,
}

impl Shared {
    fn new(markers: u64, seqs: usize) -> Shared {
        Shared {
            base: Instant::now(),
            written: (0..=markers).map(|_| AtomicU64::new(0)).collect(),
            markers_received: AtomicU64::new(0),
            connected: AtomicUsize::new(0),
            first_rx: (0..seqs).map(|_| AtomicU64::new(u64::MAX)).collect(),
            last_rx: (0..seqs).map(|_| AtomicU64::new(0)).collect(),
        }
    }
    fn now_ns(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }
}

#[derive(Debug, Default, Clone)]
struct ClientReport {
    connected: bool,
    bytes: u64,
    messages: u64,
    fulls: u64,
    /// Diffs missing between two consecutive messages (a `seq` jump not explained by a full).
    gaps: u64,
    /// `full` messages after the first (a resync: the client's queue overflowed).
    resyncs: u64,
    markers: u64,
    latencies_us: Vec<u32>,
    first_seq: u64,
    last_seq: u64,
    close_code: Option<u16>,
    error: Option<String>,
}

/// Parses the number after `key` in `hay`.
fn number_after(hay: &[u8], key: &[u8]) -> Option<u64> {
    let at = find(hay, key)? + key.len();
    let digits = hay[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&hay[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A lean WebSocket client: handshake by hand, reads frames, answers pings, records what it
/// received. Stops at `stop` (or when the server closes).
async fn client(
    http: SocketAddr,
    source: Option<Ipv4Addr>,
    query: String,
    shared: Arc<Shared>,
    stop: Shutdown,
    connected: Option<tokio::sync::OwnedSemaphorePermit>,
) -> ClientReport {
    let mut rep = ClientReport::default();
    let sock = match connect(http, source).await {
        Ok(s) => s,
        Err(e) => {
            rep.error = Some(format!("connect: {e}"));
            return rep;
        }
    };
    let (mut rd, mut wr) = sock.into_split();
    let req = format!(
        "GET /api/v1/events/{EVENT}/ws{query} HTTP/1.1\r\nHost: {http}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    if let Err(e) = wr.write_all(req.as_bytes()).await {
        rep.error = Some(format!("handshake write: {e}"));
        return rep;
    }
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    // The 101 response head.
    loop {
        let n = tokio::select! {
            _ = stop.cancelled() => return rep,
            r = tokio::time::timeout(Duration::from_secs(30), rd.read(&mut chunk)) => match r {
                Ok(Ok(n)) if n > 0 => n,
                Ok(Ok(_)) => { rep.error = Some("closed during handshake".into()); return rep; }
                Ok(Err(e)) => { rep.error = Some(format!("handshake read: {e}")); return rep; }
                Err(_) => { rep.error = Some("handshake timed out".into()); return rep; }
            },
        };
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            if !buf.starts_with(b"HTTP/1.1 101") {
                let head = String::from_utf8_lossy(&buf[..end])
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_owned();
                rep.error = Some(format!("refused: {head}"));
                return rep;
            }
            buf.drain(..end + 4);
            break;
        }
    }
    rep.connected = true;
    shared.connected.fetch_add(1, Ordering::Relaxed);
    drop(connected);
    let mut pongs: Vec<u8> = Vec::new();
    let mut tail: Vec<u8> = Vec::new();
    'read: loop {
        // Parse every complete frame in the buffer.
        let now = shared.now_ns();
        let mut pos = 0;
        while buf.len() - pos >= 2 {
            let b0 = buf[pos];
            let b1 = buf[pos + 1];
            let (len, mut hdr) = match b1 & 0x7f {
                126 if buf.len() - pos >= 4 => {
                    (u16::from_be_bytes([buf[pos + 2], buf[pos + 3]]) as usize, 4)
                }
                127 if buf.len() - pos >= 10 => {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&buf[pos + 2..pos + 10]);
                    (u64::from_be_bytes(b) as usize, 10)
                }
                126 | 127 => break,
                n => (n as usize, 2),
            };
            if b1 & 0x80 != 0 {
                hdr += 4; // masked (servers do not mask; tolerated)
            }
            if buf.len() - pos < hdr + len {
                break;
            }
            let payload = &buf[pos + hdr..pos + hdr + len];
            let fin = b0 & 0x80 != 0;
            match b0 & 0x0f {
                // serde_json sorts the envelope's keys (`data`, `epoch`, `seq`, `type`): the
                // `seq` of a fragmented full is in its last fragment; keep a tail of the
                // previous fragment in case the key straddles the boundary.
                1 if fin => on_text(payload, now, &shared, &mut rep),
                0 if fin => {
                    tail.extend_from_slice(payload);
                    on_text(&tail, now, &shared, &mut rep);
                    tail.clear();
                }
                1 | 0 => {
                    tail.clear();
                    tail.extend_from_slice(&payload[payload.len().saturating_sub(64)..]);
                }
                8 => {
                    rep.close_code =
                        (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
                    break 'read;
                }
                9 => {
                    // Pong, masked with a zero key (clients must mask).
                    pongs.extend_from_slice(&[0x8a, 0x80 | payload.len() as u8, 0, 0, 0, 0]);
                    pongs.extend_from_slice(payload);
                }
                _ => {} // pong
            }
            pos += hdr + len;
        }
        buf.drain(..pos);
        if buf.capacity() > 64 * 1024 && buf.len() < 4096 {
            buf.shrink_to(8192);
        }
        if !pongs.is_empty() {
            if wr.write_all(&pongs).await.is_err() {
                break;
            }
            pongs.clear();
        }
        let n = tokio::select! {
            _ = stop.cancelled() => break,
            r = rd.read(&mut chunk) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
        };
        rep.bytes += n as u64;
        buf.extend_from_slice(&chunk[..n]);
    }
    // Close politely (masked close frame, code 1000), without waiting for the answer.
    let _ = wr.write_all(&[0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8]).await;
    shared.connected.fetch_sub(1, Ordering::Relaxed);
    rep
}

async fn connect(http: SocketAddr, source: Option<Ipv4Addr>) -> std::io::Result<TcpStream> {
    match source {
        None => TcpStream::connect(http).await,
        Some(ip) => {
            let s = TcpSocket::new_v4()?;
            s.bind(SocketAddr::from((ip, 0)))?;
            s.connect(http).await
        }
    }
}

/// The first frame of a text message (a `full` is fragmented; its head has `type` and `seq`).
fn on_text(payload: &[u8], now: u64, shared: &Shared, rep: &mut ClientReport) {
    rep.messages += 1;
    // The envelope's keys are sorted: `…,"seq":N,"type":"…"}` ends every message.
    let end = &payload[payload.len().saturating_sub(64)..];
    let Some(seq) = number_after(end, b"\"seq\":") else {
        return;
    };
    let is_full = find(end, b"\"type\":\"full\"").is_some();
    if rep.messages == 1 {
        rep.first_seq = seq;
    } else if is_full {
        rep.resyncs += 1;
    } else if seq > rep.last_seq + 1 {
        rep.gaps += seq - rep.last_seq - 1;
    }
    if is_full {
        rep.fulls += 1;
    }
    rep.last_seq = seq;
    if let (Some(f), Some(l)) = (
        shared.first_rx.get(seq as usize),
        shared.last_rx.get(seq as usize),
    ) {
        f.fetch_min(now, Ordering::Relaxed);
        l.fetch_max(now, Ordering::Relaxed);
    }
    if find(payload, b"\"oncourse\":[").is_some() {
        if let Some(t) = number_after(payload, b"\"time\":") {
            let k = t.wrapping_sub(MARKER_BASE);
            if let Some(w) = shared.written.get(k as usize).filter(|_| k > 0) {
                let written = w.load(Ordering::Acquire);
                if written > 0 {
                    rep.markers += 1;
                    shared.markers_received.fetch_add(1, Ordering::Relaxed);
                    rep.latencies_us
                        .push(((now.saturating_sub(written)) / 1000).min(u32::MAX as u64) as u32);
                }
            }
        }
    }
}

/// Source address of client `i`: 127.0.0.1 for the first `per_ip`, then
/// 127.0.0.2, … (each address has its own ephemeral port range towards the daemon).
fn source_of(i: usize, per_ip: usize) -> Option<Ipv4Addr> {
    let k = i / per_ip.max(1);
    (k > 0).then(|| Ipv4Addr::new(127, 0, (k / 250) as u8, (k % 250 + 1) as u8))
}

/// The synthetic on-course frame of marker `k`: one rider of the real export on course,
/// running time `1000.00 + k/100` seconds.
fn oncourse_frame(k: u64) -> String {
    let cs = MARKER_BASE + k;
    let time = format!("{}.{:02}", cs / 100, cs % 100);
    format!(
        "<Canoe123 System=\"Main\"><OnCourse Total=\"1\" Position=\"1\"><Participant StartOrder=\"1\" Bib=\"1\" \
         Id=\"9046.C1W_ST\" Name=\"PAVEÍNSKÝ Libor\" Club=\"Univerzitní sportovní klub Praha\" Nat=\"\" \
         Race=\"C1ž - střední trať - 2. jízda\" RaceId=\"C1W_ST_BR2_6\" Warning=\"\" /><Result Type=\"C\" \
         Gates=\"0,0,0,0,0,0,0,2,0,2,0,0,0,0,0,0,0,0,0,0,0,0,0,0,\" Completed=\"N\" chStart=\"0\" chSplit1=\"1\" \
         chSplit2=\"1\" chFinish=\"1\" dtStart=\"10:37:35.000\" dtSplit1=\"\" dtSplit2=\"\" dtFinish=\"\" />\
         <Result Type=\"T\" Pen=\"4\" Time=\"{time}\" Total=\"{time}\" TTBDiff=\"\" TTBName=\"\" Rank=\"\" />\
         </OnCourse></Canoe123>|"
    )
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx] as f64 / 1000.0
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Opens `n` clients (at most `concurrency` handshakes at a time); returns their tasks once
/// every one is connected or failed.
async fn open_clients(
    daemon: &Daemon,
    n: usize,
    concurrency: usize,
    per_ip: usize,
    shared: &Arc<Shared>,
    stop: &Shutdown,
) -> Vec<tokio::task::JoinHandle<ClientReport>> {
    let gate = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let permit = gate.clone().acquire_owned().await.expect("semaphore");
        tasks.push(tokio::spawn(client(
            daemon.http,
            source_of(i, per_ip),
            String::new(),
            shared.clone(),
            stop.clone(),
            Some(permit),
        )));
    }
    // Every permit back: every handshake finished (or failed).
    let _all = gate.acquire_many(concurrency.max(1) as u32).await;
    tasks
}

/// Runs the load generator (or the soak) and prints its report.
pub async fn run(args: LoadgenArgs) -> anyhow::Result<()> {
    let nofile = raise_nofile();
    if args.soak {
        return soak(args).await;
    }
    let (clients, diffs) = (args.clients, args.diffs);
    if nofile > 0 && clients as u64 + 64 > nofile {
        bail!("RLIMIT_NOFILE is {nofile}: not enough for {clients} clients");
    }
    let recording = match &args.recording {
        Some(p) => Some(Recording::parse(
            &std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
        )?),
        None => None,
    };
    println!(
        "loadgen: {clients} clients, {} (machine: {} cores, load {})",
        match &recording {
            Some(r) => format!(
                "recording of {} frames at speed {}",
                r.frames.len(),
                args.speed
            ),
            None => format!("{diffs} synthetic on-course diffs at {}/s", args.rate),
        },
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load()
    );
    let (daemon, _key) = start_daemon(&args, clients + 16).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = daemon.rss_kib();
    println!("daemon pid {} rss_before_kib: {rss_before}", daemon.pid());

    let shared = Arc::new(Shared::new(diffs, 1_000_000));
    let stop = Shutdown::new();
    let t = Instant::now();
    let tasks = open_clients(
        &daemon,
        clients,
        args.connect_concurrency,
        args.per_source_ip,
        &shared,
        &stop,
    )
    .await;
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
    let mut source = TcpStream::connect(daemon.tcp).await.context("TCP source")?;
    source.set_nodelay(true)?;
    let drive_start = Instant::now();
    let daemon_cpu0 = cpu_secs(&daemon.pid().to_string());
    let own_cpu0 = cpu_secs("self");
    let expected_markers;
    match &recording {
        None => {
            expected_markers = diffs * connected as u64;
            let mut every = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            for k in 1..=diffs {
                every.tick().await;
                let frame = oncourse_frame(k);
                shared.written[k as usize].store(shared.now_ns(), Ordering::Release);
                source.write_all(frame.as_bytes()).await?;
            }
        }
        Some(rec) => {
            expected_markers = 0;
            let settings = crate::ingest::replay::ReplaySettings {
                speed: args.speed,
                looped: false,
            };
            crate::ingest::replay::stream_to(&mut source, rec, settings, &stop).await?;
        }
    }
    let drive_secs = drive_start.elapsed().as_secs_f64();
    // Wait for delivery: every marker (synthetic), or 2 s without a new message (recording).
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last_total = u64::MAX;
    let mut quiet_since = Instant::now();
    loop {
        let got = shared.markers_received.load(Ordering::Relaxed);
        if recording.is_none() && got >= expected_markers {
            break;
        }
        if Instant::now() > deadline {
            println!("delivery wait timed out after 60 s");
            break;
        }
        if recording.is_some() {
            let total: u64 = shared
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
    let rss_after = daemon.rss_kib();
    let busy = drive_start.elapsed().as_secs_f64();
    let daemon_cpu1 = cpu_secs(&daemon.pid().to_string());
    let own_cpu1 = cpu_secs("self");
    stop.cancel();
    drop(source);
    let mut reports = Vec::with_capacity(tasks.len());
    for t in tasks {
        reports.push(t.await?);
    }
    drop(daemon);

    // Report.
    let ok: Vec<&ClientReport> = reports.iter().filter(|r| r.connected).collect();
    let failed: Vec<&String> = reports.iter().filter_map(|r| r.error.as_ref()).collect();
    let mut lat: Vec<u32> = ok
        .iter()
        .flat_map(|r| r.latencies_us.iter().copied())
        .collect();
    lat.sort_unstable();
    let messages: u64 = ok.iter().map(|r| r.messages).sum();
    let gaps: u64 = ok.iter().map(|r| r.gaps).sum();
    let resyncs: u64 = ok.iter().map(|r| r.resyncs).sum();
    let markers: u64 = ok.iter().map(|r| r.markers).sum();
    let bytes: u64 = ok.iter().map(|r| r.bytes).sum();
    let closed: usize = ok.iter().filter(|r| r.close_code.is_some()).count();
    let max_seq = ok.iter().map(|r| r.last_seq).max().unwrap_or(0);
    let min_first = ok.iter().map(|r| r.first_seq).min().unwrap_or(0);
    let mut spread: Vec<u32> = (min_first as usize + 1..=max_seq as usize)
        .filter_map(|s| {
            let f = shared.first_rx.get(s)?.load(Ordering::Relaxed);
            let l = shared.last_rx.get(s)?.load(Ordering::Relaxed);
            (f != u64::MAX && l >= f).then(|| ((l - f) / 1000) as u32)
        })
        .collect();
    spread.sort_unstable();
    println!("drive_secs: {drive_secs:.2}");
    println!("clients_connected: {}", ok.len());
    println!("clients_failed: {}", failed.len());
    if let Some(e) = failed.first() {
        println!("first_failure: {e}");
    }
    println!("clients_closed_by_server: {closed}");
    println!("messages_delivered: {messages}");
    println!("seq_range: {min_first}..{max_seq}");
    println!("seq_gaps: {gaps}");
    println!("resyncs: {resyncs}");
    if recording.is_none() {
        println!("markers_expected: {expected_markers}");
        println!("markers_received: {markers}");
        println!("lost: {}", expected_markers.saturating_sub(markers));
        println!(
            "latency_ms: p50 {:.2} p90 {:.2} p99 {:.2} max {:.2} (n={})",
            percentile(&lat, 0.5),
            percentile(&lat, 0.9),
            percentile(&lat, 0.99),
            percentile(&lat, 1.0),
            lat.len()
        );
    }
    println!(
        "fanout_spread_ms (first to last client, per seq): p50 {:.2} p99 {:.2} max {:.2} (n={})",
        percentile(&spread, 0.5),
        percentile(&spread, 0.99),
        percentile(&spread, 1.0),
        spread.len()
    );
    println!("bytes_per_client: {}", bytes / ok.len().max(1) as u64);
    println!(
        "cpu_during_run: {busy:.1} s wall; daemon user {:.1} s sys {:.1} s; loadgen user {:.1} s sys {:.1} s",
        daemon_cpu1.0 - daemon_cpu0.0,
        daemon_cpu1.1 - daemon_cpu0.1,
        own_cpu1.0 - own_cpu0.0,
        own_cpu1.1 - own_cpu0.1
    );
    println!("rss_before_kib: {rss_before}");
    println!("rss_after_kib: {rss_after}");
    println!("load: {}", load());
    Ok(())
}

/// Rewrites the value of every ` name="…"` attribute with `f` (kept when `f` gives `None`).
fn rewrite_attr(s: &str, name: &str, f: impl Fn(&str) -> Option<String>) -> String {
    let pat = format!(" {name}=\"");
    let mut out = String::with_capacity(s.len() + 16);
    let mut rest = s;
    while let Some(at) = rest.find(&pat) {
        let start = at + pat.len();
        let Some(len) = rest[start..].find('"') else {
            break;
        };
        out.push_str(&rest[..start]);
        let value = &rest[start..start + len];
        match f(value) {
            Some(v) => out.push_str(&v),
            None => out.push_str(value),
        }
        rest = &rest[start + len..];
    }
    out.push_str(rest);
    out
}

/// `HH:MM:SS[.mmm]` shifted by `offset_ms` (modulo a day), in the same shape.
fn shift_clock(value: &str, offset_ms: u64) -> Option<String> {
    let ms = crate::c123::frame::parse_time_of_day(value).ok()??;
    let t = (ms as u64 + offset_ms) % 86_400_000;
    let (h, m, s, milli) = (t / 3_600_000, t / 60_000 % 60, t / 1000 % 60, t % 1000);
    Some(if value.contains('.') {
        format!("{h:02}:{m:02}:{s:02}.{milli:03}")
    } else {
        format!("{h:02}:{m:02}:{s:02}")
    })
}

/// A run time `S.cc` plus `add_ms`; whole seconds (the running clock) stay whole.
fn shift_seconds(value: &str, add_ms: i64) -> Option<String> {
    let v = crate::c123::frame::parse_seconds(value).ok()??;
    if v.whole_seconds {
        return None;
    }
    let ms = v.ms + add_ms;
    Some(format!("{}.{:02}", ms / 1000, (ms % 1000) / 10))
}

/// Frame of loop `lap` of the soak: clock times moved on by `lap` recording lengths, and run
/// times by `lap` × 10 ms, so every lap's finishes and result tables are new values.
fn soak_frame(data: &str, lap: u64, lap_ms: u64) -> String {
    let offset = lap * lap_ms;
    let add = (lap % 500) as i64 * 10;
    let mut s = rewrite_attr(data, "dtStart", |v| shift_clock(v, offset));
    s = rewrite_attr(&s, "dtFinish", |v| shift_clock(v, offset));
    s = rewrite_attr(&s, "Time", |v| shift_seconds(v, add));
    s = rewrite_attr(&s, "Total", |v| shift_seconds(v, add));
    if let (Some(a), Some(b)) = (s.find("<TimeOfDay>"), s.find("</TimeOfDay>")) {
        let inner = &s[a + 11..b];
        if let Some(t) = shift_clock(inner, offset) {
            s = format!("{}{t}{}", &s[..a + 11], &s[b..]);
        }
    }
    s
}

/// The soak: an event day compressed, RSS every simulated hour.
async fn soak(args: LoadgenArgs) -> anyhow::Result<()> {
    let rec = match &args.recording {
        Some(p) => Recording::parse(&std::fs::read_to_string(p)?)?,
        None => Recording::parse(crate::daemon::DEMO_RECORDING)?,
    };
    if rec.frames.is_empty() {
        bail!("the recording has no frames");
    }
    let lap_ms = rec.frames.last().map_or(1000, |f| f.ts_ms) + 1000;
    let total_sim_ms = (args.hours * 3_600_000.0) as u64;
    let sample_ms = ((args.sample_minutes * 60_000.0) as u64).max(1);
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
    let (daemon, key) = start_daemon(&args, args.soak_clients + 64).await?;
    let daemon = Arc::new(daemon);
    let stop = Shutdown::new();
    let shared = Arc::new(Shared::new(0, 0));
    let start = Instant::now();
    let wall_of =
        move |sim_ms: u64| start + Duration::from_secs_f64(sim_ms as f64 / 1000.0 / speedup);

    // XML: every simulated minute, the export with one result time changed.
    let xml_task = {
        let (daemon, key, stop) = (daemon.clone(), key.clone(), stop.clone());
        tokio::spawn(async move {
            let xml = String::from_utf8_lossy(crate::daemon::DEMO_XML).into_owned();
            let (mut ok, mut failed, mut worst) = (0u64, 0u64, Duration::ZERO);
            let mut minute = 1u64;
            while minute * 60_000 < total_sim_ms {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep_until(wall_of(minute * 60_000).into()) => {}
                }
                let changed = xml.replacen(
                    "<Time>76990</Time>",
                    &format!("<Time>{}</Time>", 76_000 + minute % 900),
                    1,
                );
                let t = Instant::now();
                match import_xml(&daemon, &key, changed.as_bytes()).await {
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
    };

    // Clients: `soak_clients` at any time, each living 1-10 s.
    let churn_task = {
        let (daemon, stop, shared) = (daemon.clone(), stop.clone(), shared.clone());
        let n = args.soak_clients;
        tokio::spawn(async move {
            let mut set = tokio::task::JoinSet::new();
            let mut rng = 0x2545_f491_4f6c_dd1du64;
            let mut opened = 0u64;
            let mut totals = ClientReport::default();
            let mut failed = 0u64;
            let mut absorb = |r: ClientReport, totals: &mut ClientReport| {
                if r.connected {
                    totals.messages += r.messages;
                    totals.gaps += r.gaps;
                    totals.bytes += r.bytes;
                } else {
                    failed += 1;
                }
            };
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
                        client(http, None, String::new(), shared, own, None).await
                    });
                    opened += 1;
                }
                tokio::select! {
                    _ = stop.cancelled() => break,
                    r = set.join_next() => if let Some(Ok(r)) = r { absorb(r, &mut totals) },
                }
            }
            while let Some(r) = set.join_next().await {
                if let Ok(r) = r {
                    absorb(r, &mut totals);
                }
            }
            (opened, failed, totals)
        })
    };

    // The driver, and the samples.
    let mut source = TcpStream::connect(daemon.tcp).await?;
    source.set_nodelay(true)?;
    let mut next_sample = sample_ms;
    let mut samples: Vec<(u64, u64)> = Vec::new();
    let mut frames = 0u64;
    let mut lap = 0u64;
    let mut sim_ms;
    println!("sim_minutes  wall_s  rss_kib  clients  frames  load");
    'day: loop {
        for f in &rec.frames {
            sim_ms = lap * lap_ms + f.ts_ms;
            while sim_ms >= next_sample {
                let rss = daemon.rss_kib();
                samples.push((next_sample, rss));
                println!(
                    "{:>11.0}  {:>6.1}  {rss:>7}  {:>7}  {frames:>6}  {}",
                    next_sample as f64 / 60_000.0,
                    start.elapsed().as_secs_f64(),
                    shared.connected.load(Ordering::Relaxed),
                    load()
                );
                next_sample += sample_ms;
            }
            if sim_ms >= total_sim_ms {
                break 'day;
            }
            tokio::time::sleep_until(wall_of(sim_ms).into()).await;
            let data = soak_frame(&f.data, lap, lap_ms);
            source.write_all(data.as_bytes()).await?;
            source.write_all(b"|").await?;
            frames += 1;
        }
        lap += 1;
    }
    let wall = start.elapsed().as_secs_f64();
    stop.cancel();
    let (imports, import_failures, worst) = xml_task.await?;
    let (opened, failed, totals) = churn_task.await?;
    let rss_end = daemon.rss_kib();
    drop(source);
    println!("simulated_ms: {sim_ms}");
    println!("wall_s: {wall:.1}");
    println!("laps: {lap}");
    println!("frames: {frames}");
    println!(
        "xml_imports: {imports} (failed {import_failures}, slowest {:.0} ms)",
        worst.as_secs_f64() * 1000.0
    );
    println!("clients_opened: {opened} (failed {failed})");
    println!("messages_delivered: {}", totals.messages);
    println!("seq_gaps: {}", totals.gaps);
    println!("rss_end_kib: {rss_end}");
    if let (Some(first), Some(last)) = (samples.first(), samples.last()) {
        let ratio = last.1 as f64 / first.1.max(1) as f64;
        println!(
            "rss_first_sample_kib: {} rss_last_sample_kib: {} ratio: {ratio:.3} ({})",
            first.1,
            last.1,
            if (ratio - 1.0).abs() <= 0.10 {
                "within 10 %"
            } else {
                "NOT within 10 %"
            }
        );
    }
    println!("load: {}", load());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soak_frames_move_clock_and_run_times() {
        let f = r#"<Canoe123><OnCourse><Result Type="C" dtStart="10:37:35.000" dtFinish="" /><Result Type="T" Time="42   " Total="96.12" /></OnCourse></Canoe123>"#;
        let s = soak_frame(f, 2, 60_000);
        assert!(s.contains(r#"dtStart="10:39:35.000""#), "{s}");
        assert!(s.contains(r#"dtFinish="""#), "{s}");
        assert!(s.contains(r#"Time="42   ""#), "running clock kept: {s}");
        assert!(s.contains(r#"Total="96.14""#), "{s}");
        let t = soak_frame(
            "<Canoe123><TimeOfDay>23:59:30</TimeOfDay></Canoe123>",
            1,
            60_000,
        );
        assert_eq!(t, "<Canoe123><TimeOfDay>00:00:30</TimeOfDay></Canoe123>");
    }

    #[test]
    fn markers_round_trip_through_the_frame_parser() {
        let frame = oncourse_frame(7);
        let msgs = crate::c123::frame::parse_frame(frame.trim_end_matches('|')).expect("parses");
        let crate::c123::frame::Message::OnCourse(oc) = &msgs[0] else {
            panic!("{msgs:?}");
        };
        let rider = oc.rider.as_ref().expect("rider");
        assert_eq!(rider.time_ms, Some(((MARKER_BASE + 7) * 10) as i64));
        assert_eq!(
            number_after(br#"{"data":{},"seq":42,"type":"diff"}"#, b"\"seq\":"),
            Some(42)
        );
        assert_eq!(source_of(0, PER_SOURCE_IP), None);
        assert_eq!(
            source_of(PER_SOURCE_IP, PER_SOURCE_IP),
            Some(Ipv4Addr::new(127, 0, 0, 2))
        );
        assert_eq!(source_of(250 * 7, 7), Some(Ipv4Addr::new(127, 0, 1, 1)));
    }
}
