//! Prometheus metrics (`GET /metrics`, text exposition format via `prometheus-client`).
//!
//! - `http_requests_total{route,method,status}`: `route` is the route template, so the label
//!   set stays bounded whatever URLs clients send.
//! - `ingest_inputs_total{kind,outcome}`: ingest API inputs by kind (xml, oncourse, results)
//!   and outcome (applied, ignored, rejected, forbidden, error).
//! - `merge_commits_total`, `merge_commit_seconds_total`, `merge_inputs_applied_total`,
//!   `merge_inputs_rejected_total`, `merge_store_errors_total`: from the merge loop's stats.
//! - `snapshot_age_seconds`: time since the last commit (how stale reads are).
//! - `http_connections_open`, `http_connections_refused_total`.
//! - `c123_source_sessions{source}`, `c123_source_refused_sessions_total{source}`: listen-mode
//!   TCP sessions open now and connections refused by the session caps.
//! - `replication_*` (with `--nats`): records, snapshots, pending, lag, connected
//!   (`metrics/replication.rs`).
//! - `results_unknown_status_total`: result rows from any input whose status is not a known
//!   code (kept as sent, unranked; `crate::result_status`).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::Registry;

use crate::merge::MergeHandle;

mod replication;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route template the router matched (`MatchedPath`), `static` or `unmatched`.
    pub route: String,
    pub method: &'static str,
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
    /// Connections refused (global or per-address limit).
    pub refused: Counter,
    /// Public GET replies by cache outcome (`crate::http::cache`).
    pub response_cache: Family<super::cache::CacheOutcome, Counter>,
    hub: Arc<std::sync::OnceLock<crate::hub::Hub>>,
    replication: Arc<std::sync::OnceLock<crate::replicate::ReplicationStatus>>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabel {
    event: String,
}

/// The WebSocket hub's numbers (`ws_*`), once a hub is attached.
struct HubCollector {
    hub: Arc<std::sync::OnceLock<crate::hub::Hub>>,
}

impl std::fmt::Debug for HubCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HubCollector")
    }
}

impl Collector for HubCollector {
    /// Long on purpose: a flat list of metric families (name, help, value), read as a table.
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        // Long because most of it is the table of the hub's counters (name, help, value); the
        // code is the loop under it.
        let Some(hub) = self.hub.get() else {
            return Ok(());
        };
        let s = hub.stats();
        let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as f64;
        let counters: [(&str, &str, f64); 13] = [
            (
                "ws_messages_sent",
                "WebSocket frames written to clients",
                n(&s.messages_sent),
            ),
            (
                "ws_bytes_sent",
                "WebSocket payload bytes written to clients",
                n(&s.bytes_sent),
            ),
            (
                "ws_messages_built",
                "Messages built (serialized once for all clients of a room)",
                n(&s.messages_built),
            ),
            (
                "ws_queue_overflows",
                "Client queues that overflowed (pending diffs dropped)",
                n(&s.queue_overflows),
            ),
            (
                "ws_resyncs",
                "full messages sent to resynchronise a slow client",
                n(&s.resyncs),
            ),
            (
                "ws_slow_client_closes",
                "Clients disconnected because their socket did not drain",
                n(&s.slow_client_closes),
            ),
            (
                "ws_heartbeat_timeouts",
                "Clients disconnected for not answering a ping",
                n(&s.heartbeat_timeouts),
            ),
            (
                "ws_coalesced_changes",
                "Changes folded into a later message because the hub was behind",
                n(&s.coalesced),
            ),
            (
                "ws_direct_writes",
                "Messages written to a client straight from the publish path (its queue was empty)",
                n(&s.direct_writes),
            ),
            (
                "ws_lists_superseded",
                "On-course lists a slow client had not been sent yet, sent as superseded diffs",
                n(&s.lists_superseded),
            ),
            (
                "ws_hub_resyncs",
                "Times the hub lost changes (fell behind) and resynchronised every room",
                n(&s.lagged),
            ),
            (
                "ws_refused_limit",
                "Upgrades refused with 503 (connection limit)",
                n(&s.refused_limit),
            ),
            (
                "ws_fanout_seconds",
                "Commit-to-queued fan-out time (divide by ws_fanouts_total for the mean)",
                n(&s.fanout_micros_sum) / 1e6,
            ),
        ];
        for (name, help, v) in counters {
            let c = ConstCounter::new(v);
            let m = encoder.encode_descriptor(name, help, None, c.metric_type())?;
            c.encode(m)?;
        }
        let c = ConstCounter::new(n(&s.fanout_count));
        let m = encoder.encode_descriptor(
            "ws_fanouts",
            "Messages fanned out to a room",
            None,
            c.metric_type(),
        )?;
        c.encode(m)?;
        let g = ConstGauge::new(n(&s.fanout_micros_max) / 1e6);
        let m = encoder.encode_descriptor(
            "ws_fanout_max_seconds",
            "Longest commit-to-queued fan-out",
            None,
            g.metric_type(),
        )?;
        g.encode(m)?;
        let g = ConstGauge::new(hub.connected() as i64);
        let m = encoder.encode_descriptor(
            "ws_clients",
            "Connected WebSocket clients",
            None,
            g.metric_type(),
        )?;
        g.encode(m)?;
        let rooms = hub.clients_per_event();
        let mut fam = encoder.encode_descriptor(
            "ws_clients_per_event",
            "Connected WebSocket clients by event",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (event, clients) in rooms {
            let label = EventLabel { event };
            let g = ConstGauge::new(clients as i64);
            g.encode(fam.encode_family(&label)?)?;
        }
        Ok(())
    }
}

/// Process-wide counts that no handle carries (`crate::result_status`).
#[derive(Debug)]
struct ResultStatusCollector;

impl Collector for ResultStatusCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let c = ConstCounter::new(crate::result_status::unknown().count() as f64);
        c.encode(encoder.encode_descriptor(
            "results_unknown_status",
            "Result rows received with a status that is not a known code (kept, unranked)",
            None,
            c.metric_type(),
        )?)
    }
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
    /// Long on purpose: a flat list of metric families (name, help, value), read as a table.
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
        let skipped = ConstGauge::new(self.merge.skipped_rows().count as i64);
        let m = encoder.encode_descriptor(
            "store_skipped_rows",
            "Stored rows that could not be read at start and were left out (listed in the admin status)",
            None,
            skipped.metric_type(),
        )?;
        skipped.encode(m)?;
        Ok(())
    }
}

/// A per-source metric: name, help, value, counter (else gauge).
type SourceMetric = (
    &'static str,
    &'static str,
    fn(&crate::ingest::tcp::SourceStatus) -> f64,
    bool,
);

struct InputsCollector {
    inputs: crate::ingest::InputStatus,
}

impl std::fmt::Debug for InputsCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InputsCollector")
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FrameLabels {
    source: String,
    kind: String,
}

impl Collector for InputsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        // Long because most of it is the table of per-source metrics (name, help, getter); the
        // code is the loops under it.
        let sources: Vec<crate::ingest::tcp::SourceStatus> = self
            .inputs
            .sources
            .iter()
            .filter_map(|s| s.lock().ok().map(|s| s.report()))
            .collect();
        let per_source: [SourceMetric; 8] = [
            (
                "c123_source_connected",
                "1 while a Canoe123 source is connected",
                |s| f64::from(u8::from(s.state == crate::ingest::tcp::SourceState::Connected)),
                false,
            ),
            (
                "c123_source_parse_errors",
                "Frames that could not be parsed",
                |s| s.parse_errors as f64,
                true,
            ),
            (
                "c123_source_connections",
                "Connections made or accepted",
                |s| s.connections as f64,
                true,
            ),
            (
                "c123_source_connect_attempts",
                "Connect mode: attempts to connect, failed ones included",
                |s| s.connect_attempts as f64,
                true,
            ),
            (
                "c123_source_sessions",
                "Listen mode: sessions open now",
                |s| s.sessions as f64,
                false,
            ),
            (
                "c123_source_refused_sessions",
                "Listen mode: connections refused by --tcp-max-sessions-per-ip or --tcp-max-sessions",
                |s| s.refused_sessions as f64,
                true,
            ),
            (
                "c123_source_unknown_athletes",
                "TCP riders or rows for athletes the export does not know",
                |s| s.unused.unknown_athletes as f64,
                true,
            ),
            (
                "c123_source_last_frame_age_seconds",
                "Seconds since the last frame",
                |s| {
                    s.last_frame_age_ms
                        .map_or(f64::NAN, |ms| ms as f64 / 1000.0)
                },
                false,
            ),
        ];
        for (name, help, value, counter) in per_source {
            let mut m = encoder.encode_descriptor(
                name,
                help,
                None,
                if counter {
                    prometheus_client::metrics::MetricType::Counter
                } else {
                    prometheus_client::metrics::MetricType::Gauge
                },
            )?;
            for s in &sources {
                let labels = SourceLabels {
                    source: format!("{}:{}", s.mode, s.address),
                };
                let enc = m.encode_family(&labels)?;
                if counter {
                    ConstCounter::new(value(s)).encode(enc)?;
                } else {
                    ConstGauge::new(value(s)).encode(enc)?;
                }
            }
        }
        let mut m = encoder.encode_descriptor(
            "c123_source_frames",
            "Frames received by message type",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for s in &sources {
            for (kind, n) in &s.frames_by_type {
                let labels = FrameLabels {
                    source: format!("{}:{}", s.mode, s.address),
                    kind: kind.clone(),
                };
                ConstCounter::new(*n as f64).encode(m.encode_family(&labels)?)?;
            }
        }
        if let Some(w) = self
            .inputs
            .watcher
            .as_ref()
            .and_then(|w| w.lock().ok().map(|w| w.clone()))
        {
            let c = ConstCounter::new(w.imports as f64);
            c.encode(encoder.encode_descriptor(
                "xml_watcher_imports",
                "Exports imported from the watched folder",
                None,
                c.metric_type(),
            )?)?;
            let g = ConstGauge::new(i64::from(w.last_error.is_some()));
            g.encode(encoder.encode_descriptor(
                "xml_watcher_has_error",
                "1 if the last file looked at could not be imported",
                None,
                g.metric_type(),
            )?)?;
        }
        Ok(())
    }
}

impl Metrics {
    pub fn new(merge: &MergeHandle, inputs: &crate::ingest::InputStatus) -> Metrics {
        let mut registry = Registry::default();
        registry.register(
            "merge_commit_latency_seconds",
            "Duration of each merge-loop commit (SQLite transaction)",
            merge.stats().commit_seconds.clone(),
        );
        registry.register_collector(Box::new(InputsCollector {
            inputs: inputs.clone(),
        }));
        let requests = Family::<RequestLabels, Counter>::default();
        let ingest = Family::<IngestLabels, Counter>::default();
        let connections = Gauge::<i64, AtomicI64>::default();
        let refused = Counter::default();
        registry.register(
            "http_connections_refused",
            "HTTP connections refused by the global or the per-address limit",
            refused.clone(),
        );
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
        let response_cache = Family::<super::cache::CacheOutcome, Counter>::default();
        registry.register(
            "http_response_cache",
            "Public GET replies by outcome: hit (cached bytes), miss (computed), not_modified (304)",
            response_cache.clone(),
        );
        registry.register_collector(Box::new(ResultStatusCollector));
        registry.register_collector(Box::new(MergeCollector {
            merge: merge.clone(),
        }));
        let hub = Arc::new(std::sync::OnceLock::new());
        registry.register_collector(Box::new(HubCollector {
            hub: Arc::clone(&hub),
        }));
        let replication = Arc::new(std::sync::OnceLock::new());
        registry.register_collector(Box::new(replication::ReplicationCollector {
            status: Arc::clone(&replication),
        }));
        Metrics {
            registry: Arc::new(registry),
            requests,
            ingest,
            connections,
            refused,
            response_cache,
            hub,
            replication,
        }
    }

    pub fn refused_connection(&self) {
        self.refused.inc();
    }

    /// Adds the WebSocket hub's numbers (`ws_*`) to the exposition (first call wins).
    pub fn set_hub(&self, hub: crate::hub::Hub) {
        let _ = self.hub.set(hub);
    }

    /// Adds replication's numbers (`replication_*`) to the exposition (first call wins).
    pub fn set_replication(&self, status: crate::replicate::ReplicationStatus) {
        let _ = self.replication.set(status);
    }

    pub fn request(&self, route: &str, method: &str, status: u16) {
        let method = match method {
            "GET" => "GET",
            "HEAD" => "HEAD",
            "POST" => "POST",
            "PATCH" => "PATCH",
            "DELETE" => "DELETE",
            "PUT" => "PUT",
            "OPTIONS" => "OPTIONS",
            _ => "OTHER",
        };
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_owned(),
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
