-- c123-live schema v1. Times in milliseconds, penalties in seconds (as in the Canoe123 export).

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE events (
    id                INTEGER PRIMARY KEY,
    event_id          TEXT NOT NULL UNIQUE,
    xml_event_id      TEXT,
    main_title        TEXT NOT NULL,
    sub_title         TEXT,
    location          TEXT,
    facility          TEXT,
    start_date        TEXT,
    end_date          TEXT,
    discipline        TEXT,
    status            TEXT NOT NULL DEFAULT 'draft'
                      CHECK (status IN ('draft','startlist','running','finished','official')),
    status_changed_at TEXT,
    api_key           TEXT NOT NULL UNIQUE,
    config            TEXT NOT NULL DEFAULT '{}',
    image             BLOB,
    image_type        TEXT,
    has_xml_data      INTEGER NOT NULL DEFAULT 0,
    seq               INTEGER NOT NULL DEFAULT 0,
    created_at        TEXT NOT NULL
) STRICT;

CREATE TABLE classes (
    event_id   INTEGER NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    class_id   TEXT NOT NULL,
    name       TEXT NOT NULL,
    long_title TEXT,
    -- JSON array of {cat_id,name,first_year,last_year}: categories only ever change with their class.
    categories TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (event_id, class_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE participants (
    event_id       INTEGER NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    participant_id TEXT NOT NULL,
    class_id       TEXT,
    event_bib      INTEGER,
    icf_id         TEXT,
    family_name    TEXT NOT NULL,
    given_name     TEXT,
    icf_id2        TEXT,
    family_name2   TEXT,
    given_name2    TEXT,
    club           TEXT,
    noc            TEXT,
    cat_id         TEXT,
    ranking        TEXT,
    year           INTEGER,
    is_team        INTEGER NOT NULL DEFAULT 0,
    members        TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (event_id, participant_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE races (
    event_id       INTEGER NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    race_id        TEXT NOT NULL,
    class_id       TEXT,
    dis_id         TEXT,
    race_order     INTEGER,
    start_time     TEXT,
    start_interval TEXT,
    course_nr      INTEGER,
    race_status    INTEGER,
    title          TEXT,
    PRIMARY KEY (event_id, race_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE courses (
    event_id  INTEGER NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    course_nr INTEGER NOT NULL,
    config    TEXT NOT NULL,
    PRIMARY KEY (event_id, course_nr)
) STRICT, WITHOUT ROWID;

CREATE TABLE results (
    event_id         INTEGER NOT NULL,
    race_id          TEXT NOT NULL,
    participant_id   TEXT NOT NULL,
    bib              INTEGER,
    start_order      INTEGER,
    start_time       TEXT,
    status           TEXT,
    dt_start         TEXT,
    dt_finish        TEXT,
    time_ms          INTEGER,
    pen_s            INTEGER,
    total_ms         INTEGER,
    gates            TEXT NOT NULL DEFAULT '',
    rnk              INTEGER,
    rnk_order        INTEGER,
    cat_rnk          INTEGER,
    cat_rnk_order    INTEGER,
    total_behind     TEXT,
    cat_total_behind TEXT,
    prev_status      TEXT,
    prev_time_ms     INTEGER,
    prev_pen_s       INTEGER,
    prev_total_ms    INTEGER,
    prev_rnk         INTEGER,
    total_total_ms   INTEGER,
    total_rnk        INTEGER,
    better_run_nr    INTEGER,
    heat_nr          INTEGER,
    round_nr         INTEGER,
    qualified        TEXT,
    -- Bookkeeping for the merge: which fields TCP set (bit set, see model::TcpFields),
    -- who wrote the row last, and when (UTC, ISO 8601).
    tcp_fields       INTEGER NOT NULL DEFAULT 0,
    source           TEXT NOT NULL CHECK (source IN ('xml','tcp')),
    updated_at       TEXT NOT NULL,
    PRIMARY KEY (event_id, race_id, participant_id),
    FOREIGN KEY (event_id, race_id) REFERENCES races(event_id, race_id) ON DELETE CASCADE,
    FOREIGN KEY (event_id, participant_id)
        REFERENCES participants(event_id, participant_id) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

CREATE INDEX results_by_participant ON results(event_id, participant_id);
