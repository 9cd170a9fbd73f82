//! The real binary as an operator runs it: `import`, `serve` refusing an open admin API,
//! and a clean SIGTERM shutdown (transaction finished, WAL checkpointed, exit 0).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_c123-live");

fn fixture() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/jarni-2024.xml")
        .display()
        .to_string()
}

#[test]
fn import_prints_what_it_imported() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("live.db");
    let out = Command::new(BIN)
        .args(["import", &fixture(), "--db"])
        .arg(&db)
        .args(["--event", "jarni"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("into event 'jarni' (created)"), "{stdout}");
    assert!(
        stdout.contains(
            "366 participants, 15 classes, 88 categories, 44 races, 1422 results, 4 courses"
        ),
        "{stdout}"
    );
    // Again: nothing to write.
    let out = Command::new(BIN)
        .args(["import", &fixture(), "--db"])
        .arg(&db)
        .args(["--event", "jarni"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 rows written"));

    // A broken file: a clear error, exit code non-zero.
    let bad = dir.path().join("bad.xml");
    std::fs::write(&bad, "<Canoe123Data><Participants>").unwrap();
    let out = Command::new(BIN)
        .arg("import")
        .arg(&bad)
        .arg("--db")
        .arg(&db)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not a usable export") && stderr.contains("never closed"),
        "{stderr}"
    );
}

#[test]
fn serve_refuses_an_open_admin_api_without_dev() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(dir.path().join("live.db"))
        .env_remove("C123_LIVE_MASTER_KEYS")
        .env_remove("C123_LIVE_DEV")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("master key"), "{stderr}");
}

/// A daemon process that is killed when the test ends, passed or failed.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `serve` and returns it with the address it listens on (read from its log).
fn serve(db: &Path, extra: &[&str]) -> (Daemon, String) {
    let mut child = Command::new(BIN)
        .args(["serve", "--dev", "--listen", "127.0.0.1:0", "--db"])
        .arg(db)
        .args(extra)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let child = Daemon(child);
    let mut lines = BufReader::new(stderr).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr = loop {
        assert!(Instant::now() < deadline, "daemon did not come up");
        let Some(Ok(line)) = lines.next() else {
            panic!("daemon exited early")
        };
        if line.contains("c123-live is up") {
            let at = line.find("addr=").expect("addr in log") + 5;
            break line[at..].split_whitespace().next().unwrap().to_owned();
        }
    };
    // Keep draining the log so the daemon never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}

fn http(addr: &str, request: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn sigterm_finishes_checkpoints_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("live.db");
    let (mut child, addr) = serve(&db, &[]);

    let xml = std::fs::read_to_string(fixture()).unwrap();
    let create = r#"{"eventId":"ev","mainTitle":"Jarní slalomy"}"#;
    let resp = http(
        &addr,
        &format!(
            "POST /api/v1/admin/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{create}",
            create.len()
        ),
    );
    assert!(resp.starts_with("HTTP/1.1 201"), "{resp}");
    let key = resp
        .split("\"apiKey\":\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let resp = http(
        &addr,
        &format!(
            "POST /api/v1/ingest/xml HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{xml}",
            xml.len()
        ),
    );
    assert!(
        resp.starts_with("HTTP/1.1 200"),
        "{}",
        &resp[..resp.len().min(300)]
    );

    let status = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "daemon did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "exit status {exit:?}");
    // Checkpointed: the WAL was folded back into the database (empty or gone).
    let wal = dir.path().join("live.db-wal");
    let wal_len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    assert_eq!(wal_len, 0, "WAL not checkpointed");
    // And everything acknowledged is there after a restart.
    let (_again, addr) = serve(&db, &[]);
    let resp = http(
        &addr,
        "GET /api/v1/admin/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(resp.contains("\"hasXmlData\":true"), "{resp}");
}

/// The README's first command: `demo` serves the bundled event and plays the recording.
#[test]
fn demo_plays_the_bundled_event() {
    let mut child = Command::new(BIN)
        .args(["demo", "--listen", "127.0.0.1:0", "--speed", "40"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let child = Daemon(child);
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        let Some(Ok(line)) = lines.next() else {
            panic!("demo exited early")
        };
        if let Some(rest) = line.split("open http://").nth(1) {
            break rest.split('/').next().unwrap().to_owned();
        }
    };
    // Bib 9 finishes 63 s into the recording: under 2 s at 40x.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let resp = http(
            &url,
            "GET /api/v1/events/jarni-2024/results/K1M_ST_BR2_6 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        if resp.contains("\"time\":5120,") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "bib 9's finish never showed: {}",
            &resp[..resp.len().min(300)]
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let page = http(
        &url,
        "GET / HTTP/1.1\r\nHost: x\r\nAccept: text/html\r\nConnection: close\r\n\r\n",
    );
    assert!(
        page.starts_with("HTTP/1.1 200") && page.contains("<html"),
        "{}",
        &page[..page.len().min(200)]
    );
    // SIGTERM, so the demo removes its temporary database.
    let mut child = child;
    let _ = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.0.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        child.0.try_wait().unwrap().is_some_and(|s| s.success()),
        "demo stops on SIGTERM"
    );
}
