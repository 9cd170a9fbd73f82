-- The last seq of each deleted event id: an event created again under the same id continues
-- after it, so a spectator who held a seq of the old event can never resume into the new one
-- (the hub's resume sees a gap and sends a `full`). One row per deleted id; removed when the
-- id is created again.
CREATE TABLE retired_events (
    event_id TEXT PRIMARY KEY,
    last_seq INTEGER NOT NULL
) STRICT;

-- The last XML export merged into each event (JSON of xml::Export), so a change of the
-- merge strategy can re-merge it, also after a restart. Goes with its event.
CREATE TABLE last_exports (
    event_id INTEGER PRIMARY KEY REFERENCES events(id) ON DELETE CASCADE,
    export   TEXT NOT NULL
) STRICT;

-- Removing a participant cascades to its results. SQLite (3.54) plans that lookup
-- `event_id = ? AND participant_id = ?` on the primary key's `event_id` prefix, i.e. a scan of
-- the event's results per removed participant (an export dropping 10 000 took over a minute).
-- An index that leads with participant_id is the one it uses; its implicit primary-key suffix
-- makes it (participant_id, event_id, race_id).
DROP INDEX results_by_participant;
CREATE INDEX results_by_participant ON results(participant_id);
