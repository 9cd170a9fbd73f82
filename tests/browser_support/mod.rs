//! Chromium + chromedriver for the browser tests: finding them, starting a session with a
//! given preferred language, running scripts and waiting for the page.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
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
