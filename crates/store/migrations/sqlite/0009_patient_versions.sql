-- Patient corrections are versioned: each correction of a patient's demographics appends the
-- demographics it replaced (version 1 is what registration recorded), with who replaced them,
-- when and why. The MRN and facility identifiers are identifiers and are not corrected here.
-- Like the audit trail and the chain of custody, versions are never changed or removed.

CREATE TABLE patient_versions (
    id INTEGER PRIMARY KEY,
    patient_id INTEGER NOT NULL REFERENCES patients (id),
    version INTEGER NOT NULL,
    family_name TEXT NOT NULL,
    given_name TEXT NOT NULL,
    middle_name TEXT,
    birth_date TEXT NOT NULL,
    sex TEXT NOT NULL,
    contact TEXT NOT NULL,
    replaced_at INTEGER NOT NULL,
    replaced_by TEXT NOT NULL,
    reason TEXT NOT NULL,
    UNIQUE (patient_id, version)
);

CREATE TRIGGER patient_versions_no_update BEFORE UPDATE ON patient_versions
BEGIN
    SELECT RAISE(ABORT, 'patient_versions is append-only');
END;
CREATE TRIGGER patient_versions_no_delete BEFORE DELETE ON patient_versions
BEGIN
    SELECT RAISE(ABORT, 'patient_versions is append-only');
END;
