//! The admin commands: create, delete, transition, configure an event; the storage cap.

use std::sync::Arc;

use super::{apply, config_patch_allowed, AdminCommand, DataKind, MergeError, MergeLoop, Outcome};
use crate::model::{Event, EventConfig, EventHeader, EventImage, EventMeta, EventStatus};
use crate::time::{now_iso, now_sql};

impl MergeLoop {
    pub(super) fn new_header(
        &self,
        event_id: String,
        meta: EventMeta,
        api_key: String,
        image: Option<EventImage>,
    ) -> EventHeader {
        let id = self
            .state
            .events
            .values()
            .map(|e| e.header.id)
            .max()
            .unwrap_or(0)
            + 1;
        // Only an admin create passes dates here; they bound the API key for good.
        let key_dates = crate::model::KeyDates {
            start_date: meta.start_date.clone(),
            end_date: meta.end_date.clone(),
        };
        EventHeader {
            id,
            event_id,
            xml_event_id: None,
            meta,
            key_dates,
            status: EventStatus::Draft,
            status_changed_at: None,
            api_key,
            config: Default::default(),
            image,
            has_xml_data: false,
            seq: 0,
            created_at: now_sql(),
        }
    }

    pub(super) fn admin(&mut self, cmd: AdminCommand) -> Result<Outcome, MergeError> {
        match cmd {
            AdminCommand::CreateEvent {
                event_id,
                meta,
                image,
                api_key,
            } => self.create_event(event_id, meta, image, api_key),
            AdminCommand::DeleteEvent { event_id } => {
                let old = Arc::clone(self.event(&event_id)?);
                self.commit_events(vec![(Some(old), None)])?;
                self.oncourse_seen.remove(&event_id);
                self.last_exports.remove(&event_id);
                Ok(Outcome::EventDeleted { event_id })
            }
            AdminCommand::Transition { event_id, to } => self.transition(event_id, to),
            AdminCommand::SetConfig { event_id, patch } => self.set_config(event_id, patch),
            AdminCommand::SetStorageLimit { max_bytes } => {
                let max_bytes = self
                    .store
                    .set_max_size(max_bytes)
                    .map_err(|e| MergeError::Store(e.to_string()))?;
                tracing::info!(max_bytes, "database size cap changed");
                Ok(Outcome::StorageLimit { max_bytes })
            }
        }
    }

    fn create_event(
        &mut self,
        event_id: String,
        meta: EventMeta,
        image: Option<EventImage>,
        api_key: String,
    ) -> Result<Outcome, MergeError> {
        if self.state.events.contains_key(&event_id) {
            return Err(MergeError::Conflict(format!(
                "Event already exists: {event_id}"
            )));
        }
        if self
            .state
            .events
            .values()
            .any(|e| e.header.api_key == api_key)
        {
            return Err(MergeError::Conflict("API key already in use".into()));
        }
        let header = self.new_header(event_id.clone(), meta, api_key.clone(), image);
        let id = header.id;
        self.commit_events(vec![(None, Some(Event::new(header)))])?;
        Ok(Outcome::EventCreated {
            id,
            event_id,
            api_key,
        })
    }

    fn transition(&mut self, event_id: String, to: EventStatus) -> Result<Outcome, MergeError> {
        let old = Arc::clone(self.event(&event_id)?);
        let from = old.header.status;
        if !from.can_transition_to(to) {
            return Err(MergeError::InvalidTransition { from, to });
        }
        let mut new = (*old).clone();
        let changed_at = now_iso();
        new.header.status = to;
        new.header.status_changed_at = Some(changed_at.clone());
        self.commit_events(vec![(Some(old), Some(new))])?;
        Ok(Outcome::Transitioned {
            event_id,
            previous: from,
            status: to,
            changed_at,
        })
    }

    fn set_config(&mut self, event_id: String, patch: EventConfig) -> Result<Outcome, MergeError> {
        let old = Arc::clone(self.event(&event_id)?);
        if !config_patch_allowed(old.header.status, &patch) {
            return Err(MergeError::Forbidden {
                data: DataKind::Config,
                status: old.header.status,
            });
        }
        let default = self.settings.default_strategy;
        let mut new = (*old).clone();
        new.header.config = apply::patch_config(&old.header.config, patch);
        let config = new.header.config.clone();
        let strategy = new.merge_strategy(default);
        if strategy != old.merge_strategy(default) && new.header.has_xml_data {
            // Same commit: spectators see the config and the re-merged results
            // together, with one seq.
            if let Some(export) = self.last_exports.get(&event_id) {
                let keep_binding = new.header.xml_event_id.clone();
                apply::merge_export(&mut new, export, strategy);
                new.header.xml_event_id = keep_binding;
            }
        }
        self.commit_events(vec![(Some(old), Some(new))])?;
        Ok(Outcome::ConfigSet { event_id, config })
    }
}
