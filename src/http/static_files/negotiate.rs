//! Content negotiation and conditional requests: `Accept`, `Accept-Encoding` with RFC 9110
//! quality values, `If-None-Match`.

use hyper::header::{HeaderMap, ACCEPT, ACCEPT_ENCODING, IF_NONE_MATCH};

fn header_str<'a>(headers: &'a HeaderMap, name: hyper::header::HeaderName) -> String {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<&'a str>>()
        .join(",")
}

/// `Accept` lists `text/html` (with a non-zero quality).
pub fn accepts_html(headers: &HeaderMap) -> bool {
    accepts(&header_str(headers, ACCEPT), "text/html")
}

/// `Accept-Encoding` allows gzip (RFC 9110 §12.5.3): `gzip` (or its alias `x-gzip`, §8.4.1.3)
/// with a non-zero quality, or else `*` with a non-zero quality. An explicit `gzip;q=0` wins
/// over `*`; no header or an empty one means identity only (we never guess).
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    let list = header_str(headers, ACCEPT_ENCODING);
    let mut named = None;
    let mut wildcard = None;
    for item in list.split(',') {
        let (name, q) = coding_and_quality(item);
        if name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip") {
            named = Some(named.map_or(q, |n: f32| n.max(q)));
        } else if name == "*" {
            wildcard = Some(q);
        }
    }
    named.or(wildcard).is_some_and(|q| q > 0.0)
}

pub(super) fn accepts(list: &str, wanted: &str) -> bool {
    list.split(',').any(|item| {
        let (name, q) = coding_and_quality(item);
        name.eq_ignore_ascii_case(wanted) && q > 0.0
    })
}

/// `name;q=0.5;…` → (`name`, 0.5). The parameter name is case-insensitive (`Q=0`); a missing
/// or unparseable quality counts as 1 (RFC 9110 §12.4.2).
fn coding_and_quality(item: &str) -> (&str, f32) {
    let mut parts = item.split(';');
    let name = parts.next().unwrap_or("").trim();
    let q = parts
        .filter_map(|p| {
            let (key, value) = p.split_once('=')?;
            key.trim()
                .eq_ignore_ascii_case("q")
                .then(|| value.trim().parse::<f32>().ok())
                .flatten()
        })
        .next()
        .unwrap_or(1.0);
    (name, q)
}

pub fn etag_matches(headers: &HeaderMap, etag: &str) -> bool {
    let list = header_str(headers, IF_NONE_MATCH);
    list.split(',').any(|t| {
        let t = t.trim();
        t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag
    })
}
