//! Reader for `.tcp.jsonl` recordings of the Canoe123 TCP stream.
//!
//! Format (see `fixtures/README.md` in the shared docs): the first line may be
//! `{"_meta": …}`; every other non-blank line is
//! `{"ts": <ms since recording start>, "src": "tcp", "type": "<root child>", "data": "<Canoe123 …>…</Canoe123>"}`.
//! On the wire each `data` was followed by `|`; [`Recording::to_wire`] rebuilds those bytes.

use serde::Deserialize;

/// One recorded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedFrame {
    /// Milliseconds since the start of the recording.
    pub ts_ms: u64,
    /// Where it was captured (`"tcp"`; empty if the line has no `src`).
    pub source: String,
    /// The recorder's label: the root child element (`OnCourse`, `Results`, `TVS`, …).
    pub kind: String,
    /// The frame text without the `|` terminator.
    pub data: String,
}

/// A parsed recording.
#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    /// The `_meta` object, if the recording has one.
    pub meta: Option<serde_json::Value>,
    /// The frames in file order.
    pub frames: Vec<RecordedFrame>,
}

/// Why a recording could not be read. Line numbers are 1-based.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    /// A line is not a JSON object of the expected shape.
    #[error("line {line}: {source}")]
    Json {
        /// 1-based line number.
        line: usize,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// A frame line lacks a required field.
    #[error("line {line}: missing field `{field}`")]
    MissingField {
        /// 1-based line number.
        line: usize,
        /// The field name.
        field: &'static str,
    },
}

#[derive(Deserialize)]
struct Line {
    #[serde(rename = "_meta")]
    meta: Option<serde_json::Value>,
    ts: Option<u64>,
    src: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    data: Option<String>,
}

impl Recording {
    /// Parses the whole text of a recording. Blank lines are skipped; a `_meta` line is kept
    /// in [`Recording::meta`]; any other malformed line is an error naming its line number.
    pub fn parse(text: &str) -> Result<Recording, RecordingError> {
        let mut meta = None;
        let mut frames = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            if raw.trim().is_empty() {
                continue;
            }
            let parsed: Line = serde_json::from_str(raw)
                .map_err(|source| RecordingError::Json { line, source })?;
            if parsed.meta.is_some() && parsed.data.is_none() {
                meta = parsed.meta;
                continue;
            }
            let missing = |field| RecordingError::MissingField { line, field };
            frames.push(RecordedFrame {
                ts_ms: parsed.ts.ok_or_else(|| missing("ts"))?,
                source: parsed.src.unwrap_or_default(),
                kind: parsed.kind.ok_or_else(|| missing("type"))?,
                data: parsed.data.ok_or_else(|| missing("data"))?,
            });
        }
        Ok(Recording { meta, frames })
    }

    /// The bytes as they were on the wire: every `data` followed by `|`.
    pub fn to_wire(&self) -> Vec<u8> {
        let len = self.frames.iter().map(|f| f.data.len() + 1).sum();
        let mut out = Vec::with_capacity(len);
        for frame in &self.frames {
            out.extend_from_slice(frame.data.as_bytes());
            out.push(b'|');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_blank_lines_and_frames() {
        let text = concat!(
            "{\"_meta\": {\"version\": 2}}\n",
            "\n",
            "{\"ts\": 5, \"src\": \"tcp\", \"type\": \"TimeOfDay\", \"data\": \"<Canoe123><TimeOfDay>10:00:00</TimeOfDay></Canoe123>\"}\n",
            "{\"ts\": 7, \"type\": \"X\", \"data\": \"<a/>\"}\r\n",
        );
        let rec = Recording::parse(text).expect("parses");
        assert_eq!(rec.meta, Some(serde_json::json!({"version": 2})));
        assert_eq!(rec.frames.len(), 2);
        assert_eq!(
            rec.frames[0],
            RecordedFrame {
                ts_ms: 5,
                source: "tcp".into(),
                kind: "TimeOfDay".into(),
                data: "<Canoe123><TimeOfDay>10:00:00</TimeOfDay></Canoe123>".into(),
            }
        );
        assert_eq!(rec.frames[1].source, "");
        assert_eq!(
            rec.to_wire(),
            b"<Canoe123><TimeOfDay>10:00:00</TimeOfDay></Canoe123>|<a/>|".to_vec()
        );
    }

    #[test]
    fn bad_lines_name_their_line_number() {
        let err = Recording::parse(
            "{\"_meta\": {}}\n{\"ts\": 1, \"type\": \"A\", \"data\": \"x\"}\nnot json\n",
        )
        .expect_err("bad json");
        assert!(matches!(err, RecordingError::Json { line: 3, .. }), "{err}");
        assert!(err.to_string().starts_with("line 3:"));

        let err = Recording::parse("{\"ts\": 1, \"type\": \"A\"}").expect_err("no data");
        assert!(matches!(
            err,
            RecordingError::MissingField {
                line: 1,
                field: "data"
            }
        ));

        let err = Recording::parse("{\"type\": \"A\", \"data\": \"x\"}").expect_err("no ts");
        assert!(matches!(
            err,
            RecordingError::MissingField {
                line: 1,
                field: "ts"
            }
        ));

        let err = Recording::parse("{\"ts\": -1, \"type\": \"A\", \"data\": \"x\"}")
            .expect_err("negative ts");
        assert!(matches!(err, RecordingError::Json { line: 1, .. }));

        let err = Recording::parse("[1, 2]").expect_err("not an object");
        assert!(matches!(err, RecordingError::Json { line: 1, .. }));
    }
}
