-- Processing: aliquot lineage (a child specimen names its parent), centrifugation records
-- (RCF, not rpm) and dilutions recorded for the results step. Timestamps are UTC epoch
-- microseconds; decimals are TEXT keeping the reported value.

ALTER TABLE specimens ADD COLUMN parent_id INTEGER REFERENCES specimens (id);
CREATE INDEX specimens_parent ON specimens (parent_id);
CREATE INDEX specimens_status ON specimens (status);

CREATE TABLE centrifugations (
    id INTEGER PRIMARY KEY,
    specimen_id INTEGER NOT NULL REFERENCES specimens (id),
    centrifuge_id TEXT NOT NULL,
    rcf_g INTEGER NOT NULL,
    minutes INTEGER NOT NULL,
    temperature_c TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    operator_id INTEGER,
    operator_name TEXT NOT NULL,
    recorded_at INTEGER NOT NULL
);
CREATE INDEX centrifugations_specimen ON centrifugations (specimen_id, id);

CREATE TABLE dilutions (
    id INTEGER PRIMARY KEY,
    specimen_id INTEGER NOT NULL REFERENCES specimens (id),
    factor TEXT NOT NULL,
    test_code TEXT,
    diluent TEXT,
    recorded_at INTEGER NOT NULL,
    actor_id INTEGER,
    actor_name TEXT NOT NULL
);
CREATE INDEX dilutions_specimen ON dilutions (specimen_id, id);
