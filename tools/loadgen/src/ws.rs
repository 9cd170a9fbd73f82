//! A lean WebSocket client (the tool runs up to 20 000 in one process): handshake by hand,
//! a frame reader over one buffer, pings answered, and per message only the envelope parsed
//! ([`crate::envelope`]). Idle, a client holds a few KiB.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;

use crate::daemon::EVENT;
use crate::envelope::Envelope;
use crate::report::{ClientReport, Shared};

/// A fragmented message longer than this ends the connection (a `full` is ~16 KB).
const MAX_MESSAGE: usize = 16 << 20;

/// One client: connects (from `source`, if given), reads until `stop` or until the server
/// closes, and reports what it received. `connected` is released once the handshake is over.
pub async fn client(
    http: SocketAddr,
    source: Option<Ipv4Addr>,
    shared: Arc<Shared>,
    stop: CancellationToken,
    connected: Option<OwnedSemaphorePermit>,
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
    let mut reader = FrameReader::default();
    match handshake(http, &mut rd, &mut wr, &mut reader.buf, &stop).await {
        Ok(true) => {}
        Ok(false) => return rep,
        Err(e) => {
            rep.error = Some(e);
            return rep;
        }
    }
    rep.connected = true;
    shared.connected.fetch_add(1, Ordering::Relaxed);
    drop(connected);
    read_loop(&mut rd, &mut wr, &mut reader, &shared, &stop, &mut rep).await;
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

/// Sends the upgrade request and reads the `101` head; what follows it stays in `buf`.
/// `Ok(false)`: stopped before the answer.
async fn handshake(
    http: SocketAddr,
    rd: &mut OwnedReadHalf,
    wr: &mut OwnedWriteHalf,
    buf: &mut Vec<u8>,
    stop: &CancellationToken,
) -> Result<bool, String> {
    let req = format!(
        "GET /api/v1/events/{EVENT}/ws HTTP/1.1\r\nHost: {http}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    wr.write_all(req.as_bytes())
        .await
        .map_err(|e| format!("handshake write: {e}"))?;
    let mut chunk = [0u8; 4096];
    loop {
        let n = tokio::select! {
            _ = stop.cancelled() => return Ok(false),
            r = tokio::time::timeout(Duration::from_secs(30), rd.read(&mut chunk)) => match r {
                Ok(Ok(n)) if n > 0 => n,
                Ok(Ok(_)) => return Err("closed during handshake".into()),
                Ok(Err(e)) => return Err(format!("handshake read: {e}")),
                Err(_) => return Err("handshake timed out".into()),
            },
        };
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = find(buf, b"\r\n\r\n") {
            if !buf.starts_with(b"HTTP/1.1 101") {
                let head = String::from_utf8_lossy(&buf[..end]);
                return Err(format!("refused: {}", head.lines().next().unwrap_or("")));
            }
            buf.drain(..end + 4);
            return Ok(true);
        }
    }
}

async fn read_loop(
    rd: &mut OwnedReadHalf,
    wr: &mut OwnedWriteHalf,
    reader: &mut FrameReader,
    shared: &Shared,
    stop: &CancellationToken,
    rep: &mut ClientReport,
) {
    let mut chunk = [0u8; 4096];
    loop {
        let now = shared.now_ns();
        let closed = reader.drain(|text| match Envelope::parse(text) {
            Ok(env) => {
                if env.oncourse_times().next().is_some() {
                    shared.offer_template(text);
                }
                rep.on_message(&env, now, shared)
            }
            Err(_) => rep.unparsed += 1,
        });
        match closed {
            Ok(Some(code)) => {
                rep.close_code = code;
                return;
            }
            Ok(None) => {}
            Err(e) => {
                rep.error = Some(e.into());
                return;
            }
        }
        if !reader.pongs.is_empty() {
            if wr.write_all(&reader.pongs).await.is_err() {
                return;
            }
            reader.pongs.clear();
        }
        let n = tokio::select! {
            _ = stop.cancelled() => return,
            r = rd.read(&mut chunk) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
        };
        rep.bytes += n as u64;
        reader.buf.extend_from_slice(&chunk[..n]);
    }
}

/// Incoming bytes, the fragments of a message being assembled, and pongs to send.
#[derive(Default)]
struct FrameReader {
    buf: Vec<u8>,
    /// A fragmented message (a `full`): freed after use, so an idle client stays small.
    message: Vec<u8>,
    pongs: Vec<u8>,
}

impl FrameReader {
    /// Consumes every complete frame in `buf`, handing each complete text message to
    /// `on_text`. `Ok(Some(code))`: the server closed (with a code, if it gave one).
    fn drain(
        &mut self,
        mut on_text: impl FnMut(&[u8]),
    ) -> Result<Option<Option<u16>>, &'static str> {
        let mut pos = 0;
        let mut closed = None;
        while let Some((op, fin, start, end)) = frame_at(&self.buf[pos..]) {
            let payload = &self.buf[pos + start..pos + end];
            pos += end;
            match op {
                1 if fin => on_text(payload),
                1 | 0 => {
                    if op == 1 {
                        self.message.clear();
                    }
                    if self.message.len() + payload.len() > MAX_MESSAGE {
                        return Err("message too long");
                    }
                    self.message.extend_from_slice(payload);
                    if fin {
                        on_text(&self.message);
                        self.message = Vec::new();
                    }
                }
                8 => {
                    closed = Some(
                        (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]])),
                    );
                    break;
                }
                9 if payload.len() <= 125 => {
                    // Pong, masked with a zero key (clients must mask).
                    self.pongs
                        .extend_from_slice(&[0x8a, 0x80 | payload.len() as u8, 0, 0, 0, 0]);
                    self.pongs.extend_from_slice(payload);
                }
                _ => {} // pong, binary, oversized ping: nothing to do
            }
        }
        self.buf.drain(..pos);
        if self.buf.capacity() > 64 * 1024 && self.buf.len() < 4096 {
            self.buf.shrink_to(8192);
        }
        Ok(closed)
    }
}

/// The frame at the start of `b`, if complete: (opcode, FIN, payload start, frame end).
fn frame_at(b: &[u8]) -> Option<(u8, bool, usize, usize)> {
    let (b0, b1) = (*b.first()?, *b.get(1)?);
    let (len, mut hdr): (usize, usize) = match b1 & 0x7f {
        126 => (u16::from_be_bytes([*b.get(2)?, *b.get(3)?]) as usize, 4),
        127 => {
            let bytes: [u8; 8] = b.get(2..10)?.try_into().ok()?;
            (usize::try_from(u64::from_be_bytes(bytes)).ok()?, 10)
        }
        n => (n as usize, 2),
    };
    if b1 & 0x80 != 0 {
        hdr += 4; // masked (servers do not mask; tolerated, the key is not applied)
    }
    let end = hdr.checked_add(len)?;
    (b.len() >= end).then_some((b0 & 0x0f, b0 & 0x80 != 0, hdr, end))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(op: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![op | if fin { 0x80 } else { 0 }];
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

    #[test]
    fn fragmented_messages_are_assembled_and_pings_answered() {
        let full = format!(
            r#"{{"data":{{"x":"{}"}},"seq":3,"type":"full"}}"#,
            "y".repeat(70_000)
        );
        let (a, b) = full.as_bytes().split_at(30_000);
        let mut r = FrameReader::default();
        for f in [
            frame(1, false, a),
            frame(9, true, b"hi"),
            frame(0, true, b),
            frame(1, true, br#"{"type":"diff","seq":4,"data":{}}"#),
        ] {
            r.buf.extend_from_slice(&f);
        }
        let last = r.buf.len() - 1;
        let tail = r.buf.split_off(last); // the last frame arrives one byte late
        let mut got = Vec::new();
        assert_eq!(r.drain(|t| got.push(t.to_vec())), Ok(None));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0], full.as_bytes());
        assert_eq!(r.pongs, [0x8a, 0x82, 0, 0, 0, 0, b'h', b'i']);
        assert_eq!(r.message.capacity(), 0, "assembly buffer freed");
        r.buf.extend_from_slice(&tail);
        r.buf.extend_from_slice(&frame(8, true, &[0x03, 0xe8]));
        got.clear();
        assert_eq!(r.drain(|t| got.push(t.to_vec())), Ok(Some(Some(1000))));
        assert_eq!(got, [br#"{"type":"diff","seq":4,"data":{}}"#.to_vec()]);
        assert!(r.buf.is_empty());
    }
}
