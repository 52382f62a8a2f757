-- The specimen lifecycle: label print counter, chain of custody (one row per change, written
-- in the same transaction as the change and its audit entry), the problem log of rejected
-- specimens and recollection tasks for the ordering location. Timestamps are UTC epoch
-- microseconds; details are JSON TEXT.

ALTER TABLE specimens ADD COLUMN label_prints INTEGER NOT NULL DEFAULT 0;

CREATE TABLE specimen_events (
    id INTEGER PRIMARY KEY,
    specimen_id INTEGER NOT NULL REFERENCES specimens (id),
    at INTEGER NOT NULL,
    actor_id INTEGER,
    actor_name TEXT NOT NULL,
    kind TEXT NOT NULL,
    from_status TEXT NOT NULL,
    to_status TEXT NOT NULL,
    details TEXT NOT NULL,
    location TEXT
);
CREATE INDEX specimen_events_specimen ON specimen_events (specimen_id, id);

CREATE TABLE problem_log (
    id INTEGER PRIMARY KEY,
    specimen_id INTEGER NOT NULL REFERENCES specimens (id),
    reason TEXT NOT NULL,
    comment TEXT,
    opened_at INTEGER NOT NULL,
    opened_by TEXT NOT NULL,
    resolved_at INTEGER
);
CREATE INDEX problem_log_open ON problem_log (resolved_at, id);

CREATE TABLE recollect_tasks (
    id INTEGER PRIMARY KEY,
    order_id INTEGER NOT NULL REFERENCES orders (id),
    location_id INTEGER NOT NULL REFERENCES locations (id),
    specimen_id INTEGER NOT NULL REFERENCES specimens (id),
    reason TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    done_at INTEGER
);
CREATE INDEX recollect_tasks_open ON recollect_tasks (done_at, id);
