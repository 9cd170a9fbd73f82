//! One TCP session: read `|` frames, parse them, turn them into inputs and deliver them to the
//! merge loop in order, until the peer closes, goes silent, or the daemon stops.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::codec::FramedRead;

use super::{now_ms, update, SharedSourceStatus, SourceState, TcpSettings};
use crate::c123::codec::{C123Codec, Frame};
use crate::c123::frame::{parse_frame, Message};
use crate::ingest::live::LiveStream;
use crate::merge::{MergeError, MergeHandle};
use crate::shutdown::Shutdown;

#[derive(Debug)]
pub(super) enum SessionEnd {
    Closed,
    Silent(Duration),
    Codec(String),
    Shutdown,
    MergeStopped,
}

impl std::fmt::Display for SessionEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SessionEnd::Closed => write!(f, "closed by the peer"),
            SessionEnd::Silent(d) => write!(f, "nothing received for {} s", d.as_secs()),
            SessionEnd::Codec(e) => write!(f, "stream error: {e}"),
            SessionEnd::Shutdown => write!(f, "shutting down"),
            SessionEnd::MergeStopped => write!(f, "merge loop stopped"),
        }
    }
}

/// A reader that remembers when it last received bytes: the silence deadline counts from
/// there, so only the peer can move it (not the session's own timer).
struct LastReceived<R> {
    inner: R,
    at: tokio::time::Instant,
}

impl<R: AsyncRead + Unpin> AsyncRead for LastReceived<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.at = tokio::time::Instant::now();
        }
        polled
    }
}

pub(super) async fn run_session(
    stream: TcpStream,
    settings: &TcpSettings,
    merge: &MergeHandle,
    status: &SharedSourceStatus,
    shutdown: &Shutdown,
) -> SessionEnd {
    let mut frames = open_session(stream, settings, status);
    let mut live = LiveStream::new(settings.event_id.clone(), settings.auto_status);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_error_log: Option<Instant> = None;
    let end = loop {
        // Recomputed every turn from the last received byte; the tick below must not
        // restart it (it once did, and a silent peer was never dropped).
        let silent_at = frames.get_ref().at + settings.silence;
        let next = tokio::select! {
            // Reading before the deadline: bytes that waited in the socket while a commit
            // was slow count as received, not as silence.
            biased;
            _ = shutdown.cancelled() => break SessionEnd::Shutdown,
            _ = tick.tick() => {
                let inputs = live.on_tick(now_ms(), &merge.snapshot());
                if deliver(merge, inputs).await.is_err() {
                    break SessionEnd::MergeStopped;
                }
                continue;
            }
            next = frames.next() => Some(next),
            _ = tokio::time::sleep_until(silent_at) => None,
        };
        let Some(next) = next else {
            if frames.get_ref().at + settings.silence <= tokio::time::Instant::now() {
                break SessionEnd::Silent(settings.silence);
            }
            continue; // bytes arrived meanwhile: a later deadline
        };
        let frame = match next {
            None => break SessionEnd::Closed,
            Some(Err(e)) => break SessionEnd::Codec(e.to_string()),
            Some(Ok(frame)) => frame,
        };
        let messages = match parse(frame) {
            Ok(m) => m,
            Err(e) => {
                update(status, |s| {
                    s.parse_errors += 1;
                    s.last_frame_at = Some(Instant::now());
                });
                // Bounded log rate: a source sending garbage must not flood the journal.
                if last_error_log.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                    tracing::warn!(error = %e, "unparseable Canoe123 frame (more are counted, not logged, for 10 s)");
                    last_error_log = Some(Instant::now());
                }
                continue;
            }
        };
        let inputs = on_messages(&messages, &mut live, merge, status);
        if deliver(merge, inputs).await.is_err() {
            break SessionEnd::MergeStopped;
        }
    };
    update(status, |s| {
        s.peer = None;
        s.connected_since = None;
    });
    end
}

/// Socket options, the status of a new connection, and the framed reader over it.
fn open_session(
    stream: TcpStream,
    settings: &TcpSettings,
    status: &SharedSourceStatus,
) -> FramedRead<LastReceived<TcpStream>, C123Codec> {
    let _ = stream.set_nodelay(true);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(10))
        .with_interval(Duration::from_secs(5));
    let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive);
    let peer = stream.peer_addr().map(|a| a.to_string()).ok();
    update(status, |s| {
        s.state = SourceState::Connected;
        s.peer = peer;
        s.connected_since = Some(crate::time::now_iso());
        s.connections += 1;
    });
    let received = LastReceived {
        inner: stream,
        at: tokio::time::Instant::now(),
    };
    FramedRead::new(received, C123Codec::with_max_frame(settings.max_frame))
}

/// One frame's messages, or why it cannot be read.
fn parse(frame: Frame) -> Result<Vec<Message>, String> {
    match frame {
        Frame::Text(text) => parse_frame(&text).map_err(|e| e.to_string()),
        Frame::InvalidUtf8 { len, valid_up_to } => Err(format!(
            "frame of {len} bytes is not UTF-8 (from byte {valid_up_to})"
        )),
    }
}

/// The inputs of one frame's messages, with the frame counted in the status.
fn on_messages(
    messages: &[Message],
    live: &mut LiveStream,
    merge: &MergeHandle,
    status: &SharedSourceStatus,
) -> Vec<crate::merge::Input> {
    let arrived = Instant::now();
    let snapshot = merge.snapshot();
    let now = now_ms();
    let mut inputs = Vec::new();
    for m in messages {
        inputs.extend(live.on_message(m, now, &snapshot));
    }
    // One lock per frame, taken before waiting for the commit so the status shows
    // arrivals even while the database is slow.
    update(status, |s| {
        s.frames_total += 1;
        s.last_frame_at = Some(arrived);
        for m in messages {
            if let Message::TimeOfDay(t) = m {
                if let Some(ms) = t.ms_since_midnight {
                    s.time_of_day = Some((ms, arrived));
                }
            }
            match s.frames_by_type.get_mut(m.kind()) {
                Some(n) => *n += 1,
                None => {
                    s.frames_by_type.insert(m.kind().to_owned(), 1);
                }
            }
        }
        s.unused = live.counters.clone();
    });
    inputs
}

/// Sends inputs in order, each after the previous committed. Refusals (an official event,
/// an unknown event) are expected and only logged at debug level.
async fn deliver(merge: &MergeHandle, inputs: Vec<crate::merge::Input>) -> Result<(), ()> {
    for input in inputs {
        match merge.send(input).await {
            Ok(_) => {}
            Err(MergeError::Stopped) => return Err(()),
            Err(e) => tracing::debug!(error = %e, "TCP input refused"),
        }
    }
    Ok(())
}
