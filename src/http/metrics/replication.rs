//! `replication_*`: the origin's publishing or the replica's following (`crate::replicate`),
//! once replication is attached.

use std::sync::{Arc, OnceLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::replicate::ReplicationStatus;

pub(super) struct ReplicationCollector {
    pub(super) status: Arc<OnceLock<ReplicationStatus>>,
}

impl std::fmt::Debug for ReplicationCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReplicationCollector")
    }
}

impl Collector for ReplicationCollector {
    /// Long on purpose: flat tables of metric families (name, help, value).
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(status) = self.status.get() else {
            return Ok(());
        };
        let r = status.report();
        let counters: [(&str, &str, u64); 7] = [
            (
                "replication_records",
                "Records acknowledged by the stream (origin) or applied (replica)",
                r.records,
            ),
            (
                "replication_snapshots_written",
                "Event snapshots written to the bucket (origin)",
                r.snapshots_written,
            ),
            (
                "replication_snapshots_loaded",
                "Event snapshots installed from the bucket (replica: at start and for gaps)",
                r.snapshots_loaded,
            ),
            (
                "replication_resyncs",
                "Times the origin dropped its queue or lagged and sent every event's snapshot",
                r.resyncs,
            ),
            (
                "replication_oversized",
                "Records replaced by a snapshot, or snapshots not written, for their size",
                r.oversized,
            ),
            (
                "replication_unfilled_gaps",
                "Records a replica could not apply nor replace by a newer snapshot (yet)",
                r.unfilled_gaps,
            ),
            (
                "replication_publish_errors",
                "Failed publish attempts (retried)",
                r.publish_errors,
            ),
        ];
        for (name, help, v) in counters {
            let c = ConstCounter::new(v);
            c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)?;
        }
        let counts: [(&str, &str, i64); 4] = [
            (
                "replication_connected",
                "1 while connected to NATS",
                i64::from(r.connected),
            ),
            (
                "replication_caught_up",
                "Replica: 1 once it caught up with the stream (ready)",
                i64::from(r.caught_up),
            ),
            (
                "replication_last_stream_seq",
                "Stream sequence of the last record acknowledged (origin) or applied (replica)",
                i64::try_from(r.last_stream_seq).unwrap_or(i64::MAX),
            ),
            (
                "replication_pending",
                "Records waiting for NATS (origin) or still in the stream for this replica",
                i64::try_from(r.pending).unwrap_or(i64::MAX),
            ),
        ];
        for (name, help, v) in counts {
            let g = ConstGauge::new(v);
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        let seconds: [(&str, &str, f64); 2] = [
            (
                "replication_last_record_age_seconds",
                "Seconds since the last record was acknowledged or applied (-1: none yet)",
                r.last_record_age.unwrap_or(-1.0),
            ),
            (
                "replication_disconnected_seconds",
                "Seconds NATS has been unreachable (0: connected); a replica serves its last state meanwhile",
                r.disconnected_for.unwrap_or(0.0),
            ),
        ];
        for (name, help, v) in seconds {
            let g = ConstGauge::new(v);
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        Ok(())
    }
}
