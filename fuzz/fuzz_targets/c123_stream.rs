//! Arbitrary bytes through the TCP codec (in arbitrary chunks) and every frame through the
//! frame parser: nothing may panic, and the codec must never hold more than its limit.
#![no_main]

use bytes::BytesMut;
use c123_live::c123::codec::{C123Codec, Frame};
use c123_live::c123::frame::parse_frame;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

const LIMIT: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let (split, body) = match data.split_first() {
        Some((s, b)) => (usize::from(*s).max(1), b),
        None => return,
    };
    let mut codec = C123Codec::with_max_frame(LIMIT);
    let mut buf = BytesMut::new();
    for chunk in body.chunks(split) {
        buf.extend_from_slice(chunk);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(Frame::Text(text))) => {
                    let _ = parse_frame(&text);
                }
                Ok(Some(Frame::InvalidUtf8 { .. })) => {}
                Ok(None) => break,
                Err(_) => return,
            }
        }
        assert!(buf.len() <= LIMIT + split, "codec buffered past its limit");
    }
    let _ = codec.decode_eof(&mut buf);
});
