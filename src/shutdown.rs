//! The one shutdown signal. Every long-running task holds a clone and stops when it fires.
//!
//! SIGTERM/SIGINT cancel the token in `main`; tests cancel it directly.

pub use tokio_util::sync::CancellationToken as Shutdown;

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The next connection on `listener`, or `None` once `shutdown` fires. Accept errors (out of
/// file descriptors and the like) are logged and retried after a short pause instead of
/// spinning.
pub async fn accept(
    listener: &tokio::net::TcpListener,
    shutdown: &Shutdown,
) -> Option<(tokio::net::TcpStream, std::net::SocketAddr)> {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return None,
            a = listener.accept() => a,
        };
        match accepted {
            Ok(pair) => return Some(pair),
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::select! {
                    _ = shutdown.cancelled() => return None,
                    _ = tokio::time::sleep(std::time::Duration::from_millis(50)) => {}
                }
            }
        }
    }
}
