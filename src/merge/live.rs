//! The live feeds: a new on-course list, result updates (ingest API or TCP), and the tick that
//! expires on-course lists the ingest API stopped refreshing.

use std::sync::Arc;
use std::time::Instant;

use super::{apply, ingest_allowed, DataKind, MergeError, MergeLoop, Outcome, ResultUpdate, Via};
use crate::model::OnCourseEntry;

impl MergeLoop {
    pub(super) fn oncourse(
        &mut self,
        event_id: String,
        entries: Vec<OnCourseEntry>,
        via: Via,
        now: Instant,
    ) -> Result<Outcome, MergeError> {
        let old = Arc::clone(self.event(&event_id)?);
        let data = match via {
            Via::IngestApi => DataKind::JsonOncourse,
            Via::Tcp => DataKind::Tcp,
        };
        if !ingest_allowed(old.header.status, data) {
            return Err(MergeError::Forbidden {
                data,
                status: old.header.status,
            });
        }
        if !old.header.has_xml_data {
            return Ok(Outcome::OnCourse {
                active: 0,
                ignored_no_xml: true,
            });
        }
        let active = entries.len();
        self.oncourse_seen.insert(event_id.clone(), now);
        let mut new = (*old).clone();
        new.oncourse = Arc::new(entries);
        self.commit_events(vec![(Some(old), Some(new))])?;
        Ok(Outcome::OnCourse {
            active,
            ignored_no_xml: false,
        })
    }

    pub(super) fn results(
        &mut self,
        event_id: String,
        updates: Vec<ResultUpdate>,
        via: Via,
    ) -> Result<Outcome, MergeError> {
        let old = Arc::clone(self.event(&event_id)?);
        let status = old.header.status;
        let data = match via {
            Via::IngestApi => DataKind::JsonResults,
            Via::Tcp => DataKind::Tcp,
        };
        if !ingest_allowed(status, data) {
            return Err(MergeError::Forbidden { data, status });
        }
        if !old.header.has_xml_data {
            return Ok(Outcome::Results {
                updated: 0,
                ignored_unknown: 0,
                ignored_no_xml: true,
            });
        }
        let mut new = (*old).clone();
        let (updated, ignored_unknown) = apply::apply_results(&mut new, &updates);
        self.commit_events(vec![(Some(old), Some(new))])?;
        Ok(Outcome::Results {
            updated,
            ignored_unknown,
            ignored_no_xml: false,
        })
    }

    pub(super) fn tick(&mut self, now: Instant) -> Result<Outcome, MergeError> {
        let ttl = self.settings.oncourse_ttl;
        let expired: Vec<String> = self
            .oncourse_seen
            .iter()
            .filter(|(_, seen)| now.duration_since(**seen) > ttl)
            .map(|(id, _)| id.clone())
            .collect();
        let mut changes = Vec::new();
        for id in expired {
            self.oncourse_seen.remove(&id);
            if let Some(old) = self.state.events.get(&id) {
                if !old.oncourse.is_empty() {
                    let mut new = (**old).clone();
                    new.oncourse = Arc::default();
                    changes.push((Some(Arc::clone(old)), Some(new)));
                }
            }
        }
        if !changes.is_empty() {
            self.commit_events(changes)?;
        }
        Ok(Outcome::Ticked)
    }
}
