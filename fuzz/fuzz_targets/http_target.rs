//! The request target as the handlers see it: the path's percent-decoded segments (the
//! router itself is axum's),
//! the query parameters the routes and the WebSocket resume read (`since`, `epoch`, `catId`,
//! `detailed`), and the client address from `X-Forwarded-For`. Never a panic.
//! The WebSocket hub's own `?since=N&epoch=E` parser is fuzzed with the same input.
#![no_main]

use c123_live::uri::{percent_decode, query_param};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        // Header values may be any bytes: only the X-Forwarded-For parser sees those.
        let trusted = ["127.0.0.1".parse().unwrap()];
        let _ = c123_live::http::client_ip(trusted[0], data.split(|b| *b == b'\n'), &trusted);
        return;
    };
    let (path, query) = match text.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (text, None),
    };
    for seg in path.split('/') {
        if let Some(s) = percent_decode(seg) {
            let _ = percent_decode(&s);
        }
    }
    if let Some(r) = c123_live::hub::parse_resume(query) {
        // A resume always carries both parts.
        assert!(!query.unwrap_or("").is_empty() && r.epoch.len() <= text.len());
    }
    for name in ["since", "epoch", "catId", "detailed"] {
        if let Some(v) = query_param(query, name) {
            let _ = v.parse::<u64>();
        }
    }
    let trusted = ["10.0.0.1".parse().unwrap()];
    let _ = c123_live::http::client_ip(trusted[0], [text.as_bytes()], &trusted);
});
