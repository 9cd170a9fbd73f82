//! What the clients record (per client, and shared with the driver) and the printed report.
//! The report's `key: value` lines are what BENCHMARKS.md quotes and the smoke test reads.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use crate::envelope::{Envelope, SeqTracker};
use crate::frames::MARKER_BASE;

/// What the clients share with the driver.
pub struct Shared {
    base: Instant,
    /// Nanoseconds since `base` at which marker `k` was written (0: not yet).
    pub written: Vec<AtomicU64>,
    /// Markers received, over all clients.
    pub markers_received: AtomicU64,
    /// `superseded` diffs received, over all clients: each stands for a marker deliberately
    /// skipped (its list was replaced by a newer one), not lost.
    pub markers_skipped: AtomicU64,
    /// One diff with a marker as received (the bytes the ceiling writes again), and whether
    /// it was taken.
    pub template: Mutex<Option<Vec<u8>>>,
    has_template: AtomicBool,
    pub connected: AtomicUsize,
    /// Per seq: earliest and latest receipt (ns since base), for the fan-out spread.
    pub first_rx: Vec<AtomicU64>,
    pub last_rx: Vec<AtomicU64>,
}

impl Shared {
    pub fn new(markers: u64, seqs: usize) -> Shared {
        Shared {
            base: Instant::now(),
            written: (0..=markers).map(|_| AtomicU64::new(0)).collect(),
            markers_received: AtomicU64::new(0),
            markers_skipped: AtomicU64::new(0),
            template: Mutex::new(None),
            has_template: AtomicBool::new(false),
            connected: AtomicUsize::new(0),
            first_rx: (0..seqs).map(|_| AtomicU64::new(u64::MAX)).collect(),
            last_rx: (0..seqs).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub fn now_ns(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }

    /// Keeps the first marker diff a client received (cheap once one is kept).
    pub fn offer_template(&self, text: &[u8]) {
        if self.has_template.load(Ordering::Relaxed) {
            return;
        }
        let mut t = self.template.lock().unwrap_or_else(|e| e.into_inner());
        if t.is_none() {
            *t = Some(text.to_vec());
            self.has_template.store(true, Ordering::Relaxed);
        }
    }

    /// Marks that marker `k` is being written now.
    pub fn mark_written(&self, k: u64) {
        if let Some(w) = self.written.get(k as usize) {
            w.store(self.now_ns(), Ordering::Release);
        }
    }
}

/// One client's record.
#[derive(Debug, Default, Clone)]
pub struct ClientReport {
    pub connected: bool,
    pub bytes: u64,
    /// Text messages (WebSocket messages: each frame of a multi-part diff counts).
    pub messages: u64,
    /// Text messages that are not a JSON envelope.
    pub unparsed: u64,
    pub seq: SeqTracker,
    pub markers: u64,
    /// `superseded` diffs (see [`Shared::markers_skipped`]).
    pub skipped: u64,
    pub latencies_us: Vec<u32>,
    pub close_code: Option<u16>,
    pub error: Option<String>,
}

impl ClientReport {
    /// One message, received at `now` (ns since `shared`'s base).
    pub fn on_message(&mut self, env: &Envelope, now: u64, shared: &Shared) {
        self.messages += 1;
        self.seq.on_message(env);
        if env.superseded {
            self.skipped += 1;
            shared.markers_skipped.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(seq) = env.seq {
            if let (Some(f), Some(l)) = (
                shared.first_rx.get(seq as usize),
                shared.last_rx.get(seq as usize),
            ) {
                f.fetch_min(now, Ordering::Relaxed);
                l.fetch_max(now, Ordering::Relaxed);
            }
        }
        // Marker `k` is the running time MARKER_BASE + k of the synthetic rider.
        for time in env.oncourse_times() {
            let Some(k) = u64::try_from(time)
                .ok()
                .and_then(|t| t.checked_sub(MARKER_BASE))
            else {
                continue;
            };
            let Some(w) = shared.written.get(k as usize).filter(|_| k > 0) else {
                continue;
            };
            let written = w.load(Ordering::Acquire);
            if written > 0 {
                self.markers += 1;
                shared.markers_received.fetch_add(1, Ordering::Relaxed);
                let us = now.saturating_sub(written) / 1000;
                self.latencies_us.push(us.min(u32::MAX as u64) as u32);
            }
        }
    }
}

/// Totals over the clients of a run (or of the soak's churn).
#[derive(Debug, Default)]
pub struct Totals {
    pub connected: usize,
    pub failed: usize,
    pub first_failure: Option<String>,
    pub closed_by_server: usize,
    pub messages: u64,
    pub unparsed: u64,
    pub gaps: u64,
    pub parts_missing: u64,
    pub multi_part: u64,
    pub out_of_order: u64,
    pub resyncs: u64,
    pub markers: u64,
    pub skipped: u64,
    pub bytes: u64,
    pub min_first_seq: Option<u64>,
    pub max_seq: u64,
    /// Sorted latencies (µs) of every marker received.
    pub latencies_us: Vec<u32>,
}

impl Totals {
    pub fn add(&mut self, r: ClientReport) {
        if !r.connected {
            self.failed += 1;
            if self.first_failure.is_none() {
                self.first_failure = r.error;
            }
            return;
        }
        self.connected += 1;
        self.closed_by_server += usize::from(r.close_code.is_some());
        self.messages += r.messages;
        self.unparsed += r.unparsed;
        self.gaps += r.seq.gaps;
        self.parts_missing += r.seq.parts_missing;
        self.out_of_order += r.seq.out_of_order;
        self.multi_part += r.seq.multi_part;
        self.resyncs += r.seq.resyncs;
        self.markers += r.markers;
        self.skipped += r.skipped;
        self.bytes += r.bytes;
        self.min_first_seq = Some(
            self.min_first_seq
                .map_or(r.seq.first_seq, |m| m.min(r.seq.first_seq)),
        );
        self.max_seq = self.max_seq.max(r.seq.last_seq);
        self.latencies_us.extend(r.latencies_us);
    }

    pub fn sort(&mut self) {
        self.latencies_us.sort_unstable();
    }

    /// Per seq of the run, first-to-last client receipt (µs), sorted.
    pub fn spread_us(&self, shared: &Shared) -> Vec<u32> {
        let first = self.min_first_seq.unwrap_or(0) as usize;
        let mut spread: Vec<u32> = (first + 1..=self.max_seq as usize)
            .filter_map(|s| {
                let f = shared.first_rx.get(s)?.load(Ordering::Relaxed);
                let l = shared.last_rx.get(s)?.load(Ordering::Relaxed);
                (f != u64::MAX && l >= f).then(|| ((l - f) / 1000) as u32)
            })
            .collect();
        spread.sort_unstable();
        spread
    }

    /// The sequence lines, the same in a run and in the soak.
    pub fn print_seq_lines(&self) {
        println!("seq_gaps: {}", self.gaps);
        println!("seq_superseded: {}", self.skipped);
        println!("seq_multi_part_diffs: {}", self.multi_part);
        println!("seq_parts_missing: {}", self.parts_missing);
        println!("seq_out_of_order: {}", self.out_of_order);
        println!("unparsed_messages: {}", self.unparsed);
    }
}

/// The `p`-quantile of sorted microseconds, in milliseconds (NaN if empty).
pub fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx] as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_measure_latency_from_write_to_receipt() {
        let shared = Shared::new(10, 100);
        shared.mark_written(7);
        let written = shared.written[7].load(Ordering::Relaxed);
        let mut rep = ClientReport {
            connected: true,
            ..ClientReport::default()
        };
        let msg = format!(
            r#"{{"type":"diff","seq":5,"data":{{"oncourse":[{{"bib":1,"time":{}}}]}}}}"#,
            MARKER_BASE + 7
        );
        let env = Envelope::parse(msg.as_bytes()).expect("parses");
        rep.on_message(&env, written + 2_000_000, &shared);
        assert_eq!((rep.markers, rep.latencies_us.as_slice()), (1, &[2000][..]));
        // Not yet written, out of range, or below the base: no marker.
        for t in [MARKER_BASE + 8, MARKER_BASE + 99, 5] {
            let msg =
                format!(r#"{{"type":"diff","seq":6,"data":{{"oncourse":[{{"time":{t}}}]}}}}"#);
            rep.on_message(
                &Envelope::parse(msg.as_bytes()).expect("parses"),
                written,
                &shared,
            );
        }
        assert_eq!(rep.markers, 1);
        assert_eq!(shared.markers_received.load(Ordering::Relaxed), 1);
        let mut totals = Totals::default();
        totals.add(rep);
        assert_eq!(
            (totals.min_first_seq, totals.max_seq, totals.messages),
            (Some(5), 6, 4)
        );
    }

    #[test]
    fn percentiles() {
        assert!(percentile(&[], 0.5).is_nan());
        assert_eq!(percentile(&[1000, 2000, 3000], 0.5), 2.0);
        assert_eq!(percentile(&[1000, 2000, 3000], 1.0), 3.0);
    }
}
