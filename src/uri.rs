//! Request-target decoding shared by the HTTP routes, the static files and the WebSocket hub:
//! percent-decoded path segments (static paths; axum's `Path` decodes route ids) and query
//! parameters. A leaf: it imports nothing of the
//! crate, so neither `http` nor `hub` has to import the other for it.
//!
//! Paths are strict (a malformed `%` escape or invalid UTF-8 is refused, never guessed: a
//! static path must not resolve to something the client did not write). Queries follow the
//! `application/x-www-form-urlencoded` rules of the `form_urlencoded` crate (`+` is a space,
//! malformed escapes are kept literally), as every web framework parses them.

use percent_encoding::percent_decode_str;

/// Decodes `%XX` escapes; `None` for a malformed escape or invalid UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    // The crate passes a malformed escape (`%zz`, a trailing `%`) through literally; a path
    // with one is a client error here.
    let b = s.as_bytes();
    let well_formed = b
        .iter()
        .enumerate()
        .filter(|(_, c)| **c == b'%')
        .all(|(i, _)| {
            b.get(i + 1..i + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
        });
    if !well_formed {
        return None;
    }
    percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|d| d.into_owned())
}

/// The first value of `name` in a query string (form-urlencoded: `+` is a space, `%XX`
/// decoded). Pure.
pub fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_decode_strictly() {
        assert_eq!(percent_decode("a%20b").as_deref(), Some("a b"));
        assert_eq!(percent_decode("%2e%2E").as_deref(), Some(".."));
        assert_eq!(percent_decode("a+b").as_deref(), Some("a+b"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%2"), None);
        assert_eq!(percent_decode("%"), None);
        assert_eq!(percent_decode("%ff"), None);
        assert_eq!(percent_decode("%C3%A9").as_deref(), Some("é"));
    }

    #[test]
    fn queries_are_form_urlencoded_and_the_first_value_wins() {
        let q = Some("catId=U%2023+M&detailed=true&catId=x");
        assert_eq!(query_param(q, "catId").as_deref(), Some("U 23 M"));
        assert_eq!(query_param(q, "detailed").as_deref(), Some("true"));
        assert_eq!(query_param(q, "nope"), None);
        assert_eq!(query_param(Some("flag"), "flag").as_deref(), Some(""));
        assert_eq!(query_param(None, "catId"), None);
    }
}
