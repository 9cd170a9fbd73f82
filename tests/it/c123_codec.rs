//! `|` framing codec tests: real multi-frame chunks split everywhere, UTF-8 across reads,
//! limits, garbage, EOF, and a proptest against a one-shot reference split.

use bytes::BytesMut;
use c123_live::c123::codec::{C123Codec, CodecError, Frame};
use c123_live::c123::recording::Recording;
use proptest::prelude::*;
use tokio_util::codec::{Decoder, Encoder};

/// What the codec produced, comparable (CodecError holds an io::Error).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Out {
    Text(String),
    InvalidUtf8 { len: usize },
    TooLong,
    Truncated,
}

fn out_of(item: Result<Option<Frame>, CodecError>) -> Option<Out> {
    match item {
        Ok(Some(Frame::Text(t))) => Some(Out::Text(t)),
        Ok(Some(Frame::InvalidUtf8 { len, .. })) => Some(Out::InvalidUtf8 { len }),
        Ok(None) => None,
        Err(CodecError::FrameTooLong { .. }) => Some(Out::TooLong),
        Err(CodecError::TruncatedFrame { .. }) => Some(Out::Truncated),
        Err(e) => panic!("unexpected error {e}"),
    }
}

/// Feeds `chunks` one by one, draining `decode` after each (as FramedRead does, but carrying
/// on after errors), then `decode_eof`. Also checks the buffer never exceeds `limit + chunk`.
fn run_chunks(codec: &mut C123Codec, chunks: &[&[u8]]) -> Vec<Out> {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        while let Some(o) = out_of(codec.decode(&mut buf)) {
            out.push(o);
        }
        assert!(
            buf.len() <= codec.max_frame() + chunk.len(),
            "buffer {} over limit {}",
            buf.len(),
            codec.max_frame()
        );
    }
    while let Some(o) = out_of(codec.decode_eof(&mut buf)) {
        let stop = matches!(o, Out::Truncated);
        out.push(o);
        if stop {
            break;
        }
    }
    out
}

/// Independent oracle: split the complete input on `|`.
fn reference(bytes: &[u8], limit: usize) -> Vec<Out> {
    let mut out = Vec::new();
    let mut pieces: Vec<&[u8]> = bytes.split(|&b| b == b'|').collect();
    let last = pieces.pop().unwrap_or(&[]);
    for piece in pieces {
        if piece.len() > limit {
            out.push(Out::TooLong);
            continue;
        }
        let t = piece.trim_ascii();
        if t.is_empty() {
            continue;
        }
        out.push(match std::str::from_utf8(t) {
            Ok(s) => Out::Text(s.to_owned()),
            Err(_) => Out::InvalidUtf8 { len: t.len() },
        });
    }
    if last.len() > limit {
        out.push(Out::TooLong);
    } else if !last.trim_ascii().is_empty() {
        out.push(Out::Truncated);
    }
    out
}

fn recording() -> Recording {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/jarni-2024.tcp.jsonl");
    let text = std::fs::read_to_string(path).expect("fixture");
    Recording::parse(&text).expect("recording parses")
}

/// A real multi-frame chunk: OnCourse, TVS (with Czech names around) and a TimeOfDay.
fn real_chunk() -> (Vec<u8>, Vec<Out>) {
    let rec = recording();
    let frames: Vec<&str> = rec.frames[30..36].iter().map(|f| f.data.as_str()).collect();
    let mut bytes = Vec::new();
    for f in &frames {
        bytes.extend_from_slice(f.as_bytes());
        bytes.push(b'|');
    }
    let expected = frames.iter().map(|f| Out::Text((*f).to_owned())).collect();
    (bytes, expected)
}

#[test]
fn split_at_every_offset_gives_same_frames() {
    let (bytes, expected) = real_chunk();
    assert!(bytes.len() > 2000 && expected.len() == 6);
    assert!(String::from_utf8_lossy(&bytes).contains('Č'));
    for cut in 0..=bytes.len() {
        let (a, b) = bytes.split_at(cut);
        let got = run_chunks(&mut C123Codec::new(), &[a, b]);
        assert_eq!(got, expected, "cut at {cut}");
    }
}

#[test]
fn byte_by_byte_and_three_way_splits() {
    let (bytes, expected) = real_chunk();
    let singles: Vec<&[u8]> = bytes.chunks(1).collect();
    assert_eq!(run_chunks(&mut C123Codec::new(), &singles), expected);
    for step in [2, 3, 7, 64, 1460] {
        let chunks: Vec<&[u8]> = bytes.chunks(step).collect();
        assert_eq!(
            run_chunks(&mut C123Codec::new(), &chunks),
            expected,
            "{step}"
        );
    }
}

#[test]
fn several_frames_in_one_read() {
    let got = run_chunks(&mut C123Codec::new(), &[b"<a/>|<b/>|<c/>|"]);
    assert_eq!(
        got,
        vec![
            Out::Text("<a/>".into()),
            Out::Text("<b/>".into()),
            Out::Text("<c/>".into())
        ]
    );
}

#[test]
fn delimiter_at_segment_boundary() {
    let got = run_chunks(
        &mut C123Codec::new(),
        &[b"<a/>", b"|", b"<b/>|", b"|<c/>", b"|"],
    );
    assert_eq!(
        got,
        vec![
            Out::Text("<a/>".into()),
            Out::Text("<b/>".into()),
            Out::Text("<c/>".into())
        ]
    );
}

#[test]
fn empty_and_whitespace_frames_are_skipped() {
    let got = run_chunks(&mut C123Codec::new(), &[b"||<x>data</x>|  |"]);
    assert_eq!(got, vec![Out::Text("<x>data</x>".into())]);
    let got = run_chunks(&mut C123Codec::new(), &[b"\r\n  <x/> \t\r\n|\n"]);
    assert_eq!(got, vec![Out::Text("<x/>".into())]);
}

#[test]
fn partial_frame_then_rest() {
    let got = run_chunks(&mut C123Codec::new(), &[b"<xml>part", b"ial</xml>|"]);
    assert_eq!(got, vec![Out::Text("<xml>partial</xml>".into())]);
}

#[test]
fn utf8_char_split_across_reads() {
    let text = "<N>Č</N>";
    let bytes = format!("{text}|").into_bytes();
    let c_at = text.find('Č').expect("Č");
    // Split inside the two-byte Č.
    let (a, b) = bytes.split_at(c_at + 1);
    let got = run_chunks(&mut C123Codec::new(), &[a, b]);
    assert_eq!(got, vec![Out::Text(text.into())]);
}

#[test]
fn invalid_utf8_is_a_recoverable_item() {
    let got = run_chunks(&mut C123Codec::new(), &[b"<a>\xff\xfe</a>|<b/>|"]);
    assert_eq!(
        got,
        vec![Out::InvalidUtf8 { len: 9 }, Out::Text("<b/>".into())]
    );
    let mut codec = C123Codec::new();
    let mut buf = BytesMut::from(&b"ok\xC4|"[..]);
    assert_eq!(
        codec.decode(&mut buf).expect("no error"),
        Some(Frame::InvalidUtf8 {
            len: 3,
            valid_up_to: 2
        })
    );
}

#[test]
fn binary_garbage_does_not_panic_or_stall() {
    let garbage: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    let got = run_chunks(&mut C123Codec::new(), &[&garbage, b"|<ok/>|"]);
    assert_eq!(got.last(), Some(&Out::Text("<ok/>".into())));
    assert_eq!(
        got,
        reference(&[&garbage[..], b"|<ok/>|"].concat(), 4 << 20)
    );
}

#[test]
fn oversized_frame_is_an_error_with_bounded_memory() {
    let limit = 1024;
    let mut codec = C123Codec::with_max_frame(limit);
    let mut buf = BytesMut::new();
    let chunk = [b'x'; 100];
    let mut error_seen = false;
    for _ in 0..100 {
        buf.extend_from_slice(&chunk);
        match codec.decode(&mut buf) {
            Err(CodecError::FrameTooLong { limit: l }) => {
                assert_eq!(l, limit);
                error_seen = true;
            }
            Ok(None) => {}
            other => panic!("unexpected {other:?}"),
        }
        assert!(buf.len() <= limit + chunk.len(), "buffered {}", buf.len());
    }
    assert!(error_seen);
    // The tail of the oversized frame is discarded up to its `|`; then the stream resumes.
    buf.extend_from_slice(b"tail|<next/>|");
    assert_eq!(
        out_of(codec.decode(&mut buf)),
        Some(Out::Text("<next/>".into()))
    );
}

#[test]
fn oversized_frame_in_one_read() {
    let limit = 10;
    let got = run_chunks(
        &mut C123Codec::with_max_frame(limit),
        &[b"<a>0123456789</a>|<b/>|"],
    );
    assert_eq!(got, vec![Out::TooLong, Out::Text("<b/>".into())]);
    // Exactly at the limit is fine.
    let got = run_chunks(&mut C123Codec::with_max_frame(4), &[b"<b/>|"]);
    assert_eq!(got, vec![Out::Text("<b/>".into())]);
}

#[test]
fn connection_closed_mid_frame() {
    let mut codec = C123Codec::new();
    let mut buf = BytesMut::from(&b"<a/>|<Canoe123><OnCo"[..]);
    assert_eq!(
        out_of(codec.decode_eof(&mut buf)),
        Some(Out::Text("<a/>".into()))
    );
    assert!(matches!(
        codec.decode_eof(&mut buf),
        Err(CodecError::TruncatedFrame { len: 15 })
    ));
    assert!(buf.is_empty());
    // Trailing whitespace only is a clean close.
    let mut buf = BytesMut::from(&b"<a/>|\r\n"[..]);
    let mut codec = C123Codec::new();
    assert_eq!(
        out_of(codec.decode_eof(&mut buf)),
        Some(Out::Text("<a/>".into()))
    );
    assert_eq!(out_of(codec.decode_eof(&mut buf)), None);
}

#[test]
fn encoder_appends_delimiter_and_refuses_pipes() {
    let mut codec = C123Codec::new();
    let mut dst = BytesMut::new();
    codec.encode("<a/>", &mut dst).expect("encodes");
    codec
        .encode(String::from("<b>Č</b>"), &mut dst)
        .expect("encodes");
    assert_eq!(&dst[..], "<a/>|<b>Č</b>|".as_bytes());
    assert!(matches!(
        codec.encode("<a>x|y</a>", &mut dst),
        Err(CodecError::DelimiterInFrame)
    ));
    // Round trip.
    let got = run_chunks(&mut C123Codec::new(), &[&dst]);
    assert_eq!(
        got,
        vec![Out::Text("<a/>".into()), Out::Text("<b>Č</b>".into())]
    );
}

#[test]
fn whole_recording_round_trips_through_the_codec() {
    let rec = recording();
    let wire = rec.to_wire();
    let chunks: Vec<&[u8]> = wire.chunks(1460).collect();
    let got = run_chunks(&mut C123Codec::new(), &chunks);
    let expected: Vec<Out> = rec
        .frames
        .iter()
        .map(|f| Out::Text(f.data.clone()))
        .collect();
    assert_eq!(got.len(), 1051);
    assert_eq!(got, expected);
}

fn chunked(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.sort_unstable();
    let mut chunks = Vec::new();
    let mut start = 0;
    for p in points {
        chunks.push(bytes[start..p].to_vec());
        start = p;
    }
    chunks.push(bytes[start..].to_vec());
    chunks
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_any_chunking_match_reference(
        bytes in prop::collection::vec(
            prop_oneof![Just(b'|'), Just(b' '), Just(b'\n'), Just(0xC4u8), Just(0x8Cu8), any::<u8>()],
            0..300,
        ),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
        limit in prop_oneof![Just(4usize << 20), 1usize..40],
    ) {
        let chunks = chunked(&bytes, &cuts);
        let refs: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
        let got = run_chunks(&mut C123Codec::with_max_frame(limit), &refs);
        prop_assert_eq!(got, reference(&bytes, limit));
    }
}
