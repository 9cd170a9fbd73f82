//! Chromium + chromedriver for the browser tests: finding them, starting a session with a
//! given preferred language, running scripts and waiting for the page, screenshots.
// Each browser test binary uses a part of these.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use c123_live::app::DEMO_EVENT;
use c123_live::merge::{AdminCommand, Input, MergeHandle};
use c123_live::model::EventStatus;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

pub fn find_exe(env: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// Chromium and chromedriver, or `None` (a skip that says so) outside CI. Under `CI` a
/// missing browser fails: a silent pass there would prove nothing about the pages.
pub fn browsers(test: &str) -> Option<(PathBuf, PathBuf)> {
    let chrome = find_exe("CHROME", &["chromium", "chromium-browser", "google-chrome"]);
    let chromedriver = find_exe("CHROMEDRIVER", &["chromedriver"]);
    match (chrome, chromedriver) {
        (Some(a), Some(b)) => Some((a, b)),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but chromium and/or chromedriver are not installed \
                 (apt-get install -y chromium chromium-driver)"
            );
            eprintln!("SKIPPED {test}: chromium and/or chromedriver not found");
            None
        }
    }
}

pub struct Driver(Child);
impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

pub async fn start_chromedriver(exe: &Path) -> (Driver, String) {
    let port = free_port();
    let child = Command::new(exe)
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "chromedriver did not listen");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (driver, format!("http://127.0.0.1:{port}"))
}

/// A headless session whose preferred languages (`Accept-Language`, `navigator.languages`)
/// are `langs`.
pub async fn browser(driver_url: &str, chrome: &Path, profile: &Path, langs: &str) -> Client {
    let first = langs.split(',').next().unwrap_or("en");
    let args = [
        "--headless=new".to_owned(),
        "--no-sandbox".to_owned(),
        "--disable-gpu".to_owned(),
        "--disable-quic".to_owned(),
        "--no-first-run".to_owned(),
        "--disable-background-networking".to_owned(),
        "--disable-component-update".to_owned(),
        "--disable-sync".to_owned(),
        "--disable-dev-shm-usage".to_owned(),
        "--hide-scrollbars".to_owned(),
        "--window-size=390,844".to_owned(),
        format!("--lang={first}"),
        format!("--user-data-dir={}", profile.display()),
    ];
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chrome.to_str().expect("utf-8 path"),
            "args": args,
            "prefs": { "intl.accept_languages": langs },
        },
    });
    let Value::Object(caps) = caps else {
        unreachable!("a JSON object literal")
    };
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(driver_url)
        .await
        .expect("webdriver session")
}

pub async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, vec![]).await.expect("script runs")
}

/// Polls `script` (a JS function body returning a value) until `ok` accepts its value.
pub async fn wait_for(
    c: &Client,
    what: &str,
    limit: Duration,
    script: &str,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let v = js(c, script).await;
        if ok(&v) {
            return v;
        }
        if Instant::now() > deadline {
            let text = js(c, "return document.body.innerText").await;
            panic!("timed out waiting for {what}; last value {v}; page:\n{text}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Bytes the page's first view transferred (navigation and resources; WebSocket frames are
/// not resources), printed with the per-request sizes.
pub async fn first_view_bytes(c: &Client) -> u64 {
    let bytes = js(
        c,
        r#"const es = [...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')];
           return { transfer: es.reduce((s, e) => s + (e.transferSize || 0), 0),
                    decoded: es.reduce((s, e) => s + (e.decodedBodySize || 0), 0),
                    requests: es.map(e => e.name.replace(location.origin, '') + ' ' + e.transferSize) };"#,
    )
    .await;
    println!("first view: {bytes}");
    let transfer = bytes["transfer"].as_u64().unwrap_or(0);
    assert!(transfer > 0, "transfer sizes measured: {bytes}");
    transfer
}

/// Moves the demo event's lifecycle as another operator would (through the merge loop).
pub async fn transition(merge: &MergeHandle, to: EventStatus) {
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
pub async fn click(c: &Client, css: &str) {
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

pub async fn text(c: &Client, css: &str) -> String {
    let v = js(
        c,
        &format!("const e = document.querySelector({css:?}); return e ? e.innerText : null"),
    )
    .await;
    v.as_str().unwrap_or_default().to_owned()
}

/// The daemon's warning ring, fed by this test process's log (as `main` installs it).
pub fn install_warn_ring() {
    crate::support::logs::logs();
}

/// Saves a screenshot under `target/tmp/screenshots/` on every run; with
/// `C123_UPDATE_SCREENSHOTS=1` also into `docs/screenshots/` (the README's), so that a test
/// run leaves the checkout clean unless asked.
pub fn save_shot(name: &str, png: &[u8]) {
    let mut dirs = vec![Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots")];
    if std::env::var_os("C123_UPDATE_SCREENSHOTS").is_some_and(|v| v == "1") {
        dirs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots"));
    }
    for out in dirs {
        std::fs::create_dir_all(&out).expect("screenshots dir");
        std::fs::write(out.join(name), png).expect("write screenshot");
        println!("screenshot: {}", out.join(name).display());
    }
}

/// Phone (390x844) and desktop (1280x800) screenshots of the page as it is now.
pub async fn screenshots(c: &Client, page: &str) {
    for (size, w, h) in [("phone", 390, 844), ("desktop", 1280, 800)] {
        set_viewport(c, w, h).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let png = c.screenshot().await.expect("screenshot");
        save_shot(&format!("{page}-{size}.png"), &png);
    }
}

/// Sizes the window so that the viewport is `w`x`h` (the window may add borders).
pub async fn set_viewport(c: &Client, w: u32, h: u32) {
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
