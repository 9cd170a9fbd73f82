//! Prometheus metrics (`GET /metrics`, text exposition format via `prometheus-client`).
//!
//! - `http_requests_total{route,method,status}`: `route` is the route template, so the label
//!   set stays bounded whatever URLs clients send.
//! - `ingest_inputs_total{kind,outcome}`: ingest API inputs by kind (xml, oncourse, results)
//!   and outcome (applied, ignored, rejected, forbidden, error).
//! - `merge_commits_total`, `merge_commit_seconds_total`, `merge_inputs_applied_total`,
//!   `merge_inputs_rejected_total`, `merge_store_errors_total`: from the merge loop's stats.
//! - `snapshot_age_seconds`: time since the last commit (how stale reads are).
//! - `http_connections_open`.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::Registry;

use crate::merge::MergeHandle;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: &'static str,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IngestLabels {
    pub kind: &'static str,
    pub outcome: &'static str,
}

/// Shared by all connections; cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    pub requests: Family<RequestLabels, Counter>,
    pub ingest: Family<IngestLabels, Counter>,
    pub connections: Gauge<i64, AtomicI64>,
}

struct MergeCollector {
    merge: MergeHandle,
}

impl std::fmt::Debug for MergeCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MergeCollector")
    }
}

impl Collector for MergeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = self.merge.stats();
        let counters: [(&str, &str, f64); 5] = [
            (
                "merge_commits",
                "SQLite commits by the merge loop",
                s.commits.load(Ordering::Relaxed) as f64,
            ),
            (
                "merge_commit_seconds",
                "Time spent in merge-loop commits (divide by merge_commits_total for the mean)",
                s.commit_micros.load(Ordering::Relaxed) as f64 / 1e6,
            ),
            (
                "merge_inputs_applied",
                "Inputs applied",
                s.applied.load(Ordering::Relaxed) as f64,
            ),
            (
                "merge_inputs_rejected",
                "Inputs refused (nothing written)",
                s.rejected.load(Ordering::Relaxed) as f64,
            ),
            (
                "merge_store_errors",
                "Inputs that failed in storage",
                s.store_errors.load(Ordering::Relaxed) as f64,
            ),
        ];
        for (name, help, v) in counters {
            let c = ConstCounter::new(v);
            let m = encoder.encode_descriptor(name, help, None, c.metric_type())?;
            c.encode(m)?;
        }
        let age = self.merge.snapshot().committed_at.elapsed().as_secs_f64();
        let g = ConstGauge::new(age);
        let m = encoder.encode_descriptor(
            "snapshot_age_seconds",
            "Seconds since the read snapshot was last replaced by a commit",
            None,
            g.metric_type(),
        )?;
        g.encode(m)?;
        let up = ConstGauge::new(i64::from(self.merge.is_running()));
        let m = encoder.encode_descriptor(
            "merge_loop_running",
            "1 while the merge loop runs",
            None,
            up.metric_type(),
        )?;
        up.encode(m)?;
        Ok(())
    }
}

impl Metrics {
    pub fn new(merge: &MergeHandle) -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let ingest = Family::<IngestLabels, Counter>::default();
        let connections = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route template, method and status",
            requests.clone(),
        );
        registry.register(
            "ingest_inputs",
            "Ingest API inputs by kind and outcome",
            ingest.clone(),
        );
        registry.register(
            "http_connections_open",
            "Open HTTP connections",
            connections.clone(),
        );
        registry.register_collector(Box::new(MergeCollector {
            merge: merge.clone(),
        }));
        Metrics {
            registry: Arc::new(registry),
            requests,
            ingest,
            connections,
        }
    }

    pub fn request(&self, route: &'static str, method: &str, status: u16) {
        let method = match method {
            "GET" | "HEAD" | "POST" | "PATCH" | "DELETE" | "PUT" | "OPTIONS" => method.to_owned(),
            _ => "OTHER".to_owned(),
        };
        self.requests
            .get_or_create(&RequestLabels {
                route,
                method,
                status,
            })
            .inc();
    }

    pub fn ingest(&self, kind: &'static str, outcome: &'static str) {
        self.ingest
            .get_or_create(&IngestLabels { kind, outcome })
            .inc();
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
