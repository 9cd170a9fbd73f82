//! The hub's [`WireBuilder`] over [`super::wire`]: WebSocket messages carry exactly the JSON
//! the REST routes serve.

use serde_json::Value;

use super::wire;
use crate::hub::WireBuilder;
use crate::model::Event;

/// `http::wire` as the hub's wire builder.
pub struct HttpWire;

impl WireBuilder for HttpWire {
    fn event_detail(&self, event: &Event) -> Value {
        serde_json::to_value(wire::event_detail(event)).unwrap_or(Value::Null)
    }

    fn race_results(&self, event: &Event, race_id: &str) -> Option<Vec<Value>> {
        let rows = wire::race_result_rows(event, race_id, false)?;
        Some(
            rows.into_iter()
                .map(|(_, r)| serde_json::to_value(r).unwrap_or(Value::Null))
                .collect(),
        )
    }

    fn oncourse(&self, event: &Event) -> Value {
        serde_json::to_value(wire::oncourse(event)).unwrap_or(Value::Null)
    }
}
