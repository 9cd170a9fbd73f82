//! The spectator page (`/`) and the operator console (`/operator`) in a real headless
//! Chromium, against the daemon as `App::start` runs it: real SQLite file, merge loop, hub,
//! HTTP server, the real export and the real TCP recording over a loopback socket. Skips
//! (prints why) when chromium or chromedriver is missing, except under `CI`, where that fails.
//!
//! Spectator: a Czech browser gets Czech (labels, decimal comma); EN switch, remembered over
//! a reload; first view < 100 KB; a star (localStorage), the favourites filter, the bell asks
//! for permission only on the tap (Notification mocked), and a starred rider's start, finish
//! and the official results are notified; search by bib, name and club; a row's detail shows
//! both runs with the gates (2 and 50 marked). Operator: a wrong key refused, the right one
//! kept in sessionStorage and never in the URL; sources, XML folder, storage shown; a
//! transition button; a refused transition shown with its reason; the merge strategy switch;
//! the Canoe123 source going away shown within 2 s; warnings and charts. Both pages are
//! screenshotted at phone (390x844) and desktop (1280x800) size into `docs/screenshots/`.

mod browser_support;

use std::path::Path;
use std::time::{Duration, Instant};

use browser_support::*;
use c123_live::app::{App, DEMO_EVENT};
use c123_live::ingest::replay::ReplaySettings;
use c123_live::merge::{AdminCommand, Input};
use c123_live::model::EventStatus;
use c123_live::settings::Settings;
use c123_live::store::Synchronous;
use fantoccini::{Client, Locator};
use serde_json::Value;

const RACE: &str = "K1M_ST_BR2_6";
const MASTER: &str = "operator-test-master-key-0123";

async fn transition(merge: &c123_live::merge::MergeHandle, to: EventStatus) {
    merge
        .send(Input::Admin(AdminCommand::Transition {
            event_id: DEMO_EVENT.into(),
            to,
        }))
        .await
        .expect("transition");
}

/// Clicks like a person: the element is scrolled to the middle first (the sticky header
/// covers the top of the viewport, and WebDriver does not scroll what is already "in view").
async fn click(c: &Client, css: &str) {
    js(
        c,
        &format!(
            "document.querySelector({css:?})?.scrollIntoView({{block: 'center'}}); return null"
        ),
    )
    .await;
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

async fn text(c: &Client, css: &str) -> String {
    let v = js(
        c,
        &format!("const e = document.querySelector({css:?}); return e ? e.innerText : null"),
    )
    .await;
    v.as_str().unwrap_or_default().to_owned()
}

const ROW9: &str = r#"const tr = document.querySelector('#view tr[data-bib="9"]');
return tr ? tr.innerText : null;"#;

/// Replaces the browser's Notification with a recorder (permission `default` until asked).
const MOCK_NOTIFICATION: &str = r#"
window.__asked = 0; window.__notes = [];
window.Notification = class {
  constructor(title, opts) { window.__notes.push(title); }
  static requestPermission() { window.__asked += 1; window.Notification.permission = 'granted'; return Promise.resolve('granted'); }
};
window.Notification.permission = 'default';
return null;"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spectator_page_languages_favourites_search_detail() {
    let Some((chrome, chromedriver)) = browsers("browser_pages") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings = Settings {
        db: dir.path().join("live.db"),
        synchronous: Synchronous::Normal,
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Settings::default()
    };
    settings.http.dev = true;
    settings.http.shutdown_grace = Duration::from_secs(1);
    let mut running = App::start(settings).await.expect("daemon starts");
    let addr = running.local_addr;
    let merge = running.merge.clone();
    c123_live::app::prepare_demo_event(&merge)
        .await
        .expect("demo event");
    let (_driver, url) = start_chromedriver(&chromedriver).await;
    // A Czech browser: Chromium sends this as Accept-Language and as navigator.languages.
    let c = browser(&url, &chrome, &dir.path().join("profile"), "cs-CZ,cs,en").await;

    c.goto(&format!("http://{addr}/#e={DEMO_EVENT}&r={RACE}"))
        .await
        .expect("goto");
    let row = wait_for(&c, "bib 9 in Czech", Duration::from_secs(20), ROW9, |v| {
        v.as_str().is_some_and(|t| t.contains("90,35"))
    })
    .await;
    println!(
        "cs row: {}",
        row.as_str().unwrap().replace(['\n', '\t'], " ")
    );
    assert_eq!(js(&c, "return document.documentElement.lang").await, "cs");
    assert_eq!(text(&c, "[data-tab=results]").await, "Výsledky");
    assert!(text(&c, "#view thead").await.contains("Ztráta"));
    wait_for(&c, "live", Duration::from_secs(20), CONN, |v| v == "live").await;
    assert_eq!(text(&c, "#conn-text").await, "Živě");
    let bytes = first_view_bytes(&c).await;
    assert!(bytes < 100_000, "first view {bytes} bytes");

    // English on a tap, remembered over a reload.
    click(&c, "[data-lang=en]").await;
    assert_eq!(text(&c, "[data-tab=results]").await, "Results");
    let row = js(&c, ROW9).await;
    assert!(row.as_str().unwrap().contains("90.35"), "{row}");
    assert_eq!(text(&c, "#conn-text").await, "Live");
    c.refresh().await.expect("reload");
    wait_for(
        &c,
        "bib 9 after reload",
        Duration::from_secs(20),
        ROW9,
        |v| v.as_str().is_some_and(|t| t.contains("90.35")),
    )
    .await;
    assert_eq!(
        text(&c, "[data-tab=results]").await,
        "Results",
        "remembered"
    );
    assert_eq!(js(&c, "return document.documentElement.lang").await, "en");
    click(&c, "[data-lang=cs]").await;
    assert_eq!(text(&c, "[data-tab=results]").await, "Výsledky");
    wait_for(&c, "live", Duration::from_secs(20), CONN, |v| v == "live").await;

    // Favourites: nothing asked on load; star bib 9; the bell asks on the tap only.
    let perm = js(
        &c,
        "return window.Notification ? Notification.permission : 'none'",
    )
    .await;
    assert_eq!(perm, "default", "no permission prompt on load");
    js(&c, MOCK_NOTIFICATION).await;
    assert_eq!(
        js(&c, "return document.getElementById('bell').hidden").await,
        true
    );
    click(&c, r#"#view tr[data-bib="9"] [data-star]"#).await;
    let star = js(&c, r#"const b = document.querySelector('#view tr[data-bib="9"] [data-star]'); return [b.getAttribute('aria-pressed'), b.getAttribute('aria-label'), localStorage.getItem('c123live.fav.jarni-2024')]"#).await;
    println!("star: {star}");
    assert_eq!(star[0], "true");
    assert!(star[1].as_str().unwrap().starts_with("Odebrat"), "{star}");
    assert_eq!(star[2], r#"["9"]"#);
    assert_eq!(js(&c, "return window.__asked").await, 0);
    click(&c, "#bell").await;
    wait_for(
        &c,
        "permission asked",
        Duration::from_secs(5),
        "return window.__asked",
        |v| v == 1,
    )
    .await;
    assert_eq!(text(&c, "#bell-text").await, "Upozornění zapnuta");
    let all = js(
        &c,
        "return document.querySelectorAll('#view tbody tr').length",
    )
    .await;
    click(&c, "#fav-only").await;
    let only = js(
        &c,
        "return [...document.querySelectorAll('#view tbody tr')].map(r => r.dataset.bib)",
    )
    .await;
    println!("rows: {all}, favourites only: {only}");
    assert_eq!(only, serde_json::json!(["9"]));
    click(&c, "#fav-only").await;

    // Search by bib, by name (without diacritics) and by club.
    let bib9 = js(&c, r#"const tr = document.querySelector('#view tr[data-bib="9"]'); return [tr.querySelector('[data-open]').innerText, tr.querySelector('.club').innerText]"#).await;
    let (name, club) = (
        bib9[0].as_str().unwrap().to_owned(),
        bib9[1].as_str().unwrap().to_owned(),
    );
    let surname: String = name
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned();
    let folded = fold(&surname).to_lowercase();
    for (q, what) in [
        ("9", "bib"),
        (folded.as_str(), "name"),
        (club.as_str(), "club"),
    ] {
        let input = c.find(Locator::Id("search")).await.expect("search");
        input.clear().await.expect("clear");
        input.send_keys(q).await.expect("type");
        let bibs = js(
            &c,
            "return [...document.querySelectorAll('#view tbody tr')].map(r => r.dataset.bib)",
        )
        .await;
        let bibs = bibs.as_array().unwrap();
        println!("search {what} {q:?}: {} rows", bibs.len());
        assert!(bibs.iter().any(|b| b == "9"), "{what}: {bibs:?}");
        assert!(
            (bibs.len() as u64) < all.as_u64().unwrap(),
            "{what} narrows"
        );
    }
    c.find(Locator::Id("search"))
        .await
        .unwrap()
        .clear()
        .await
        .unwrap();
    js(&c, "const i = document.getElementById('search'); i.dispatchEvent(new Event('input')); return null").await;

    // Live: the recording plays; bib 9 starts and finishes; both are notified.
    c123_live::app::play_demo_recording(
        &mut running,
        ReplaySettings {
            speed: 5.0,
            looped: false,
        },
    )
    .await
    .expect("replay");
    let notes = wait_for(
        &c,
        "bib 9's finish notified",
        Duration::from_secs(60),
        "return window.__notes",
        |v| {
            v.as_array().is_some_and(|a| {
                a.iter()
                    .any(|n| n.as_str().is_some_and(|s| s.contains("v cíli")))
            })
        },
    )
    .await;
    println!("notifications: {notes}");
    let notes = notes.as_array().unwrap();
    assert!(
        notes.iter().any(|n| n.as_str().unwrap().starts_with("9 ")
            && n.as_str().unwrap().contains("odstartoval")),
        "start notified: {notes:?}"
    );
    wait_for(
        &c,
        "bib 9's run 51,20",
        Duration::from_secs(20),
        ROW9,
        |v| {
            v.as_str()
                .is_some_and(|t| t.contains("51,20") && t.contains("+52"))
        },
    )
    .await;

    screenshots(&c, "spectator").await;
    set_viewport(&c, 390, 844).await;

    // Following: the spectator picks another race, then goes back to the one on course.
    let other = js(
        &c,
        r#"const s = document.getElementById('race-select');
        const o = [...s.options].find(o => o.value !== s.value); s.value = o.value;
        s.dispatchEvent(new Event('change')); return o.value"#,
    )
    .await;
    assert_eq!(
        js(
            &c,
            "return document.getElementById('follow').getAttribute('aria-pressed')"
        )
        .await,
        "false"
    );
    assert_eq!(text(&c, "#follow-text").await, "Sledovat právě jetý závod");
    let live_race = js(&c, "const r = document.querySelector('#oncourse .rider .racename'); return r ? r.innerText : null").await;
    println!("picked {other}; on course: {live_race}");
    click(&c, "#follow").await;
    let back = wait_for(&c, "the race on course again", Duration::from_secs(10), r#"const s = document.getElementById('race-select');
        return document.getElementById('follow').getAttribute('aria-pressed') === 'true' ? s.value : null"#, |v| v.is_string()).await;
    assert_eq!(back, RACE, "back to the race bib 10 is on");
    wait_for(&c, "bib 9 again", Duration::from_secs(10), ROW9, |v| {
        v.is_string()
    })
    .await;

    // The detail: both runs, the gates with 2 and 50 marked, times and ranks, as a dialog.
    click(&c, r#"#view tr[data-bib="9"] [data-open]"#).await;
    let detail = wait_for(&c, "the detail", Duration::from_secs(10), r#"const d = document.getElementById('detail');
        const runs = [...d.querySelectorAll('.run')];
        return d.open && runs.length ? { runs: runs.map(r => ({ text: r.innerText, p2: r.querySelectorAll('.gates li.p2').length, p50: r.querySelectorAll('.gates li.p50').length, gates: r.querySelectorAll('.gates li').length, label: r.querySelector('.gates li')?.getAttribute('aria-label') })), focus: document.activeElement?.dataset?.close !== undefined } : null"#, |v| !v.is_null()).await;
    println!("detail: {detail}");
    let runs = detail["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "both runs");
    assert!(
        runs[0]["text"].as_str().unwrap().contains("87,78")
            && runs[0]["text"].as_str().unwrap().contains("91,78"),
        "run 1: 87.78 + 4"
    );
    assert!(runs[1]["text"].as_str().unwrap().contains("51,20"));
    assert!(runs[1]["gates"].as_u64().unwrap() >= 18, "every gate");
    assert!(
        runs[1]["p50"].as_u64().unwrap() >= 1 && runs[1]["p2"].as_u64().unwrap() >= 1,
        "52 s = a 50 and a 2"
    );
    assert!(runs[0]["label"].as_str().unwrap().starts_with("Branka 1"));
    assert_eq!(detail["focus"], true, "focus moves into the dialog");
    let shot_detail = c.screenshot().await.expect("screenshot");
    c.find(Locator::Css("#detail"))
        .await
        .unwrap()
        .send_keys("\u{e00c}")
        .await
        .unwrap(); // Escape
    wait_for(&c, "the dialog closes, focus back on the row", Duration::from_secs(5),
        "return [document.getElementById('detail').open, document.activeElement?.dataset?.open ?? null]",
        |v| v[0] == false && v[1] == "9").await;

    // The race becomes official: notified.
    transition(&merge, EventStatus::Finished).await;
    transition(&merge, EventStatus::Official).await;
    wait_for(
        &c,
        "official notified",
        Duration::from_secs(20),
        "return window.__notes",
        |v| {
            v.as_array().is_some_and(|a| {
                a.iter()
                    .any(|n| n.as_str().is_some_and(|s| s.contains("oficiální")))
            })
        },
    )
    .await;

    save_shot("spectator-detail-phone.png", &shot_detail);
    let _ = c.close().await;
    running.stop().await;
}

/// `Novák` → `Novak` (the page's search ignores diacritics; the test types without them).
fn fold(s: &str) -> String {
    s.chars()
        .map(|ch| match ch {
            'á' => 'a',
            'č' => 'c',
            'ď' => 'd',
            'é' | 'ě' => 'e',
            'í' => 'i',
            'ň' => 'n',
            'ó' => 'o',
            'ř' => 'r',
            'š' => 's',
            'ť' => 't',
            'ú' | 'ů' => 'u',
            'ý' => 'y',
            'ž' => 'z',
            'Á' => 'A',
            'Č' => 'C',
            'Ď' => 'D',
            'É' | 'Ě' => 'E',
            'Í' => 'I',
            'Ň' => 'N',
            'Ó' => 'O',
            'Ř' => 'R',
            'Š' => 'S',
            'Ť' => 'T',
            'Ú' | 'Ů' => 'U',
            'Ý' => 'Y',
            'Ž' => 'Z',
            c => c,
        })
        .collect()
}

const CONN: &str = "return document.getElementById('conn').dataset.state";

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
    let fake_stop = c123_live::shutdown::Shutdown::new();
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

    // Sign in: a wrong key is refused; the right one is kept in this tab, not in the URL.
    c.goto(&format!("http://{addr}/operator"))
        .await
        .expect("goto");
    let key = c.find(Locator::Id("key")).await.expect("key field");
    key.send_keys("not-the-key").await.unwrap();
    click(&c, "#login button[type=submit]").await;
    wait_for(
        &c,
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
    click(&c, "#login button[type=submit]").await;
    let card = wait_for(
        &c,
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
    let stored = js(&c, "return [sessionStorage.getItem('c123live.masterKey'), localStorage.length, location.href, getComputedStyle(document.getElementById('login')).display]").await;
    assert_eq!(stored[0], MASTER);
    assert_eq!(stored[1], 0, "nothing in localStorage");
    assert!(
        !stored[2].as_str().unwrap().contains(MASTER),
        "never in the URL: {stored}"
    );
    assert_eq!(stored[3], "none", "the sign-in form is gone");
    assert_eq!(card["status"], "draft");
    assert_eq!(card["buttons"], serde_json::json!(["startlist"]));

    // The XML folder, storage and the source, with frames flowing.
    let xml = wait_for(
        &c,
        "the import shown",
        Duration::from_secs(10),
        "return document.getElementById('xml').innerText",
        |v| v.as_str().is_some_and(|s| s.contains("jarni-2024.xml")),
    )
    .await;
    let rows: u64 = text(&c, "[data-rows-changed]")
        .await
        .parse()
        .expect("rows changed");
    println!(
        "xml: {} (rows changed {rows})",
        xml.as_str().unwrap().replace('\n', " | ")
    );
    assert!(rows > 100, "the first import changes every row");
    let db = text(&c, "[data-db-bytes]").await;
    println!("database: {db}");
    assert!(db.ends_with("KiB") || db.ends_with("MiB"), "{db}");

    // Lifecycle by its buttons: draft → startlist → running (TCP data now applies).
    click(&c, r#"button[data-to="startlist"]"#).await;
    wait_for(&c, "startlist", Duration::from_secs(5), EVENT_CARD, |v| {
        v["status"] == "startlist"
    })
    .await;
    click(&c, r#"button[data-to="running"]"#).await;
    let card = wait_for(&c, "running", Duration::from_secs(5), EVENT_CARD, |v| {
        v["status"] == "running"
    })
    .await;
    assert_eq!(card["buttons"], serde_json::json!(["finished"]));
    let src = wait_for(&c, "frames flowing", Duration::from_secs(30), SOURCE, |v| {
        v["state"] == "connected" && v["fps"].as_f64().is_some_and(|f| f > 0.0)
    })
    .await;
    println!(
        "source: {}",
        src["text"].as_str().unwrap().replace('\n', " | ")
    );

    // WebSocket clients per event: one spectator connects.
    let (_spectator, _) =
        tokio_tungstenite::connect_async(format!("ws://{addr}/api/v1/events/{DEMO_EVENT}/ws"))
            .await
            .expect("spectator connects");
    wait_for(
        &c,
        "one WebSocket client",
        Duration::from_secs(5),
        r#"return document.querySelector('[data-ws-clients]').innerText"#,
        |v| v.as_str().is_some_and(|s| s.ends_with(" 1")),
    )
    .await;

    // Merge strategy switch.
    js(&c, r#"const s = document.querySelector('select[data-strategy="jarni-2024"]'); s.value = 'xml-wins'; s.dispatchEvent(new Event('change', {bubbles: true})); return null"#).await;
    wait_for(
        &c,
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

    // A refused transition: "make official" is confirmed while another operator has taken
    // the event back to running; the daemon refuses and the console says why.
    click(&c, r#"button[data-to="finished"]"#).await;
    wait_for(&c, "finished", Duration::from_secs(5), EVENT_CARD, |v| {
        v["status"] == "finished"
    })
    .await;
    click(&c, r#"button[data-to="official"]"#).await;
    wait_for(
        &c,
        "the confirmation",
        Duration::from_secs(5),
        "return document.getElementById('confirm').open",
        |v| v == true,
    )
    .await;
    transition(&merge, EventStatus::Running).await;
    wait_for(
        &c,
        "running again",
        Duration::from_secs(5),
        EVENT_CARD,
        |v| v["status"] == "running",
    )
    .await;
    click(&c, "#confirm-ok").await;
    let card = wait_for(&c, "the refusal", Duration::from_secs(5), EVENT_CARD, |v| {
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

    // Charts and the WebSocket clients: one spectator tab on the event.
    let charts = js(&c, "return [...document.querySelectorAll('.chart polyline')].map(p => p.getAttribute('points').split(' ').length)").await;
    println!("chart points: {charts}");
    assert_eq!(charts.as_array().unwrap().len(), 3);

    // The source goes away: shown within 2 s.
    fake_stop.cancel();
    let gone = Instant::now();
    let src = wait_for(&c, "the source gone", Duration::from_secs(2), SOURCE, |v| {
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
        &c,
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

    screenshots(&c, "operator").await;
    let _ = c.close().await;
    running.stop().await;
    let _ = fake_task.await;
}

/// The daemon's warning ring, fed by this test process's log (as `main` installs it).
fn install_warn_ring() {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let _ = tracing_subscriber::registry()
        .with(c123_live::http::log_ring::WarnRing::global().layer())
        .try_init();
}

fn save_shot(name: &str, png: &[u8]) {
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
    std::fs::create_dir_all(&out).expect("screenshots dir");
    std::fs::write(out.join(name), png).expect("write screenshot");
    println!("screenshot: docs/screenshots/{name}");
}

/// Phone (390x844) and desktop (1280x800) screenshots of the page as it is now.
async fn screenshots(c: &Client, page: &str) {
    for (size, w, h) in [("phone", 390, 844), ("desktop", 1280, 800)] {
        set_viewport(c, w, h).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let png = c.screenshot().await.expect("screenshot");
        save_shot(&format!("{page}-{size}.png"), &png);
    }
}

/// Sizes the window so that the viewport is `w`x`h` (the window may add borders).
async fn set_viewport(c: &Client, w: u32, h: u32) {
    c.set_window_size(w, h).await.expect("window size");
    let v: Value = js(c, "return [innerWidth, innerHeight]").await;
    let (iw, ih) = (
        v[0].as_u64().unwrap_or(0) as u32,
        v[1].as_u64().unwrap_or(0) as u32,
    );
    if (iw, ih) != (w, h) {
        c.set_window_size(w + (w.saturating_sub(iw)), h + (h.saturating_sub(ih)))
            .await
            .expect("window size");
    }
}
