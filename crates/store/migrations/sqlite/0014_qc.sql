-- Quality control and calibration (issue 13). A control lot is one level of one control
-- material; its target (mean and SD) is set per instrument and test, effective-dated and never
-- rewritten: each control value keeps the mean and SD it was judged with, so history is never
-- re-judged with new limits. A run is the controls of one instrument and test measured
-- together; a rejected run opens a lock on that instrument and test that only a documented
-- corrective action followed by an accepted run lifts.

CREATE TABLE qc_lots (
    id INTEGER PRIMARY KEY,
    material TEXT NOT NULL,
    manufacturer TEXT NOT NULL,
    lot TEXT NOT NULL,
    level INTEGER NOT NULL CHECK (level BETWEEN 1 AND 3),
    -- The last day the lot may be used (ISO date, the lab's time zone).
    expires_on TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    UNIQUE (lot, level)
);

CREATE TABLE qc_targets (
    id INTEGER PRIMARY KEY,
    lot_id INTEGER NOT NULL REFERENCES qc_lots (id),
    instrument_id INTEGER NOT NULL REFERENCES instruments (id),
    test_code TEXT NOT NULL,
    mean TEXT NOT NULL,
    sd TEXT NOT NULL,
    source TEXT NOT NULL CHECK (source IN ('manufacturer', 'lab')),
    -- For a lab-established target: how many accepted control values it was computed from.
    points INTEGER,
    effective_at INTEGER NOT NULL,
    set_at INTEGER NOT NULL,
    set_by TEXT NOT NULL,
    reason TEXT
);
CREATE INDEX qc_targets_key ON qc_targets (instrument_id, test_code, lot_id, effective_at);

CREATE TABLE qc_configs (
    instrument_id INTEGER NOT NULL REFERENCES instruments (id),
    test_code TEXT NOT NULL,
    rules TEXT NOT NULL,
    mode TEXT NOT NULL CHECK (mode IN ('classic', 'modern')),
    calibration_interval_hours INTEGER,
    tea_pct TEXT,
    -- The method's bias in % (proficiency testing or peer data): with TEa and the lab's CV,
    -- the sigma metric.
    bias_pct TEXT,
    version INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by TEXT NOT NULL,
    PRIMARY KEY (instrument_id, test_code)
);

CREATE TABLE qc_runs (
    id INTEGER PRIMARY KEY,
    instrument_id INTEGER NOT NULL REFERENCES instruments (id),
    test_code TEXT NOT NULL,
    run_at INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('accepted', 'warning', 'rejected')),
    findings TEXT NOT NULL,
    rules TEXT NOT NULL,
    mode TEXT NOT NULL,
    source TEXT NOT NULL,
    entered_at INTEGER NOT NULL,
    entered_by TEXT NOT NULL,
    evaluated_at INTEGER NOT NULL,
    -- The instrument message it came in (protocol:sender:control id): a replayed message
    -- never posts its controls twice.
    message_key TEXT
);
CREATE INDEX qc_runs_key ON qc_runs (instrument_id, test_code, run_at);
CREATE UNIQUE INDEX qc_runs_message ON qc_runs (instrument_id, test_code, message_key)
    WHERE message_key IS NOT NULL;

CREATE TABLE qc_results (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES qc_runs (id),
    lot_id INTEGER NOT NULL REFERENCES qc_lots (id),
    level INTEGER NOT NULL,
    value TEXT NOT NULL,
    mean TEXT NOT NULL,
    sd TEXT NOT NULL
);
CREATE INDEX qc_results_run ON qc_results (run_id);

CREATE TABLE qc_locks (
    id INTEGER PRIMARY KEY,
    instrument_id INTEGER NOT NULL REFERENCES instruments (id),
    test_code TEXT NOT NULL,
    rejected_run_id INTEGER NOT NULL REFERENCES qc_runs (id),
    locked_at INTEGER NOT NULL,
    -- The last accepted run before the rejection: patient results since then need re-testing.
    since INTEGER,
    lifted_at INTEGER,
    lifting_run_id INTEGER REFERENCES qc_runs (id)
);
CREATE UNIQUE INDEX qc_locks_open ON qc_locks (instrument_id, test_code) WHERE lifted_at IS NULL;

CREATE TABLE qc_corrective_actions (
    id INTEGER PRIMARY KEY,
    lock_id INTEGER NOT NULL REFERENCES qc_locks (id),
    action TEXT NOT NULL,
    reason TEXT NOT NULL,
    performed_at INTEGER NOT NULL,
    performed_by TEXT NOT NULL
);
CREATE INDEX qc_corrective_actions_lock ON qc_corrective_actions (lock_id);

CREATE TABLE qc_calibrations (
    id INTEGER PRIMARY KEY,
    instrument_id INTEGER NOT NULL REFERENCES instruments (id),
    test_code TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('calibration', 'verification')),
    calibrator_lot TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('passed', 'failed')),
    performed_at INTEGER NOT NULL,
    performed_by TEXT NOT NULL,
    notes TEXT
);
CREATE INDEX qc_calibrations_key ON qc_calibrations (instrument_id, test_code, performed_at);

-- How an instrument names a control in its messages (the sample id it sends for it).
CREATE TABLE qc_control_ids (
    instrument_id INTEGER NOT NULL REFERENCES instruments (id),
    control_id TEXT NOT NULL,
    lot_id INTEGER NOT NULL REFERENCES qc_lots (id),
    PRIMARY KEY (instrument_id, control_id)
);

-- The instrument a patient result was measured on, as a column, so QC can find the results
-- produced on an instrument since its last accepted run.
ALTER TABLE results ADD COLUMN instrument TEXT;
UPDATE results SET instrument = json_extract(body, '$.instrument');
CREATE INDEX results_instrument ON results (instrument, test_code, resulted_at);
