-- Results (issue 11). A test's result rules (reportable range, reference intervals, critical
-- limits, delta rule, autoverification) are a versioned document a director changes with a
-- reason; every version is kept. A result is one row per ordered test holding its current
-- version; every version (entry, repeat, verification, correction) is appended to
-- result_versions, which like the audit trail is never changed or removed. Values are kept as
-- the text reported (exact decimals), inside the JSON body.

CREATE TABLE result_rules (
    test_code TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    definition TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by TEXT NOT NULL
);

CREATE TABLE result_rule_versions (
    test_code TEXT NOT NULL,
    version INTEGER NOT NULL,
    definition TEXT NOT NULL,
    changed_at INTEGER NOT NULL,
    changed_by TEXT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (test_code, version)
);

CREATE TABLE results (
    id INTEGER PRIMARY KEY,
    order_test_id INTEGER NOT NULL UNIQUE REFERENCES order_tests (id),
    order_id INTEGER NOT NULL REFERENCES orders (id),
    patient_id INTEGER NOT NULL REFERENCES patients (id),
    specimen_id INTEGER NOT NULL REFERENCES specimens (id),
    test_code TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('held', 'released', 'corrected', 'not_performed')),
    version INTEGER NOT NULL,
    collected_at INTEGER,
    resulted_at INTEGER NOT NULL,
    verified_at INTEGER,
    released_at INTEGER,
    body TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX results_patient_test ON results (patient_id, test_code, collected_at);
CREATE INDEX results_order ON results (order_id);
CREATE INDEX results_held ON results (status) WHERE status = 'held';

CREATE TABLE result_versions (
    result_id INTEGER NOT NULL REFERENCES results (id),
    version INTEGER NOT NULL,
    status TEXT NOT NULL,
    body TEXT NOT NULL,
    reason TEXT,
    at INTEGER NOT NULL,
    by_user TEXT NOT NULL,
    PRIMARY KEY (result_id, version)
);

-- A critical result opens a call to document: who called whom, when, read back.
CREATE TABLE critical_calls (
    id INTEGER PRIMARY KEY,
    result_id INTEGER NOT NULL REFERENCES results (id),
    result_version INTEGER NOT NULL,
    opened_at INTEGER NOT NULL,
    due_at INTEGER NOT NULL,
    called_at INTEGER,
    called_by TEXT,
    notified_name TEXT,
    notified_role TEXT,
    read_back BOOLEAN,
    UNIQUE (result_id, result_version)
);
CREATE INDEX critical_calls_open ON critical_calls (due_at) WHERE called_at IS NULL;

-- A corrected result: the ordering provider is told.
CREATE TABLE result_notices (
    id INTEGER PRIMARY KEY,
    result_id INTEGER NOT NULL REFERENCES results (id),
    result_version INTEGER NOT NULL,
    provider_id INTEGER NOT NULL REFERENCES providers (id),
    created_at INTEGER NOT NULL,
    acknowledged_at INTEGER,
    acknowledged_by TEXT,
    UNIQUE (result_id, result_version)
);
CREATE INDEX result_notices_open ON result_notices (created_at) WHERE acknowledged_at IS NULL;

CREATE TRIGGER result_versions_no_update BEFORE UPDATE ON result_versions
BEGIN
    SELECT RAISE(ABORT, 'result_versions is append-only');
END;
CREATE TRIGGER result_versions_no_delete BEFORE DELETE ON result_versions
BEGIN
    SELECT RAISE(ABORT, 'result_versions is append-only');
END;
CREATE TRIGGER result_rule_versions_no_update BEFORE UPDATE ON result_rule_versions
BEGIN
    SELECT RAISE(ABORT, 'result_rule_versions is append-only');
END;
CREATE TRIGGER result_rule_versions_no_delete BEFORE DELETE ON result_rule_versions
BEGIN
    SELECT RAISE(ABORT, 'result_rule_versions is append-only');
END;
