//! The front end served beside the API on one origin: the built-in spectator page (embedded in
//! the binary from `web/`), or another front end from a folder (`--static-dir DIR`).
//!
//! - Every non-API `GET`/`HEAD` path lands here (the router keeps `/api/...`, `/health`,
//!   `/metrics`); unknown `/api/*` never does, so it stays a JSON 404.
//! - Embedded assets are compressed once, on first use, and carry a strong ETag (content
//!   hash). Folder files get an ETag from their length and modification time, and that time
//!   as `Last-Modified` (`If-Modified-Since` is answered 304 when no `If-None-Match` is
//!   sent); they are compressed at most once per version (a small in-memory cache), never
//!   per request. No `Range`: the files are small and sent whole.
//! - A path that does not name a file gets `index.html` only when the client accepts
//!   `text/html` (a browser navigating to a client route); a script or stylesheet request
//!   for a missing file gets a JSON 404, never HTML.
//! - Folder mode never serves outside the folder: `..` segments (also percent-encoded) are
//!   refused, and the resolved path is canonicalized (symlinks followed) and must stay under
//!   the canonical folder.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::UNIX_EPOCH;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hyper::header::{
    HeaderMap, HeaderValue, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, ETAG, IF_MODIFIED_SINCE,
    IF_NONE_MATCH, LAST_MODIFIED, VARY,
};
use hyper::StatusCode;
use sha2::{Digest, Sha256};

mod embedded;
mod negotiate;

use embedded::{EMBEDDED, OPERATOR_PATHS};

pub use negotiate::{accepts_gzip, accepts_html, etag_matches};

use crate::http::error::ApiError;
use crate::uri::percent_decode;

type Resp = Response;

/// Files under this size are not worth compressing.
pub const MIN_GZIP: usize = 512;
/// Folder files above this size are served uncompressed (and not cached).
const MAX_GZIP: u64 = 8 * 1024 * 1024;
/// Bytes of compressed folder files kept in memory at most.
const CACHE_BYTES: usize = 64 * 1024 * 1024;

/// The built-in page allows nothing from other origins (venues often have no internet, and a
/// spectator page needs no third party).
const EMBEDDED_CSP: &str = "default-src 'self'; connect-src 'self'; img-src 'self' data:; \
     style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// One asset ready to serve.
#[derive(Debug, Clone)]
struct Asset {
    content_type: &'static str,
    body: Bytes,
    gzip: Option<Bytes>,
    etag: String,
    /// Folder files: their modification time (`Last-Modified`, `If-Modified-Since`).
    modified: Option<std::time::SystemTime>,
}

impl Asset {
    fn new(content_type: &'static str, body: Bytes, etag: String) -> Asset {
        let gzip = compressible(content_type)
            .then(|| gzip(&body))
            .flatten()
            .filter(|z| z.len() < body.len());
        Asset {
            content_type,
            body,
            gzip,
            etag,
            modified: None,
        }
    }
}

fn gzip(data: &[u8]) -> Option<Bytes> {
    gzip_with(data, flate2::Compression::best())
}

/// Gzips `data` unless it is too small to gain (API bodies use the default level).
pub fn gzip_with(data: &[u8], level: flate2::Compression) -> Option<Bytes> {
    if data.len() < MIN_GZIP {
        return None;
    }
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), level);
    enc.write_all(data).ok()?;
    enc.finish().ok().map(Bytes::from)
}

fn compressible(content_type: &str) -> bool {
    content_type.starts_with("text/")
        || content_type.starts_with("application/javascript")
        || content_type.starts_with("application/json")
        || content_type.starts_with("application/manifest+json")
        || content_type.starts_with("image/svg+xml")
        || content_type.starts_with("application/wasm")
}

fn strong_etag(data: &[u8]) -> String {
    let h = Sha256::digest(data);
    let hex: String = h[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

/// The embedded assets, hashed and compressed once per process.
fn embedded() -> &'static HashMap<&'static str, Asset> {
    static ASSETS: OnceLock<HashMap<&'static str, Asset>> = OnceLock::new();
    ASSETS.get_or_init(|| {
        EMBEDDED
            .iter()
            .map(|(path, ct, bytes)| {
                (
                    *path,
                    Asset::new(ct, Bytes::from_static(bytes), strong_etag(bytes)),
                )
            })
            .collect()
    })
}

/// Which front end to serve.
#[derive(Clone, Default)]
pub enum Frontend {
    /// The spectator page built into the binary.
    #[default]
    Embedded,
    /// Files from a folder (canonical path), e.g. a live-mini client build.
    Dir(Arc<StaticDir>),
}

impl std::fmt::Debug for Frontend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Frontend::Embedded => f.write_str("Frontend::Embedded"),
            Frontend::Dir(d) => write!(f, "Frontend::Dir({})", d.root.display()),
        }
    }
}

/// A front-end folder.
pub struct StaticDir {
    root: PathBuf,
    cache: Mutex<DirCache>,
}

#[derive(Default)]
struct DirCache {
    /// Canonical path → (length, mtime ns, gzip bytes or none).
    entries: HashMap<PathBuf, (u64, u128, Option<Bytes>)>,
    bytes: usize,
}

impl Frontend {
    /// `--static-dir DIR`: the folder must exist and hold `index.html`.
    pub fn dir(path: &Path) -> std::io::Result<Frontend> {
        let root = std::fs::canonicalize(path)?;
        if !root.is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{} is not a folder", root.display()),
            ));
        }
        if !root.join("index.html").is_file() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{} has no index.html", root.display()),
            ));
        }
        Ok(Frontend::Dir(Arc::new(StaticDir {
            root,
            cache: Mutex::new(DirCache::default()),
        })))
    }

    /// Serves `raw_path` (as received, still percent-encoded) for a GET or HEAD request.
    /// The caller has already kept `/api/...` for itself.
    pub async fn serve(&self, raw_path: &str, headers: &HeaderMap) -> Resp {
        let Some(segments) = safe_segments(raw_path) else {
            return ApiError::not_found("Resource not found").into_response();
        };
        let wants_html = accepts_html(headers);
        let key = if segments.is_empty() {
            "/index.html".to_owned()
        } else {
            format!("/{}", segments.join("/"))
        };
        let own = OPERATOR_PATHS.contains(&key.as_str());
        match self {
            Frontend::Dir(dir) if !own => {
                let dir = Arc::clone(dir);
                let headers = headers.clone();
                tokio::task::spawn_blocking(move || dir.serve(&segments, wants_html, &headers))
                    .await
                    .unwrap_or_else(|_| ApiError::not_found("Resource not found").into_response())
            }
            _ => {
                let assets = embedded();
                let (asset, is_html) = match assets.get(key.as_str()) {
                    Some(a) => (a, a.content_type.starts_with("text/html")),
                    None if wants_html => (&assets["/index.html"], true),
                    None => return ApiError::not_found("Resource not found").into_response(),
                };
                let mut resp = respond(asset, headers, "no-cache");
                if is_html {
                    resp.headers_mut().insert(
                        "content-security-policy",
                        HeaderValue::from_static(EMBEDDED_CSP),
                    );
                }
                resp
            }
        }
    }
}

impl StaticDir {
    /// Resolves `segments` under the folder; `None` when it names no file inside it.
    fn resolve(&self, segments: &[String]) -> Option<PathBuf> {
        let mut p = self.root.clone();
        for s in segments {
            p.push(s);
        }
        let mut canonical = std::fs::canonicalize(&p).ok()?;
        if !canonical.starts_with(&self.root) {
            return None;
        }
        if canonical.is_dir() {
            canonical = std::fs::canonicalize(canonical.join("index.html")).ok()?;
            if !canonical.starts_with(&self.root) {
                return None;
            }
        }
        canonical.is_file().then_some(canonical)
    }

    fn serve(&self, segments: &[String], wants_html: bool, headers: &HeaderMap) -> Resp {
        let (path, is_index) = match self.resolve(segments) {
            Some(p) => {
                let is_index = p.file_name().is_some_and(|n| n == "index.html");
                (p, is_index)
            }
            None if wants_html => match self.resolve(&["index.html".to_owned()]) {
                Some(p) => (p, true),
                None => return ApiError::not_found("Resource not found").into_response(),
            },
            None => return ApiError::not_found("Resource not found").into_response(),
        };
        let Ok(body) = std::fs::read(&path) else {
            return ApiError::not_found("Resource not found").into_response();
        };
        let meta = std::fs::metadata(&path).ok();
        let len = body.len() as u64;
        let modified = meta.and_then(|m| m.modified().ok());
        let mtime = modified
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        let etag = format!("\"{len:x}-{mtime:x}\"");
        let content_type = content_type_of(&path);
        let gz = if compressible(content_type) && len <= MAX_GZIP {
            self.gzip_cached(&path, len, mtime, &body)
        } else {
            None
        };
        let asset = Asset {
            content_type,
            body: Bytes::from(body),
            gzip: gz,
            etag,
            modified,
        };
        // Hashed build output (`assets/…`, as Vite names it) never changes under one name.
        let cache = if is_index {
            "no-cache"
        } else if segments.first().is_some_and(|s| s == "assets") {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        };
        respond(&asset, headers, cache)
    }

    fn gzip_cached(&self, path: &Path, len: u64, mtime: u128, body: &[u8]) -> Option<Bytes> {
        {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((l, m, z)) = cache.entries.get(path) {
                if *l == len && *m == mtime {
                    return z.clone();
                }
            }
        }
        let z = gzip(body).filter(|z| z.len() < body.len());
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let size = z.as_ref().map_or(0, Bytes::len);
        if cache.bytes + size > CACHE_BYTES {
            cache.entries.clear();
            cache.bytes = 0;
        }
        if let Some((_, _, old)) = cache
            .entries
            .insert(path.to_owned(), (len, mtime, z.clone()))
        {
            cache.bytes -= old.map_or(0, |o| o.len());
        }
        cache.bytes += size;
        z
    }
}

/// Builds the response: 304 when the client's copy is current, gzip when accepted.
fn respond(asset: &Asset, headers: &HeaderMap, cache_control: &'static str) -> Resp {
    let etag = HeaderValue::from_str(&asset.etag).unwrap_or(HeaderValue::from_static("\"0\""));
    let mut resp = if etag_matches(headers, &asset.etag) || not_modified_since(headers, asset) {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        match (&asset.gzip, accepts_gzip(headers)) {
            (Some(z), true) => {
                let mut r = Response::new(Body::from(z.clone()));
                r.headers_mut()
                    .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                r
            }
            _ => Response::new(Body::from(asset.body.clone())),
        }
    };
    let h = resp.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_str(asset.content_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    h.insert(ETAG, etag);
    if let Some(t) = asset.modified {
        if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(t)) {
            h.insert(LAST_MODIFIED, v);
        }
    }
    h.insert(CACHE_CONTROL, HeaderValue::from_static(cache_control));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    if asset.gzip.is_some() {
        h.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
    }
    resp
}

/// `If-Modified-Since` at or after the file's time, and no `If-None-Match` (which takes
/// precedence, RFC 9110 §13.1.3). HTTP dates have whole seconds.
fn not_modified_since(headers: &HeaderMap, asset: &Asset) -> bool {
    let Some(modified) = asset.modified else {
        return false;
    };
    if headers.contains_key(IF_NONE_MATCH) {
        return false;
    }
    let Some(since) = headers
        .get(IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
    else {
        return false;
    };
    let secs = |t: std::time::SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    secs(modified) <= secs(since)
}

/// The decoded path segments, or `None` for anything that could leave the folder or is not
/// a plain relative path: `..` (also `%2e%2e`), backslashes, NUL, drive prefixes, an encoded
/// `/` inside a segment. `.` and empty segments are dropped.
pub fn safe_segments(raw_path: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for raw in raw_path.split('/') {
        let seg = percent_decode(raw)?;
        if seg.is_empty() || seg == "." {
            continue;
        }
        if seg == ".."
            || seg.contains(['/', '\\', '\0'])
            || seg.contains(':')
            || Path::new(&seg)
                .components()
                .any(|c| !matches!(c, Component::Normal(_)))
        {
            return None;
        }
        out.push(seg);
    }
    Some(out)
}

/// Content type by file extension (what a front-end build contains).
pub fn content_type_of(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "ico" => "image/x-icon",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "otf" => "font/otf",
        "txt" => "text/plain; charset=utf-8",
        "xml" => "application/xml",
        "wasm" => "application/wasm",
        "pdf" => "application/pdf",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests;
