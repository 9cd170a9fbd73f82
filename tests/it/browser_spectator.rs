//! The spectator page in a real headless Chromium, against the real pieces: SQLite store,
//! merge loop, WebSocket hub, HTTP server, and the bundled TCP recording replayed over a real
//! socket. Skips (prints why, passes) when chromium or chromedriver is not installed
//! (Debian: `apt-get install -y chromium chromium-driver`), except under `CI` (set by
//! `.ci/run`'s environment), where that is a failure.
//!
//! Scenario: the page loads (first-view bytes measured, < 100 KB); the replay starts; the
//! on-course rider from the recording appears; bib 9 finishes K1M_ST_BR2_6 in 51.20 with 52 s
//! of penalties and the row changes and is highlighted without a reload; a screenshot is
//! written to `target/artifacts/spectator.png`; the daemon is stopped and started again on
//! the same port and database under the open page, which reconnects and shows the same data.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use c123_live::app::{App, RunningApp};
use c123_live::ingest::replay::ReplaySettings;
use c123_live::merge::MergeHandle;
use c123_live::settings::Settings;
use c123_live::store::Synchronous;

use crate::support::browser::{browser, browsers, js, set_viewport, start_chromedriver, wait_for};

const EVENT: &str = c123_live::app::DEMO_EVENT;
const RACE: &str = "K1M_ST_BR2_6";
/// Replay speed: bib 9 finishes about 67 s into the recording, so about 13 s here.
const SPEED: f64 = 5.0;

/// The daemon as `serve` wires it, on a given database and address.
struct Daemon {
    addr: SocketAddr,
    merge: MergeHandle,
    running: RunningApp,
}

async fn start_daemon(db: &Path, addr: SocketAddr) -> Daemon {
    let mut settings = Settings {
        db: db.to_owned(),
        synchronous: Synchronous::Normal,
        listen: addr,
        ..Settings::default()
    };
    settings.http.dev = true;
    settings.http.shutdown_grace = Duration::from_secs(1);
    let running = App::start(settings).await.expect("daemon starts");
    Daemon {
        addr: running.local_addr,
        merge: running.merge.clone(),
        running,
    }
}

impl Daemon {
    async fn stop(self) {
        self.running.stop().await;
    }

    /// Replays the bundled recording as a fake Canoe123 and connects to it.
    async fn replay(&mut self) {
        c123_live::app::play_demo_recording(
            &mut self.running,
            ReplaySettings {
                speed: SPEED,
                looped: false,
            },
        )
        .await
        .expect("replay");
    }
}

const ROW9: &str = r#"const tr = document.querySelector('#view tr[data-bib="9"]');
return tr ? { text: tr.innerText, hi: tr.classList.contains('hi') } : null;"#;
const CONN: &str = "return document.getElementById('conn').dataset.state";

fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("artifacts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spectator_page_follows_the_demo_in_chromium() {
    let Some((chrome, chromedriver)) = browsers("browser_spectator") else {
        return;
    };

    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("live.db");
    let mut daemon = start_daemon(&db, "127.0.0.1:0".parse().unwrap()).await;
    let addr = daemon.addr;
    c123_live::app::prepare_demo_event(&daemon.merge)
        .await
        .expect("demo event");

    let (_driver, driver_url) = start_chromedriver(&chromedriver).await;
    let c = browser(&driver_url, &chrome, &dir.path().join("profile"), "en-US").await;
    set_viewport(&c, 420, 1100).await;
    let result = async {
        // First view: the page, then the race the test follows (as a shared link would).
        c.goto(&format!("http://{addr}/#e={EVENT}&r={RACE}"))
            .await
            .expect("goto");
        wait_for(&c, "the results table", Duration::from_secs(20), ROW9, |v| {
            !v.is_null()
        })
        .await;
        wait_for(&c, "the live connection", Duration::from_secs(20), CONN, |v| {
            v == "live"
        })
        .await;
        let before = js(&c, ROW9).await;
        let before = before["text"].as_str().unwrap_or_default().to_owned();
        assert!(
            before.contains("90.35"),
            "the export's older run first: {before}"
        );
        let bytes = js(
            &c,
            r#"const es = [...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')];
               return { transfer: es.reduce((s, e) => s + (e.transferSize || 0), 0),
                        encoded: es.reduce((s, e) => s + (e.encodedBodySize || 0), 0),
                        decoded: es.reduce((s, e) => s + (e.decodedBodySize || 0), 0),
                        requests: es.map(e => e.name.replace(location.origin, '') + ' ' + e.transferSize) };"#,
        )
        .await;
        println!("first view: {bytes}");
        let transfer = bytes["transfer"].as_u64().unwrap();
        assert!(transfer > 0, "transfer sizes measured: {bytes}");
        assert!(transfer < 100_000, "first view too heavy: {bytes}");
        js(&c, "window.__noReload = 'still the same page'; return null").await;

        // Live: the recording plays; a rider appears on course, then bib 9 finishes.
        daemon.replay().await;
        let rider = wait_for(
            &c,
            "an on-course rider",
            Duration::from_secs(40),
            "const r = document.querySelector('#oncourse:not([hidden]) .rider'); return r ? r.innerText : null",
            |v| v.is_string(),
        )
        .await;
        println!("on course: {}", rider.as_str().unwrap().replace('\n', " | "));
        let row = wait_for(
            &c,
            "bib 9's finish 51.20 + 52",
            Duration::from_secs(60),
            ROW9,
            |v| v["text"].as_str().is_some_and(|t| t.contains("51.20") && t.contains("+52")),
        )
        .await;
        println!("bib 9: {}", row["text"].as_str().unwrap().replace(['\n', '\t'], " "));
        assert_eq!(row["hi"], true, "the changed row is highlighted");
        let gates = js(
            &c,
            "return document.querySelectorAll('#oncourse .gates li.p2, #oncourse .gates li.p50, #oncourse .gates li.p0').length",
        )
        .await;
        println!("judged gates shown: {gates}");
        assert_eq!(
            js(&c, "return window.__noReload").await,
            "still the same page",
            "no reload"
        );
        let shot = c.screenshot().await.expect("screenshot");
        let out = artifacts_dir();
        std::fs::create_dir_all(&out).expect("artifacts dir");
        std::fs::write(out.join("spectator.png"), shot).expect("write screenshot");
        println!("screenshot: {}", out.join("spectator.png").display());

        // Restart the daemon under the page: same port, same database.
        daemon.stop().await;
        wait_for(&c, "the page to notice", Duration::from_secs(20), CONN, |v| {
            v != "live"
        })
        .await;
        let daemon = start_daemon(&db, addr).await;
        wait_for(&c, "the reconnection", Duration::from_secs(40), CONN, |v| {
            v == "live"
        })
        .await;
        let row = wait_for(&c, "bib 9 after restart", Duration::from_secs(20), ROW9, |v| {
            v["text"]
                .as_str()
                .is_some_and(|t| t.contains("51.20") && t.contains("+52"))
        })
        .await;
        println!(
            "bib 9 after restart: {}",
            row["text"].as_str().unwrap().replace(['\n', '\t'], " ")
        );
        assert_eq!(
            js(&c, "return window.__noReload").await,
            "still the same page",
            "no reload across the restart"
        );
        daemon
    }
    .await;
    let _ = c.close().await;
    result.stop().await;
}
