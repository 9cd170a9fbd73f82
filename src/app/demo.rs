//! `demo`: the bundled real event (export and TCP recording) on a temporary database, played
//! by a fake Canoe123 on a loopback port.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::{App, AppError, RunningApp};
use crate::c123::recording::Recording;
use crate::ingest::replay::ReplaySettings;
use crate::ingest::tcp::TcpSettings;
use crate::merge::{Input, MergeHandle};
use crate::settings::Settings;
use crate::store::Synchronous;

/// The real event bundled into the binary, so `demo` works from any folder.
pub const DEMO_XML: &[u8] = include_bytes!("../../fixtures/jarni-2024.xml");
/// The real TCP recording of the same event.
pub const DEMO_RECORDING: &str = include_str!("../../fixtures/jarni-2024.tcp.jsonl");
pub const DEMO_EVENT: &str = "jarni-2024";

/// What `demo` runs with (the command line's `demo` flags).
#[derive(Debug, Clone)]
pub struct DemoSettings {
    pub listen: SocketAddr,
    /// Playback speed of the bundled recording (1 = real time).
    pub speed: f64,
    /// Database file; `None`: a new temporary one, removed at exit.
    pub db: Option<PathBuf>,
}

/// `demo`: the bundled real event on a temporary database, until SIGTERM/SIGINT.
pub async fn demo(demo: DemoSettings) -> Result<(), AppError> {
    let dir = std::env::temp_dir().join(format!("c123-live-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|source| AppError::DemoFolder {
        path: dir.clone(),
        source,
    })?;
    let mut settings = Settings {
        db: demo.db.clone().unwrap_or_else(|| dir.join("demo.db")),
        synchronous: Synchronous::Off,
        listen: demo.listen,
        event: Some(DEMO_EVENT.into()),
        ..Settings::default()
    };
    settings.http.dev = true;
    let mut running = App::start(settings).await?;
    prepare_demo_event(&running.merge).await?;
    // Play only once the event exists, so the first frames are not lost.
    play_demo_recording(
        &mut running,
        ReplaySettings {
            speed: demo.speed,
            looped: true,
        },
    )
    .await?;
    println!(
        "c123-live demo: open http://{}/ (Ctrl-C to stop)",
        running.local_addr
    );
    crate::shutdown::signal().await;
    running.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Plays the bundled recording as a fake Canoe123 on a loopback port, and connects the
/// daemon to it exactly as it connects to the real one.
pub async fn play_demo_recording(
    running: &mut RunningApp,
    replay: ReplaySettings,
) -> Result<(), AppError> {
    let recording = Recording::parse(DEMO_RECORDING)?;
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let listen_error = |source| AppError::Listen {
        addr: loopback,
        source,
    };
    let fake = tokio::net::TcpListener::bind(loopback)
        .await
        .map_err(listen_error)?;
    let fake_addr = fake.local_addr().map_err(listen_error)?;
    running.add_task(tokio::spawn(crate::ingest::replay::serve(
        fake,
        recording,
        replay,
        running.shutdown().clone(),
    )));
    running.connect_source(
        fake_addr.to_string(),
        TcpSettings::new(Some(DEMO_EVENT.into())),
    );
    Ok(())
}

/// Imports the bundled export and makes the event public and running.
pub async fn prepare_demo_event(merge: &MergeHandle) -> Result<(), AppError> {
    use crate::merge::{AdminCommand, XmlOrigin, XmlTarget};
    use crate::model::EventStatus;
    crate::ingest::import_bytes(
        merge,
        DEMO_XML.to_vec(),
        XmlTarget::ByExport {
            event_id: Some(DEMO_EVENT.into()),
        },
        XmlOrigin::Cli,
    )
    .await?;
    for to in [EventStatus::Startlist, EventStatus::Running] {
        let current = merge.snapshot().event(DEMO_EVENT).map(|e| e.header.status);
        if current.is_some_and(|s| s.can_transition_to(to)) {
            merge
                .send(Input::Admin(AdminCommand::Transition {
                    event_id: DEMO_EVENT.into(),
                    to,
                }))
                .await?;
        }
    }
    Ok(())
}
