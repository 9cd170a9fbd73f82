//! Public GET bodies from cached bytes: each body is computed and serialized once per
//! (route, path ids, query, event version) and served as the same bytes, and the same gzip,
//! until the event's next commit. A strong `ETag` names the version and the variant, and
//! `If-None-Match` gets a `304` without a body.
//!
//! Why hand-written rather than a caching layer: the key is not the URL alone but the
//! event's `seq` (known only inside the handler, from the snapshot), and an entry must
//! never outlive the commit it was computed at. Entries are replaced on the first request
//! after a commit; stale ones cost memory only until the byte bound clears them.
//!
//! Bounds: the query is part of the key and comes from outside, so the cache holds at most
//! [`MAX_CACHED_BYTES`] of bodies (identity + gzip, see [`entry_bytes`]); a body that would pass the bound
//! empties it first (a cheap, rare reset: the next requests refill what is in use).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, OnceLock};

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hyper::header::{
    HeaderMap, HeaderValue, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, ETAG, IF_NONE_MATCH,
    VARY,
};
use hyper::StatusCode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use super::error::{ApiError, JSON_CONTENT_TYPE};
use super::static_files::{accepts_gzip, etag_matches, gzip_with};

/// At most this many bytes of cached bodies (identity and gzip together).
pub const MAX_CACHED_BYTES: usize = 64 * 1024 * 1024;

/// Bodies shorter than this are sent as they are (as the compression layer does).
const MIN_GZIP: usize = 512;

/// What a cached body is for: the route template and what varies it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    pub route: &'static str,
    pub event: String,
    pub race: String,
    /// What of the query shapes the body, normalized (`catId` and `detailed` for results;
    /// empty elsewhere). Never the raw query: its padding would make entries of any size.
    pub variant: String,
}

struct Entry {
    version: u64,
    /// The strong validators, quoted: of the identity body, and of its gzip (`…-gz`). Kept
    /// as header values so that a hit (and a 304 above all) parses nothing.
    etag: HeaderValue,
    etag_gz: HeaderValue,
    json: Bytes,
    gzip: OnceLock<Option<Bytes>>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheOutcome {
    /// `hit`, `miss` (computed now) or `not_modified` (a 304).
    pub outcome: &'static str,
}

#[derive(Default)]
struct Entries {
    map: HashMap<Key, Arc<Entry>>,
    bytes: usize,
}

pub struct ResponseCache {
    entries: Mutex<Entries>,
    max_bytes: usize,
    /// The family's three counters, looked up once: a counter is a shared atomic, and a
    /// lookup per request (a lock and a hash) is a measurable part of a 304.
    hits: Counter,
    misses: Counter,
    not_modified: Counter,
}

impl ResponseCache {
    pub fn new(max_bytes: usize, counts: Family<CacheOutcome, Counter>) -> ResponseCache {
        let counter = |outcome| counts.get_or_create(&CacheOutcome { outcome }).clone();
        ResponseCache {
            entries: Mutex::new(Entries::default()),
            max_bytes,
            hits: counter("hit"),
            misses: counter("miss"),
            not_modified: counter("not_modified"),
        }
    }

    /// Bytes held now (identity and gzip bodies).
    pub fn held_bytes(&self) -> usize {
        self.lock().bytes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // A panic while holding the lock leaves a consistent map (every write is one
        // insert or clear), so a poisoned lock is still usable.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The reply to a public GET: from the cached bytes when `version` (the event's `seq`,
    /// or for the list a digest of every public event's) is still the one they were computed
    /// at, else from `compute`, which serializes the JSON body.
    pub fn reply(
        &self,
        key: Key,
        epoch: &str,
        version: u64,
        request: &HeaderMap,
        compute: impl FnOnce() -> Result<Vec<u8>, ApiError>,
    ) -> Result<Response, ApiError> {
        let cached = self.lock().map.get(&key).cloned();
        let entry = match cached {
            Some(e) if e.version == version => {
                self.hits.inc();
                e
            }
            _ => {
                self.misses.inc();
                let json = Bytes::from(compute()?);
                let tag = etag_for(&key, epoch, version);
                let entry = Arc::new(Entry {
                    version,
                    etag: quoted(&tag, "")?,
                    etag_gz: quoted(&tag, "-gz")?,
                    json,
                    gzip: OnceLock::new(),
                });
                self.insert(key, Arc::clone(&entry));
                entry
            }
        };
        Ok(self.respond(&entry, request))
    }

    fn insert(&self, key: Key, entry: Arc<Entry>) {
        let mut entries = self.lock();
        let size = entry_bytes(&key, &entry);
        if let Some(old) = entries.map.remove(&key) {
            entries.bytes = entries.bytes.saturating_sub(entry_bytes(&key, &old));
        }
        if entries.bytes + size > self.max_bytes {
            entries.map.clear();
            entries.bytes = 0;
        }
        if size <= self.max_bytes {
            entries.bytes += size;
            entries.map.insert(key, entry);
        }
    }

    fn respond(&self, entry: &Entry, request: &HeaderMap) -> Response {
        let wants_gzip = entry.json.len() >= MIN_GZIP && accepts_gzip(request);
        // The cheapest answer first: a client that has this state gets 304 and nothing else.
        let unchanged = request.contains_key(IF_NONE_MATCH)
            && (etag_matches(request, entry.etag.to_str().unwrap_or_default())
                || etag_matches(request, entry.etag_gz.to_str().unwrap_or_default()));
        let (mut response, gzipped) = if unchanged {
            self.not_modified.inc();
            (StatusCode::NOT_MODIFIED.into_response(), wants_gzip)
        } else {
            let gzip = wants_gzip.then(|| self.gzip_of(entry)).flatten();
            let gzipped = gzip.is_some();
            let mut r = match gzip {
                Some(body) => body.into_response(),
                None => entry.json.clone().into_response(),
            };
            let h = r.headers_mut();
            h.insert(CONTENT_TYPE, HeaderValue::from_static(JSON_CONTENT_TYPE));
            if gzipped {
                h.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            (r, gzipped)
        };
        let etag = if gzipped { &entry.etag_gz } else { &entry.etag };
        let h = response.headers_mut();
        h.insert(ETAG, etag.clone());
        h.insert(VARY, HeaderValue::from_static("accept-encoding"));
        // Live data: a client may keep a copy but must ask (cheaply, with the ETag) each time.
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        response
    }

    /// The gzip of `entry`, made once (by the first request that accepts it), at the best
    /// level: it is paid once per commit and saves bytes on every phone.
    fn gzip_of(&self, entry: &Entry) -> Option<Bytes> {
        entry
            .gzip
            .get_or_init(|| gzip_with(&entry.json, flate2::Compression::best()))
            .clone()
    }
}

/// What an entry counts against the bound: its body, as much again for its gzip (which is
/// smaller), reserved when it is inserted, and its key and ETag (whose parts come from
/// outside), so that many small bodies with long keys are bounded too.
fn entry_bytes(key: &Key, entry: &Entry) -> usize {
    let fixed = std::mem::size_of::<Key>() + std::mem::size_of::<Entry>();
    entry
        .json
        .len()
        .saturating_mul(2)
        .saturating_add(key.event.len() + key.race.len() + key.variant.len())
        .saturating_add(entry.etag.as_bytes().len() + entry.etag_gz.as_bytes().len() + fixed)
}

/// `{boot}.{epoch}.{version}.{digest of the key}`. `boot` is drawn once per process: a
/// restart (or another build) may serve other bytes at the same `seq` (the on-course list is
/// not stored, and the JSON may change with the program), so a validator never outlives the
/// process that made it.
fn etag_for(key: &Key, epoch: &str, version: u64) -> String {
    let mut h = std::hash::DefaultHasher::new();
    key.hash(&mut h);
    let epoch: String = epoch
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(16)
        .collect();
    format!("{}.{epoch}.{version}.{:016x}", boot(), h.finish())
}

/// `"tag{suffix}"` as a header value. The tag is made of hex digits, dots and the epoch's
/// alphanumerics, so this never fails in practice; if it did, the request is answered 503
/// rather than without a validator.
fn quoted(tag: &str, suffix: &str) -> Result<HeaderValue, ApiError> {
    HeaderValue::from_str(&format!("\"{tag}{suffix}\"")).map_err(|e| {
        ApiError::new(
            super::error::ErrorCode::Unavailable,
            format!("entity tag not a header value: {e}"),
        )
    })
}

/// This process's random tag (hex).
fn boot() -> &'static str {
    static BOOT: OnceLock<String> = OnceLock::new();
    BOOT.get_or_init(|| {
        let mut bytes = [0u8; 8];
        // Without randomness, the start time still differs between restarts.
        if getrandom::fill(&mut bytes).is_err() {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            bytes = nanos.to_le_bytes();
        }
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: usize) -> Key {
        Key {
            route: "results",
            event: "EV".into(),
            race: "R".into(),
            variant: format!("catId={n}"),
        }
    }

    /// Queries come from outside: at the default bound, 100 distinct 1 MiB bodies never hold
    /// more than 64 MiB (each reserves twice its size for its gzip), and the newest is kept.
    #[test]
    fn the_cache_holds_at_most_64_mib_at_its_default() {
        assert_eq!(MAX_CACHED_BYTES, 64 * 1024 * 1024);
        let cache = ResponseCache::new(MAX_CACHED_BYTES, Family::default());
        let body = vec![b' '; 1024 * 1024];
        for n in 0..100 {
            let reply = cache.reply(key(n), "epoch", 1, &HeaderMap::new(), || Ok(body.clone()));
            assert_eq!(reply.map(|r| r.status()).ok(), Some(StatusCode::OK));
            assert!(
                cache.held_bytes() <= MAX_CACHED_BYTES,
                "{} bytes",
                cache.held_bytes()
            );
        }
        assert!(cache.lock().map.contains_key(&key(99)));
        assert!(cache.held_bytes() >= 2 * 1024 * 1024);
    }

    #[test]
    fn a_new_version_replaces_the_entry_and_its_count() {
        let cache = ResponseCache::new(MAX_CACHED_BYTES, Family::default());
        let mut computed = 0;
        for version in [1, 1, 2, 2, 2] {
            cache
                .reply(key(0), "epoch", version, &HeaderMap::new(), || {
                    computed += 1;
                    Ok(vec![b'x'; 1000])
                })
                .unwrap();
        }
        assert_eq!(computed, 2, "once per version");
        let held = cache.held_bytes();
        assert!(
            (2000..3000).contains(&held),
            "one entry: twice its body, and its key and ETag: {held}"
        );
    }

    /// Small bodies under long keys (a padded category from outside) are bounded too: the
    /// key counts, so 5 000 entries with 60 KB keys never hold more than the bound.
    #[test]
    fn long_keys_count_against_the_bound() {
        let cache = ResponseCache::new(MAX_CACHED_BYTES, Family::default());
        for n in 0..5_000 {
            let mut k = key(n);
            k.variant = format!("{n}{}", "x".repeat(60_000));
            cache
                .reply(k, "epoch", 1, &HeaderMap::new(), || Ok(b"{}".to_vec()))
                .unwrap();
            assert!(cache.held_bytes() <= MAX_CACHED_BYTES);
        }
        let keys: usize = cache.lock().map.keys().map(|k| k.variant.len()).sum();
        assert!(keys <= MAX_CACHED_BYTES, "{keys} bytes of keys held");
    }
}
