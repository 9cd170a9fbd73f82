//! Connection caps at their defaults: per address and per event.

use super::*;

/// 1000 WebSocket clients per client address (here the `X-Forwarded-For` address behind a
/// trusted proxy, so the per-address HTTP connection cap, also 1000, does not fire first):
/// the 1000th is accepted, the 1001st is refused; another address still connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_per_address_cap_1000() {
    let _solo = crate::solo();
    let d = daemon_with(|a| a.trusted_proxies = vec!["127.0.0.1".parse().expect("ip")]).await;
    d.running_event().await;
    let url = d.ws_url();
    let connect_as = |ip: &'static str| {
        let url = url.clone();
        async move {
            use tokio_tungstenite::tungstenite::client::IntoClientRequest;
            let mut req = url.into_client_request().expect("request");
            req.headers_mut()
                .insert("x-forwarded-for", ip.parse().expect("header"));
            match tokio_tungstenite::connect_async(req).await {
                Ok((ws, _)) => Ok(ws),
                Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
                Err(e) => panic!("connect: {e}"),
            }
        }
    };
    let mut clients = Vec::new();
    for i in 0..1000 {
        match connect_as("10.9.9.9").await {
            Ok(ws) => clients.push(ws),
            Err(st) => panic!("client {} refused with {st} below the cap", i + 1),
        }
    }
    // Every client reads its `full` in the background so no socket backs up.
    let readers: Vec<_> = clients
        .into_iter()
        .map(|mut ws| {
            tokio::spawn(async move {
                while let Some(Ok(m)) = ws.next().await {
                    if matches!(m, Message::Close(_)) {
                        break;
                    }
                }
            })
        })
        .collect();
    let refused = connect_as("10.9.9.9").await.err();
    assert!(
        matches!(refused, Some(429) | Some(503)),
        "1001st client from one address: {refused:?}"
    );
    assert!(
        connect_as("10.9.9.10").await.is_ok(),
        "another address refused"
    );
    for r in readers {
        r.abort();
    }
    d.stop().await;
}

/// 1000 open HTTP connections per client address: the 1000th is served, the 1001st is
/// answered 503 and closed; another address is still served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_connections_per_address_cap_1000() {
    let _solo = crate::solo();
    let d = daemon().await;
    let from = |ip: &str| {
        let local: SocketAddr = format!("{ip}:0").parse().expect("addr");
        let server = d.addr;
        async move {
            let sock = tokio::net::TcpSocket::new_v4().expect("socket");
            sock.bind(local).expect("bind");
            sock.connect(server).await.expect("connect")
        }
    };
    let mut held = Vec::new();
    for _ in 0..1000 {
        held.push(from("127.0.0.2").await);
    }
    // The 1000th is served (a complete request on it gets its answer).
    let last = held.last_mut().expect("held");
    last.write_all(b"GET /api/v1/events HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 12];
    last.read_exact(&mut buf).await.expect("answer");
    assert_eq!(&buf, b"HTTP/1.1 200", "1000th connection");
    // The 1001st is refused at once.
    let mut over = from("127.0.0.2").await;
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), over.read_to_end(&mut got)).await;
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("HTTP/1.1 503"),
        "1001st connection: {text}"
    );
    // Another address is not affected.
    let mut other = from("127.0.0.3").await;
    other
        .write_all(b"GET /api/v1/events HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    other.read_exact(&mut buf).await.expect("answer");
    assert_eq!(&buf, b"HTTP/1.1 200", "other address");
    drop(held);
    d.stop().await;
}

/// The daemon binary as a child process: its sockets count against its own descriptor limit,
/// so this test can hold 10 000 connections to it (a loopback connection inside one process
/// costs two descriptors, and the hard limit here is 20 000).
struct ChildDaemon(std::process::Child);

impl Drop for ChildDaemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_daemon_process(db: &std::path::Path) -> (ChildDaemon, SocketAddr) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_c123-live"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--master-key",
            MASTER,
            "--db",
        ])
        .arg(db)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn daemon");
    let stderr = child.stderr.take().expect("stderr");
    let child = ChildDaemon(child);
    let mut lines = std::io::BufReader::new(stderr).lines();
    let addr = loop {
        let Some(Ok(line)) = lines.next() else {
            panic!("daemon exited before it was up")
        };
        if line.contains("c123-live is up") {
            let at = line.find("addr=").expect("addr in log") + 5;
            let addr = line[at..].split_whitespace().next().expect("addr");
            break addr.trim_matches('"').parse().expect("socket address");
        }
    };
    // Keep draining the log so the daemon never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}

/// A WebSocket upgrade by hand from `local` (an address of 127/8); returns the socket and the
/// status code of the answer. The socket is kept open and never read again.
async fn raw_upgrade(server: SocketAddr, local: std::net::IpAddr) -> (TcpStream, u16) {
    let sock = tokio::net::TcpSocket::new_v4().expect("socket");
    sock.bind(SocketAddr::new(local, 0)).expect("bind");
    let mut s = sock.connect(server).await.expect("connect");
    let req = format!(
        "GET /api/v1/events/{EV}/ws HTTP/1.1\r\nHost: {server}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut head = [0u8; 12];
    s.read_exact(&mut head).await.expect("status line");
    let code = std::str::from_utf8(&head[9..12])
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (s, code)
}

/// 10 000 WebSocket clients per event, against the daemon binary with its defaults: ten
/// client addresses (127.0.0.2..=11) hold 1000 each (the per-address caps, also defaults),
/// all 10 000 are upgraded, and the 10 001st, from an eleventh address, is refused with 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_per_event_cap_10000() {
    let _solo = crate::solo();
    let dir = tempfile::tempdir().expect("tempdir");
    let (_child, addr) = spawn_daemon_process(&dir.path().join("live.db"));
    // The event, over the child's HTTP API.
    let http = reqwest::Client::new();
    let send =
        |method: reqwest::Method, path: String, header: (&'static str, String), body: Value| {
            let req = http
                .request(method, format!("http://{addr}{path}"))
                .header(header.0, header.1)
                .json(&body);
            async move {
                let r = req.send().await.expect("request");
                let st = r.status().as_u16();
                (st, r.json::<Value>().await.unwrap_or(Value::Null))
            }
        };
    let (st, b) = send(
        reqwest::Method::POST,
        "/api/v1/admin/events".into(),
        ("X-Master-Key", MASTER.into()),
        json!({"eventId": EV, "mainTitle": "Cap"}),
    )
    .await;
    assert_eq!(st, 201, "{b}");
    let key = b["apiKey"].as_str().expect("apiKey").to_owned();
    let (st, b) = send(
        reqwest::Method::POST,
        "/api/v1/ingest/xml".into(),
        ("X-API-Key", key.clone()),
        json!({ "xml": small_xml() }),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    for to in ["startlist", "running"] {
        let (st, b) = send(
            reqwest::Method::PATCH,
            format!("/api/v1/admin/events/{EV}/status"),
            ("X-API-Key", key.clone()),
            json!({ "status": to }),
        )
        .await;
        assert_eq!(st, 200, "{b}");
    }
    let started = Instant::now();
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(200));
    let mut tasks = Vec::new();
    for a in 2..=11u8 {
        for _ in 0..1000 {
            let gate = gate.clone();
            tasks.push(tokio::spawn(async move {
                let _permit = gate.acquire_owned().await.expect("permit");
                raw_upgrade(addr, std::net::Ipv4Addr::new(127, 0, 0, a).into()).await
            }));
        }
    }
    let mut held = Vec::with_capacity(tasks.len());
    for (i, t) in tasks.into_iter().enumerate() {
        let (sock, code) = t.await.expect("upgrade task");
        assert_eq!(code, 101, "client {} of 10 000", i + 1);
        held.push(sock);
    }
    let connected_in = started.elapsed();
    let (_over, code) = raw_upgrade(addr, std::net::Ipv4Addr::new(127, 0, 0, 12).into()).await;
    eprintln!("per-event cap: 10 000 upgraded in {connected_in:?}, the next one answered {code}");
    assert_eq!(code, 503, "10 001st client of the event");
    drop(held);
}
