//! The daemon under test: `c123-live serve --dev` as a child process on a temporary database,
//! with one event created from the bundled real export and opened (`running`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::args::Args;
use crate::error::{Error, IoContext, Result};
use crate::http::request;
use crate::procfs;

/// The event the load generator creates.
pub const EVENT: &str = "loadgen";
/// The daemon's binary name, looked for next to this executable by default.
const DAEMON_BIN: &str = "c123-live";

/// The running daemon, stopped (SIGTERM, then SIGKILL after 10 s) and its temporary
/// directory removed when dropped.
pub struct Daemon {
    child: Child,
    dir: PathBuf,
    /// Its HTTP/WebSocket address.
    pub http: SocketAddr,
    /// Its `--tcp-listen` address (the Canoe123 source).
    pub tcp: SocketAddr,
}

impl Daemon {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn rss_kib(&self) -> u64 {
        procfs::rss_kib(self.pid())
    }

    /// Starts the daemon, waits for `/healthz`, creates the event from the bundled export and
    /// opens it. Returns the daemon and the event's API key. `max_clients` is its WebSocket
    /// cap, per event and in total.
    pub async fn start(args: &Args, max_clients: usize) -> Result<(Daemon, String)> {
        let dir = std::env::temp_dir().join(format!("c123-loadgen-{}", std::process::id()));
        std::fs::create_dir_all(&dir).io(format!("creating {}", dir.display()))?;
        let http: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
        let tcp: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
        let exe = match &args.daemon {
            Some(p) => p.clone(),
            None => default_daemon()?,
        };
        let child = Command::new(&exe)
            .args(["serve", "--dev", "--event", EVENT, "--synchronous"])
            .arg(&args.synchronous)
            .arg("--db")
            .arg(dir.join("loadgen.db"))
            .args(["--listen", &http.to_string()])
            .args(["--tcp-listen", &tcp.to_string()])
            .args(["--ws-max-per-event", &max_clients.to_string()])
            .args(["--ws-max-total", &max_clients.to_string()])
            // Every client comes from 127.0.0.0/8, up to `--per-source-ip` (25 000) from one
            // address: the daemon's per-address caps (1000 sockets, 1000 WebSockets) would
            // refuse all but the first 1000. 0 = no cap; the global caps above still hold.
            .args(["--max-connections-per-ip", "0"])
            .args(["--max-ws-per-ip", "0"])
            .env(
                "RUST_LOG",
                std::env::var("LOADGEN_DAEMON_LOG").unwrap_or("warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .io(format!("starting the daemon {}", exe.display()))?;
        let mut daemon = Daemon {
            child,
            dir,
            http,
            tcp,
        };
        daemon.wait_healthy().await?;
        let key = daemon.create_event().await?;
        Ok((daemon, key))
    }

    async fn wait_healthy(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = request(self.http, "GET", "/healthz", &[], b"").await {
                if r.status == 200 {
                    return Ok(());
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(Error::Daemon(format!("exited at startup: {status}")));
            }
            if Instant::now() > deadline {
                return Err(Error::Daemon("not up after 20 s".into()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Creates [`EVENT`], imports the bundled export and moves it to `running`; returns the
    /// event's API key.
    async fn create_event(&self) -> Result<String> {
        let json = [("Content-Type", "application/json")];
        let body = format!(r#"{{"eventId":"{EVENT}","mainTitle":"loadgen"}}"#);
        let created = request(
            self.http,
            "POST",
            "/api/v1/admin/events",
            &json,
            body.as_bytes(),
        )
        .await?
        .expect(201, "create event")?;
        let created: serde_json::Value =
            serde_json::from_str(&created.body).map_err(|source| Error::Json {
                what: "create event".into(),
                source,
            })?;
        let key = created["apiKey"]
            .as_str()
            .ok_or_else(|| Error::Daemon("no apiKey in the create-event answer".into()))?
            .to_owned();
        self.import_xml(&key, c123_live::app::DEMO_XML).await?;
        for to in ["startlist", "running"] {
            request(
                self.http,
                "PATCH",
                &format!("/api/v1/admin/events/{EVENT}/status"),
                &[("Content-Type", "application/json"), ("X-API-Key", &key)],
                format!(r#"{{"status":"{to}"}}"#).as_bytes(),
            )
            .await?
            .expect(200, &format!("status {to}"))?;
        }
        Ok(key)
    }

    /// `POST /api/v1/ingest/xml` with the event's key.
    pub async fn import_xml(&self, key: &str, xml: &[u8]) -> Result<()> {
        request(
            self.http,
            "POST",
            "/api/v1/ingest/xml",
            &[("Content-Type", "application/xml"), ("X-API-Key", key)],
            xml,
        )
        .await?
        .expect(200, "XML import")?;
        Ok(())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        procfs::terminate(self.child.id());
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

/// `c123-live` in this executable's directory: a workspace build puts both binaries in
/// `target/<profile>/`.
fn default_daemon() -> Result<PathBuf> {
    let own = std::env::current_exe().io("locating this executable")?;
    let path = own.with_file_name(format!("{DAEMON_BIN}{}", std::env::consts::EXE_SUFFIX));
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::Setup(format!(
            "no daemon binary at {} (build it with `cargo build --release`, or pass --daemon PATH)",
            path.display()
        )))
    }
}

/// A port that was free a moment ago (the daemon binds it next).
fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").io("finding a free port")?;
    Ok(l.local_addr().io("finding a free port")?.port())
}
