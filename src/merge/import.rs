//! An XML export merged into its event (found by key, by id or by the export's `EventId`).

use std::sync::Arc;

use super::commit::LastExportOwned;
use super::{
    apply, ingest_allowed, DataKind, MergeError, MergeLoop, Outcome, XmlOrigin, XmlTarget,
};
use crate::model::{Event, EventMeta};
use crate::xml::Export;

impl MergeLoop {
    pub(super) fn import(
        &mut self,
        target: XmlTarget,
        export: Arc<Export>,
        origin: XmlOrigin,
    ) -> Result<Outcome, MergeError> {
        let xml_id = &export.event.event_id;
        let (existing, wanted_id) = match &target {
            XmlTarget::Event(id) => (Some(Arc::clone(self.event(id)?)), id.clone()),
            XmlTarget::ByExport { event_id: Some(id) } => {
                (self.state.events.get(id).cloned(), id.clone())
            }
            XmlTarget::ByExport { event_id: None } => {
                let found = self
                    .state
                    .events
                    .values()
                    .find(|e| e.header.xml_event_id.as_deref() == Some(xml_id.as_str()))
                    .or_else(|| self.state.events.get(xml_id))
                    .cloned();
                let id = found
                    .as_ref()
                    .map(|e| e.header.event_id.clone())
                    .unwrap_or_else(|| xml_id.clone());
                (found, id)
            }
        };
        if let Some(e) = &existing {
            if !ingest_allowed(e.header.status, DataKind::Xml) {
                return Err(MergeError::Forbidden {
                    data: DataKind::Xml,
                    status: e.header.status,
                });
            }
        }
        let created = existing.is_none();
        if created && !crate::model::valid_event_id(&wanted_id) {
            let quoted: String = wanted_id.chars().take(64).collect();
            return Err(MergeError::Invalid(format!(
                "EventId {quoted:?}: an event id is 1 to 100 of A-Z a-z 0-9 . _ - (not . or ..)"
            )));
        }
        let base = match &existing {
            Some(e) => (**e).clone(),
            None => Event::new(self.new_header(
                wanted_id.clone(),
                EventMeta {
                    main_title: export.event.meta.main_title.clone(),
                    ..EventMeta::default()
                },
                crate::keys::generate_api_key(),
                None,
            )),
        };
        let strategy = base.merge_strategy(self.settings.default_strategy);
        let bound_export_id = base.header.xml_event_id.clone();
        let mut new = base;
        apply::merge_export(&mut new, &export, strategy);
        if matches!(target, XmlTarget::Event(_)) {
            // A keyed import (ingest API) writes only the key's event, and its `EventId` is
            // ignored: it never binds the event to the venue's folder or TCP feed, which find
            // their event by the `EventId` of the exports they fed (direct mode).
            new.header.xml_event_id = bound_export_id;
        }
        let remember = LastExportOwned {
            event_row: new.header.id,
            event_id: wanted_id.clone(),
            export: Arc::clone(&export),
        };
        let rows = self.commit_events_with(vec![(existing, Some(new))], Some(remember))?;
        // Only the folder's exports pick the event TCP feeds: a key holder posting its own
        // event's export must not redirect the venue's timing.
        if matches!(origin, XmlOrigin::File(_)) {
            self.note_latest_import(&wanted_id);
        }
        tracing::info!(
            event = %wanted_id, created, rows_changed = rows, origin = ?origin,
            "XML export imported"
        );
        Ok(Outcome::XmlImported {
            event_id: wanted_id,
            created_event: created,
            counts: export.counts(),
            rows_changed: rows,
        })
    }

    /// Records the event of the latest folder import in the snapshot, also when the export
    /// changed nothing (then without a commit: it is not stored data).
    fn note_latest_import(&mut self, event_id: &str) {
        if self.state.latest_import.as_deref() == Some(event_id) {
            return;
        }
        let mut snapshot = (*self.state).clone();
        snapshot.latest_import = Some(event_id.to_owned());
        self.state = Arc::new(snapshot);
        self.snap_tx.send_replace(Arc::clone(&self.state));
    }
}
