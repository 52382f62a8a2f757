-- Storage, transport, send-out and disposal. Holders form a hierarchy (room → refrigerator or
-- freezer → rack → box) named by their path; a placement puts a specimen at a position of a
-- holder and is kept when the specimen leaves (removed_at set), so the placement history is
-- append-friendly. A position holds one specimen: the partial unique index on the occupied
-- positions enforces it, also between concurrent requests and processes. Retention periods per
-- specimen type override the domain defaults. Send-outs record hand-offs to reference labs.
-- Timestamps are UTC epoch microseconds; tests are JSON TEXT.

CREATE TABLE storage_units (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    parent_id INTEGER REFERENCES storage_units (id),
    kind TEXT NOT NULL,
    name TEXT,
    temperature TEXT,
    grid_rows INTEGER,
    grid_cols INTEGER,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL
);
CREATE INDEX storage_units_parent ON storage_units (parent_id);

CREATE TABLE specimen_placements (
    id INTEGER PRIMARY KEY,
    specimen_id INTEGER NOT NULL REFERENCES specimens (id),
    unit_id INTEGER NOT NULL REFERENCES storage_units (id),
    position TEXT NOT NULL,
    stored_at INTEGER NOT NULL,
    stored_by TEXT NOT NULL,
    removed_at INTEGER,
    removed_by TEXT,
    removal TEXT,
    removal_reason TEXT
);
CREATE UNIQUE INDEX specimen_placements_occupied ON specimen_placements (unit_id, position)
    WHERE removed_at IS NULL;
CREATE UNIQUE INDEX specimen_placements_current ON specimen_placements (specimen_id)
    WHERE removed_at IS NULL;
CREATE INDEX specimen_placements_specimen ON specimen_placements (specimen_id, id);
CREATE INDEX specimen_placements_stored ON specimen_placements (stored_at)
    WHERE removed_at IS NULL;

CREATE TABLE retention_policies (
    specimen_type TEXT PRIMARY KEY,
    hours INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by TEXT NOT NULL
);

CREATE TABLE send_outs (
    id INTEGER PRIMARY KEY,
    specimen_id INTEGER NOT NULL REFERENCES specimens (id),
    reference_lab TEXT NOT NULL,
    tests TEXT NOT NULL,
    tracking TEXT,
    temperature TEXT NOT NULL,
    sent_at INTEGER NOT NULL,
    sent_by TEXT NOT NULL,
    resulted_at INTEGER
);
CREATE INDEX send_outs_open ON send_outs (resulted_at, id);
CREATE INDEX send_outs_specimen ON send_outs (specimen_id);
