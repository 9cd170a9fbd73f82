//! `|`-delimited framing of the Canoe123 TCP stream.
//!
//! Canoe123 writes one `<Canoe123 …>…</Canoe123>` fragment after another, each followed by
//! a single `|` (reference §1.3). There is no length prefix and no escaping, so the codec
//! only has to find the next `|`.
//!
//! Decisions (documented here because callers depend on them):
//!
//! - **Empty and whitespace-only frames are skipped**, and each frame is trimmed of ASCII
//!   whitespace at both ends (`"||<x/>|  |"` yields exactly one frame, `"<x/>"`), matching
//!   c123-server.
//! - **UTF-8 is decoded per whole frame**, never per read, so a multi-byte character split
//!   across TCP segments survives.
//! - **Invalid UTF-8 is recoverable**: the frame is yielded as [`Frame::InvalidUtf8`] (the
//!   caller counts it and carries on) instead of an `Err`, because any `Err` from a decoder
//!   ends a `FramedRead` stream, and one corrupt frame is no reason to drop the connection.
//! - **A frame longer than the limit is fatal for the stream**: [`CodecError::FrameTooLong`]
//!   is returned as soon as the buffer holds more than `limit` bytes without a `|` (so memory
//!   stays bounded by the limit plus one read). The buffered bytes are dropped and the codec
//!   discards input up to the next `|`, so a caller driving [`Decoder::decode`] directly may
//!   continue; a `FramedRead` user will see the stream end and should reconnect.
//! - **A partial frame at end of stream** is reported as [`CodecError::TruncatedFrame`] (it is
//!   incomplete by definition, so it is not handed to the parser); trailing whitespace alone
//!   is not an error.

use bytes::{BufMut, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// The frame terminator on the wire.
pub const FRAME_DELIMITER: u8 = b'|';

/// Default maximum frame length: 4 MiB. Real `Results` frames are ~30 KB, so this only
/// guards against a peer that never sends `|`.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 4 * 1024 * 1024;

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A complete, trimmed, non-empty frame of valid UTF-8 (normally one `<Canoe123>` fragment).
    Text(String),
    /// A complete frame whose bytes are not valid UTF-8. It is dropped; this only reports it.
    InvalidUtf8 {
        /// Length of the (trimmed) frame in bytes.
        len: usize,
        /// Byte offset of the first invalid sequence.
        valid_up_to: usize,
    },
}

/// Errors of [`C123Codec`]. All of them end a `FramedRead` stream.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// More than `limit` bytes arrived without a `|`.
    #[error("frame longer than {limit} bytes without a '|' terminator")]
    FrameTooLong {
        /// The configured maximum frame length in bytes.
        limit: usize,
    },
    /// The stream ended in the middle of a frame.
    #[error("stream ended inside a frame ({len} bytes without a '|' terminator)")]
    TruncatedFrame {
        /// Number of non-terminated bytes dropped.
        len: usize,
    },
    /// The encoder was asked to send text containing `|`, which would split the frame.
    #[error("frame text contains the '|' delimiter")]
    DelimiterInFrame,
    /// I/O error of the underlying transport.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Tokio codec for the `|`-delimited Canoe123 stream (decoder and encoder).
#[derive(Debug, Clone)]
pub struct C123Codec {
    max_frame: usize,
    /// Bytes at the front of the buffer already known not to contain `|`, so each call only
    /// scans newly arrived bytes (a 30 KB `Results` frame arriving in 1.5 KB segments would
    /// otherwise be rescanned ~20 times).
    scanned: usize,
    /// After `FrameTooLong`: drop everything up to and including the next `|`.
    discarding: bool,
}

impl Default for C123Codec {
    fn default() -> Self {
        Self::new()
    }
}

impl C123Codec {
    /// A codec with the default 4 MiB frame limit.
    pub fn new() -> Self {
        Self::with_max_frame(DEFAULT_MAX_FRAME_BYTES)
    }

    /// A codec that rejects frames longer than `max_frame` bytes (excluding the `|`).
    pub fn with_max_frame(max_frame: usize) -> Self {
        Self {
            max_frame,
            scanned: 0,
            discarding: false,
        }
    }

    /// The configured maximum frame length in bytes.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }
}

fn frame_from_bytes(raw: &[u8]) -> Frame {
    match std::str::from_utf8(raw) {
        Ok(text) => Frame::Text(text.to_owned()),
        Err(e) => Frame::InvalidUtf8 {
            len: raw.len(),
            valid_up_to: e.valid_up_to(),
        },
    }
}

impl Decoder for C123Codec {
    type Item = Frame;
    type Error = CodecError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        loop {
            // `scanned` never exceeds the buffer length: it is reset whenever bytes are taken
            // out. `get` keeps this panic-free even if a caller swapped the buffer.
            let unscanned = buf.get(self.scanned..).unwrap_or(&[]);
            let Some(rel) = unscanned.iter().position(|&b| b == FRAME_DELIMITER) else {
                if self.discarding {
                    buf.clear();
                    self.scanned = 0;
                } else if buf.len() > self.max_frame {
                    buf.clear();
                    self.scanned = 0;
                    self.discarding = true;
                    return Err(CodecError::FrameTooLong {
                        limit: self.max_frame,
                    });
                } else {
                    self.scanned = buf.len();
                }
                return Ok(None);
            };
            let end = self.scanned + rel;
            self.scanned = 0;
            let raw = buf.split_to(end + 1);
            if self.discarding {
                // The tail of an oversized frame: drop it and resynchronise.
                self.discarding = false;
                continue;
            }
            if end > self.max_frame {
                // The whole oversized frame arrived in one read; it is already removed from
                // the buffer, so the stream is still in sync after this error.
                return Err(CodecError::FrameTooLong {
                    limit: self.max_frame,
                });
            }
            let content = raw.get(..end).unwrap_or(&[]).trim_ascii();
            if content.is_empty() {
                continue;
            }
            return Ok(Some(frame_from_bytes(content)));
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        if let Some(frame) = self.decode(buf)? {
            return Ok(Some(frame));
        }
        let leftover = buf.trim_ascii().len();
        let was_discarding = self.discarding;
        buf.clear();
        self.scanned = 0;
        self.discarding = false;
        if leftover > 0 && !was_discarding {
            return Err(CodecError::TruncatedFrame { len: leftover });
        }
        Ok(None)
    }
}

impl Encoder<&str> for C123Codec {
    type Error = CodecError;

    /// Writes `text` followed by `|`. Text containing `|` is refused (it would be read back
    /// as two frames).
    fn encode(&mut self, text: &str, dst: &mut BytesMut) -> Result<(), CodecError> {
        if text.as_bytes().contains(&FRAME_DELIMITER) {
            return Err(CodecError::DelimiterInFrame);
        }
        dst.reserve(text.len() + 1);
        dst.put_slice(text.as_bytes());
        dst.put_u8(FRAME_DELIMITER);
        Ok(())
    }
}

impl Encoder<String> for C123Codec {
    type Error = CodecError;

    fn encode(&mut self, text: String, dst: &mut BytesMut) -> Result<(), CodecError> {
        Encoder::<&str>::encode(self, text.as_str(), dst)
    }
}
