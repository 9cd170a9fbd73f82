//! The load generator and the soak cannot rot: both run tiny against the real daemon binary
//! (the tool starts it as a child process) and must report sane numbers. The real
//! measurements are in BENCHMARKS.md.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The daemon binary, `target/<profile>/c123-live` next to the tool. `cargo test` at the
/// root builds it (the root package's integration tests need it); when only this member is
/// tested (`cargo test -p c123-loadgen`) it may be missing, and is built here.
fn daemon() -> &'static Path {
    static DAEMON: OnceLock<PathBuf> = OnceLock::new();
    DAEMON.get_or_init(|| {
        let tool = Path::new(env!("CARGO_BIN_EXE_c123-loadgen"));
        let path = tool.with_file_name(format!("c123-live{}", std::env::consts::EXE_SUFFIX));
        if !path.is_file() {
            let release = tool.parent().and_then(Path::file_name) == Some("release".as_ref());
            let mut cargo = Command::new(env!("CARGO"));
            cargo
                .args(["build", "--quiet", "-p", "c123-live", "--bin", "c123-live"])
                .arg("--manifest-path")
                .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml"));
            if release {
                cargo.arg("--release");
            }
            let status = cargo.status().expect("run cargo build for the daemon");
            assert!(status.success(), "building the daemon failed: {status}");
            assert!(path.is_file(), "no daemon at {}", path.display());
        }
        path
    })
}

fn run(args: &[&str]) -> HashMap<String, String> {
    let out = Command::new(env!("CARGO_BIN_EXE_c123-loadgen"))
        .arg("--daemon")
        .arg(daemon())
        .args(args)
        .output()
        .expect("run c123-loadgen");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "c123-loadgen failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{stdout}");
    stdout
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

fn num(m: &HashMap<String, String>, key: &str) -> f64 {
    m.get(key)
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{key} missing or not a number: {m:?}"))
}

#[test]
fn loadgen_twenty_clients_twenty_diffs() {
    let m = run(&[
        "--clients",
        "20",
        "--diffs",
        "20",
        "--rate",
        "50",
        "--synchronous",
        "off",
        "--idle-secs",
        "0.2",
        // 6 clients per source address: 127.0.0.1 … 127.0.0.4 (the path used past ~28 000).
        "--per-source-ip",
        "6",
        // Then the same against the raw-socket writer.
        "--ceiling",
    ]);
    assert_eq!(num(&m, "clients_connected"), 20.0);
    assert_eq!(num(&m, "clients_failed"), 0.0);
    assert_eq!(num(&m, "seq_gaps"), 0.0);
    assert_eq!(num(&m, "seq_parts_missing"), 0.0);
    assert_eq!(num(&m, "seq_out_of_order"), 0.0);
    assert_eq!(num(&m, "unparsed_messages"), 0.0);
    assert_eq!(num(&m, "resyncs"), 0.0);
    assert_eq!(num(&m, "markers_received"), 400.0);
    assert_eq!(num(&m, "lost"), 0.0);
    // Each client: its full, then one diff per marker (the rider may also leave the course).
    assert!(num(&m, "messages_delivered") >= 20.0 * 21.0);
    // "p50 a p90 b p99 c max d (n=400)"
    let lat: Vec<f64> = m["latency_ms"]
        .split_whitespace()
        .skip(1)
        .step_by(2)
        .take(4)
        .map(|v| v.parse().expect("latency number"))
        .collect();
    assert!(lat.windows(2).all(|w| w[0] <= w[1]), "ordered: {lat:?}");
    assert!(lat[0] > 0.0 && lat[3] < 10_000.0, "sane: {lat:?}");
    assert!(m["latency_ms"].ends_with("(n=400)"));
    assert!(num(&m, "rss_before_kib") > 1000.0);
    assert!(num(&m, "rss_after_kib") > 1000.0);
    // The full alone is ~15.7 KB.
    assert!(num(&m, "bytes_per_client") > 15_000.0);
    // The ceiling: the same 20 clients got the same 20 markers from the raw writer.
    assert_eq!(num(&m, "ceiling_clients_connected"), 20.0);
    assert_eq!(num(&m, "ceiling_markers_received"), 400.0);
    let ratio = &m["fanout_ratio (hub / ceiling)"];
    assert!(ratio.starts_with("p50 "), "{ratio}");
}

#[test]
fn soak_short_day() {
    // 12 simulated minutes at 240x (3 s wall), a sample every 6 simulated minutes.
    let m = run(&[
        "--soak",
        "--hours",
        "0.2",
        "--speedup",
        "240",
        "--sample-minutes",
        "6",
        "--soak-clients",
        "5",
        "--synchronous",
        "off",
    ]);
    assert!(num(&m, "frames") > 100.0);
    assert!(num(&m, "laps") >= 2.0);
    // A debug build imports slowly on a loaded machine; the real soak runs in release.
    assert!(num(&m, "xml_imports") >= 1.0);
    assert_eq!(num(&m, "seq_gaps"), 0.0);
    // The recording's best-run results arrive as two-frame diffs (`part`/`parts`): counted
    // as one change each, never as a gap.
    assert!(num(&m, "seq_multi_part_diffs") > 0.0);
    assert_eq!(num(&m, "seq_parts_missing"), 0.0);
    assert_eq!(num(&m, "seq_out_of_order"), 0.0);
    assert!(num(&m, "clients_opened") >= 5.0);
    assert!(num(&m, "messages_delivered") > 0.0);
    assert!(num(&m, "rss_first_sample_kib") > 1000.0);
}
