//! Plays a `.tcp.jsonl` recording with its original timing (or faster), either as a fake
//! Canoe123 that clients connect to, or pushed to a daemon's `--tcp-listen` port.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use crate::c123::recording::Recording;
use crate::shutdown::Shutdown;

#[derive(Debug, Clone, Copy)]
pub struct ReplaySettings {
    /// 1.0 = real time, 10.0 = ten times faster; 0 or less = as fast as possible.
    pub speed: f64,
    /// Start again from the beginning at the end.
    pub looped: bool,
}

/// Writes the recording to one connection, frame by frame (`data` + `|`).
pub async fn stream_to(
    stream: &mut TcpStream,
    recording: &Recording,
    settings: ReplaySettings,
    shutdown: &Shutdown,
) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    loop {
        let start = tokio::time::Instant::now();
        for frame in &recording.frames {
            if settings.speed > 0.0 {
                let at =
                    start + Duration::from_secs_f64(frame.ts_ms as f64 / 1000.0 / settings.speed);
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep_until(at) => {}
                }
            } else if shutdown.is_cancelled() {
                return Ok(());
            }
            stream.write_all(frame.data.as_bytes()).await?;
            stream.write_all(b"|").await?;
        }
        if !settings.looped {
            return stream.flush().await;
        }
    }
}

/// Acts as Canoe123: every client that connects gets the recording from the start.
pub async fn serve(
    listener: TcpListener,
    recording: Recording,
    settings: ReplaySettings,
    shutdown: Shutdown,
) {
    let recording = std::sync::Arc::new(recording);
    let mut clients = tokio::task::JoinSet::new();
    loop {
        let Some((mut stream, peer)) = crate::shutdown::accept(&listener, &shutdown).await else {
            break;
        };
        let (recording, shutdown) = (recording.clone(), shutdown.clone());
        clients.spawn(async move {
            tracing::info!(%peer, "replay: client connected");
            if let Err(e) = stream_to(&mut stream, &recording, settings, &shutdown).await {
                tracing::info!(%peer, error = %e, "replay: client gone");
                return;
            }
            // Canoe123 never hangs up on its own: keep the connection open (silent) until
            // the client leaves or we stop.
            let mut buf = [0u8; 1024];
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    r = tokio::io::AsyncReadExt::read(&mut stream, &mut buf) => {
                        if matches!(r, Ok(0) | Err(_)) { return; }
                    }
                }
            }
        });
        while clients.try_join_next().is_some() {}
    }
    clients.shutdown().await;
}

/// Pushes the recording into a daemon listening for TCP sources.
pub async fn push_to(
    addr: SocketAddr,
    recording: &Recording,
    settings: ReplaySettings,
    shutdown: &Shutdown,
) -> std::io::Result<()> {
    let mut stream = TcpStream::connect(addr).await?;
    stream_to(&mut stream, recording, settings, shutdown).await
}
