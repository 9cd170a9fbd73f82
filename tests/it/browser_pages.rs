//! The spectator page (`/`) in a real headless
//! Chromium, against the daemon as `App::start` runs it: real SQLite file, merge loop, hub,
//! HTTP server, the real export and the real TCP recording over a loopback socket. Skips
//! (prints why) when chromium or chromedriver is missing, except under `CI`, where that fails.
//!
//! Spectator: a Czech browser gets Czech (labels, decimal comma); EN switch, remembered over
//! a reload; first view < 100 KB; a star (localStorage), the favourites filter, the bell asks
//! for permission only on the tap (Notification mocked), and a starred rider's start, finish
//! and the official results are notified; search by bib, name and club; a row's detail shows
//! both runs with the gates (2 and 50 marked); picking a race stops following the race on
//! course, the follow button goes back. Screenshots at phone (390x844) and desktop
//! (1280x800) size into `docs/screenshots/`. The operator console: `browser_operator.rs`.

use std::time::Duration;

use crate::support::browser::*;
use c123_live::app::{App, RunningApp, DEMO_EVENT};
use c123_live::ingest::replay::ReplaySettings;
use c123_live::model::EventStatus;
use c123_live::settings::Settings;
use c123_live::store::Synchronous;
use fantoccini::{Client, Locator};

const RACE: &str = "K1M_ST_BR2_6";

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

    languages(&c, addr).await;
    let all = favourites(&c).await;
    search(&c, all).await;
    live_notifications(&c, &mut running).await;
    screenshots(&c, "spectator").await;
    set_viewport(&c, 390, 844).await;
    following(&c).await;
    let shot_detail = detail(&c).await;

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

/// Czech from the browser's languages; English on a tap, remembered over a reload; back to Czech.
async fn languages(c: &Client, addr: std::net::SocketAddr) {
    c.goto(&format!("http://{addr}/#e={DEMO_EVENT}&r={RACE}"))
        .await
        .expect("goto");
    let row = wait_for(c, "bib 9 in Czech", Duration::from_secs(20), ROW9, |v| {
        v.as_str().is_some_and(|t| t.contains("90,35"))
    })
    .await;
    println!(
        "cs row: {}",
        row.as_str().unwrap().replace(['\n', '\t'], " ")
    );
    assert_eq!(js(c, "return document.documentElement.lang").await, "cs");
    assert_eq!(text(c, "[data-tab=results]").await, "Výsledky");
    assert!(text(c, "#view thead").await.contains("Ztráta"));
    wait_for(c, "live", Duration::from_secs(20), CONN, |v| v == "live").await;
    assert_eq!(text(c, "#conn-text").await, "Živě");
    let bytes = first_view_bytes(c).await;
    assert!(bytes < 100_000, "first view {bytes} bytes");

    // English on a tap, remembered over a reload.
    click(c, "[data-lang=en]").await;
    assert_eq!(text(c, "[data-tab=results]").await, "Results");
    let row = js(c, ROW9).await;
    assert!(row.as_str().unwrap().contains("90.35"), "{row}");
    assert_eq!(text(c, "#conn-text").await, "Live");
    c.refresh().await.expect("reload");
    wait_for(
        c,
        "bib 9 after reload",
        Duration::from_secs(20),
        ROW9,
        |v| v.as_str().is_some_and(|t| t.contains("90.35")),
    )
    .await;
    assert_eq!(text(c, "[data-tab=results]").await, "Results", "remembered");
    assert_eq!(js(c, "return document.documentElement.lang").await, "en");
    click(c, "[data-lang=cs]").await;
    assert_eq!(text(c, "[data-tab=results]").await, "Výsledky");
    wait_for(c, "live", Duration::from_secs(20), CONN, |v| v == "live").await;
}

/// No permission asked on load; bib 9 starred (localStorage); the bell asks on the tap; the favourites filter. Returns the rows of the whole table.
async fn favourites(c: &Client) -> u64 {
    let perm = js(
        c,
        "return window.Notification ? Notification.permission : 'none'",
    )
    .await;
    assert_eq!(perm, "default", "no permission prompt on load");
    js(c, MOCK_NOTIFICATION).await;
    assert_eq!(
        js(c, "return document.getElementById('bell').hidden").await,
        true
    );
    click(c, r#"#view tr[data-bib="9"] [data-star]"#).await;
    let star = js(c, r#"const b = document.querySelector('#view tr[data-bib="9"] [data-star]'); return [b.getAttribute('aria-pressed'), b.getAttribute('aria-label'), localStorage.getItem('c123live.fav.jarni-2024')]"#).await;
    println!("star: {star}");
    assert_eq!(star[0], "true");
    assert!(star[1].as_str().unwrap().starts_with("Odebrat"), "{star}");
    assert_eq!(star[2], r#"["9"]"#);
    assert_eq!(js(c, "return window.__asked").await, 0);
    click(c, "#bell").await;
    wait_for(
        c,
        "permission asked",
        Duration::from_secs(5),
        "return window.__asked",
        |v| v == 1,
    )
    .await;
    assert_eq!(text(c, "#bell-text").await, "Upozornění zapnuta");
    let all = js(
        c,
        "return document.querySelectorAll('#view tbody tr').length",
    )
    .await;
    click(c, "#fav-only").await;
    let only = js(
        c,
        "return [...document.querySelectorAll('#view tbody tr')].map(r => r.dataset.bib)",
    )
    .await;
    println!("rows: {all}, favourites only: {only}");
    assert_eq!(only, serde_json::json!(["9"]));
    click(c, "#fav-only").await;

    all.as_u64().expect("row count")
}

/// Search by bib, by name (without diacritics) and by club: each finds bib 9 and narrows the table.
async fn search(c: &Client, all: u64) {
    let bib9 = js(c, r#"const tr = document.querySelector('#view tr[data-bib="9"]'); return [tr.querySelector('[data-open]').innerText, tr.querySelector('.club').innerText]"#).await;
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
            c,
            "return [...document.querySelectorAll('#view tbody tr')].map(r => r.dataset.bib)",
        )
        .await;
        let bibs = bibs.as_array().unwrap();
        println!("search {what} {q:?}: {} rows", bibs.len());
        assert!(bibs.iter().any(|b| b == "9"), "{what}: {bibs:?}");
        assert!((bibs.len() as u64) < all, "{what} narrows");
    }
    c.find(Locator::Id("search"))
        .await
        .unwrap()
        .clear()
        .await
        .unwrap();
    js(c, "const i = document.getElementById('search'); i.dispatchEvent(new Event('input')); return null").await;
}

/// The recording plays: bib 9 starts and finishes, both notified; the row shows the run.
/// A keyboard user's focus on bib 9's star stays there while the table re-renders live.
async fn live_notifications(c: &Client, running: &mut RunningApp) {
    js(
        c,
        r#"document.querySelector('#view tr[data-bib="9"] [data-star]').focus();
           document.querySelector('#view table').__old = true; return null"#,
    )
    .await;
    c123_live::app::play_demo_recording(
        running,
        ReplaySettings {
            speed: 5.0,
            looped: false,
        },
    )
    .await
    .expect("replay");
    let notes = wait_for(
        c,
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
    wait_for(c, "bib 9's run 51,20", Duration::from_secs(20), ROW9, |v| {
        v.as_str()
            .is_some_and(|t| t.contains("51,20") && t.contains("+52"))
    })
    .await;
    let focus = js(
        c,
        "return [!document.querySelector('#view table').__old, document.activeElement?.dataset?.star ?? null]",
    )
    .await;
    assert_eq!(
        focus,
        serde_json::json!([true, "9"]),
        "re-rendered, focus kept on the star"
    );
}

/// The spectator picks another race (following stops), then goes back to the race on course.
async fn following(c: &Client) {
    let other = js(
        c,
        r#"const s = document.getElementById('race-select');
        const o = [...s.options].find(o => o.value !== s.value); s.value = o.value;
        s.dispatchEvent(new Event('change')); return o.value"#,
    )
    .await;
    assert_eq!(
        js(
            c,
            "return document.getElementById('follow').getAttribute('aria-pressed')"
        )
        .await,
        "false"
    );
    assert_eq!(text(c, "#follow-text").await, "Sledovat právě jetý závod");
    let live_race = js(c, "const r = document.querySelector('#oncourse .rider .racename'); return r ? r.innerText : null").await;
    println!("picked {other}; on course: {live_race}");
    click(c, "#follow").await;
    let back = wait_for(c, "the race on course again", Duration::from_secs(10), r#"const s = document.getElementById('race-select');
        return document.getElementById('follow').getAttribute('aria-pressed') === 'true' ? s.value : null"#, |v| v.is_string()).await;
    assert_eq!(back, RACE, "back to the race bib 10 is on");
    wait_for(c, "bib 9 again", Duration::from_secs(10), ROW9, |v| {
        v.is_string()
    })
    .await;
}

/// The detail: both runs, the gates with 2 and 50 marked, times and ranks, as a modal dialog that Escape closes, giving the focus back to the row. Returns its screenshot.
async fn detail(c: &Client) -> Vec<u8> {
    click(c, r#"#view tr[data-bib="9"] [data-open]"#).await;
    let detail = wait_for(c, "the detail", Duration::from_secs(10), r#"const d = document.getElementById('detail');
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
    let shot = c.screenshot().await.expect("screenshot");
    c.find(Locator::Css("#detail"))
        .await
        .unwrap()
        .send_keys("\u{e00c}")
        .await
        .unwrap(); // Escape
    wait_for(c, "the dialog closes, focus back on the row", Duration::from_secs(5),
        "return [document.getElementById('detail').open, document.activeElement?.dataset?.open ?? null]",
        |v| v[0] == false && v[1] == "9").await;

    shot
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
