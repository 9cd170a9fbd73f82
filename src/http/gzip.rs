//! Gzip of response bodies: a leaf shared by the routes (API bodies, default level) and the
//! static files (best level, compressed once). It sat in `static_files`, which made the
//! routes and the static files import each other.

use std::io::Write as _;

use bytes::Bytes;

/// Bodies under this size are not worth compressing.
const MIN_GZIP: usize = 512;

/// Gzips `data` unless it is too small to gain (API bodies use the default level).
pub fn gzip_with(data: &[u8], level: flate2::Compression) -> Option<Bytes> {
    if data.len() < MIN_GZIP {
        return None;
    }
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), level);
    enc.write_all(data).ok()?;
    enc.finish().ok().map(Bytes::from)
}
