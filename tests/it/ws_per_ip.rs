//! WebSocket clients per client address (`--max-ws-per-ip`), with the address from a
//! trusted proxy's X-Forwarded-For.

use std::time::Duration;

use crate::support::ws::*;
use c123_live::http::HttpSettings;
use c123_live::hub::HubConfig;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn settings(cap: usize, trusted: bool) -> HttpSettings {
    HttpSettings {
        master_keys: vec!["test-master-key-0123456789".into()],
        max_ws_per_ip: cap,
        trusted_proxies: if trusted {
            vec!["127.0.0.1".parse().unwrap()]
        } else {
            Vec::new()
        },
        ..HttpSettings::default()
    }
}

async fn connect_as(h: &Harness, xff: &str) -> Result<Ws, u16> {
    let mut req = h.url("").into_client_request().unwrap();
    req.headers_mut()
        .insert("x-forwarded-for", xff.parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_holds_at_most_max_ws_per_ip_sockets() {
    let h = start_with(HubConfig::default(), settings(2, false)).await;
    h.running_event().await;
    let mut a = h.connect("").await;
    let _b = h.connect("").await;
    assert_eq!(next_json(&mut a).await["type"], "full");
    assert_eq!(refused_status(&h.url("")).await, Some(503));
    // X-Forwarded-For from an untrusted peer does not make a new address.
    assert_eq!(connect_as(&h, "198.51.100.7").await.err(), Some(503));
    drop(a);
    let mut ok = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if refused_status(&h.url("")).await.is_none() {
            ok = true;
            break;
        }
    }
    assert!(ok, "a closed socket frees its slot");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_each_client_address_has_its_own_cap() {
    let h = start_with(HubConfig::default(), settings(1, true)).await;
    h.running_event().await;
    let _a = connect_as(&h, "198.51.100.1").await.expect("first client");
    let _b = connect_as(&h, "198.51.100.2")
        .await
        .expect("another client");
    assert_eq!(connect_as(&h, "198.51.100.1").await.err(), Some(503));
    // A client-written left part is not believed: the right-most hop counts.
    assert_eq!(
        connect_as(&h, "203.0.113.9, 198.51.100.2").await.err(),
        Some(503)
    );
}
