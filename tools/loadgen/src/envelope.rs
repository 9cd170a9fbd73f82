//! What a client reads from each WebSocket message: the envelope (`type`, `seq`, `part`,
//! `parts`; protocol/websocket.md) and, for the latency markers, the running times of the
//! on-course list. Parsed with serde, so the order of the keys does not matter; everything
//! else in `data` (result rows, a `full`'s structure) is skipped without being built.

use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Full,
    Diff,
    Refresh,
    /// A type this tool does not know: counted like a diff (it has a `seq`).
    #[serde(other)]
    Other,
}

/// The fields of a message the load generator looks at. No borrowed strings are needed:
/// `type` is an enum and the rest are numbers, so parsing allocates only the (short)
/// on-course list of a diff that has one.
#[derive(Debug, Deserialize)]
pub struct Envelope {
    #[serde(rename = "type")]
    pub kind: Kind,
    pub seq: Option<u64>,
    /// Frame `part` (1-based) of a diff sent as `parts` frames with the same `seq`.
    pub part: Option<u32>,
    pub parts: Option<u32>,
    /// A `diff` that only keeps `seq` contiguous: its change went out folded into a later
    /// message (the hub was behind, or a newer on-course list was queued for this client
    /// right behind it). A deliberate skip, never a loss.
    #[serde(default)]
    pub superseded: bool,
    #[serde(default)]
    pub data: Data,
}

#[derive(Debug, Default, Deserialize)]
pub struct Data {
    /// The event's whole on-course list, when it changed.
    pub oncourse: Option<Vec<OnCourse>>,
}

#[derive(Debug, Deserialize)]
pub struct OnCourse {
    /// Running time in centiseconds (the markers' carrier).
    pub time: Option<i64>,
}

impl Envelope {
    pub fn parse(text: &[u8]) -> Result<Envelope, serde_json::Error> {
        serde_json::from_slice(text)
    }

    /// Running times of the on-course list (empty if the message has none).
    pub fn oncourse_times(&self) -> impl Iterator<Item = i64> + '_ {
        self.data.oncourse.iter().flatten().filter_map(|r| r.time)
    }
}

/// Sequence accounting of one connection (protocol/websocket.md, "Ordering"): the first
/// message starts it; every later change has `seq` = previous + 1; the frames of a multi-part
/// diff share one `seq` and come in order `1..=parts`; a `full` after the first resynchronises
/// at the current `seq` (never a gap).
#[derive(Debug, Default, Clone)]
pub struct SeqTracker {
    started: bool,
    pub first_seq: u64,
    pub last_seq: u64,
    /// The multi-part diff in progress: (next expected part, parts).
    open: Option<(u32, u32)>,
    /// Changes missing between two consecutive ones (a `seq` jump not explained by a `full`).
    pub gaps: u64,
    /// Multi-part diffs left incomplete by the next message (a lost or misnumbered frame).
    pub parts_missing: u64,
    /// Changes sent as several frames (`parts` > 1), each counted once.
    pub multi_part: u64,
    /// A `seq` that does not move forward (and is not the next part of the open diff).
    pub out_of_order: u64,
    pub fulls: u64,
    /// `"superseded":true` diffs (deliberate skips, not gaps).
    pub superseded: u64,
    /// `full` messages after the first (a resync: the client's queue overflowed).
    pub resyncs: u64,
    /// Messages without a `seq` (the protocol gives every message one).
    pub unsequenced: u64,
}

impl SeqTracker {
    pub fn on_message(&mut self, env: &Envelope) {
        let Some(seq) = env.seq else {
            self.unsequenced += 1;
            return;
        };
        if env.kind == Kind::Full {
            self.fulls += 1;
            if self.started {
                self.resyncs += 1;
            } else {
                self.first_seq = seq;
            }
            // A full is the whole truth: an unfinished multi-part diff before it is moot.
            self.open = None;
        } else if self.is_next_part(seq, env.part) {
            self.open = self
                .open
                .and_then(|(next, parts)| (next < parts).then_some((next + 1, parts)));
        } else {
            self.on_new_change(seq, env);
            self.superseded += u64::from(env.superseded);
        }
        self.started = true;
        self.last_seq = seq;
    }

    fn is_next_part(&self, seq: u64, part: Option<u32>) -> bool {
        matches!(self.open, Some((next, _)) if seq == self.last_seq && part == Some(next))
    }

    fn on_new_change(&mut self, seq: u64, env: &Envelope) {
        if !self.started {
            // A resume may start with a replayed diff.
            self.first_seq = seq;
        } else {
            if self.open.take().is_some() {
                self.parts_missing += 1;
            }
            if seq > self.last_seq + 1 {
                self.gaps += seq - self.last_seq - 1;
            } else if seq <= self.last_seq {
                self.out_of_order += 1;
            }
        }
        match (env.part, env.parts) {
            (Some(1), Some(parts)) if parts > 1 => {
                self.multi_part += 1;
                self.open = Some((2, parts));
            }
            (None, _) | (Some(1), _) => {}
            // Starts in the middle of a multi-part diff: its first frames are missing.
            (Some(_), _) => self.parts_missing += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(t: &mut SeqTracker, msg: &str) {
        t.on_message(&Envelope::parse(msg.as_bytes()).expect("valid envelope"));
    }

    #[test]
    fn key_order_does_not_matter() {
        for msg in [
            r#"{"type":"diff","seq":42,"epoch":"e","data":{"oncourse":[{"bib":1,"time":100007}]}}"#,
            r#"{"data":{"oncourse":[{"time":100007,"bib":1}]},"epoch":"e","seq":42,"type":"diff"}"#,
            r#"{"seq":42,"data":{"results":[{"time":5}],"oncourse":[{"time":100007}]},"type":"diff"}"#,
        ] {
            let env = Envelope::parse(msg.as_bytes()).expect(msg);
            assert_eq!((env.kind, env.seq), (Kind::Diff, Some(42)), "{msg}");
            assert_eq!(env.oncourse_times().collect::<Vec<_>>(), [100_007], "{msg}");
        }
        let refresh = Envelope::parse(br#"{"type":"refresh","seq":3,"epoch":"e"}"#).expect("ok");
        assert_eq!(
            (refresh.kind, refresh.oncourse_times().count()),
            (Kind::Refresh, 0)
        );
        assert!(Envelope::parse(b"not json").is_err());
    }

    #[test]
    fn multi_part_diff_is_one_change_not_a_gap() {
        let mut t = SeqTracker::default();
        feed(&mut t, r#"{"type":"full","seq":3,"data":{}}"#);
        feed(
            &mut t,
            r#"{"type":"diff","seq":4,"part":1,"parts":2,"data":{}}"#,
        );
        feed(
            &mut t,
            r#"{"type":"diff","seq":4,"part":2,"parts":2,"data":{}}"#,
        );
        feed(&mut t, r#"{"type":"diff","seq":5,"data":{}}"#);
        feed(
            &mut t,
            r#"{"type":"diff","seq":6,"superseded":true,"data":{}}"#,
        );
        feed(&mut t, r#"{"type":"refresh","seq":7}"#);
        assert_eq!((t.first_seq, t.last_seq), (3, 7));
        assert_eq!((t.gaps, t.parts_missing, t.out_of_order), (0, 0, 0));
        assert_eq!((t.multi_part, t.superseded), (1, 1));
        assert_eq!((t.fulls, t.resyncs, t.unsequenced), (1, 0, 0));
    }

    #[test]
    fn gaps_lost_parts_repeats_and_resyncs_are_counted() {
        let mut t = SeqTracker::default();
        feed(&mut t, r#"{"type":"full","seq":1,"data":{}}"#);
        feed(&mut t, r#"{"type":"diff","seq":4,"data":{}}"#); // 2 and 3 lost
        assert_eq!(t.gaps, 2);
        feed(
            &mut t,
            r#"{"type":"diff","seq":5,"part":1,"parts":3,"data":{}}"#,
        );
        feed(
            &mut t,
            r#"{"type":"diff","seq":5,"part":2,"parts":3,"data":{}}"#,
        );
        feed(&mut t, r#"{"type":"diff","seq":6,"data":{}}"#); // part 3 of 5 lost
        assert_eq!((t.gaps, t.parts_missing), (2, 1));
        feed(&mut t, r#"{"type":"diff","seq":6,"data":{}}"#); // repeated
        assert_eq!(t.out_of_order, 1);
        feed(&mut t, r#"{"type":"full","seq":20,"data":{}}"#); // resync: no gap
        feed(
            &mut t,
            r#"{"type":"diff","seq":21,"part":2,"parts":2,"data":{}}"#,
        );
        assert_eq!((t.gaps, t.resyncs, t.fulls, t.parts_missing), (2, 1, 2, 2));
        feed(&mut t, r#"{"type":"diff","data":{}}"#);
        assert_eq!(t.unsequenced, 1);
    }
}
