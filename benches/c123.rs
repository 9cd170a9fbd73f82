//! Throughput of the Canoe123 TCP layer over the real recording; prints numbers, asserts
//! nothing about time. Run: `cargo bench --bench c123`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use c123_live::c123::codec::{C123Codec, Frame};
use c123_live::c123::frame::parse_frame;
use c123_live::c123::recording::Recording;
use tokio_util::codec::Decoder;

/// Runs `f` (which processes `frames` frames) repeatedly for about `budget`; prints frames/s.
fn measure(
    label: &str,
    frames: usize,
    bytes: usize,
    budget: Duration,
    mut f: impl FnMut() -> usize,
) {
    // Warm-up.
    black_box(f());
    let start = Instant::now();
    let mut rounds = 0u64;
    while start.elapsed() < budget {
        black_box(f());
        rounds += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    let total_frames = frames as f64 * rounds as f64;
    println!(
        "{label:<34} {:>12.0} frames/s {:>9.1} MB/s  ({rounds} passes of {frames} frames)",
        total_frames / secs,
        bytes as f64 * rounds as f64 / secs / 1e6,
    );
}

fn decode_all(wire: &[u8], chunk: usize, mut on_frame: impl FnMut(&str)) -> usize {
    let mut codec = C123Codec::new();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut n = 0;
    for piece in wire.chunks(chunk) {
        buf.extend_from_slice(piece);
        while let Ok(Some(frame)) = codec.decode(&mut buf) {
            if let Frame::Text(text) = frame {
                on_frame(&text);
            }
            n += 1;
        }
    }
    n
}

fn main() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/jarni-2024.tcp.jsonl");
    let text = std::fs::read_to_string(path).expect("fixture");
    let rec = Recording::parse(&text).expect("recording");
    let wire = rec.to_wire();
    let n = rec.frames.len();
    let budget = Duration::from_secs(2);
    println!("recording: {n} frames, {} bytes on the wire", wire.len());

    measure("codec only (1460 B reads)", n, wire.len(), budget, || {
        decode_all(&wire, 1460, |_| {})
    });
    measure("codec only (64 KiB reads)", n, wire.len(), budget, || {
        decode_all(&wire, 64 * 1024, |_| {})
    });
    measure("parser only", n, wire.len(), budget, || {
        rec.frames
            .iter()
            .map(|f| parse_frame(&f.data).map_or(0, |m| m.len()))
            .sum()
    });
    measure(
        "codec + parser (1460 B reads)",
        n,
        wire.len(),
        budget,
        || {
            decode_all(&wire, 1460, |t| {
                black_box(parse_frame(t).ok());
            })
        },
    );

    // The mix is dominated by big Results frames by bytes; OnCourse alone is the hot path.
    let oncourse: Vec<&str> = rec
        .frames
        .iter()
        .filter(|f| f.kind == "OnCourse")
        .map(|f| f.data.as_str())
        .collect();
    let oc_bytes = oncourse.iter().map(|s| s.len()).sum();
    measure(
        "parser, OnCourse frames only",
        oncourse.len(),
        oc_bytes,
        budget,
        || {
            oncourse
                .iter()
                .map(|f| parse_frame(f).map_or(0, |m| m.len()))
                .sum()
        },
    );
}
