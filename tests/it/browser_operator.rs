//! The operator console (`/operator`) in a real headless Chromium, against the daemon as
//! `App::start` runs it: the XML folder watcher on the real export, a fake Canoe123 playing
//! the real recording over a loopback socket, the real SQLite file and a real WebSocket
//! spectator. Skips (prints why) when chromium or chromedriver is missing, except under `CI`.
//!
//! A wrong key refused, the right one kept in sessionStorage and never in the URL; sources,
//! XML folder (file, rows changed), storage shown; lifecycle by its buttons; WebSocket clients
//! per event; the merge strategy switch; a refused transition shown with its reason; the
//! Canoe123 source going away shown within 2 s; its warning in the log panel; the charts.
//! Screenshots at phone (390x844) and desktop (1280x800) size into `docs/screenshots/`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::support::browser::*;
use c123_live::app::{App, DEMO_EVENT};
use c123_live::ingest::replay::ReplaySettings;
use c123_live::merge::MergeHandle;
use c123_live::model::EventStatus;
use c123_live::settings::Settings;
use c123_live::shutdown::Shutdown;
use c123_live::store::Synchronous;
use fantoccini::{Client, Locator};

const MASTER: &str = "operator-test-master-key-0123";

const EVENT_CARD: &str = r#"const e = document.querySelector('[data-event-id="jarni-2024"]');
return e ? { status: e.querySelector('[data-status]').textContent, buttons: [...e.querySelectorAll('button[data-to]')].map(b => b.dataset.to), refusal: e.querySelector('[data-refusal]')?.innerText ?? null, text: e.innerText } : null"#;

const SOURCE: &str = r#"const s = document.querySelector('.source');
return s ? { state: s.dataset.state, fps: Number(s.querySelector('[data-fps]').innerText), text: s.innerText } : null"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_console_sources_lifecycle_and_refusals() {
    let Some((chrome, chromedriver)) = browsers("browser_pages") else {
        return;
    };
    install_warn_ring();
    let dir = tempfile::tempdir().expect("tempdir");
    let xml_dir = dir.path().join("xml");
    std::fs::create_dir_all(&xml_dir).unwrap();
    std::fs::write(xml_dir.join("jarni-2024.xml"), c123_live::app::DEMO_XML).unwrap();
    // A fake Canoe123 playing the real recording; its own shutdown makes it "go away".
    let fake = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fake_addr = fake.local_addr().unwrap();
    let fake_stop = Shutdown::new();
    let recording =
        c123_live::c123::recording::Recording::parse(c123_live::app::DEMO_RECORDING).unwrap();
    let fake_task = tokio::spawn(c123_live::ingest::replay::serve(
        fake,
        recording,
        ReplaySettings {
            speed: 5.0,
            looped: true,
        },
        fake_stop.clone(),
    ));
    let mut settings = Settings {
        db: dir.path().join("live.db"),
        synchronous: Synchronous::Normal,
        listen: "127.0.0.1:0".parse().unwrap(),
        event: Some(DEMO_EVENT.into()),
        xml_dir: Some(xml_dir.clone()),
        c123: Some(fake_addr.to_string()),
        ..Settings::default()
    };
    settings.http.master_keys = vec![MASTER.into()];
    settings.http.shutdown_grace = Duration::from_secs(1);
    let running = App::start(settings).await.expect("daemon starts");
    let addr = running.local_addr;
    let merge = running.merge.clone();
    let (_driver, url) = start_chromedriver(&chromedriver).await;
    let c = browser(&url, &chrome, &dir.path().join("profile"), "en").await;

    sign_in(&c, addr).await;
    panels(&c).await;
    clients_and_strategy(&c, addr, &merge).await;
    refused_official(&c, &merge).await;
    charts_and_source_gone(&c, &fake_stop).await;
    screenshots(&c, "operator").await;
    let _ = c.close().await;
    running.stop().await;
    let _ = fake_task.await;
}

/// Sign in: a wrong key is refused; the right one is kept in this tab's sessionStorage, never in the URL or localStorage; the event the folder imported is shown in draft.
async fn sign_in(c: &Client, addr: SocketAddr) {
    // Sign in: a wrong key is refused; the right one is kept in this tab, not in the URL.
    c.goto(&format!("http://{addr}/operator"))
        .await
        .expect("goto");
    let key = c.find(Locator::Id("key")).await.expect("key field");
    key.send_keys("not-the-key").await.unwrap();
    click(c, "#login button[type=submit]").await;
    wait_for(
        c,
        "refused key",
        Duration::from_secs(5),
        "return document.getElementById('login-error').innerText",
        |v| v.as_str().is_some_and(|s| s.contains("refused")),
    )
    .await;
    c.find(Locator::Id("key"))
        .await
        .unwrap()
        .send_keys(MASTER)
        .await
        .unwrap();
    click(c, "#login button[type=submit]").await;
    let card = wait_for(
        c,
        "the event from the XML folder",
        Duration::from_secs(20),
        EVENT_CARD,
        |v| !v.is_null(),
    )
    .await;
    println!(
        "event: {}",
        card["text"].as_str().unwrap().replace('\n', " | ")
    );
    let stored = js(c, "return [sessionStorage.getItem('c123live.masterKey'), localStorage.length, location.href, getComputedStyle(document.getElementById('login')).display]").await;
    assert_eq!(stored[0], MASTER);
    assert_eq!(stored[1], 0, "nothing in localStorage");
    assert!(
        !stored[2].as_str().unwrap().contains(MASTER),
        "never in the URL: {stored}"
    );
    assert_eq!(stored[3], "none", "the sign-in form is gone");
    assert_eq!(card["status"], "draft");
    assert_eq!(card["buttons"], serde_json::json!(["startlist"]));
}

/// The XML folder (file, rows changed), storage, the source with frames flowing; the lifecycle by its buttons: draft → startlist → running.
async fn panels(c: &Client) {
    // The XML folder, storage and the source, with frames flowing.
    let xml = wait_for(
        c,
        "the import shown",
        Duration::from_secs(10),
        "return document.getElementById('xml').innerText",
        |v| v.as_str().is_some_and(|s| s.contains("jarni-2024.xml")),
    )
    .await;
    let rows: u64 = text(c, "[data-rows-changed]")
        .await
        .parse()
        .expect("rows changed");
    println!(
        "xml: {} (rows changed {rows})",
        xml.as_str().unwrap().replace('\n', " | ")
    );
    assert!(rows > 100, "the first import changes every row");
    let db = text(c, "[data-db-bytes]").await;
    println!("database: {db}");
    assert!(db.ends_with("KiB") || db.ends_with("MiB"), "{db}");

    // Lifecycle by its buttons: draft → startlist → running (TCP data now applies).
    click(c, r#"button[data-to="startlist"]"#).await;
    wait_for(c, "startlist", Duration::from_secs(5), EVENT_CARD, |v| {
        v["status"] == "startlist"
    })
    .await;
    click(c, r#"button[data-to="running"]"#).await;
    let card = wait_for(c, "running", Duration::from_secs(5), EVENT_CARD, |v| {
        v["status"] == "running"
    })
    .await;
    assert_eq!(card["buttons"], serde_json::json!(["finished"]));
    let src = wait_for(c, "frames flowing", Duration::from_secs(30), SOURCE, |v| {
        v["state"] == "connected" && v["fps"].as_f64().is_some_and(|f| f > 0.0)
    })
    .await;
    println!(
        "source: {}",
        src["text"].as_str().unwrap().replace('\n', " | ")
    );
}

/// WebSocket clients per event (one spectator connects); the merge strategy switch reaches the loop.
async fn clients_and_strategy(c: &Client, addr: SocketAddr, merge: &MergeHandle) {
    // WebSocket clients per event: one spectator connects.
    let (_spectator, _) =
        tokio_tungstenite::connect_async(format!("ws://{addr}/api/v1/events/{DEMO_EVENT}/ws"))
            .await
            .expect("spectator connects");
    wait_for(
        c,
        "one WebSocket client",
        Duration::from_secs(5),
        r#"return document.querySelector('[data-ws-clients]').innerText"#,
        |v| v.as_str().is_some_and(|s| s.ends_with(" 1")),
    )
    .await;

    // Merge strategy switch.
    js(c, r#"const s = document.querySelector('select[data-strategy="jarni-2024"]'); s.value = 'xml-wins'; s.dispatchEvent(new Event('change', {bubbles: true})); return null"#).await;
    wait_for(
        c,
        "xml-wins in force",
        Duration::from_secs(5),
        "return document.querySelector('[data-event-id=\"jarni-2024\"]').innerText",
        |v| v.as_str().is_some_and(|s| !s.contains("daemon default")),
    )
    .await;
    assert_eq!(
        merge
            .snapshot()
            .event(DEMO_EVENT)
            .unwrap()
            .header
            .config
            .merge_strategy,
        Some(c123_live::model::MergeStrategy::XmlWins)
    );
}

/// "Make official" is confirmed while another operator has taken the event back to running: the daemon refuses and the console shows why.
async fn refused_official(c: &Client, merge: &MergeHandle) {
    // A refused transition: "make official" is confirmed while another operator has taken
    // the event back to running; the daemon refuses and the console says why.
    // By keyboard: the focused button keeps its focus while the card refreshes (seq moves
    // with every TCP frame), and Enter presses it.
    js(c, r#"const b = document.querySelector('button[data-to="finished"]'); b.scrollIntoView({block: 'center'}); b.focus();
        document.getElementById('events').firstElementChild.__old = true; return null"#).await;
    let kept = wait_for(
        c,
        "the card refreshed under the focus",
        Duration::from_secs(10),
        "return [!document.getElementById('events').firstElementChild.__old, document.activeElement?.dataset?.to ?? null]",
        |v| v[0] == true,
    )
    .await;
    assert_eq!(kept[1], "finished", "focus kept across the refresh");
    c.active_element()
        .await
        .expect("focused")
        .send_keys("\u{e007}") // Enter
        .await
        .expect("enter");
    wait_for(c, "finished", Duration::from_secs(5), EVENT_CARD, |v| {
        v["status"] == "finished"
    })
    .await;
    click(c, r#"button[data-to="official"]"#).await;
    wait_for(
        c,
        "the confirmation",
        Duration::from_secs(5),
        "return document.getElementById('confirm').open",
        |v| v == true,
    )
    .await;
    transition(merge, EventStatus::Running).await;
    wait_for(
        c,
        "running again",
        Duration::from_secs(5),
        EVENT_CARD,
        |v| v["status"] == "running",
    )
    .await;
    click(c, "#confirm-ok").await;
    let card = wait_for(c, "the refusal", Duration::from_secs(5), EVENT_CARD, |v| {
        v["refusal"].is_string()
    })
    .await;
    let refusal = card["refusal"].as_str().unwrap();
    println!("refusal: {refusal}");
    assert!(
        refusal.contains("InvalidTransition") && refusal.contains("official"),
        "{refusal}"
    );
    assert_eq!(
        merge.snapshot().event(DEMO_EVENT).unwrap().header.status,
        EventStatus::Running
    );
}

/// The three charts; the Canoe123 source goes away (`fake_stop`) and the console shows it within 2 s, with its warning in the log panel.
async fn charts_and_source_gone(c: &Client, fake_stop: &Shutdown) {
    // Charts and the WebSocket clients: one spectator tab on the event.
    let charts = js(c, "return [...document.querySelectorAll('.chart polyline')].map(p => p.getAttribute('points').split(' ').length)").await;
    println!("chart points: {charts}");
    assert_eq!(charts.as_array().unwrap().len(), 3);

    // The source goes away: shown within 2 s.
    fake_stop.cancel();
    let gone = Instant::now();
    let src = wait_for(c, "the source gone", Duration::from_secs(2), SOURCE, |v| {
        v["state"] != "connected"
    })
    .await;
    let took = gone.elapsed();
    println!(
        "source gone after {} ms: {}",
        took.as_millis(),
        src["text"].as_str().unwrap().replace('\n', " | ")
    );
    assert!(took < Duration::from_secs(2));
    assert!(src["text"].as_str().unwrap().contains("not connected"));
    let log = wait_for(
        c,
        "the warning in the log panel",
        Duration::from_secs(5),
        "return document.getElementById('log').innerText",
        |v| {
            v.as_str()
                .is_some_and(|s| s.contains("Canoe123 connection ended"))
        },
    )
    .await;
    println!(
        "log: {}",
        log.as_str().unwrap().lines().next().unwrap_or_default()
    );
}
