//! The front end: negotiation, traversal and symlink guards, ETags.

use super::negotiate::accepts;
use super::*;
use http_body_util::BodyExt;

fn hdrs(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(*k, HeaderValue::from_str(v).unwrap());
    }
    h
}

async fn body(r: Resp) -> Vec<u8> {
    r.into_body().collect().await.unwrap().to_bytes().to_vec()
}

fn gunzip(z: &[u8]) -> Vec<u8> {
    use std::io::Read as _;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(z)
        .read_to_end(&mut out)
        .unwrap();
    out
}

const HTML: &str = "text/html,application/xhtml+xml,*/*;q=0.8";

#[tokio::test]
async fn embedded_assets_have_their_content_types() {
    let f = Frontend::Embedded;
    for (path, ct) in [
        ("/", "text/html; charset=utf-8"),
        ("/index.html", "text/html; charset=utf-8"),
        ("/app.js", "text/javascript; charset=utf-8"),
        ("/style.css", "text/css; charset=utf-8"),
        ("/icon.svg", "image/svg+xml"),
    ] {
        let r = f.serve(path, &hdrs(&[])).await;
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()[CONTENT_TYPE], ct, "{path}");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
        assert!(r.headers().contains_key(ETAG));
        assert_eq!(r.headers()[CACHE_CONTROL], "no-cache");
    }
    let r = f.serve("/", &hdrs(&[])).await;
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'self'"));
    let html = String::from_utf8(body(r).await).unwrap();
    assert!(html.contains("<html"), "{html}");
    // No request ever leaves the venue: no absolute URL in any embedded asset.
    for (path, _, bytes) in EMBEDDED {
        let text = String::from_utf8_lossy(bytes);
        for bad in ["http://", "https://", "//fonts.", "cdn"] {
            let hits: Vec<&str> = text
                .match_indices(bad)
                .map(|(i, _)| &text[i.saturating_sub(20)..(i + 40).min(text.len())])
                .filter(|ctx| !ctx.contains("www.w3.org/2000/svg"))
                .collect();
            assert!(hits.is_empty(), "{path} references {bad}: {hits:?}");
        }
    }
}

#[tokio::test]
async fn etag_gives_304_without_a_body() {
    let f = Frontend::Embedded;
    let r = f.serve("/app.js", &hdrs(&[])).await;
    let etag = r.headers()[ETAG].to_str().unwrap().to_owned();
    let r = f.serve("/app.js", &hdrs(&[("if-none-match", &etag)])).await;
    assert_eq!(r.status(), 304);
    assert_eq!(r.headers()[ETAG], etag.as_str());
    assert!(body(r).await.is_empty());
    let weak = format!("\"x\", W/{etag}");
    let r = f.serve("/app.js", &hdrs(&[("if-none-match", &weak)])).await;
    assert_eq!(r.status(), 304);
    let r = f
        .serve("/app.js", &hdrs(&[("if-none-match", "\"other\"")]))
        .await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn gzip_when_accepted_and_only_then() {
    let f = Frontend::Embedded;
    let plain = body(f.serve("/app.js", &hdrs(&[])).await).await;
    let r = f
        .serve(
            "/app.js",
            &hdrs(&[("accept-encoding", "gzip, deflate, br")]),
        )
        .await;
    assert_eq!(r.headers()[CONTENT_ENCODING], "gzip");
    assert_eq!(r.headers()[VARY], "Accept-Encoding");
    let z = body(r).await;
    assert!(z.len() < plain.len() / 2, "{} vs {}", z.len(), plain.len());
    assert_eq!(gunzip(&z), plain);
    // Precompressed once: the same bytes every time.
    let again = body(
        f.serve("/app.js", &hdrs(&[("accept-encoding", "gzip")]))
            .await,
    )
    .await;
    assert_eq!(z, again);
    for ae in ["gzip;q=0", "br", "identity", "deflate"] {
        let r = f.serve("/app.js", &hdrs(&[("accept-encoding", ae)])).await;
        assert!(!r.headers().contains_key(CONTENT_ENCODING), "{ae}");
    }
}

#[tokio::test]
async fn embedded_fallback_only_for_html() {
    let f = Frontend::Embedded;
    let r = f
        .serve("/event/X/results", &hdrs(&[("accept", HTML)]))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()[CONTENT_TYPE], "text/html; charset=utf-8");
    let r = f.serve("/old-asset.js", &hdrs(&[("accept", "*/*")])).await;
    assert_eq!(r.status(), 404);
    assert!(r.headers()[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let v: serde_json::Value = serde_json::from_slice(&body(r).await).unwrap();
    assert_eq!(v["error"], "NotFound");
    let r = f
        .serve("/x.js", &hdrs(&[("accept", "text/html;q=0")]))
        .await;
    assert_eq!(r.status(), 404);
}

#[test]
fn traversal_is_refused_before_touching_the_disk() {
    for p in [
        "/../etc/passwd",
        "/a/../../etc/passwd",
        "/%2e%2e/etc/passwd",
        "/%2E%2E/%2e%2e/etc/passwd",
        "/.%2e/etc/passwd",
        "/a%2f..%2f..%2fetc/passwd",
        "/..%5c..%5cetc/passwd",
        "/a\\..\\b",
        "/%00",
        "/C:/Windows",
        "/%zz",
    ] {
        assert_eq!(safe_segments(p), None, "{p}");
    }
    assert_eq!(
        safe_segments("/./a//b/%20c.txt"),
        Some(vec!["a".into(), "b".into(), " c.txt".into()])
    );
    assert_eq!(safe_segments("/"), Some(vec![]));
    assert_eq!(safe_segments("/...hidden"), Some(vec!["...hidden".into()]));
}

/// A front-end folder, plus a secret beside it and symlinks pointing out of it.
fn folder() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let site = tmp.path().join("site");
    std::fs::create_dir_all(site.join("assets")).unwrap();
    std::fs::create_dir_all(site.join("docs")).unwrap();
    std::fs::write(site.join("index.html"), "<!doctype html><html>SPA</html>").unwrap();
    std::fs::write(site.join("docs/index.html"), "<html>docs</html>").unwrap();
    std::fs::write(site.join("assets/app-1234.js"), "x".repeat(4000)).unwrap();
    std::fs::write(site.join("api.js"), "console.log(1)").unwrap();
    std::fs::write(site.join("logo.png"), [0x89, b'P', b'N', b'G']).unwrap();
    std::fs::write(tmp.path().join("secret.txt"), "top secret").unwrap();
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(tmp.path().join("secret.txt"), site.join("leak.txt")).unwrap();
        std::os::unix::fs::symlink(tmp.path(), site.join("up")).unwrap();
        std::os::unix::fs::symlink(site.join("api.js"), site.join("inside.js")).unwrap();
    }
    (tmp, site)
}

#[tokio::test]
async fn folder_files_types_caching_and_gzip() {
    let (_tmp, site) = folder();
    let f = Frontend::dir(&site).unwrap();
    let r = f.serve("/", &hdrs(&[])).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()[CACHE_CONTROL], "no-cache");
    assert_eq!(body(r).await, b"<!doctype html><html>SPA</html>");
    let r = f.serve("/assets/app-1234.js", &hdrs(&[])).await;
    assert_eq!(r.headers()[CONTENT_TYPE], "text/javascript; charset=utf-8");
    assert_eq!(
        r.headers()[CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );
    let etag = r.headers()[ETAG].to_str().unwrap().to_owned();
    let r = f
        .serve("/assets/app-1234.js", &hdrs(&[("if-none-match", &etag)]))
        .await;
    assert_eq!(r.status(), 304);
    let r = f
        .serve("/assets/app-1234.js", &hdrs(&[("accept-encoding", "gzip")]))
        .await;
    assert_eq!(r.headers()[CONTENT_ENCODING], "gzip");
    assert_eq!(gunzip(&body(r).await), "x".repeat(4000).into_bytes());
    let r = f
        .serve("/logo.png", &hdrs(&[("accept-encoding", "gzip")]))
        .await;
    assert_eq!(r.headers()[CONTENT_TYPE], "image/png");
    assert!(!r.headers().contains_key(CONTENT_ENCODING));
    // `/api.js` is a file like any other (only `/api/...` belongs to the API).
    let r = f.serve("/api.js", &hdrs(&[])).await;
    assert_eq!(r.status(), 200);
    // A folder with its own index.html.
    assert_eq!(
        body(f.serve("/docs/", &hdrs(&[])).await).await,
        b"<html>docs</html>"
    );
    // A file changed on disk is served new, with a new ETag.
    std::fs::write(site.join("assets/app-1234.js"), "y".repeat(5000)).unwrap();
    let r = f
        .serve("/assets/app-1234.js", &hdrs(&[("accept-encoding", "gzip")]))
        .await;
    assert_ne!(r.headers()[ETAG].to_str().unwrap(), etag);
    assert_eq!(gunzip(&body(r).await), "y".repeat(5000).into_bytes());
}

#[tokio::test]
async fn folder_spa_fallback_only_for_html() {
    let (_tmp, site) = folder();
    let f = Frontend::dir(&site).unwrap();
    let r = f
        .serve("/events/X/race/Y", &hdrs(&[("accept", HTML)]))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()[CONTENT_TYPE], "text/html; charset=utf-8");
    assert_eq!(body(r).await, b"<!doctype html><html>SPA</html>");
    let r = f
        .serve("/assets/stale-9999.js", &hdrs(&[("accept", "*/*")]))
        .await;
    assert_eq!(r.status(), 404);
    assert!(r.headers()[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
}

#[tokio::test]
async fn folder_never_serves_outside() {
    let (_tmp, site) = folder();
    let f = Frontend::dir(&site).unwrap();
    for p in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/assets/%2e%2e/%2e%2e/secret.txt",
        "/leak.txt",
        "/up/secret.txt",
        "/..%2fsecret.txt",
    ] {
        for accept in ["*/*", HTML] {
            let r = f.serve(p, &hdrs(&[("accept", accept)])).await;
            let b = body(r).await;
            assert!(
                !String::from_utf8_lossy(&b).contains("top secret"),
                "{p} leaked"
            );
        }
        let r = f.serve(p, &hdrs(&[("accept", "*/*")])).await;
        assert_eq!(r.status(), 404, "{p}");
    }
    // A symlink that stays inside the folder is fine.
    #[cfg(unix)]
    assert_eq!(f.serve("/inside.js", &hdrs(&[])).await.status(), 200);
}

#[test]
fn folder_must_exist_with_an_index() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(Frontend::dir(&tmp.path().join("missing")).is_err());
    assert!(Frontend::dir(tmp.path()).is_err());
    std::fs::write(tmp.path().join("index.html"), "x").unwrap();
    assert!(Frontend::dir(tmp.path()).is_ok());
}

#[test]
fn accept_lists() {
    assert!(accepts("text/html,*/*;q=0.8", "text/html"));
    assert!(accepts("TEXT/HTML;q=0.5", "text/html"));
    assert!(!accepts("text/html;q=0", "text/html"));
    assert!(!accepts("text/html;Q=0", "text/html"));
    assert!(!accepts("text/html; level=1; q=0.0", "text/html"));
    assert!(!accepts("*/*", "text/html"));
    assert!(!accepts("", "gzip"));
    assert!(accepts("deflate, gzip;q=1.0", "gzip"));
}

#[tokio::test]
async fn folder_files_carry_last_modified_and_answer_if_modified_since() {
    let (_tmp, site) = folder();
    let f = Frontend::dir(&site).unwrap();
    let r = f.serve("/api.js", &hdrs(&[])).await;
    let lm = r.headers()[LAST_MODIFIED].to_str().unwrap().to_owned();
    let etag = r.headers()[ETAG].to_str().unwrap().to_owned();
    let r = f
        .serve("/api.js", &hdrs(&[("if-modified-since", &lm)]))
        .await;
    assert_eq!(r.status(), 304);
    let earlier = httpdate::fmt_http_date(
        httpdate::parse_http_date(&lm).unwrap() - std::time::Duration::from_secs(1),
    );
    let r = f
        .serve("/api.js", &hdrs(&[("if-modified-since", &earlier)]))
        .await;
    assert_eq!(r.status(), 200);
    // If-None-Match takes precedence: a stale tag is a 200 whatever the date says.
    let r = f
        .serve(
            "/api.js",
            &hdrs(&[("if-modified-since", &lm), ("if-none-match", "\"other\"")]),
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = f.serve("/api.js", &hdrs(&[("if-none-match", &etag)])).await;
    assert_eq!(r.status(), 304);
    // The embedded page has no file time: ETag only.
    let r = Frontend::Embedded.serve("/app.js", &hdrs(&[])).await;
    assert!(r.headers().get(LAST_MODIFIED).is_none());
}
